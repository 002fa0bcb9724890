"""The workers' Celery app: what `celery -A workers.app worker` and `prelabel worker` run.

The app itself is `prelabel.queue.make_app`'s, the one the producer and Flower build too.
What only a worker adds is the fleet's reconciler, in a thread of the worker's main process
(one pass acts at a time across the fleet): `worker_app` connects it to the signals a worker
sends when it is ready and when it shuts down, which nothing but a worker sends.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from prelabel.queue import make_app
from prelabel.settings import Settings, load_settings
from workers.reconciler import ReconcilerThread

_reconciler: ReconcilerThread | None = None


def worker_app(settings: Settings | None = None) -> Celery:
    """The queue's app, with the reconciler started and stopped by the worker that runs it."""
    worker_ready.connect(_start_reconciler, weak=False, dispatch_uid="prelabel-reconciler")
    worker_shutdown.connect(_stop_reconciler, weak=False, dispatch_uid="prelabel-reconciler")
    return make_app(settings)


def _start_reconciler(sender: object = None, **_: object) -> None:
    global _reconciler
    _reconciler = ReconcilerThread(load_settings())
    _reconciler.start()


def _stop_reconciler(sender: object = None, **_: object) -> None:
    if _reconciler is not None:
        _reconciler.stop()


#: The app `celery -A workers.app worker` loads (settings from the environment).
app = worker_app()
