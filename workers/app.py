"""The Celery application, configured for long runs on Redis without loss (see NOTES.md).

Workers, the producer and Flower all build the app from the same settings, so that the
broker transport options (visibility timeout above all) agree everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from prelabel.settings import Settings, load_settings

if TYPE_CHECKING:
    from producer.reconciler import ReconcilerThread

#: A shard's task may run this long before its soft limit asks it to stop (the default and
#: the most `PRELABEL_SOFT_TIME_LIMIT` allows).
SOFT_TIME_LIMIT = 50 * 60
#: A stuck task is killed (and acked) this long after its soft limit.
HARD_LIMIT_GRACE = 5 * 60
#: Hard limit at the default soft limit.
TIME_LIMIT = SOFT_TIME_LIMIT + HARD_LIMIT_GRACE
#: An unacked message is redelivered after this; keep it well above TIME_LIMIT.
VISIBILITY_TIMEOUT = 2 * TIME_LIMIT


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app on `settings.redis_url`, with prelabel's tasks registered."""
    settings = settings or load_settings()
    from prelabel.connections import broker_url

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


def _start_reconciler(sender: object = None, **_: object) -> None:
    """Each worker's main process runs the fleet's reconciler (one acts at a time)."""
    from producer.reconciler import ReconcilerThread

    global _reconciler
    _reconciler = ReconcilerThread(load_settings())
    _reconciler.start()


def _stop_reconciler(sender: object = None, **_: object) -> None:
    if _reconciler is not None:
        _reconciler.stop()


_reconciler: ReconcilerThread | None = None
worker_ready.connect(_start_reconciler, weak=False)
worker_shutdown.connect(_stop_reconciler, weak=False)

#: The app `celery -A workers.app worker` and Flower load.
app = make_app()
