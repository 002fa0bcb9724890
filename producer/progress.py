"""Follow a run until every item is labeled or failed, with a progress bar."""

from __future__ import annotations

import time

import redis
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from prelabel.connections import safe_url
from prelabel.counters import RunCounter
from prelabel.errors import BrokerError
from prelabel.model import RunConfig
from prelabel.settings import Settings
from prelabel.store import RunStatus, RunStore
from workers.reconciler import reconcile

#: Seconds between two progress lines when the output is not a terminal (a log, a pipe).
LOG_INTERVAL = 30.0
#: Seconds the follower waits for Redis to answer again (a restart, a failover) before it
#: gives up; the run itself goes on in the workers and `prelabel collect` gets it later.
REDIS_PATIENCE = 300.0


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
    when no worker is up to do it. It rides out a Redis restart as the workers do, and says
    so when no worker has taken a shard after `settings.no_worker_warning` seconds.
    """
    total = config.total
    suspects: set[tuple[str, int]] = set()
    started = time.monotonic()
    next_pass = started + settings.reconcile_interval
    next_line = started
    taken = False  # a worker has started a shard, or we said that none has
    down_since: float | None = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        # Piped, the bar would print once at the end: plain lines below instead.
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(f"run {config.run_id}", total=total, detail="")
        while True:
            try:
                counters = store.counters(config.run_id)
                status, error = store.status(config.run_id)
                taken = taken or store.started_shards(config.run_id) > 0
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + settings.reconcile_interval
                    reconcile(store.redis, settings, suspects)
            except (BrokerError, redis.RedisError) as exc:
                down_since = _redis_down(console, settings, config, down_since, exc)
                time.sleep(1.0)
                continue
            if down_since is not None:
                console.print(f"run {config.run_id}: Redis answers again", highlight=False)
                down_since = None
            done = counters.get(RunCounter.LABELED, 0) + counters.get(RunCounter.FAILED, 0)
            detail = (
                f"failed {counters.get(RunCounter.FAILED, 0)}"
                f" · requests {counters.get(RunCounter.REQUESTS, 0)}"
                f" · 429s {counters.get(RunCounter.RATE_LIMITED, 0)}"
            )
            if config.delivery.transport != "realtime":
                # Answers come back a batch at a time: say that batches are out meanwhile.
                detail += (
                    f" · batches {counters.get(RunCounter.BATCHES, 0)}"
                    f" · batch requests {counters.get(RunCounter.BATCH_REQUESTS, 0)}"
                )
            progress.update(task, completed=done, detail=detail)
            now = time.monotonic()
            finished = status != "running" or done >= total
            if not console.is_terminal and (now >= next_line or finished):
                next_line = now + LOG_INTERVAL
                console.print(
                    f"run {config.run_id}: {done}/{total} done · {detail}", highlight=False
                )
            if not taken and now - started >= settings.no_worker_warning:
                taken = True
                console.print(
                    f"[yellow]no worker has taken a shard of run {config.run_id} in "
                    f"{now - started:.0f}s: start `prelabel worker` with "
                    f"REDIS_URL={escape(safe_url(settings.redis_url))} "
                    f"PRELABEL_QUEUE={escape(settings.queue)}; still waiting[/]",
                    soft_wrap=True,
                    highlight=False,
                )
            if status != "running":
                return status, error
            if done >= total:
                store.set_status(config.run_id, "completed")
                return "completed", None
            time.sleep(poll)


def _redis_down(
    console: Console,
    settings: Settings,
    config: RunConfig,
    since: float | None,
    exc: Exception,
) -> float:
    """Note that Redis does not answer; give up after REDIS_PATIENCE seconds of it."""
    now = time.monotonic()
    if since is None:
        console.print(
            f"[yellow]run {config.run_id}: Redis at {escape(safe_url(settings.redis_url))} "
            f"does not answer; waiting for it (up to {REDIS_PATIENCE:.0f}s)[/]",
            soft_wrap=True,
            highlight=False,
        )
        return now
    if now - since > REDIS_PATIENCE:
        raise BrokerError(
            f"Redis at {safe_url(settings.redis_url)} did not answer for "
            f"{REDIS_PATIENCE:.0f}s ({safe_url(str(exc))}); the run goes on in the workers: "
            f"`prelabel collect {config.run_id}` once Redis is back"
        )
    return since
