"""The Celery queue both sides share: the app, the shard task's name, and enqueueing shards.

The producer enqueues, the workers consume, Flower watches, and all three build the app here
from the same settings, so that the broker transport options (the visibility timeout above
all) agree everywhere. Importing this module starts nothing: the workers' own app, with
their reconciler, is `workers.app`.

Configured for long runs on Redis without loss: tasks are acknowledged late and re-queued
when their worker is lost, one message is prefetched at a time, and an unacknowledged
message is redelivered only well after a task's hard time limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from prelabel.connections import broker_url, client_for
from prelabel.errors import BrokerError
from prelabel.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: The shard task's name: what the producer sends and `workers.tasks` registers.
TASK_NAME = "prelabel.label_shard"

#: A shard's task may run this long before its soft limit asks it to stop (the default and
#: the most `PRELABEL_SOFT_TIME_LIMIT` allows).
SOFT_TIME_LIMIT = 50 * 60
#: A stuck task is killed (and acked) this long after its soft limit.
HARD_LIMIT_GRACE = 5 * 60
#: Hard limit at the default soft limit.
TIME_LIMIT = SOFT_TIME_LIMIT + HARD_LIMIT_GRACE
#: An unacked message is redelivered after this; keep it well above TIME_LIMIT.
VISIBILITY_TIMEOUT = 2 * TIME_LIMIT

_FRONT = (Path(__file__).parent / "lua" / "front.lua").read_text()


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app on `settings.redis_url`; the workers' tasks are registered when it loads
    them (`workers.tasks`, by name: the producer's app never imports the workers)."""
    settings = settings or load_settings()
    app = Celery("prelabel", broker=broker_url(settings.redis_url), include=["workers.tasks"])
    app.conf.update(
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_soft_time_limit=settings.soft_time_limit,
        task_time_limit=settings.soft_time_limit + HARD_LIMIT_GRACE,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            # Which master a sentinel:// URL's Sentinels are asked for (other transports
            # ignore it).
            "master_name": settings.sentinel_master,
        },
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    if settings.task_rate_limit:
        # Celery's per-worker limit on task starts: only benchmarks/bench_caps.py's baseline.
        app.conf.task_annotations = {"*": {"rate_limit": settings.task_rate_limit}}
    return app


def shard_task_id(run_id: str, shard: int) -> str:
    """Deterministic per (run, shard), so a re-enqueue is recognisable as the same work."""
    return f"{run_id}:shard:{shard}"


def enqueue(
    settings: Settings, run_id: str, shards: Sequence[int] | range, *, first: bool = False
) -> None:
    """One Celery task per shard, with a deterministic task id.

    With `first` (a recovered shard), the tasks go to the head of the queue: a shard whose
    worker died is redone next, not once the whole queue has drained.
    """
    app = make_app(settings)
    try:
        with app.producer_or_acquire() as producer:
            for n in shards:
                app.send_task(
                    TASK_NAME,
                    args=[run_id, n],
                    task_id=shard_task_id(run_id, n),
                    queue=settings.queue,
                    producer=producer,
                )
    except OperationalError as exc:
        raise BrokerError(f"could not enqueue run {run_id}: {exc}") from None
    if first:
        client = client_for(settings.redis_url, settings.sentinel_master)
        try:
            to_front(client, settings.queue, [shard_task_id(run_id, n) for n in shards])
        except redis.RedisError as exc:  # queued at the tail: late, not lost
            log.warning("run %s: recovered shards left at the back of the queue: %s", run_id, exc)
        finally:
            client.close()


def to_front(client: redis.Redis, queue: str, task_ids: Sequence[str]) -> int:
    """Move these tasks' messages, just enqueued, to the head of `queue`; returns how many."""
    if not task_ids:
        return 0
    return int(client.eval(_FRONT, 1, queue, *task_ids))
