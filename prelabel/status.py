"""`prelabel status RUN [--watch]` and `prelabel runs`: a run's figures, once or live.

The figures come from prelabel.monitor, the same as the Prometheus exporter's. In a terminal
`--watch` redraws one panel in place; piped (a log, `kubectl logs`), it prints one line per
interval instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from prelabel.options import RedisUrlOpt

# Redis and the run model are imported by the commands, not with this module: `prelabel
# --help` imports it for the commands' signatures only.
if TYPE_CHECKING:
    import redis

    from prelabel.monitor import Snapshot
    from prelabel.pricing import Bill

_STATUS_STYLE = {"running": "cyan", "completed": "green", "failed": "red", "cancelled": "yellow"}


# --- formatting --------------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    """`2h 05m`, `3m 10s`, `12s`; `n/a` for None."""
    if seconds is None:
        return "n/a"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _share(used: float | None) -> str:
    if used is None:
        return ""
    style = "red" if used > 0.95 else "yellow" if used > 0.8 else "green"
    return f" [{style}]({used:.0%} of the cap)[/]"


def _cap(cap: int | None) -> str:
    return f"cap {cap:,}" if cap is not None else "no cap"


def render(
    snap: Snapshot, reasons: list[tuple[str, int]] | None = None, redis_url: str | None = None
) -> RenderableType:
    """The run as one panel: progress, rates against the caps, cost, 429s, ETA, the Batch
    API's batches, failures, and what to start when no worker has taken any of its shards
    (`redis_url` is where)."""
    r = snap.rates
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    pct = snap.done / snap.total if snap.total else 0.0
    grid.add_row(
        "progress",
        f"{snap.done:,} / {snap.total:,} ({pct:.1%}) · labeled {snap.labeled:,} · "
        f"[{'red' if snap.failed else 'default'}]failed {snap.failed:,}[/]"
        + "".join(f" · {escape(spec.label)} {n:,}" for spec, n in snap.task_counts),
    )
    grid.add_row("", ProgressBar(total=max(snap.total, 1), completed=snap.done, width=60))
    window = f"last {fmt_duration(r.seconds)}" if r else "no data yet"
    if r is not None:
        grid.add_row("rate", f"{r.items_per_s:,.2f} items/s ({window})")
        grid.add_row(
            "requests",
            f"{r.requests_per_min:,.0f}/min vs {_cap(snap.rpm_cap)}{_share(snap.rpm_used)}"
            f" · {snap.requests:,} in all",
        )
        grid.add_row(
            "tokens",
            f"{r.charged_tokens_per_min:,.0f}/min as the provider counts them "
            f"(prompt + max_tokens) vs {_cap(snap.tpm_cap)}{_share(snap.tpm_used)}"
            f" · {r.tokens_per_min:,.0f}/min used",
        )
        if snap.cost_usd is None:
            grid.add_row("cost", f"n/a (no price known for {escape(snap.model)})")
        else:
            grid.add_row("cost", f"{fmt_usd(r.cost_per_min)}/min · {fmt_usd(snap.cost_usd)} so far")
        grid.add_row(
            "429s",
            f"{snap.rate_limited:,} ({r.rate_limited_per_min:,.1f}/min) · retries {snap.retries:,}",
        )
        grid.add_row(
            "bucket wait",
            f"{r.wait_per_request_s:,.2f} s per call ({window}) · "
            f"{fmt_duration(snap.bucket_wait_s)} in all",
        )
    else:
        grid.add_row("rate", window)
    grid.add_row(
        "tokens in all",
        f"prompt {snap.prompt_tokens:,} (cached {snap.cached_prompt_tokens:,}) · "
        f"completion {snap.completion_tokens:,}",
    )
    for name, value in per_thousand_rows(snap):
        grid.add_row(name, value)
    for name, value in transport_rows(snap):
        grid.add_row(name, value)
    if snap.confidence != "none":
        grid.add_row("confidence", escape(snap.confidence))
    eta = "done" if snap.finished and not snap.remaining else fmt_duration(snap.eta_s)
    grid.add_row("ETA", eta)
    idle = no_worker(snap, redis_url=redis_url)
    if idle:
        grid.add_row("[yellow]no worker[/]", f"[yellow]{escape(idle)}[/]")
    if snap.paused_s:
        grid.add_row("[yellow]paused[/]", escape(pause_text(snap)))
    if snap.error:
        grid.add_row("[red]stopped[/]", escape(snap.error))
    parts: list[RenderableType] = [grid]
    if reasons:
        parts.append(failures_table(reasons))
    style = _STATUS_STYLE.get(snap.status, "default")
    title = f"run [bold]{snap.run_id}[/] [{style}]{snap.status}[/]"
    subtitle = escape(
        f"{snap.model} at {snap.base_url} · {snap.dataset}"
        + (f" ({snap.split})" if snap.split else "")
    )
    return Panel(Group(*parts), title=title, subtitle=subtitle, title_align="left")


def bill_text(bill: Bill) -> str:
    """A bill's split: `uncached input $… · cached input $… · output $…`."""
    return (
        f"uncached input {fmt_usd(bill.uncached_input_usd)} · "
        f"cached input {fmt_usd(bill.cached_input_usd)} · output {fmt_usd(bill.output_usd)}"
    )


def per_thousand_rows(snap: Snapshot) -> list[tuple[str, str]]:
    """Dollars per 1,000 items done (labeled + failed), split by category, and by transport
    when the run used the Batch API; none before an item is done or when unpriced."""
    per_k = snap.per_thousand
    if per_k is None:
        return []
    rows = [("$ per 1,000 items", f"{fmt_usd(per_k.total)}: {bill_text(per_k)}")]
    if per_k.used_batch:
        realtime, batch = per_k.realtime_part(), per_k.batch_part()
        rows.append(("  Batch API", f"{fmt_usd(batch.total)}: {bill_text(batch)}"))
        rows.append(("  realtime", f"{fmt_usd(realtime.total)}: {bill_text(realtime)}"))
    return rows


def batches_text(snap: Snapshot) -> str:
    """The run's batches by state with their items: `in_progress 2 (2,000 items) · ...`."""
    return " · ".join(f"{b.state} {b.batches:,} ({b.items:,} items)" for b in snap.batches)


def transport_rows(snap: Snapshot) -> list[tuple[str, str]]:
    """The Batch API's rows of the panel, for a run that uses it: its transport (and an
    `auto` run's deadline), its batches by state, and which transport answered how much."""
    if snap.transport == "realtime" and not snap.batches and not snap.batch_requests:
        return []
    how = snap.transport
    if snap.deadline is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(snap.deadline))
        how += f" · deadline {when}"
    if snap.transport_now == "realtime":
        how += " · [yellow]realtime now[/]: the deadline came, the batches out were cancelled"
    rows = [("transport", how)]
    rows.append(("batches", batches_text(snap) if snap.batches else "none yet"))
    batch_tokens = snap.batch_prompt_tokens + snap.batch_completion_tokens
    realtime = max(snap.requests - snap.batch_requests, 0)
    realtime_tokens = max(snap.prompt_tokens + snap.completion_tokens - batch_tokens, 0)
    rows.append(
        (
            "answered by",
            f"Batch API {snap.batch_requests:,} requests, {batch_tokens:,} tokens (half price) · "
            f"realtime {realtime:,} requests, {realtime_tokens:,} tokens · "
            f"{snap.batches_created:,} batches created, {snap.batch_polls:,} polls",
        )
    )
    return rows


def failures_table(reasons: list[tuple[str, int]]) -> Table:
    """The most common failure reasons, with how many items each."""
    table = Table(title="most common failure reasons", title_justify="left", expand=False)
    table.add_column("items", justify="right")
    table.add_column("reason", overflow="fold")
    for reason, count in reasons:
        table.add_row(f"{count:,}", escape(reason))
    return table


def no_worker(snap: Snapshot, after: float | None = None, redis_url: str | None = None) -> str:
    """What to start, when no worker has taken a shard of a running run after `after`
    seconds (PRELABEL_NO_WORKER_WARNING); "" otherwise."""
    from prelabel.connections import safe_url
    from prelabel.settings import load_settings

    if snap.status != "running" or snap.started_shards or snap.done:
        return ""
    settings = load_settings()
    waited = snap.at - snap.created_at
    if waited < (after if after is not None else settings.no_worker_warning):
        return ""
    queue = snap.queue or settings.queue
    url = safe_url(redis_url or settings.redis_url)
    return (
        f"no worker has taken a shard in {fmt_duration(waited)}: start `prelabel worker` "
        f"with REDIS_URL={url} PRELABEL_QUEUE={queue}"
    )


def pause_text(snap: Snapshot) -> str:
    """What the endpoint's 429 pauses cost the run, and whether one holds it now."""
    left = (snap.pause_until or 0.0) - snap.at
    asked = f" (retry-after {fmt_duration(snap.pause_asked_s)})" if snap.pause_asked_s else ""
    current = f"now, {fmt_duration(left)} left{asked} · " if left > 0 else ""
    return f"{current}{fmt_duration(snap.paused_s)} in all by the endpoint's 429s"


def one_line(snap: Snapshot) -> str:
    """The run in one plain line, for logs."""
    r = snap.rates
    fields = [
        f"run={snap.run_id}",
        f"status={snap.status}",
        f"done={snap.done}/{snap.total}",
        f"failed={snap.failed}",
        f"items_per_s={r.items_per_s:.2f}" if r else "items_per_s=n/a",
        f"rpm={r.requests_per_min:.0f}" if r else "rpm=n/a",
        f"tpm_charged={r.charged_tokens_per_min:.0f}" if r else "tpm_charged=n/a",
        f"cost_per_min={fmt_usd(r.cost_per_min) if r else 'n/a'}",
        f"usd_per_1k_items={fmt_usd(snap.per_thousand.total if snap.per_thousand else None)}",
        f"429s={snap.rate_limited}",
        f"bucket_wait_per_call_s={r.wait_per_request_s:.3f}" if r else "bucket_wait_per_call_s=n/a",
        f"bucket_wait_total_s={snap.bucket_wait_s:.1f}",
        f"paused_s={snap.paused_s:.0f}",
        f"eta={fmt_duration(snap.eta_s)}",
    ]
    if snap.batches:
        states = ",".join(f"{b.state}:{b.batches}/{b.items}" for b in snap.batches)
        fields.append(f"batches={states}")
        fields.append(f"batch_requests={snap.batch_requests}")
    if snap.transport_now:
        fields.append(f"transport_now={snap.transport_now}")
    if snap.confidence != "none":
        fields.append(f"confidence={snap.confidence.split()[0]}")
    return " ".join(fields)


# --- commands ----------------------------------------------------------------------------


def _client(redis_url: str | None) -> tuple[redis.Redis, str]:
    from prelabel.connections import connect
    from prelabel.settings import load_settings

    settings = load_settings(**({"REDIS_URL": redis_url} if redis_url else {}))
    return connect(settings.redis_url, master=settings.sentinel_master), settings.redis_url


def watch(
    client: redis.Redis,
    run_id: str,
    console: Console,
    *,
    interval: float = 2.0,
    window: float = 60.0,
    redis_url: str | None = None,
) -> Snapshot:
    """Redraw the run every `interval` seconds until it is finished; returns the last view.

    Rates are over the last `window` seconds (prelabel.monitor.DEFAULT_WINDOW).
    """
    from rich.live import Live

    from prelabel.monitor import Window, read_run, snapshot

    samples = Window(window)

    def take() -> Snapshot:
        view = read_run(client, run_id, time.time())
        older = samples.add(view.sample)
        return snapshot(view, older)

    snap = take()
    if not console.is_terminal:
        told = False
        while True:
            console.print(one_line(snap), highlight=False, soft_wrap=True)
            idle = "" if told else no_worker(snap, redis_url=redis_url)
            if idle:
                console.print(idle, highlight=False, soft_wrap=True)
                told = True
            if snap.finished:
                return snap
            time.sleep(interval)
            snap = take()
    with Live(render(snap, redis_url=redis_url), console=console, auto_refresh=False) as live:
        while not snap.finished:
            time.sleep(interval)
            snap = take()
            live.update(render(snap, redis_url=redis_url), refresh=True)
    return snap


def status_command(
    run_id: Annotated[str, typer.Argument(help="The run id (see `prelabel runs`).")],
    watch_: Annotated[
        bool,
        typer.Option("--watch", "-w", help="Redraw every --interval seconds until the run ends."),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between two redraws.")
    ] = 2.0,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Show a run: items done and failed, rates against the caps, cost, 429s, bucket wait, ETA,
    and the Batch API's batches by state with their items (batch and auto runs).

    Without --watch, rates are averages since the run started, and the most common failure
    reasons are listed. With --watch, rates are over the last minute.
    """
    from prelabel.monitor import failure_reasons, read_run, snapshot

    console = Console()
    client, url = _client(redis_url)
    if watch_:
        snap = watch(client, run_id, console, interval=interval, redis_url=url)
        if snap.failed:
            console.print(failures_table(failure_reasons(client, run_id)))
        return
    snap = snapshot(read_run(client, run_id, time.time()))
    reasons = failure_reasons(client, run_id) if snap.failed else None
    console.print(render(snap, reasons, redis_url=url))


def runs_command(
    limit: Annotated[int, typer.Option(help="How many runs to list, newest first.", min=1)] = 20,
    redis_url: RedisUrlOpt = None,
) -> None:
    """List recent runs still in Redis, newest first."""
    from prelabel.monitor import read_runs, recent_run_ids, snapshot

    console = Console()
    client, _ = _client(redis_url)
    now = time.time()
    views = read_runs(client, recent_run_ids(client, limit), now)
    if not views:
        console.print("no runs in Redis")
        return
    table = Table()
    # The id says when the run was created (YYYYmmdd-HHMMSS-...): no date column needed.
    table.add_column("run", no_wrap=True, min_width=max(len(v.config.run_id) for v in views))
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("done", justify="right", no_wrap=True, min_width=9)
    # Items, not runs: a run whose status is "failed" may have no failed item at all.
    table.add_column("items failed", justify="right", no_wrap=True, min_width=6)
    table.add_column("model", overflow="fold")
    table.add_column("dataset", overflow="fold")
    reasons = any(v.error for v in views)
    if reasons:
        table.add_column("why it stopped", overflow="fold")
    for view in views:
        snap = snapshot(view)
        style = _STATUS_STYLE.get(snap.status, "default")
        cells = [
            snap.run_id,
            f"[{style}]{snap.status}[/]",
            f"{snap.done:,}/{snap.total:,}",
            f"{snap.failed:,}",
            escape(snap.model),
            escape(snap.dataset),
        ]
        if reasons:
            cells.append(escape(snap.error or ""))
        table.add_row(*cells)
    console.print(table)
