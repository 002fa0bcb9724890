"""Chaos on real processes: workers killed, Redis restarted, a run resumed.

Each test labels 1,000 items with two `celery worker` subprocesses against the simulator
with 5xx faults on, inflicts one fault mid-run, restarts workers as an operator would,
and then checks that every item appears exactly once, that the counters equal the file,
and that the LLM calls stay within a few percent of the items.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from prelabel import launch
from prelabel.store import RunStore
from producer import DatasetSpec, load_dataset_records

pytestmark = pytest.mark.slow

ITEMS = 1000
#: How long a run may take in these tests before we call it stuck.
DEADLINE = 240.0


def synthesize(gold: Path, out: Path, n: int = ITEMS) -> Path:
    """n distinct CoNLL sentences cycled from `gold`, each made unique by a numbered token."""
    records = load_dataset_records(DatasetSpec(source=str(gold))).records
    lines: list[str] = []
    for i in range(n):
        record = records[i % len(records)]
        for token, tag in zip(record.tokens, record.gold_tags or (), strict=True):
            lines.append(f"{token} X X {tag}")
        lines.append(f"#{i} X X O")
        lines.append("")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Fleet:
    """A simulator, workers and a run, on one Redis; the test inflicts faults on them."""

    redis_url: str
    gold: Path
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sim: subprocess.Popen[bytes] | None = None
    sim_url: str = ""
    #: Simulator options and environment this fleet adds to (or overrides in) the defaults.
    sim_extra: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    initial_workers: int = 2

    def start(self) -> None:
        queue = f"prelabel-chaos-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "PRELABEL_QUEUE": queue,
            "PRELABEL_INFLIGHT": "2",
            "PRELABEL_LEASE_SECONDS": "4",
            "PRELABEL_RECONCILE_INTERVAL": "1",
        }
        self.env.pop("OPENAI_API_KEY", None)
        self.env.update(self.extra_env)
        port = launch.free_port()
        extra = ["--latency-ms", "100", "--fail-rate", "0.05", "--seed", "3", *self.sim_extra]
        self.sim = launch.start_simulator(
            port, self.gold, extra=extra, env=self.env, log=self.logs / "sim.log"
        )
        self.sim_url = f"http://127.0.0.1:{port}/v1"
        for _ in range(self.initial_workers):
            self.add_worker()

    def add_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        proc = launch.start_worker(
            concurrency=concurrency,
            env=self.env,
            log=self.logs / f"worker{n}.log",
            hostname=f"{self.env['PRELABEL_QUEUE']}-{n}@%h",
        )
        self.workers.append(proc)
        return proc

    def prelabel(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "prelabel", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start_run(self, *extra: str) -> str:
        proc = self.prelabel(
            "run", "--dataset", str(self.gold), "--model", "gpt-4o-mini",
            "--base-url", self.sim_url, "--shard-size", "20", "--no-wait",
            # One item a request: the checks below count answered requests as items.
            "--batch-size", "1", *extra,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    def store(self) -> RunStore:
        return RunStore(redis.Redis.from_url(self.redis_url))

    def done(self, run_id: str) -> int:
        counters = self.store().counters(run_id)
        return counters.get("labeled", 0) + counters.get("failed", 0)

    def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (redis.RedisError, OSError):
                pass  # Redis restarting
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; logs in {self.logs}")

    def sim_stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.sim_url.removesuffix("/v1") + "/stats") as resp:
            return dict(json.load(resp))

    def stop(self) -> None:
        launch.stop(self.workers)
        for proc in self.workers:  # orphaned pool children of a killed main process
            for child in children(proc.pid):
                os.kill(child, signal.SIGKILL)
        if self.sim is not None:
            launch.stop([self.sim])


@pytest.fixture
def fleet(redis_url: str, gold_path: Path, tmp_path: Path) -> Iterator[Fleet]:
    redis.Redis.from_url(redis_url).flushdb()
    fleet = Fleet(redis_url, synthesize(gold_path, tmp_path / "gold.conll"), tmp_path)
    fleet.start()
    yield fleet
    fleet.stop()


def finish_and_check(
    fleet: Fleet, run_id: str, tmp_path: Path, items: int = ITEMS
) -> dict[str, int]:
    """Wait for the run, collect it, and check exactly-once effect; returns simulator stats."""
    fleet.wait_until(lambda: fleet.store().status(run_id)[0] == "completed", "the run to end")
    out = tmp_path / f"out-{run_id}"
    proc = fleet.prelabel("collect", run_id, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == items
    assert len(set(ids)) == items
    counters = fleet.store().counters(run_id)
    assert counters["labeled"] == sum(r["status"] == "labeled" for r in rows)
    assert counters["failed"] == sum(r["status"] == "failed" for r in rows)
    assert counters["labeled"] + counters["failed"] == items
    assert counters["labeled"] >= items - 5, [r["error"] for r in rows if r["error"]][:5]
    stats = fleet.sim_stats()
    answered = stats["requests"] - stats["faults"] - stats["rate_limited"]
    assert answered >= counters["labeled"] - counters.get("cache_hits", 0)
    assert answered <= items * 1.05, stats
    return stats


def kill_main(fleet: Fleet) -> None:
    fleet.workers[0].send_signal(signal.SIGKILL)
    fleet.workers[0].wait(10)


def kill_pool_child(fleet: Fleet) -> None:
    busy = children(fleet.workers[0].pid)
    assert busy, "the worker has no pool children"
    os.kill(busy[0], signal.SIGKILL)


def warm_shutdown(fleet: Fleet) -> None:
    fleet.workers[0].send_signal(signal.SIGTERM)
    fleet.workers[0].wait(60)


@pytest.mark.parametrize(
    "fault", [kill_main, kill_pool_child, warm_shutdown], ids=lambda f: f.__name__
)
def test_a_worker_fault_loses_nothing_and_repeats_nothing(
    fleet: Fleet, tmp_path: Path, fault: Callable[[Fleet], None]
) -> None:
    run_id = fleet.start_run()
    fleet.wait_until(lambda: fleet.done(run_id) >= ITEMS // 4, "a quarter of the run")
    fault(fleet)
    fleet.add_worker()  # as an operator (or Kubernetes) would
    finish_and_check(fleet, run_id, tmp_path)


def test_resume_after_every_worker_died_pays_nothing_twice(fleet: Fleet, tmp_path: Path) -> None:
    run_id = fleet.start_run()
    fleet.wait_until(lambda: fleet.done(run_id) >= ITEMS // 3, "a third of the run")
    for proc in fleet.workers:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    time.sleep(0.5)  # let orphaned calls land or fail
    labeled_before = fleet.done(run_id)
    answered_before = fleet.sim_stats()
    proc = fleet.prelabel("resume", run_id)
    assert proc.returncode == 0, proc.stderr
    fleet.add_worker()
    fleet.add_worker()
    stats = finish_and_check(fleet, run_id, tmp_path)
    answered = (stats["requests"] - stats["faults"] - stats["rate_limited"]) - (
        answered_before["requests"] - answered_before["faults"] - answered_before["rate_limited"]
    )
    # Items labeled before the crash are never asked again: what the resume paid for is the
    # rest (plus at most the calls that were in flight when the workers died).
    assert answered <= ITEMS - labeled_before + 16


def test_a_redis_restart_with_aof_loses_nothing(gold_path: Path, tmp_path: Path) -> None:
    port = launch.free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = launch.start_redis(port, data)
    fleet = Fleet(
        f"redis://127.0.0.1:{port}/0", synthesize(gold_path, tmp_path / "gold.conll"), tmp_path
    )
    try:
        fleet.start()
        run_id = fleet.start_run()
        fleet.wait_until(lambda: fleet.done(run_id) >= ITEMS // 4, "a quarter of the run")
        server.send_signal(signal.SIGKILL)  # the harsh case: up to a second of writes lost
        server.wait(10)
        time.sleep(1.0)
        server = launch.start_redis(port, data)
        finish_and_check(fleet, run_id, tmp_path)
    finally:
        fleet.stop()
        server.send_signal(signal.SIGKILL)
        server.wait(10)
