"""The Batch API end to end: the `prelabel` CLI, Redis, real `celery worker` subprocesses (their
reconciler threads poll the batches) and a `prelabel simulate` subprocess that fakes OpenAI's
Files and Batch API over HTTP, through the real `openai` client.

Each test starts the simulator it needs (phase times, expiry, the enqueued-token limit); the
workers poll every 0.2 s and reconcile every 0.5 s, so that a batch's life takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from prelabel import launch
from prelabel.store import RunStore

pytestmark = pytest.mark.slow

LIMIT = 40
#: Generous: a safety net against a hang, never a claim about speed.
WAIT = 120.0
FAST_FLEET = {"PRELABEL_BATCH_POLL_SECONDS": "0.2", "PRELABEL_RECONCILE_INTERVAL": "0.5"}


def start_fleet(
    redis_url: str, logs: Path, workers: int = 2, **extra: str
) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    queue = f"prelabel-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_url, "PRELABEL_QUEUE": queue, **FAST_FLEET}
    env.pop("OPENAI_API_KEY", None)
    procs = [
        launch.start_worker(
            concurrency=1,
            env={**env, **extra} if i == 0 else env,
            log=logs / f"worker{i}.log",
            hostname=f"{queue}-{i}@%h",
        )
        for i in range(workers)
    ]
    return env, procs


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env, procs = start_fleet(redis_url, tmp_path_factory.mktemp("workers"))
    yield env
    launch.stop(procs)


class Simulator:
    def __init__(self, gold: Path, logs: Path, *flags: str) -> None:
        self.port = launch.free_port()
        self.proc = launch.start_simulator(
            self.port, gold, extra=list(flags), log=logs / f"sim-{self.port}.log"
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            stats: dict[str, Any] = json.load(r)
        return stats

    def stop(self) -> None:
        launch.stop([self.proc])


@pytest.fixture
def simulator(gold_path: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Simulator] = []

    def start(*flags: str) -> Simulator:
        sim = Simulator(gold_path, tmp_path, *flags)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def prelabel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def run_args(gold: Path, url: str, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--dataset",
        str(gold),
        "--limit",
        str(LIMIT),
        "--model",
        "gpt-4o-mini",
        "--base-url",
        url,
        "--batch-size",
        "5",
        "--shard-size",
        "20",
        "--no-cache",
        "--out",
        str(out),
        *extra,
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_gold(out: Path) -> bool:
    rows = read_jsonl(out / "predictions.jsonl")
    return len(rows) == LIMIT and all(
        r["status"] == "labeled" and r["tags"] == r["gold_tags"] for r in rows
    )


def figures(out: Path) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))[
        "figures"
    ]
    return figures


def test_a_batch_run_labels_everything_at_half_the_price(
    fleet: dict[str, str], simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    sim = simulator("--batch-seconds", "1")
    out = tmp_path / "out"
    proc = prelabel(*run_args(gold_path, sim.url, out, "--transport", "batch"), env=fleet)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all_gold(out)
    stats = sim.stats()
    # Two shards of 20 items at 5 a request: two batch files of 4 lines, no realtime call.
    assert stats["batches_created"] == 2 and stats["files_uploaded"] == 2
    assert stats["requests"] == 0 and stats["batch_lines"] == 8
    got = figures(out)
    full = (0.15 * got["prompt_tokens"] + 0.60 * got["completion_tokens"]) / 1e6
    assert got["cost_usd"] == pytest.approx(full / 2)


def test_expired_lines_go_into_a_new_batch_and_nothing_is_lost(
    fleet: dict[str, str], simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    # Every batch expires half way: half its lines are answered, the rest go again.
    sim = simulator("--batch-seconds", "2", "--batch-expire-seconds", "1")
    out = tmp_path / "out"
    proc = prelabel(*run_args(gold_path, sim.url, out, "--transport", "batch"), env=fleet)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all_gold(out)
    stats = sim.stats()
    assert stats["batches_created"] > 2  # the expired lines went out again
    assert stats["requests"] == 0


def test_lines_refused_for_their_prompt_cache_key_go_again_without_it(
    fleet: dict[str, str], simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    """An endpoint that refuses `prompt_cache_key` (a strict proxy, an old Azure API version)
    answers every line of the first batches with a 400: the poller asks them again and marks
    the run, and every later line, whichever worker writes it, leaves the key out."""
    sim = simulator("--batch-seconds", "1", "--refuse-cache-key")
    out = tmp_path / "out"
    proc = prelabel(*run_args(gold_path, sim.url, out, "--transport", "batch"), env=fleet)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all_gold(out)
    stats = sim.stats()
    assert stats["batch_lines"] == 16  # 8 refused, then the same 8 without the key
    assert stats["batches_created"] == 4 and stats["requests"] == 0


def test_a_batch_over_the_enqueued_token_limit_is_submitted_again_later(
    fleet: dict[str, str], simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    # Room for one shard's file at a time in the provider's queue (the fleet is not told,
    # so the second batch fails with token_limit_exceeded and waits for its turn).
    sim = simulator("--batch-seconds", "1", "--batch-enqueued-tokens", "4000")
    out = tmp_path / "out"
    proc = prelabel(*run_args(gold_path, sim.url, out, "--transport", "batch"), env=fleet)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all_gold(out)
    assert sim.stats()["batches_created"] >= 2


def test_auto_sends_what_is_not_back_by_the_deadline_realtime(
    fleet: dict[str, str], simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    # The batches take a minute; the deadline comes in a few seconds.
    sim = simulator("--batch-seconds", "60")
    out = tmp_path / "out"
    deadline = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 8))
    auto = ["--transport", "auto", "--deadline", deadline, "--deadline-margin", "0"]
    proc = prelabel(*run_args(gold_path, sim.url, out, *auto), env=fleet)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all_gold(out)
    stats = sim.stats()
    assert stats["batches_created"] >= 1 and stats["batch_cancels"] >= 1
    assert stats["requests"] > 0  # the realtime transport answered what was left


def test_cancel_cancels_the_runs_batches(
    fleet: dict[str, str], simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    sim = simulator("--batch-seconds", "60")
    out = tmp_path / "out"
    args = run_args(gold_path, sim.url, out, "--transport", "batch", "--no-wait")
    proc = prelabel(*args, env=fleet)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    run_id = proc.stdout.split()[1].rstrip(":")
    deadline = time.monotonic() + WAIT
    while sim.stats()["batches_created"] < 2:
        assert time.monotonic() < deadline, "no batch was created"
        time.sleep(0.2)
    cancelled = prelabel("cancel", run_id, env=fleet)
    assert cancelled.returncode == 0, cancelled.stderr + cancelled.stdout
    while sim.stats()["batch_cancels"] < 2:
        assert time.monotonic() < deadline, "the run's batches were not cancelled"
        time.sleep(0.2)


def test_a_worker_killed_after_creating_a_batch_never_makes_a_second_one(
    redis_url: str, simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    sim = simulator("--batch-seconds", "1")
    # One worker dies right after its first `batches.create` returns, before recording it;
    # the other takes the shard over when the lease runs out, and adopts the batch.
    env, procs = start_fleet(redis_url, tmp_path, PRELABEL_TEST_DIE_AFTER_BATCH_CREATE="1")
    try:
        out = tmp_path / "out"
        args = run_args(gold_path, sim.url, out, "--transport", "batch", "--limit", "20")
        proc = prelabel(*args, env=env)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        rows = read_jsonl(out / "predictions.jsonl")
        assert len(rows) == 20 and all(r["tags"] == r["gold_tags"] for r in rows)
        assert sim.stats()["batches_created"] == 1
    finally:
        launch.stop(procs)


def test_a_worker_killed_while_its_batch_runs_loses_nothing(
    redis_url: str, simulator: Any, gold_path: Path, tmp_path: Path
) -> None:
    sim = simulator("--batch-seconds", "4")
    env, procs = start_fleet(redis_url, tmp_path)
    try:
        out = tmp_path / "out"
        args = run_args(gold_path, sim.url, out, "--transport", "batch", "--no-wait")
        proc = prelabel(*args, env=env)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        run_id = proc.stdout.split()[1].rstrip(":")
        deadline = time.monotonic() + WAIT
        while sim.stats()["batches_created"] < 2:
            assert time.monotonic() < deadline, "no batch was created"
            time.sleep(0.1)
        os.killpg(procs[0].pid, signal.SIGKILL)  # the batches are in flight: the other polls
        store = RunStore(redis.Redis.from_url(redis_url))
        while store.status(run_id)[0] == "running":
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.2)
        assert store.status(run_id)[0] == "completed"
        collected = prelabel("collect", run_id, "--out", str(out), env=env)
        assert collected.returncode == 0, collected.stderr + collected.stdout
        assert all_gold(out)
        assert sim.stats()["batches_created"] == 2
    finally:
        launch.stop(procs)
