"""Every figure of status, watch, runs and the reports means what its label says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from prelabel.figures import RunFigures
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.monitor import Sample, read_run, read_runs, snapshot
from prelabel.status import no_worker, one_line
from prelabel.store import RunStore
from task_types.ner.model import NerRecord
from task_types.tables import figure_rows

PRELABEL = str(Path(sys.executable).parent / "prelabel")


def make_run(client: redis.Redis, run_id: str, *, created: float = 1000.0) -> RunStore:
    store = RunStore(client)
    config = RunConfig(
        run_id=run_id, model="unpriced-model", base_url="http://x/v1", rpm=300, total=4, shards=1
    ).model_copy(update={"created_at": created})
    records = [NerRecord.from_tokens(f"i{i}", ["a", "b"]) for i in range(4)]
    store.create(config, [records], queue="q-of-test")
    return store


def test_one_shot_rates_after_a_cancel_end_at_the_last_call_not_at_the_cancel(
    redis_client: redis.Redis,
) -> None:
    store = make_run(redis_client, "cancelled")
    # Cancelled at t=1060; the calls in flight then ended by t=1075 and were counted.
    redis_client.hset(
        RunKeys("cancelled").meta,
        mapping={"status": "cancelled", "updated_at": 1060.0, "active_at": 1075.0},
    )
    redis_client.hset(RunKeys("cancelled").counters, "requests", 300)
    snap = snapshot(read_run(store.redis, "cancelled", now=5000.0))
    assert snap.rates is not None
    # 300 requests over the 75 s the run was calling, not over the 60 s before the cancel
    # (which read 300/min against a cap the fleet never exceeded).
    assert snap.rates.requests_per_min == pytest.approx(240.0)


def test_a_partial_reports_items_per_second_counts_only_finished_items() -> None:
    # 1,000 items, 347 labeled and 653 the run never reached (failed as "not labeled").
    figures = RunFigures(items=1000, labeled=347, failed=653, unfinished=653, wall_seconds=100)
    assert figures.items_per_second == pytest.approx(3.47)
    rows = dict(figure_rows(figures))
    assert rows["items/s (finished by workers)"] == "3.47"
    assert rows["not reached (the run stopped)"] == "653"


def test_the_log_line_names_the_bucket_wait_per_call_and_in_all() -> None:
    from prelabel.monitor import RunView

    config = RunConfig(run_id="w", model="m", base_url="http://x/v1", total=10, shards=1)
    view = RunView(
        config=config,
        status="running",
        error=None,
        sample=Sample(at=10.0, counters={"requests": 4, "bucket_wait_ms": 2000}),
    )
    line = one_line(snapshot(view, Sample(at=0.0)))
    assert "bucket_wait_per_call_s=0.500" in line
    assert "bucket_wait_total_s=2.0" in line
    assert " bucket_wait_s=" not in line


def test_status_says_when_no_worker_took_a_shard(redis_client: redis.Redis) -> None:
    store = make_run(redis_client, "idle", created=1000.0)
    url = "redis://:s3cret@127.0.0.1:6379/11"
    early = snapshot(read_run(store.redis, "idle", now=1005.0))
    assert no_worker(early, after=20, redis_url=url) == ""
    late = snapshot(read_run(store.redis, "idle", now=1030.0))
    message = no_worker(late, after=20, redis_url=url)
    assert "PRELABEL_QUEUE=q-of-test" in message and "6379/11" in message
    assert "s3cret" not in message
    # Once a worker has started a shard, nothing more is said.
    redis_client.hset(RunKeys("idle").attempts, "0", 1)
    taken = snapshot(read_run(store.redis, "idle", now=1030.0))
    assert taken.started_shards == 1 and no_worker(taken, after=20, redis_url=url) == ""


def test_runs_lists_items_failed_apart_from_why_a_run_stopped(
    redis_client: redis.Redis, redis_url: str
) -> None:
    make_run(redis_client, "20260101-000000-aaaaaa")
    RunStore(redis_client).set_status("20260101-000000-aaaaaa", "failed", "the key was refused")
    views = read_runs(redis_client, ["20260101-000000-aaaaaa"], now=2000.0)
    assert views[0].status == "failed"
    proc = subprocess.run(
        [PRELABEL, "runs"],
        env={**os.environ, "REDIS_URL": redis_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "items failed" in proc.stdout and "why it stopped" in proc.stdout
    assert "the key was refused" in proc.stdout
