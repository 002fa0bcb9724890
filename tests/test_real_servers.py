"""Real servers through real workers: `prelabel run`, two `celery worker` subprocesses, Redis
and a simulator playing what real servers do (a 200 that is not a chat completion, answers cut
off at max_tokens, 5xx faults, a llama.cpp server's small context window).

Each misbehaviour must end as one clear per-item failure, paid once, with every request the
endpoint served counted once in the run's figures and in the items' usage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.server import BROKEN_BODIES, RunningSimulator
from task_types.ner.model import NerRecord

pytestmark = pytest.mark.slow

SENTENCES = [
    (
        ["Peter", "Blackburn", "flew", "to", "Paris", "."],
        ["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
    ),
    (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
    (["Japan", "beat", "Syria", "in", "Tokyo", "."], ["B-LOC", "O", "B-LOC", "O", "B-LOC", "O"]),
    (["Nadim", "Ladki", "joined", "Reuters", "."], ["B-PER", "I-PER", "O", "B-ORG", "O"]),
]


def write_conll(path: Path, sentences: Sequence[tuple[list[str], list[str]]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for tokens, tags in sentences:
            f.writelines(f"{t} {g}\n" for t, g in zip(tokens, tags, strict=True))
            f.write("\n")
    return path


def many(n: int) -> list[tuple[list[str], list[str]]]:
    """`n` distinct sentences (the simulator tells them apart by text)."""
    return [
        ([*tokens[:-1], f"day-{i}", "."], [*tags[:-1], "O", "O"])
        for i in range(n)
        for tokens, tags in [SENTENCES[i % len(SENTENCES)]]
    ]


@contextmanager
def simulator(
    sentences: Sequence[tuple[list[str], list[str]]], **options: Any
) -> Iterator[RunningSimulator]:
    gold = [NerRecord.from_tokens(f"g{i}", t, g) for i, (t, g) in enumerate(sentences)]
    with serve_in_thread(SimulatorConfig(port=0, **options), Oracle(gold)) as running:
        yield running


def run(
    env: dict[str, str], dataset: Path, base_url: str, out: Path, *extra: str, model: str = ""
) -> subprocess.CompletedProcess[str]:
    args = ["run", "--dataset", str(dataset), "--base-url", base_url, "--out", str(out)]
    args += ["--model", model or "gpt-4o-mini", "--no-cache", "--shard-size", "4"]
    args += ["--batch-size", "1", *extra]  # one item a request: the checks count calls as items
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return data


def test_bodies_that_are_not_chat_completions_fail_their_items_once(
    fleet_env: dict[str, str], tmp_path: Path
) -> None:
    """`choices: 5`, `message: "hello"`, `usage: "lots"` and a body without choices crashed
    the shard task four times (12 paid calls for 3 items), then failed the items as "started 4
    times without finishing (its worker died each time)" (issue 14.9)."""
    dataset = write_conll(tmp_path / "test.conll", SENTENCES)
    with simulator(SENTENCES, broken_bodies=BROKEN_BODIES) as sim:
        proc = run(fleet_env, dataset, sim.base_url, tmp_path / "out")
        served = sim.stats.requests
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert served == len(SENTENCES)  # one paid call per item, no crash loop
    results = rows(tmp_path / "out")
    assert [r["status"] for r in results] == ["failed"] * len(SENTENCES)
    problems = {r["error"].split(" with ", 1)[1].split(":")[0] for r in results}
    assert problems == {
        "choices that are a number, not a list of choices",
        "a message that is a string, not an object",
        "usage that is a string, not an object",
        "an object without choices",
    }
    for r in results:
        assert "not a chat completion" in r["error"] and "worker died" not in r["error"]
        assert r["usage"]["requests"] == 1
    figures = report(tmp_path / "out")["figures"]
    assert figures["requests"] == served


def test_every_request_served_is_counted_once_in_the_run_and_in_its_items(
    fleet_env: dict[str, str], tmp_path: Path
) -> None:
    """Batches of 4 whose answers are cut off at --max-tokens split down to one sentence, and
    5xx faults are retried: the run's requests counter, the items' usage and the endpoint's
    own count agree (issues 13.4, 14.14), and a cut-off answer says so (issue 13.1)."""
    sentences = many(12)
    dataset = write_conll(tmp_path / "test.conll", sentences)
    with simulator(sentences, fail_rate=0.2, seed=7) as sim:
        args = ("--batch-size", "4", "--max-tokens", "60")
        proc = run(fleet_env, dataset, sim.base_url, tmp_path / "out", *args)
        served = (sim.stats.requests, sim.stats.prompt_tokens, sim.stats.completion_tokens)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = rows(tmp_path / "out")
    assert len(results) == len(sentences)
    usage = tuple(
        sum(r["usage"][k] for r in results)
        for k in ("requests", "prompt_tokens", "completion_tokens")
    )
    figures = report(tmp_path / "out")["figures"]
    assert usage == (figures["requests"], figures["prompt_tokens"], figures["completion_tokens"])
    assert usage == served
    assert figures["requests"] > 3 + figures["retries"]  # batches were split
    for r in results:
        if r["status"] == "failed":
            assert "cut off at max_tokens (60)" in r["error"]


def test_a_small_server_context_fails_long_items_before_they_are_sent(
    fleet_env: dict[str, str], tmp_path: Path
) -> None:
    """A llama.cpp server's slot held 4,096 tokens where prelabel assumed 128,000; a 2 MB
    text crashed the token counter (issues 13.7, 14.10). A model the server does not list is
    warned about (issue 13.8)."""
    long = (["word"] * 3000, ["O"] * 3000)
    huge = (["a" * 2_000_000], ["O"])
    sentences = [*SENTENCES[:2], long, huge]
    dataset = write_conll(tmp_path / "test.conll", sentences)
    with simulator(SENTENCES[:2], context_tokens=2048) as sim:
        proc = run(fleet_env, dataset, sim.base_url, tmp_path / "out", model="gemma-3-270m")
        served = sim.stats.requests
    assert proc.returncode == 0, proc.stderr + proc.stdout
    flat = " ".join(proc.stdout.split())
    assert "warning: model 'gemma-3-270m' is not among the models" in flat
    assert served == 2  # the long items were never sent
    by_id = {r["text"][:20]: r for r in rows(tmp_path / "out")}
    assert len(by_id) == 4
    for text in ("word word word word ", "a" * 20):
        item = by_id[text]
        assert item["status"] == "failed"
        assert item["error"].startswith("too long for the model's context")
        assert "2048 of the server (/props n_ctx)" in item["error"]
