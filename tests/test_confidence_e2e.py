"""`--confidence` end to end: the `prelabel` CLI, Redis, two `celery worker` subprocesses and
`prelabel simulate` subprocesses answering from gold with noise (their log-probabilities are
made up: these tests check the mechanics, not calibration).

One fleet serves the module; each simulator serves the tests that need its flags.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from prelabel import launch
from tests.test_classify_e2e import HEADLINE_FLAGS, MOOD_FLAGS
from tests.test_classify_e2e import run as run_prelabel

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "producer" / "samples"
NER_ITEMS = 40


def _simulator(
    tmp: pytest.TempPathFactory, gold: Path, flags: tuple[str, ...], *extra: str
) -> Iterator[str]:
    port = launch.free_port()
    log = tmp.mktemp("sim") / "simulator.log"
    proc = launch.start_simulator(
        port, gold, extra=[*flags, "--noise", "0.3", "--seed", "7", *extra], log=log
    )
    yield f"http://127.0.0.1:{port}/v1"
    launch.stop([proc])


@pytest.fixture(scope="module")
def ner_url(gold_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _simulator(tmp_path_factory, gold_path, ())


@pytest.fixture(scope="module")
def plain_ner_url(gold_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like llama.cpp without logprobs: one choice whatever `n`, no log-probabilities."""
    yield from _simulator(tmp_path_factory, gold_path, (), "--ignore-n", "--no-logprobs")


@pytest.fixture(scope="module")
def headlines_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _simulator(tmp_path_factory, SAMPLES / "headlines.csv", HEADLINE_FLAGS)


@pytest.fixture(scope="module")
def moods_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _simulator(tmp_path_factory, SAMPLES / "moods.tsv", MOOD_FLAGS)


def run(
    dataset: Path, url: str, out: Path, *extra: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`prelabel run` as the classification e2e runs it, uncached: every sample and every
    question is asked."""
    return run_prelabel(dataset, url, out, (), "--no-cache", *extra, env=env)


def rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def requests(out: Path) -> int:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return int(report["figures"]["requests"])


def test_logprobs_on_ner_score_each_mention_and_doubt_the_noisy_items(
    fleet_env: dict[str, str], ner_url: str, gold_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run(
        gold_path,
        ner_url,
        out,
        "--limit",
        str(NER_ITEMS),
        "--confidence",
        "logprobs",
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    labeled = [r for r in rows(out) if r["status"] == "labeled"]
    assert len(labeled) == NER_ITEMS
    assert all(r["confidence"] is not None and 0 <= r["confidence"] <= 1 for r in labeled)
    for r in labeled:
        placed = {(e["type"], e["start"], e["end"]) for e in r["entities"]}
        assert {(s["label"], s["start"], s["end"]) for s in r["scores"]} == placed
        assert all(r["text"][s["start"] : s["end"]] == s["text"] for s in r["scores"])
    right = [r["confidence"] for r in labeled if r["tags"] == r["gold_tags"]]
    wrong = [r["confidence"] for r in labeled if r["tags"] != r["gold_tags"]]
    assert right and wrong  # the noise corrupted some items, not all
    assert mean(wrong) < mean(right)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["confidence"]["method"] == "logprobs"
    status = subprocess.run(
        [sys.executable, "-m", "prelabel", "status", run_json["run_id"]],
        env=fleet_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert any("confidence" in ln and "logprobs" in ln for ln in status.stdout.splitlines())


def test_logprobs_on_classification_score_the_label_and_doubt_the_noisy_items(
    fleet_env: dict[str, str], headlines_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run(
        SAMPLES / "headlines.csv",
        headlines_url,
        out,
        *HEADLINE_FLAGS,
        "--batch-size",
        "4",
        "--confidence",
        "logprobs",
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    labeled = [r for r in rows(out) if r["status"] == "labeled"]
    assert labeled and all(r["confidence"] is not None for r in labeled)
    assert all([s["label"] for s in r["scores"]] == r["labels"] for r in labeled)
    right = [r["confidence"] for r in labeled if r["labels"] == r["gold"]]
    wrong = [r["confidence"] for r in labeled if r["labels"] != r["gold"]]
    assert right and wrong
    assert mean(wrong) < mean(right)


def test_consistency_asks_n_in_one_request_or_n_calls_where_n_is_ignored(
    fleet_env: dict[str, str], ner_url: str, plain_ner_url: str, gold_path: Path, tmp_path: Path
) -> None:
    common = ("--limit", "10", "--batch-size", "5", "--confidence", "consistency:3")
    with_n = run(gold_path, ner_url, tmp_path / "n", *common, env=fleet_env)
    assert with_n.returncode == 0, with_n.stderr + with_n.stdout
    assert requests(tmp_path / "n") == 2  # two batches, three samples each by `n`
    sampled = [r for r in rows(tmp_path / "n") if r["status"] == "labeled"]
    assert len(sampled) == 10
    shares = {round(s["confidence"], 6) for r in sampled for s in r["scores"]}
    assert shares <= {0.666667, 1.0}  # kept: in two or three of three samples
    assert {round(r["confidence"], 6) for r in sampled} == {0.666667, 1.0}
    ignored = run(gold_path, plain_ner_url, tmp_path / "calls", *common, env=fleet_env)
    assert ignored.returncode == 0, ignored.stderr + ignored.stdout
    # Each batch: the n=3 call answered one choice, then two seeded calls (or, once the
    # worker remembers the endpoint, three seeded calls): 6 requests in all.
    assert requests(tmp_path / "calls") == 6
    assert len([r for r in rows(tmp_path / "calls") if r["confidence"] is not None]) == 10


def test_the_tokens_per_minute_cap_counts_every_sample(
    fleet_env: dict[str, str], ner_url: str, gold_path: Path, tmp_path: Path
) -> None:
    # One answer of 1,000 tokens and a prompt fit under 2,500 tokens a minute; three do not.
    cap = ("--limit", "2", "--max-tokens", "1000", "--tpm", "2500")
    plain = run(gold_path, ner_url, tmp_path / "one", *cap, env=fleet_env)
    assert plain.returncode == 0, plain.stderr + plain.stdout
    assert all(r["status"] == "labeled" for r in rows(tmp_path / "one"))
    sampled = run(
        gold_path,
        ner_url,
        tmp_path / "three",
        *cap,
        "--confidence",
        "consistency:3",
        env=fleet_env,
    )
    assert sampled.returncode == 0, sampled.stderr + sampled.stdout
    failed = rows(tmp_path / "three")
    assert all(r["status"] == "failed" for r in failed)
    assert all(
        "(prompt + n × max_tokens), more than the whole --tpm 2500" in r["error"] for r in failed
    )


def test_verify_asks_one_question_per_item_and_drops_what_it_rejects(
    fleet_env: dict[str, str], moods_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run(
        SAMPLES / "moods.tsv",
        moods_url,
        out,
        *MOOD_FLAGS,
        "--batch-size",
        "5",
        "--confidence",
        "verify",
        "--drop-rejected",
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    labeled = [r for r in rows(out) if r["status"] == "labeled"]
    assert len(labeled) == 20
    assert requests(out) == 4 + 20  # four batches, and a verification per item
    assert all(r["confidence"] is not None for r in labeled)
    for r in labeled:
        assert [s["label"] for s in r["scores"] if s["kept"]] == r["labels"]
    rejected = [s for r in labeled for s in r["scores"] if not s["kept"]]
    assert rejected, "the noise should have made the verifier reject something"
    kept = [s["confidence"] for r in labeled for s in r["scores"] if s["kept"]]
    assert mean(s["confidence"] for s in rejected) < mean(kept)


def test_verify_on_ner_drops_rejected_mentions_and_keeps_them_in_scores(
    fleet_env: dict[str, str], ner_url: str, gold_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = run(
        gold_path,
        ner_url,
        out,
        "--limit",
        "12",
        "--batch-size",
        "4",
        "--confidence",
        "verify",
        "--drop-rejected",
        env=fleet_env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    labeled = [r for r in rows(out) if r["status"] == "labeled"]
    assert len(labeled) == 12 and requests(out) == 3 + 12
    for r in labeled:
        # Scores follow the answer's order, entities the text's.
        kept = sorted((s["start"], s["end"], s["label"]) for s in r["scores"] if s["kept"])
        assert kept == [(e["start"], e["end"], e["type"]) for e in r["entities"]]
    assert any(not s["kept"] for r in labeled for s in r["scores"])


def test_an_endpoint_without_logprobs_stops_the_run_with_one_line(
    fleet_env: dict[str, str], plain_ner_url: str, gold_path: Path, tmp_path: Path
) -> None:
    proc = run(
        gold_path,
        plain_ner_url,
        tmp_path / "out",
        "--limit",
        "4",
        "--confidence",
        "logprobs",
        env=fleet_env,
    )
    assert proc.returncode == 1
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("error:"))
    assert line.endswith(
        "returned no log-probabilities for model gpt-4o-mini: use --confidence consistency:5 "
        "or verify"
    ), proc.stderr
