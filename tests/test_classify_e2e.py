"""Classification end to end: the `prelabel` CLI, Redis, two `celery worker` subprocesses and
a `prelabel simulate` subprocess answering from gold over HTTP.

AG News (single-label) and GoEmotions (multi-label) are read from ../shared/data as they are,
with the README's flags; those tests skip when the data is absent. The project's own samples
(`producer/samples/headlines.csv`, `moods.tsv`) always run.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prelabel import launch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "producer" / "samples"

AG_NEWS = DATA / "ag_news"
GOEMOTIONS = DATA / "goemotions"
AG_FLAGS = (
    "--task",
    "classify",
    "--labels",
    str(AG_NEWS / "classes.txt"),
    "--columns",
    "label,title,description",
    "--text-field",
    "title,description",
    "--first-label-id",
    "1",
)
GO_FLAGS = (
    "--task",
    "classify",
    "--multi-label",
    "--labels",
    str(GOEMOTIONS / "emotions.txt"),
    "--columns",
    "text,labels,id",
    "--id-field",
    "id",
)
HEADLINE_FLAGS = (
    "--task",
    "classify",
    "--labels",
    str(SAMPLES / "headlines.txt"),
    "--columns",
    "label,title,description",
    "--text-field",
    "title,description",
    "--first-label-id",
    "1",
)
MOOD_FLAGS = (
    "--task",
    "classify",
    "--multi-label",
    "--labels",
    str(SAMPLES / "moods.txt"),
    "--columns",
    "text,labels,id",
    "--id-field",
    "id",
)


def _simulator(
    gold: Path, split: str, flags: tuple[str, ...], logs: Path, *extra: str
) -> Iterator[str]:
    port = launch.free_port()
    proc = launch.start_simulator(
        port, gold, split=split, extra=[*flags, *extra], log=logs / f"sim-{port}.log"
    )
    yield f"http://127.0.0.1:{port}/v1"
    launch.stop([proc])


def _needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data is absent)")


@pytest.fixture(scope="module")
def ag_news_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _needs(AG_NEWS / "test.csv")
    logs = tmp_path_factory.mktemp("sim-ag")
    yield from _simulator(AG_NEWS / "test.csv", "test", AG_FLAGS, logs)


@pytest.fixture(scope="module")
def goemotions_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _needs(GOEMOTIONS / "test.tsv")
    logs = tmp_path_factory.mktemp("sim-go")
    yield from _simulator(GOEMOTIONS, "test", GO_FLAGS, logs)


@pytest.fixture(scope="module")
def headlines_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("sim-headlines")
    yield from _simulator(SAMPLES / "headlines.csv", "test", HEADLINE_FLAGS, logs)


def prelabel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run(
    dataset: Path, url: str, out: Path, flags: tuple[str, ...], *extra: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return prelabel(
        "run",
        "--dataset",
        str(dataset),
        *flags,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        url,
        "--shard-size",
        "20",
        "--out",
        str(out),
        *extra,
        env=env,
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_ag_news_single_label_with_held_out_examples_labels_every_item_as_gold(
    fleet_env: dict[str, str], ag_news_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    test_csv = AG_NEWS / "test.csv"
    # Rows 7,200 on are the example pool: never among the items labeled.
    shots = ("--few-shot", "2", "--few-shot-from", str(test_csv), "--few-shot-rows", "7200:")
    proc = run(
        test_csv,
        ag_news_url,
        out,
        AG_FLAGS,
        "--rows",
        ":7200",
        "--limit",
        "60",
        "--batch-size",
        "5",
        *shots,
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout

    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 60 and all(r["status"] == "labeled" for r in rows)
    assert all(len(r["labels"]) == 1 and r["labels"] == r["gold"] for r in rows)
    assert {r["labels"][0] for r in rows} <= {"World", "Sports", "Business", "Sci/Tech"}
    # The first row's text is its title and description, joined with a line break.
    assert rows[0]["text"].startswith("Fears for T N pension after talks\nUnions representing")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["figures"]["labeled"] == 60 and report["figures"]["requests"] == 12
    assert "100.00" in (out / "report.md").read_text(encoding="utf-8")
    with (out / "predictions.csv").open(encoding="utf-8-sig", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 60 and table[0]["id"] == rows[0]["id"]


def test_goemotions_multi_label_labels_every_item_as_gold(
    fleet_env: dict[str, str], goemotions_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run(
        GOEMOTIONS,
        goemotions_url,
        out,
        GO_FLAGS,
        "--split",
        "test",
        "--limit",
        "80",
        "--batch-size",
        "10",
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 80 and all(r["status"] == "labeled" for r in rows)
    assert all(sorted(r["labels"]) == sorted(r["gold"]) for r in rows)
    assert any(len(r["gold"]) > 1 for r in rows)  # the sample holds multi-label items
    ids = [r["id"] for r in rows]
    assert ids[:2] == ["eecwqtt", "ed5f85d"]  # the comment ids, from --id-field


def test_a_shipped_sample_runs_then_evaluates_and_exports(
    fleet_env: dict[str, str], headlines_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run(
        SAMPLES / "headlines.csv",
        headlines_url,
        out,
        HEADLINE_FLAGS,
        "--batch-size",
        "4",
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 24 and all(r["labels"] == r["gold"] for r in rows)
    run_json = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run_json["labeling"]["task"] == "classify"

    evaluated = prelabel("evaluate", str(out), "--json", env=fleet_env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == json.loads(
        (out / "report.json").read_text(encoding="utf-8")
    )
    studio = tmp_path / "label-studio"
    exported = prelabel(
        "export", str(out), "--format", "label-studio", "--out", str(studio), env=fleet_env
    )
    assert exported.returncode == 0, exported.stderr + exported.stdout
    config = next(studio.glob("*.xml")).read_text(encoding="utf-8")
    assert "<Choices" in config and 'value="Sci/Tech"' in config
