"""Chaos for liveness on real processes: two fleets on one Redis, a worker stopped (SIGSTOP)
for longer than its lease, an endpoint that drips its answers, and shard tasks that meet the
pooled connections a Redis restart closed. Every run must end, exactly once, without help."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis

from prelabel import launch
from tests.test_chaos import ITEMS, Fleet, finish_and_check, synthesize

pytestmark = pytest.mark.slow


def test_two_fleets_on_one_redis_label_only_their_own_runs(
    redis_url: str, gold_path: Path, tmp_path: Path
) -> None:
    """Fleet B's reconciler used to take A's queued shards for lost and label them with its
    own key and bucket (over A's cap). Each fleet has its queue, key and endpoint here."""
    redis.Redis.from_url(redis_url).flushdb()
    gold = synthesize(gold_path, tmp_path / "gold.conll", 200)
    fleets = []
    for name in ("a", "b"):
        logs = tmp_path / name
        logs.mkdir()
        fleet = Fleet(
            redis_url,
            gold,
            logs,
            sim_extra=["--rpm", "480"],
            extra_env={"OPENAI_API_KEY": f"sk-fleet-{name}-key"},
            initial_workers=1,
        )
        fleets.append(fleet)
    try:
        for fleet in fleets:
            fleet.start()
        # A long queue for each: A's shards wait in A's queue while B's reconciler runs.
        # Each run at 3/4 of its endpoint's cap: only a second fleet's bucket could exceed it.
        runs = [fleet.start_run("--rpm", "360") for fleet in fleets]
        for fleet, run_id in zip(fleets, runs, strict=True):
            stats = finish_and_check(fleet, run_id, fleet.logs, items=200)
            assert stats["rate_limited"] == 0, stats  # each fleet stayed within its own cap
        for fleet, other_run in zip(fleets, reversed(runs), strict=True):
            logs = "".join(p.read_text() for p in fleet.logs.glob("worker*.log"))
            assert f"run={other_run}" not in logs, f"fleet {fleet.logs.name} labeled {other_run}"
    finally:
        for fleet in fleets:
            fleet.stop()


def test_a_worker_stopped_longer_than_its_lease(
    redis_url: str, gold_path: Path, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    fleet = Fleet(redis_url, synthesize(gold_path, tmp_path / "gold.conll"), tmp_path)
    fleet.start()
    stopped = fleet.workers[0]
    try:
        run_id = fleet.start_run()
        fleet.wait_until(lambda: fleet.done(run_id) >= ITEMS // 4, "a quarter of the run")
        os.killpg(stopped.pid, signal.SIGSTOP)  # the whole worker: main process and pool
        # The other worker takes over the stopped one's shards once their leases run out.
        fleet.wait_until(
            lambda: fleet.store().status(run_id)[0] == "completed", "the run to end while stopped"
        )
        os.killpg(stopped.pid, signal.SIGCONT)  # it wakes up and finds its shards done
        finish_and_check(fleet, run_id, tmp_path)
    finally:
        os.killpg(stopped.pid, signal.SIGCONT)
        fleet.stop()


def test_an_endpoint_that_drips_its_answers(
    redis_url: str, gold_path: Path, tmp_path: Path
) -> None:
    """One answer in fifty arrives one byte every 5 s: each is abandoned at the call's
    deadline and asked again, and the run ends."""
    redis.Redis.from_url(redis_url).flushdb()
    fleet = Fleet(
        redis_url,
        synthesize(gold_path, tmp_path / "gold.conll", 400),
        tmp_path,
        sim_extra=["--fail-rate", "0", "--drip-rate", "0.02", "--drip-seconds", "5"],
        extra_env={"PRELABEL_REQUEST_TIMEOUT": "8", "PRELABEL_LEASE_SECONDS": "30"},
    )
    fleet.start()
    try:
        run_id = fleet.start_run()
        stats = finish_and_check(fleet, run_id, tmp_path, items=400)
        assert stats["faults"] > 0, stats  # some answers did drip
    finally:
        fleet.stop()


def test_shard_tasks_after_a_redis_restart_use_fresh_connections(
    gold_path: Path, tmp_path: Path
) -> None:
    """After a restart, the first command on each pooled connection used to fail: the shard
    task crashed, was acked, and its shard waited for the reconciler (here: never)."""
    port = launch.free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = launch.start_redis(port, data)
    fleet = Fleet(
        f"redis://127.0.0.1:{port}/0",
        synthesize(gold_path, tmp_path / "gold.conll", 40),
        tmp_path,
        sim_extra=["--fail-rate", "0"],
        # No reconciler to the rescue: a lost shard stays lost.
        extra_env={"PRELABEL_LEASE_SECONDS": "600", "PRELABEL_RECONCILE_INTERVAL": "600"},
        initial_workers=0,
    )
    try:
        fleet.start()
        fleet.add_worker(concurrency=1)  # one pool process: its connections are the stale ones
        first = fleet.start_run()
        fleet.wait_until(lambda: fleet.store().status(first)[0] == "completed", "the first run")
        server.send_signal(signal.SIGTERM)  # a clean restart: AOF written, nothing lost
        server.wait(30)
        server = launch.start_redis(port, data)
        second = fleet.start_run()
        fleet.wait_until(lambda: fleet.store().status(second)[0] == "completed", "the second run")
        assert fleet.done(second) == 40
    finally:
        fleet.stop()
        server.send_signal(signal.SIGKILL)
        server.wait(10)
