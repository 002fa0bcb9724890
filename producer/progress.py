"""Follow a run until every item is labeled or failed, with a progress bar."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from prelabel.model import RunConfig
from prelabel.settings import Settings
from prelabel.store import RunStatus, RunStore
from producer.reconciler import reconcile


def follow(
    store: RunStore,
    config: RunConfig,
    console: Console,
    settings: Settings,
    *,
    poll: float = 0.25,
) -> tuple[RunStatus, str | None]:
    """Poll the run's counters until it is done or stopped; returns its final status.

    While it waits it also runs the reconciler, so that a run recovers lost shards even
    when no worker is up to do it.
    """
    total = config.total
    suspects: set[tuple[str, int]] = set()
    next_pass = time.monotonic() + settings.reconcile_interval
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"run {config.run_id}", total=total, detail="")
        while True:
            counters = store.counters(config.run_id)
            done = counters.get("labeled", 0) + counters.get("failed", 0)
            detail = (
                f"failed {counters.get('failed', 0)} · requests {counters.get('requests', 0)}"
                f" · 429s {counters.get('rate_limited', 0)}"
            )
            progress.update(task, completed=done, detail=detail)
            status, error = store.status(config.run_id)
            if status != "running":
                return status, error
            if done >= total:
                store.set_status(config.run_id, "completed")
                return "completed", None
            if time.monotonic() >= next_pass:
                reconcile(store.redis, settings, suspects)
                next_pass = time.monotonic() + settings.reconcile_interval
            time.sleep(poll)
