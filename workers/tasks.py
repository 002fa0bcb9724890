"""Celery tasks. A task carries only ids: the records wait in Redis, secrets never travel."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import redis
from celery.exceptions import SoftTimeLimitExceeded

from prelabel.errors import BrokerError
from prelabel.keys import RunKeys
from workers.app import app
from workers.context import reset_worker_context, worker_context
from workers.shard import label_shard as _label_shard

log = logging.getLogger(__name__)

TASK_NAME = "prelabel.label_shard"
_FRONT = (Path(__file__).parent / "lua" / "front.lua").read_text()


@app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
def label_shard(run_id: str, shard: int) -> int:
    """Label one shard of a run; returns how many items it committed."""
    context = worker_context()
    try:
        committed = context.run(_label_shard(context, run_id, shard))
    except SoftTimeLimitExceeded:
        # The hard limit would ack the task and lose the rest: hand the shard on instead.
        # What was committed stays committed; the next task skips it. The loop still holds
        # this shard's calls: closing the context cancels them (and releases the lease).
        from producer.runs import enqueue

        settings, store = context.settings, context.store
        reset_worker_context()
        # A hand-off is not a worker dying: it must not count towards failing the shard.
        store.redis.hincrby(RunKeys(run_id).attempts, str(shard), -1)
        log.warning("run %s shard %d: soft time limit, re-enqueued", run_id, shard)
        enqueue(settings, run_id, [shard], first=True)
        return 0
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Redis went away for longer than the clients' retries (a restart, a failover). The
        # task would be acked as failed, and its shard wait for the reconciler: put it back
        # first in line instead, on fresh connections. What was committed stays committed.
        # (Other Redis errors, and BrokerError, which may wrap any, are left to the reconciler
        # and the shard's attempt count: re-enqueueing on those could loop.)
        from producer.runs import enqueue

        settings = context.settings
        reset_worker_context()
        log.warning("run %s shard %d: Redis failed (%s), re-enqueued", run_id, shard, exc)
        try:
            enqueue(settings, run_id, [shard], first=True)
        except BrokerError as again:  # still down: the reconciler re-enqueues it later
            log.warning("run %s shard %d: could not re-enqueue: %s", run_id, shard, again)
        return 0
    log.info("run %s shard %d: %d items committed", run_id, shard, committed)
    return committed


def shard_task_id(run_id: str, shard: int) -> str:
    """Deterministic per (run, shard), so a re-enqueue is recognisable as the same work."""
    return f"{run_id}:shard:{shard}"


def to_front(client: redis.Redis, queue: str, task_ids: Sequence[str]) -> int:
    """Move these tasks' messages, just enqueued, to the head of `queue`; returns how many."""
    if not task_ids:
        return 0
    return int(client.eval(_FRONT, 1, queue, *task_ids))
