"""Text without gold labels, what most users bring, labels end to end with real workers:
JSONL, CSV, Parquet and a saved Hugging Face dataset with a text column only. The report says
there is no gold and shows everything else; exports and the Kili upload work."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from producer import DatasetSpec, load_dataset_records
from tests.fake_kili import FakeKili

pytestmark = pytest.mark.slow

PRELABEL = str(Path(sys.executable).parent / "prelabel")
N = 24


def prelabel(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRELABEL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def texts(gold_path: Path) -> list[str]:
    """Sentences the simulator knows (it answers by text), without their tags."""
    records = load_dataset_records(DatasetSpec(source=str(gold_path), limit=N)).records
    return [r.text for r in records]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path = path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def write_csv(path: Path, texts: list[str]) -> Path:
    path = path / "texts.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return path


def write_parquet(path: Path, texts: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = path / "texts.parquet"
    pq.write_table(pa.table({"text": texts}), path)
    return path


def write_saved_hf(path: Path, texts: list[str]) -> Path:
    import datasets

    path = path / "hf-texts"
    ds = datasets.Dataset.from_dict({"id": [f"t{i}" for i in range(len(texts))], "text": texts})
    datasets.DatasetDict({"test": ds}).save_to_disk(str(path))
    return path


@pytest.fixture
def kili() -> Iterator[FakeKili]:
    server = FakeKili().start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "write", [write_jsonl, write_csv, write_parquet, write_saved_hf], ids=lambda f: f.__name__
)
def test_text_without_gold_labels_end_to_end(
    fleet_env: dict[str, str],
    simulator_url: str,
    texts: list[str],
    tmp_path: Path,
    write: Callable[[Path, list[str]], Path],
    kili: FakeKili,
) -> None:
    data = write(tmp_path, texts)
    out = tmp_path / "out"
    run = prelabel(
        *("run", "--dataset", str(data), "--model", "gpt-4o-mini"),
        *("--base-url", simulator_url, "--shard-size", "10", "--out", str(out)),
        env=fleet_env,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    assert "no gold tags" in run.stdout

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == N and all(r["status"] == "labeled" for r in rows)
    assert all(r.get("gold_tags") is None for r in rows)
    assert sum(len(r["entities"]) for r in rows) > 0  # the oracle's mentions were placed
    for row in rows:
        for ent in row["entities"]:
            assert row["text"][ent["start"] : ent["end"]] == ent["text"]

    report = json.loads((out / "report.json").read_text())
    assert report["evaluated_items"] == 0
    assert report["losses"]["without_gold"] == N
    figures = report["figures"]
    # Later data sets send the same requests as the first: the cache answers them.
    assert figures["labeled"] == N and figures["requests"] + figures["cache_hits"] > 0
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for text in (md, html):
        assert "No gold labels" in text
        assert "Entity-level micro F1" not in text and "entity-level micro F1" not in text
    assert "Run figures" in md and "requests" in md

    env = {**fleet_env, "KILI_SDK_SKIP_CHECKS": "1"}
    for fmt in ("conll", "label-studio", "kili", "hf"):
        export = prelabel(
            "export", str(out), "--format", fmt, "--out", str(tmp_path / fmt), env=env
        )
        assert export.returncode == 0, export.stderr
        assert "Saving the dataset" not in export.stderr  # no third-party progress bar
    from prelabel.files import readable_mode

    for path in [*out.iterdir(), tmp_path / "hf", *(tmp_path / "hf").iterdir()]:
        assert path.stat().st_mode & 0o777 == readable_mode(path.is_dir()), path
    conll = (tmp_path / "conll" / "predictions.conll").read_text()
    assert conll.count("\n\n") >= N - 1

    upload_env = {**env, "KILI_API_KEY": kili.api_key, "KILI_API_ENDPOINT": kili.endpoint}
    upload = prelabel("upload", str(out), "--to", "kili", env=upload_env)
    assert upload.returncode == 0, upload.stderr + upload.stdout
    (project,) = kili.projects.values()
    assert len(kili.project_assets(project["id"])) == N
