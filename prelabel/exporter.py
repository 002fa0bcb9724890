"""`prelabel metrics`: a Prometheus exporter for every run still in Redis.

Flower's own /metrics covers Celery (tasks, runtimes, workers online) and nothing of a run:
this exporter serves the figures of `prelabel status` (prelabel.monitor), labelled by run id
and nothing else of high cardinality. Counters are exported as Prometheus counters, so that
`rate()` works on them; the exporter's own windowed rates and ETA are gauges, for dashboards
that want the same numbers as `prelabel status --watch`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import redis
from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from prelabel.errors import ConfigError, PrelabelError
from prelabel.monitor import (
    BATCH_STATES,
    DEFAULT_WINDOW,
    Snapshot,
    Window,
    read_runs,
    recent_run_ids,
    snapshot,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 9808
#: Shards being labeled now, over every run, without labels: KEDA reads this one series
#: straight from /metrics (deploy/k8s/keda.yaml) to keep a pod per shard in progress.
SHARDS_LABELING = "prelabel_shards_labeling"
STATUSES = ("running", "completed", "failed", "cancelled")


class RunCollector(Collector):
    """Reads every run in Redis at each scrape and turns its snapshot into metric families."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.window = window
        self.clock = clock
        self._windows: dict[str, Window] = {}
        # Scrapes may overlap (the HTTP server is threaded); windows are not thread-safe.
        self._lock = threading.Lock()

    def snapshots(self) -> list[Snapshot]:
        """One snapshot per run in Redis, with rates over this exporter's recent samples."""
        with self._lock:
            views = read_runs(self.client, recent_run_ids(self.client), self.clock())
            seen = {v.config.run_id for v in views}
            for gone in set(self._windows) - seen:
                del self._windows[gone]
            out: list[Snapshot] = []
            for view in views:
                window = self._windows.setdefault(view.config.run_id, Window(self.window))
                out.append(snapshot(view, window.add(view.sample)))
            return out

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "prelabel_exporter_up", "1 when the scrape read Redis and the price table."
        )
        try:
            snaps = self.snapshots()
        except PrelabelError as exc:
            log.warning("scrape failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families(snaps)


def families(snaps: list[Snapshot]) -> Iterator[Metric]:
    """The metric families of a list of run snapshots."""
    run = ["run"]

    def counter(name: str, doc: str, value: Callable[[Snapshot], float]) -> CounterMetricFamily:
        fam = CounterMetricFamily(name, doc, labels=run)
        for s in snaps:
            fam.add_metric([s.run_id], value(s))
        return fam

    def gauge(name: str, doc: str, value: Callable[[Snapshot], float | None]) -> GaugeMetricFamily:
        fam = GaugeMetricFamily(name, doc, labels=run)
        for s in snaps:
            v = value(s)
            if v is not None:
                fam.add_metric([s.run_id], v)
        return fam

    info = InfoMetricFamily("prelabel_run", "A run's model and dataset.", labels=run)
    status = StateSetMetricFamily("prelabel_run_status", "A run's status.", labels=run)
    items = CounterMetricFamily(
        "prelabel_items", "Items committed, by outcome.", labels=["run", "outcome"]
    )
    tokens = CounterMetricFamily(
        "prelabel_tokens", "Tokens the endpoint reported, by kind.", labels=["run", "kind"]
    )
    for s in snaps:
        info.add_metric([s.run_id], {"model": s.model, "dataset": s.dataset, "split": s.split})
        status.add_metric([s.run_id], {st: st == s.status for st in STATUSES})
        items.add_metric([s.run_id, "labeled"], s.labeled)
        items.add_metric([s.run_id, "failed"], s.failed)
        tokens.add_metric([s.run_id, "prompt"], s.prompt_tokens)
        tokens.add_metric([s.run_id, "completion"], s.completion_tokens)
    yield from (info, status, items, tokens)
    yield gauge("prelabel_run_items", "Items in the run.", lambda s: s.total)
    yield gauge("prelabel_run_remaining_items", "Items not done yet.", lambda s: s.remaining)
    yield gauge(
        "prelabel_run_shards_labeling",
        "Shards a worker holds a lease on (being labeled now).",
        lambda s: s.leased_shards,
    )
    total = GaugeMetricFamily(
        SHARDS_LABELING, "Shards being labeled now, over every run (for autoscaling)."
    )
    total.add_metric([], sum(s.leased_shards for s in snaps))
    yield total
    yield counter("prelabel_requests", "LLM calls made.", lambda s: s.requests)
    yield counter("prelabel_rate_limited", "429 answers received.", lambda s: s.rate_limited)
    yield counter("prelabel_retries", "Calls retried.", lambda s: s.retries)
    yield from task_counters(snaps)
    yield counter(
        "prelabel_bucket_wait_seconds",
        "Seconds calls waited in the shared rate-limit bucket, summed.",
        lambda s: s.bucket_wait_s,
    )
    yield gauge(
        "prelabel_cost_usd", "Spent so far, in USD (absent when unpriced).", lambda s: s.cost_usd
    )
    yield from cost_families(snaps)
    yield gauge("prelabel_run_cap_rpm", "The run's requests/min cap.", lambda s: s.rpm_cap)
    yield gauge("prelabel_run_cap_tpm", "The run's tokens/min cap.", lambda s: s.tpm_cap)
    yield gauge(
        "prelabel_run_items_per_second",
        "Items done per second over the exporter's window.",
        lambda s: s.rates.items_per_s if s.rates else None,
    )
    yield gauge(
        "prelabel_run_requests_per_minute",
        "Calls per minute over the exporter's window.",
        lambda s: s.rates.requests_per_min if s.rates else None,
    )
    yield gauge(
        "prelabel_run_tokens_per_minute",
        "Tokens used (prompt + completion) per minute over the exporter's window.",
        lambda s: s.rates.tokens_per_min if s.rates else None,
    )
    yield gauge(
        "prelabel_run_charged_tokens_per_minute",
        "Tokens per minute as the provider counts them against TPM (prompt + max_tokens).",
        lambda s: s.rates.charged_tokens_per_min if s.rates else None,
    )
    yield gauge(
        "prelabel_run_cost_usd_per_minute",
        "USD per minute over the exporter's window (absent when unpriced).",
        lambda s: s.rates.cost_per_min if s.rates else None,
    )
    yield gauge(
        "prelabel_run_rate_limited_per_minute",
        "429 answers per minute over the exporter's window.",
        lambda s: s.rates.rate_limited_per_min if s.rates else None,
    )
    yield gauge(
        "prelabel_run_bucket_wait_seconds_per_call",
        "Mean seconds a call waited in the bucket over the exporter's window.",
        lambda s: s.rates.wait_per_request_s if s.rates else None,
    )
    yield gauge("prelabel_run_eta_seconds", "Seconds until the run is done.", lambda s: s.eta_s)
    yield from batch_families(snaps)


def batch_families(snaps: list[Snapshot]) -> Iterator[Metric]:
    """The Batch API's families: batches and their items by state (gauges, for the runs that
    have batches; a state with none reads 0 once the run has any), and its share of the
    requests and tokens (counters)."""
    labels = ["run", "state"]
    batches = GaugeMetricFamily(
        "prelabel_batches", "The run's Batch API batches, by state.", labels=labels
    )
    items = GaugeMetricFamily(
        "prelabel_batch_items", "Items in the run's Batch API batches, by state.", labels=labels
    )
    requests = CounterMetricFamily(
        "prelabel_batch_requests", "Requests the Batch API answered (lines).", labels=["run"]
    )
    tokens = CounterMetricFamily(
        "prelabel_batch_tokens",
        "Tokens of the Batch API's answers (billed at half price), by kind.",
        labels=["run", "kind"],
    )
    polls = CounterMetricFamily(
        "prelabel_batch_polls", "Polls of the run's batches' states.", labels=["run"]
    )
    for s in snaps:
        if not (s.batches or s.batch_requests or s.transport != "realtime"):
            continue
        by_state = {b.state: b for b in s.batches}
        for state in BATCH_STATES:
            b = by_state.get(state)
            batches.add_metric([s.run_id, state], b.batches if b else 0)
            items.add_metric([s.run_id, state], b.items if b else 0)
        requests.add_metric([s.run_id], s.batch_requests)
        tokens.add_metric([s.run_id, "prompt"], s.batch_prompt_tokens)
        tokens.add_metric([s.run_id, "completion"], s.batch_completion_tokens)
        polls.add_metric([s.run_id], s.batch_polls)
    yield from (batches, items, requests, tokens, polls)


#: A bill's parts as the cost families label them: (part, transport, field of `Bill`).
BILL_PARTS = (
    ("uncached_input", "realtime", "input"),
    ("cached_input", "realtime", "cached_input"),
    ("output", "realtime", "output"),
    ("uncached_input", "batch", "batch_input"),
    ("cached_input", "batch", "batch_cached_input"),
    ("output", "batch", "batch_output"),
)


def cost_families(snaps: list[Snapshot]) -> Iterator[Metric]:
    """Cached prompt tokens (a part of `prelabel_tokens{kind="prompt"}`), and the run's bill
    split by part and transport, in all and per 1,000 items done (`prelabel.pricing.Bill`,
    as `prelabel status` shows it; absent when unpriced, or before an item is done)."""
    cached = CounterMetricFamily(
        "prelabel_cached_prompt_tokens",
        "Prompt tokens the provider served from its prompt cache (part of the prompt tokens).",
        labels=["run", "transport"],
    )
    labels = ["run", "part", "transport"]
    split = GaugeMetricFamily(
        "prelabel_cost_split_usd",
        "Spent so far, in USD, by part (uncached_input, cached_input, output) and transport.",
        labels=labels,
    )
    per_k = GaugeMetricFamily(
        "prelabel_run_usd_per_1k_items",
        "USD per 1,000 items done (labeled + failed), by part and transport.",
        labels=labels,
    )
    per_k_total = GaugeMetricFamily(
        "prelabel_run_usd_per_1k_items_total",
        "USD per 1,000 items done (labeled + failed), in all.",
        labels=["run"],
    )
    for s in snaps:
        realtime_cached = max(s.cached_prompt_tokens - s.batch_cached_prompt_tokens, 0)
        cached.add_metric([s.run_id, "realtime"], realtime_cached)
        cached.add_metric([s.run_id, "batch"], s.batch_cached_prompt_tokens)
        for family, bill in ((split, s.bill), (per_k, s.per_thousand)):
            if bill is None:
                continue
            for part, transport, name in BILL_PARTS:
                family.add_metric([s.run_id, part, transport], getattr(bill, name))
        if s.per_thousand is not None:
            per_k_total.add_metric([s.run_id], s.per_thousand.total)
    yield from (cached, split, per_k, per_k_total)


def task_counters(snaps: list[Snapshot]) -> Iterator[Metric]:
    """One counter family per counter of the runs' task types' own (NER: unaligned
    mentions), each with the runs whose task type declares it."""
    fams: dict[str, CounterMetricFamily] = {}
    for s in snaps:
        for spec, value in s.task_counts:
            fam = fams.get(spec.metric)
            if fam is None:
                fam = fams[spec.metric] = CounterMetricFamily(
                    spec.metric, spec.help, labels=["run"]
                )
            fam.add_metric([s.run_id], value)
    yield from fams.values()


def registry_for(client: redis.Redis, window: float = DEFAULT_WINDOW) -> CollectorRegistry:
    """A registry holding only the run collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(client, window=window))
    return registry


def serve(client: redis.Redis, port: int, address: str, window: float = DEFAULT_WINDOW) -> None:
    """Serve /metrics on `address:port` until SIGTERM or SIGINT."""
    registry = registry_for(client, window)
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"prelabel metrics cannot listen on {address}:{port} ({exc.strerror}): "
            "pick another --port or stop what is using it"
        ) from None
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"prelabel metrics on http://{address}:{port}/metrics", flush=True)
    stop.wait()
    server.shutdown()
    thread.join(5)
