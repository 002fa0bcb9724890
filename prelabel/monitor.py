"""A run's figures, from its Redis counters sampled over time.

Shared by `prelabel status` (the live view) and `prelabel metrics` (the Prometheus exporter),
so that both always show the same numbers. The maths are pure functions over two samples of
a run's counters; the Redis reads are the few functions at the bottom.

Rates come from the difference between two samples: a recent window in `--watch` and in the
exporter, or the run's creation time (all counters zero) for a one-shot `prelabel status`.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis
from pydantic import ValidationError

from prelabel.batches import BatchRecord, BatchStatus
from prelabel.counters import CounterSpec, RunCounter
from prelabel.errors import BrokerError, RunError, failure_kind
from prelabel.keys import RUNS, RunKeys
from prelabel.model import RunConfig
from prelabel.pricing import Bill, Price, Tokens, run_price

#: How far back `--watch` and the exporter look for the rates they show.
DEFAULT_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    """A run's counters as read at wall-clock time `at` (seconds since the epoch)."""

    at: float
    counters: Mapping[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        return int(self.counters.get(name, 0))

    @property
    def done(self) -> int:
        return self.get(RunCounter.LABELED) + self.get(RunCounter.FAILED)

    @property
    def tokens(self) -> int:
        return self.get(RunCounter.PROMPT_TOKENS) + self.get(RunCounter.COMPLETION_TOKENS)


@dataclass(frozen=True, slots=True)
class RunView:
    """What Redis holds about one run at one moment."""

    config: RunConfig
    status: str
    error: str | None
    sample: Sample
    updated_at: float | None = None
    #: The caps the workers applied (`PRELABEL_CAPS` when the run gave none), as they wrote
    #: them in the run's meta when starting a shard; None until a worker did.
    worker_rpm: int | None = None
    worker_tpm: int | None = None
    #: When a worker last added to the run's spend counters (a call's end), if any did:
    #: calls in flight at a cancel still end, and count, after the run's `updated_at`.
    active_at: float | None = None
    #: Shards a worker has started at least once (0: no worker has taken any yet).
    started_shards: int = 0
    #: The Celery queue the run's shards were sent to (None for runs of older versions).
    queue: str | None = None
    #: The counters of the run's task type's own, as the run keeps them.
    task_counters: tuple[CounterSpec, ...] = ()
    #: The run's Batch API batches (`RunKeys.batches`), by state.
    batches: tuple[BatchState, ...] = ()
    #: `realtime` once an `auto` run's deadline (less its margin) sent the rest realtime.
    transport_now: str | None = None
    #: Shards a task holds a lease on: being labeled now (or by a task that died, until the
    #: reconciler sees its lease ran out and puts the shard back).
    leased_shards: int = 0


#: The order batch states are shown in: the way a batch goes.
BATCH_STATES: tuple[BatchStatus, ...] = (
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "collected",
    "failed",
    "expired",
    "cancelled",
)


@dataclass(frozen=True, slots=True)
class BatchState:
    """A run's batches in one state: how many, and how many items they hold."""

    state: str
    batches: int
    items: int


def batch_states(records: Sequence[BatchRecord]) -> tuple[BatchState, ...]:
    """The batches by state (in `BATCH_STATES` order), with their items; states with no
    batch left out."""
    counts: dict[str, list[int]] = {}
    for record in records:
        entry = counts.setdefault(record.status, [0, 0])
        entry[0] += 1
        entry[1] += record.items
    order: dict[str, int] = {state: i for i, state in enumerate(BATCH_STATES)}
    return tuple(
        BatchState(state, n, items)
        for state, (n, items) in sorted(counts.items(), key=lambda kv: order.get(kv[0], 99))
    )


@dataclass(frozen=True, slots=True)
class Rates:
    """Rates between two samples, `seconds` apart."""

    seconds: float
    items_per_s: float
    requests_per_min: float
    #: Tokens the endpoint reported (prompt + completion).
    tokens_per_min: float
    #: Tokens as the provider counts them against the TPM cap: prompt + `max_tokens` per call.
    charged_tokens_per_min: float
    rate_limited_per_min: float
    #: Mean seconds a call waited in the shared bucket (0 when no call was made).
    wait_per_request_s: float
    cost_per_min: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every figure `prelabel status` and the exporter show for one run."""

    run_id: str
    status: str
    error: str | None
    model: str
    base_url: str
    dataset: str
    split: str
    total: int
    created_at: float
    at: float
    labeled: int
    failed: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    rate_limited: int
    retries: int
    bucket_wait_s: float
    cost_usd: float | None
    rpm_cap: int | None
    tpm_cap: int | None
    rates: Rates | None
    eta_s: float | None
    started_shards: int = 0
    #: Shards being labeled now (RunView.leased_shards).
    leased_shards: int = 0
    queue: str | None = None
    #: Seconds of 429 pauses the run was charged in all, when the last one ends (Unix time),
    #: and what the endpoint asked for then (its retry-after, before PRELABEL_MAX_PAUSE).
    paused_s: float = 0.0
    pause_until: float | None = None
    pause_asked_s: float | None = None
    #: The task type's own counters, in the order it declares them, and their values.
    task_counts: tuple[tuple[CounterSpec, int], ...] = ()
    #: The run's transport (`RunConfig.delivery`), and what `auto` uses now.
    transport: str = "realtime"
    transport_now: str | None = None
    deadline: float | None = None
    #: `--confidence` as given (`ConfidenceConfig.describe`), `verify +drop` when it drops.
    confidence: str = "none"
    #: The Batch API's part: batches by state, batches created and polled, and the part of
    #: `requests` and the tokens they answered.
    batches: tuple[BatchState, ...] = ()
    batches_created: int = 0
    batch_polls: int = 0
    batch_requests: int = 0
    batch_prompt_tokens: int = 0
    batch_completion_tokens: int = 0
    batch_cached_prompt_tokens: int = 0
    #: Of `prompt_tokens`, those served from the provider's prompt cache.
    cached_prompt_tokens: int = 0
    #: What the run cost so far, by category and transport (None when unpriced);
    #: `cost_usd` is its total.
    bill: Bill | None = None

    @property
    def done(self) -> int:
        return self.labeled + self.failed

    @property
    def per_thousand(self) -> Bill | None:
        """The bill per 1,000 items done (labeled + failed); None unpriced or before any."""
        return self.bill.per_thousand(self.done) if self.bill is not None else None

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    @property
    def finished(self) -> bool:
        """True once every item is labeled or failed, or the run stopped."""
        return self.status != "running" or (self.total > 0 and self.done >= self.total)

    @property
    def rpm_used(self) -> float | None:
        """Share of the RPM cap in use over the window, or None without a cap or rates."""
        if self.rpm_cap is None or self.rates is None:
            return None
        return self.rates.requests_per_min / self.rpm_cap

    @property
    def tpm_used(self) -> float | None:
        """Share of the TPM cap in use (as the provider counts tokens), or None."""
        if self.tpm_cap is None or self.rates is None:
            return None
        return self.rates.charged_tokens_per_min / self.tpm_cap


def rates(
    older: Sample, newer: Sample, *, max_tokens: int, price: Price | None = None
) -> Rates | None:
    """Rates between two samples of one run (costed at `price`, if known); None when no time
    passed between them."""
    seconds = newer.at - older.at
    if seconds <= 0:
        return None
    per_min = 60.0 / seconds

    def delta(name: str) -> int:
        # A counter never goes down; a negative delta means a sample from another run state.
        return max(newer.get(name) - older.get(name), 0)

    requests = delta(RunCounter.REQUESTS)
    prompt = delta(RunCounter.PROMPT_TOKENS)
    completion = delta(RunCounter.COMPLETION_TOKENS)
    cost = None
    if price is not None:
        spent = Tokens.from_counters({name: delta(name) for name in _TOKEN_COUNTERS})
        cost = Bill.of(price, spent).total
    return Rates(
        seconds=seconds,
        items_per_s=max(newer.done - older.done, 0) / seconds,
        requests_per_min=requests * per_min,
        tokens_per_min=(prompt + completion) * per_min,
        charged_tokens_per_min=(prompt + requests * max_tokens) * per_min,
        rate_limited_per_min=delta(RunCounter.RATE_LIMITED) * per_min,
        wait_per_request_s=delta(RunCounter.BUCKET_WAIT_MS) / 1000 / requests if requests else 0.0,
        cost_per_min=None if cost is None else cost * per_min,
    )


#: The counters a bill is made of (`prelabel.pricing.Tokens.from_counters`).
_TOKEN_COUNTERS = (
    RunCounter.PROMPT_TOKENS,
    RunCounter.COMPLETION_TOKENS,
    RunCounter.CACHED_PROMPT_TOKENS,
    RunCounter.BATCH_PROMPT_TOKENS,
    RunCounter.BATCH_COMPLETION_TOKENS,
    RunCounter.BATCH_CACHED_PROMPT_TOKENS,
)


def eta_seconds(remaining: int, items_per_s: float | None) -> float | None:
    """Seconds until `remaining` items are done at `items_per_s`; None when nothing moves."""
    if remaining <= 0:
        return 0.0
    if not items_per_s or items_per_s <= 0:
        return None
    return remaining / items_per_s


def snapshot(view: RunView, older: Sample | None = None) -> Snapshot:
    """The run's figures; rates between `older` and the view's sample.

    Without `older`, rates are averages since the run was created (up to when it stopped,
    for a run that is no longer running: its last call's end, when that came after the
    status changed, as calls in flight at a cancel do).
    """
    cfg = view.config
    newer = view.sample
    if older is None:
        older = Sample(at=cfg.created_at)
        if view.status != "running" and view.updated_at:
            ended = max(view.updated_at, view.active_at or 0.0)
            newer = Sample(at=min(ended, newer.at), counters=newer.counters)
    price = run_price(cfg)
    window = rates(older, newer, max_tokens=cfg.endpoint.max_tokens, price=price)
    s = view.sample
    remaining = max(cfg.total - s.done, 0)
    stopped = view.status != "running"
    speed = window.items_per_s if window is not None else None
    eta = None if stopped and remaining else eta_seconds(remaining, speed)
    bill = Bill.of_counters(price, s.counters) if price else None
    return Snapshot(
        run_id=cfg.run_id,
        status=view.status,
        error=view.error,
        model=cfg.endpoint.model,
        base_url=cfg.endpoint.base_url,
        dataset=cfg.dataset,
        split=cfg.split,
        total=cfg.total,
        created_at=cfg.created_at,
        at=s.at,
        labeled=s.get(RunCounter.LABELED),
        failed=s.get(RunCounter.FAILED),
        requests=s.get(RunCounter.REQUESTS),
        prompt_tokens=s.get(RunCounter.PROMPT_TOKENS),
        completion_tokens=s.get(RunCounter.COMPLETION_TOKENS),
        rate_limited=s.get(RunCounter.RATE_LIMITED),
        retries=s.get(RunCounter.RETRIES),
        bucket_wait_s=s.get(RunCounter.BUCKET_WAIT_MS) / 1000,
        cost_usd=bill.total if bill is not None else None,
        bill=bill,
        cached_prompt_tokens=s.get(RunCounter.CACHED_PROMPT_TOKENS),
        rpm_cap=cfg.limits.rpm if cfg.limits.rpm is not None else view.worker_rpm,
        tpm_cap=cfg.limits.tpm if cfg.limits.tpm is not None else view.worker_tpm,
        rates=window,
        eta_s=eta,
        started_shards=view.started_shards,
        leased_shards=view.leased_shards,
        queue=view.queue,
        paused_s=s.get(RunCounter.PAUSED_MS) / 1000,
        pause_until=s.get(RunCounter.PAUSE_UNTIL_MS) / 1000 or None,
        pause_asked_s=s.get(RunCounter.PAUSE_ASKED_MS) / 1000 or None,
        task_counts=tuple((c, s.get(c.name)) for c in view.task_counters),
        transport=cfg.delivery.transport,
        transport_now=view.transport_now,
        confidence=cfg.confidence.describe()
        + (" (drops what it rejects)" if cfg.confidence.drop_rejected else ""),
        deadline=cfg.delivery.deadline,
        batches=view.batches,
        batches_created=s.get(RunCounter.BATCHES),
        batch_polls=s.get(RunCounter.BATCH_POLLS),
        batch_requests=s.get(RunCounter.BATCH_REQUESTS),
        batch_prompt_tokens=s.get(RunCounter.BATCH_PROMPT_TOKENS),
        batch_completion_tokens=s.get(RunCounter.BATCH_COMPLETION_TOKENS),
        batch_cached_prompt_tokens=s.get(RunCounter.BATCH_CACHED_PROMPT_TOKENS),
    )


class Window:
    """The samples of one run over the last `seconds`, for rates that follow the present."""

    def __init__(self, seconds: float = DEFAULT_WINDOW) -> None:
        self.seconds = seconds
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> Sample | None:
        """Keep `sample`; return the oldest sample still in the window before it, if any."""
        while self._samples and sample.at - self._samples[0].at > self.seconds:
            self._samples.popleft()
        if self._samples and sample.done < self._samples[-1].done:
            self._samples.clear()  # counters went back: the run was recreated, start over
        oldest = self._samples[0] if self._samples else None
        self._samples.append(sample)
        return oldest


# --- Redis reads -------------------------------------------------------------------------


def recent_run_ids(client: redis.Redis, limit: int | None = None) -> list[str]:
    """Run ids from the `prelabel:runs` index, newest first."""
    end = -1 if limit is None else limit - 1
    try:
        raw = client.zrevrange(RUNS, 0, end)
    except redis.RedisError as exc:
        raise BrokerError(f"Redis error reading {RUNS}: {exc}") from None
    return [_text(r) for r in raw if isinstance(r, bytes | str)]


def read_runs(client: redis.Redis, run_ids: Sequence[str], now: float) -> list[RunView]:
    """The runs among `run_ids` whose data is still in Redis, read in one round trip."""
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        keys = RunKeys(run_id)
        pipe.hmget(
            keys.meta,
            [
                "config",
                "status",
                "error",
                "updated_at",
                "caps",
                "active_at",
                "queue",
                "counters",
                "transport_now",
            ],
        )
        pipe.hgetall(keys.counters)
        pipe.hlen(keys.attempts)
        pipe.hvals(keys.batches)
        pipe.zcard(keys.leases)
    try:
        replies = pipe.execute()
    except redis.RedisError as exc:
        raise BrokerError(f"Redis error reading runs: {exc}") from None
    views: list[RunView] = []
    for i in range(len(run_ids)):
        meta, counters, started, batches, leased = replies[5 * i : 5 * i + 5]
        raw_config, status, error, updated, caps, active, queue, task_counters, now_by = meta
        if raw_config is None or status is None:
            continue  # expired, or listed in the index but never written
        try:
            config = RunConfig.model_validate_json(raw_config)
        except ValidationError:
            continue  # written by another prelabel version: not ours to show
        views.append(
            RunView(
                config=config,
                status=_text(status),
                error=_text(error) if error else None,
                sample=Sample(at=now, counters={_text(k): int(v) for k, v in counters.items()}),
                updated_at=float(updated) if updated else None,
                active_at=float(active) if active else None,
                started_shards=int(started),
                queue=_text(queue) if queue else None,
                task_counters=_counter_specs(task_counters),
                batches=batch_states(_batch_records(batches)),
                transport_now=_text(now_by) if now_by else None,
                leased_shards=int(leased),
                **_worker_caps(caps),
            )
        )
    return views


def _batch_records(raw: Sequence[bytes | str]) -> list[BatchRecord]:
    records = []
    for value in raw:
        try:
            records.append(BatchRecord.model_validate_json(value))
        except ValidationError:
            continue  # written by another prelabel version: not ours to count
    return records


def read_batches(client: redis.Redis, run_id: str) -> list[BatchRecord]:
    """The run's Batch API batches (`RunKeys.batches`), oldest first."""
    try:
        raw = client.hvals(RunKeys(run_id).batches)
    except redis.RedisError as exc:
        raise BrokerError(f"Redis error reading the batches of run {run_id}: {exc}") from None
    return sorted(_batch_records(raw), key=lambda b: (b.created_at, b.batch_id))


def _worker_caps(raw: bytes | str | None) -> dict[str, int | None]:
    try:
        caps = json.loads(raw) if raw else {}
        return {"worker_rpm": caps.get("rpm"), "worker_tpm": caps.get("tpm")}
    except (ValueError, AttributeError):
        return {}


def _counter_specs(raw: bytes | str | None) -> tuple[CounterSpec, ...]:
    # Runs of older versions kept none: their figures show the core's counters only.
    return tuple(CounterSpec(**spec) for spec in json.loads(raw)) if raw else ()


def read_run(client: redis.Redis, run_id: str, now: float) -> RunView:
    """One run, or RunError when Redis no longer holds it."""
    views = read_runs(client, [run_id], now)
    if not views:
        raise RunError(f"run {run_id!r} is not in Redis: check the id with `prelabel runs`")
    return views[0]


def failure_reasons(client: redis.Redis, run_id: str, top: int = 5) -> list[tuple[str, int]]:
    """The most common kinds of reason items of the run failed for, with how many items each
    (`prelabel.errors.failure_kind`: one line per kind, not one per answer snippet)."""
    reasons: Counter[str] = Counter()
    try:
        for _, raw in client.hscan_iter(RunKeys(run_id).results, count=1000):
            # Parse only failures: labeled results are most of the hash and much bigger.
            text = _text(raw)
            if '"status":"failed"' not in text:
                continue
            reasons[failure_kind(json.loads(text).get("error"))] += 1
    except redis.RedisError as exc:
        raise BrokerError(f"Redis error reading the results of run {run_id}: {exc}") from None
    # Ties in name order: the hash's order depends on the server's random seed.
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "BATCH_STATES",
    "DEFAULT_WINDOW",
    "BatchState",
    "Rates",
    "RunView",
    "Sample",
    "Snapshot",
    "Window",
    "batch_states",
    "eta_seconds",
    "failure_reasons",
    "rates",
    "read_batches",
    "read_run",
    "read_runs",
    "recent_run_ids",
    "snapshot",
]
