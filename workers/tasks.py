"""Celery tasks. A task carries only ids: the records wait in Redis, secrets never travel.

Registered with whichever app loads this module (`prelabel.queue.make_app` names it).
"""

from __future__ import annotations

import logging

import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from prelabel.errors import BrokerError
from prelabel.keys import RunKeys
from prelabel.queue import TASK_NAME, enqueue
from workers.context import reset_worker_context, worker_context
from workers.shard import label_shard as _label_shard

log = logging.getLogger(__name__)


@shared_task(name=TASK_NAME)  # type: ignore[untyped-decorator]
def label_shard(run_id: str, shard: int) -> int:
    """Label one shard of a run; returns how many items it committed."""
    context = worker_context()
    try:
        committed = context.run(_label_shard(context, run_id, shard))
    except SoftTimeLimitExceeded:
        # The hard limit would ack the task and lose the rest: hand the shard on instead.
        # What was committed stays committed; the next task skips it. The loop still holds
        # this shard's calls: closing the context cancels them (and releases the lease).
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
