"""A worker liveness file: touched while the worker's main loop runs, for cheap probes.

With `PRELABEL_HEALTH_FILE` set, a worker creates the file when it is ready, touches it on
every event heartbeat (every 2 s: workers always send events) and removes it when it shuts
down. A probe then only checks the file's age, e.g.
`find "$PRELABEL_HEALTH_FILE" -mmin -2 | grep -q .`, with no Python start-up and no
round trip through the broker (which `celery inspect ping` needs: a second Python process
importing Celery and the app at every probe, on the pod's CPU budget).

The heartbeat runs on the worker's main event loop, so a file that stops being touched means
that loop is stuck, or lost the broker for longer than Celery's own reconnection covers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

ENV = "PRELABEL_HEALTH_FILE"


def touch(path: Path) -> None:
    """Create `path` or update its modification time; never fails the worker."""
    # A probe that cannot find the file fails on its own: no need to crash the worker.
    with contextlib.suppress(OSError):
        path.touch()


def install_heartbeat_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Keep `path` (default `$PRELABEL_HEALTH_FILE`) fresh while the worker runs.

    Call before the worker starts: Celery checks for `heartbeat_sent` receivers once, when
    the heartbeat starts. Returns the path, or None when no file was asked for.
    """
    from celery import signals

    raw = path if path is not None else os.environ.get(ENV)
    if not raw:
        return None
    target = Path(raw)

    def on_beat(**_: Any) -> None:
        touch(target)

    def on_shutdown(**_: Any) -> None:
        target.unlink(missing_ok=True)

    # weak=False: the closures live only in the signal's receiver list.
    signals.worker_ready.connect(on_beat, weak=False)
    signals.heartbeat_sent.connect(on_beat, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    return target
