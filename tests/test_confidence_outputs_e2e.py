"""Confidence from a real run to review.csv, Kili and Label Studio (issue 18): `prelabel run
--confidence METHOD --upload kili` with real workers answered by the simulator, for NER
(each method) and classification (single and multi-label), then `prelabel export --format
label-studio`. Kili is the fake server (tests/fake_kili.py) behind the real SDK.

The simulator's confidences are made up: these tests check where confidence goes, not what
it is worth. They need the labeler's confidence mechanics (`workers.measure`), and skip
without them.
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

from collector.review import REVIEW_CSV
from prelabel.predictions import read_predictions_jsonl
from task_types import PredictionRow, TaskType
from task_types.classify import CLASSIFY, CLASSIFY_MULTI
from task_types.ner import NER
from task_types.review import kili_priority, review_order
from tests.fake_kili import FakeKili, serve_for_sdk
from tests.test_classify_e2e import HEADLINE_FLAGS, MOOD_FLAGS, SAMPLES, _simulator

pytest.importorskip("workers.measure", reason="the confidence mechanics are not merged yet")
pytestmark = pytest.mark.slow


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKili]:
    yield from serve_for_sdk(monkeypatch)


@pytest.fixture(scope="module")
def classify_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("sim-review")
    headlines = _simulator(SAMPLES / "headlines.csv", "test", HEADLINE_FLAGS, logs)
    moods = _simulator(SAMPLES / "moods.tsv", "test", MOOD_FLAGS, logs)
    yield {"classify": next(headlines), "classify-multi": next(moods)}
    for simulator in (headlines, moods):
        next(simulator, None)


def prelabel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def check_outputs(
    out: Path, task: TaskType, method: str, fake: FakeKili, env: dict[str, str]
) -> list[PredictionRow]:
    """review.csv in review order, Kili's priorities and category confidences, and Label
    Studio's scores, all from the run's rows."""
    rows: list[PredictionRow] = list(read_predictions_jsonl(out / "predictions.jsonl", task))
    assert any(r.confidence is not None for r in rows)
    with (out / REVIEW_CSV).open(encoding="utf-8-sig", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [line["id"] for line in lines] == [r.id for r in review_order(rows)]
    assert {line["method"] for line in lines} == {method}

    (project_id,) = fake.projects
    assert fake.priorities(project_id) == {r.id: kili_priority(r) for r in rows if r.text}
    categories = [
        c
        for lab in fake.labels
        for job in json.loads(lab["jsonResponse"]).values()
        for c in [*job.get("categories", []), *(
            c for a in job.get("annotations", []) for c in a["categories"])]
    ]  # fmt: skip
    assert categories and all(isinstance(c.get("confidence"), int) for c in categories)
    assert fake.bad_confidences == [] and fake.misplaced == [] and fake.miscategorised == []

    studio = out / "label-studio"
    exported = prelabel("export", str(out), "--format", "label-studio", "--out", str(studio),
                        env=env)  # fmt: skip
    assert exported.returncode == 0, exported.stderr + exported.stdout
    tasks: list[dict[str, Any]] = json.loads((studio / "tasks.json").read_text("utf-8"))
    by_id = {r.id: r for r in rows}
    for ls_task in tasks:
        row = by_id[ls_task["data"]["item_id"]]
        for prediction in ls_task.get("predictions", []):
            assert prediction.get("score") == row.confidence
            assert all(0 <= r["score"] <= 1 for r in prediction["result"] if "score" in r)
    return rows


@pytest.mark.parametrize("method", ["logprobs", "consistency:3", "verify"])
def test_a_ner_run_with_confidence_orders_review_everywhere(
    fake: FakeKili,
    fleet_env: dict[str, str],
    simulator_url: str,
    gold_path: Path,
    tmp_path: Path,
    method: str,
) -> None:
    out = tmp_path / "out"
    env = {**fleet_env, "KILI_API_KEY": fake.api_key, "KILI_API_ENDPOINT": fake.endpoint,
           "KILI_SDK_SKIP_CHECKS": "1"}  # fmt: skip
    proc = prelabel(
        "run", "--dataset", str(gold_path), "--limit", "12", "--model", "gpt-review-e2e",
        "--base-url", simulator_url, "--out", str(out), "--confidence", method,
        "--upload", "kili", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = check_outputs(out, NER, method, fake, env)
    assert len(rows) == 12
    assert "priorities set (least sure first)" in proc.stdout


@pytest.mark.parametrize("task", [CLASSIFY, CLASSIFY_MULTI], ids=lambda t: t.name)
def test_a_classification_run_with_confidence_orders_review_everywhere(
    fake: FakeKili,
    fleet_env: dict[str, str],
    classify_urls: dict[str, str],
    tmp_path: Path,
    task: TaskType,
) -> None:
    multi = task is CLASSIFY_MULTI
    dataset = SAMPLES / ("moods.tsv" if multi else "headlines.csv")
    out = tmp_path / "out"
    env = {**fleet_env, "KILI_API_KEY": fake.api_key, "KILI_API_ENDPOINT": fake.endpoint,
           "KILI_SDK_SKIP_CHECKS": "1"}  # fmt: skip
    proc = prelabel(
        "run", "--dataset", str(dataset), *(MOOD_FLAGS if multi else HEADLINE_FLAGS),
        "--model", "gpt-4o-mini", "--base-url", classify_urls[task.name], "--out", str(out),
        "--confidence", "consistency:3", "--upload", "kili", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    check_outputs(out, task, "consistency:3", fake, env)
