"""The producer's whole job for `prelabel run`: load, create, enqueue, follow, collect."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

import task_types
from collector import Collected
from prelabel import tracing
from prelabel.connections import connect
from prelabel.defaults import DEFAULT_BATCH_SIZE
from prelabel.errors import ConfigError
from prelabel.model import (
    ConfidenceConfig,
    Delivery,
    Endpoint,
    Limits,
    ReasoningEffort,
    RunConfig,
    Spend,
)
from prelabel.pricing import Price, price_for
from prelabel.settings import Settings
from prelabel.store import RunStatus, RunStore
from producer.control import collect_run
from producer.labeling import Labeling, LabelingOptions, default_labels, resolve_labeling
from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records
from producer.progress import follow
from producer.runs import check_endpoint, new_run_id, start_run
from workers.fewshot import pool_to_json

#: Items per shard when the run names none: with the realtime transport, a shard is a unit of
#: work and of recovery (small: a lost worker loses little).
REALTIME_SHARD_SIZE = 50
#: With the Batch API (`batch`, `auto`), a shard pass is one batch file: fewer, larger files
#: mean fewer files, batches and polls, and 1,000 items stay well under the API's 50,000
#: requests and 200 MB a file, even at one item per request.
BATCH_SHARD_SIZE = 1_000


def default_shard_size(transport: str) -> int:
    """Items per shard for a run of `transport` that names no `--shard-size`."""
    return REALTIME_SHARD_SIZE if transport == "realtime" else BATCH_SHARD_SIZE


@dataclass(frozen=True)
class RunOptions:
    """How to label: the model, its endpoint and caps, and how to cut the work."""

    model: str
    base_url: str
    rpm: int | None = None
    tpm: int | None = None
    #: Items per shard; None: the transport's default (`default_shard_size`).
    shard_size: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_tokens: int = 512
    reasoning_effort: ReasoningEffort | None = None
    cache: bool = True
    budget_usd: float | None = None
    budget_tokens: int | None = None
    labeling: LabelingOptions = field(default_factory=LabelingOptions)
    #: Which transport answers the requests (realtime, the Batch API, or both by a deadline).
    delivery: Delivery = field(default_factory=Delivery)
    #: How sure the model is of each answer (`--confidence`).
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)

    @property
    def shard_items(self) -> int:
        """Items per shard: `shard_size`, else the transport's default."""
        return self.shard_size or default_shard_size(self.delivery.transport)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, and what was collected (None when the caller did not wait)."""

    run_id: str
    status: RunStatus
    error: str | None
    collected: Collected | None
    dataset: LoadedDataset


def run_pipeline(
    settings: Settings,
    spec: DatasetSpec,
    options: RunOptions,
    out_dir: Path | None,
    console: Console,
    *,
    wait: bool = True,
    default_out: str = "",
) -> RunOutcome:
    """Label `spec` with `options` through the workers, and collect it into `out_dir`
    (default: `runs/{default_out}RUN_ID`).

    With `wait=False` it returns once the run is enqueued; `prelabel collect` gets it later
    (into `out_dir`, which is stored with the run).
    """
    tracing.setup(settings, tracing.PRODUCER_SERVICE)  # OTEL_* or PRELABEL_TRACING
    store = RunStore(connect(settings.redis_url, master=settings.sentinel_master))
    task = task_types.get(options.labeling.task)
    dataset = load_dataset_records(spec, task.name)
    without_gold = not any(task.gold(r) is not None for r in dataset.records)
    dataset, note = default_labels(dataset, options.labeling)
    notes = [note] if note else []
    labeling = resolve_labeling(dataset, spec, options.labeling)
    warning = check_endpoint(settings, options.base_url, options.model)
    price = price_for(options.model)
    try:
        config = _config(options, labeling, dataset, price)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "a run option"
        raise ConfigError(f"{flag}: {err['msg']}") from None
    if config.spend.budget_usd is not None and config.spend.price_input is None:
        raise ConfigError(
            f"no price is known for model {config.endpoint.model!r}, so --budget-usd cannot be "
            "enforced: add its price to the price table, or use --budget-tokens"
        )
    pool = pool_to_json(labeling.pool) if labeling.pool else None
    out = out_dir or Path("runs") / f"{default_out}{config.run_id}"
    started: dict[str, str | int] = {
        "prelabel.run_id": config.run_id,
        "prelabel.items": config.total,
        "prelabel.shards": config.shards,
        "gen_ai.request.model": config.endpoint.model,
    }
    # The shard tasks sent here carry this span's trace to the workers (Celery's headers).
    with tracing.span("prelabel.start_run", started):
        start_run(
            settings,
            store,
            dataset.records,
            config,
            dataset.skipped,
            fewshot_pool=pool,
            out_dir=out_dir,
        )
    # The run id is the first line, printed at once (rich flushes each print): a cron or CI
    # log piped to a file can find it even while the run is still in work.
    console.print(
        f"run [bold]{config.run_id}[/]: {config.total} items in {config.shards} shards, "
        f"model {config.endpoint.model} at {config.endpoint.base_url}",
        soft_wrap=True,
    )
    if config.delivery.transport != "realtime":
        console.print(transport_line(config.delivery), highlight=False, soft_wrap=True)
    if warning:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    console.print(
        f"[bold]{len(dataset.records)}[/] items from {dataset.source}"
        + (f", [yellow]{len(dataset.skipped)} skipped[/]" if dataset.skipped else ""),
        soft_wrap=True,
    )
    if without_gold:
        notes.append("no gold tags: the report will have no scores, everything else as usual")
    for note in notes:
        console.print(f"[yellow]{note}[/]", soft_wrap=True)
    if labeling.pool:
        console.print(
            f"few-shot: {options.labeling.few_shot} {options.labeling.few_shot_strategy} "
            f"examples per request, from {len(labeling.pool):,} labelled items of "
            f"{labeling.pool_source}"
        )
    if not wait:
        return RunOutcome(config.run_id, "running", None, None, dataset)
    status, error = follow(store, config, console, settings)
    collected = collect_run(settings, store, config.run_id, out, partial=True)
    return RunOutcome(config.run_id, status, error, collected, dataset)


def transport_line(delivery: Delivery) -> str:
    """What a run's transport will do, in one line, for a run that uses the Batch API."""
    size = "one batch file per shard pass, at half the price; answers within 24 hours"
    if delivery.transport == "batch" or delivery.deadline is None:
        return f"transport batch: {size}"
    from datetime import datetime

    switch = datetime.fromtimestamp(delivery.deadline - delivery.margin_seconds)
    deadline = datetime.fromtimestamp(delivery.deadline)
    return (
        f"transport auto: {size}; what is not back by {switch:%Y-%m-%d %H:%M} goes realtime "
        f"(deadline {deadline:%Y-%m-%d %H:%M}, local time)"
    )


def _config(
    options: RunOptions, labeling: Labeling, dataset: LoadedDataset, price: Price | None
) -> RunConfig:
    return RunConfig(
        run_id=new_run_id(),
        dataset=dataset.source,
        split=dataset.split,
        total=len(dataset.records),
        shards=-(-len(dataset.records) // options.shard_items),
        created_at=time.time(),
        endpoint=Endpoint(
            model=options.model,
            base_url=options.base_url,
            max_tokens=options.max_tokens,
            reasoning_effort=options.reasoning_effort,
            response_format=options.labeling.response_format,
            cache=options.cache,
        ),
        limits=Limits(
            rpm=options.rpm,
            tpm=options.tpm,
            batch_size=options.batch_size,
            shard_size=options.shard_items,
        ),
        spend=Spend(
            budget_usd=options.budget_usd,
            budget_tokens=options.budget_tokens,
            price_input=price.input if price else None,
            price_output=price.output if price else None,
            price_cached_input=price.cached_input if price else None,
        ),
        labeling=labeling.config,
        delivery=options.delivery,
        confidence=options.confidence,
    )
