"""`prelabel`: the command line. Every user mistake ends as one red line and exit code 2."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

# Only what command signatures need is imported here; each command imports its own
# machinery (Celery, datasets, scikit-learn, the Kili SDK...) when it runs, so that
# `prelabel --help` and `prelabel status` start in a blink (benchmarks/bench_startup.py).
from collector.cli import Platform, export_command, upload_command
from evaluation.cli import compare_command, evaluate_command
from prelabel.errors import ConfigError, PrelabelError
from prelabel.extras import require
from prelabel.flower import flower_command
from prelabel.options import (
    COLUMNS_HELP,
    ENDPOINT,
    FIRST_LABEL_ID_HELP,
    ID_FIELD_HELP,
    LABELS_HELP,
    MULTI_LABEL_HELP,
    TAGS_FIELD_HELP,
    TASK_HELP,
    TEXT_FIELD_HELP,
    BudgetFlags,
    ConfidenceFlags,
    DatasetFlags,
    DeliveryFlags,
    EndpointFlags,
    EstimateDatasetFlags,
    EstimateLimitFlags,
    LimitFlags,
    RedisUrlOpt,
    Split,
    SplitOpt,
    TaskFlags,
    TaskName,
    TransportChoice,
    with_groups,
)
from prelabel.status import runs_command, status_command

if TYPE_CHECKING:
    from prelabel.model import ConfidenceConfig, Delivery, ReasoningEffort
    from prelabel.settings import Settings
    from producer.labeling import LabelingOptions
    from producer.loading import DatasetSpec
    from producer.pipeline import RunOptions, RunOutcome

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="prelabel",
    help=(
        "Pre-label datasets with LLMs, at scale, overnight.\n\n"
        "A run loads a dataset, cuts it into shards and enqueues them on Redis; "
        "`prelabel worker` processes call an OpenAI-compatible endpoint under one shared "
        "rate limit; the results are collected into predictions.jsonl, predictions.conll "
        "and an evaluation report.\n\n"
        "Environment: OPENAI_API_KEY (workers), OPENAI_BASE_URL, REDIS_URL "
        "(default redis://127.0.0.1:6379/0). Flags override them."
    ),
    no_args_is_help=True,
    # Markdown reflows a docstring's paragraphs to the terminal; "rich" kept its line breaks
    # and broke sentences in the middle.
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from prelabel import __version__

        console.print(f"prelabel {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Pre-label datasets with LLMs, at scale, overnight."""


class ReasoningEffortChoice(StrEnum):
    minimal = "minimal"
    low = "low"
    medium = "medium"
    high = "high"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-")
    return f"{where}: {err['msg']}"


def _settings(redis_url: str | None = None, base_url: str | None = None) -> Settings:
    from prelabel.settings import load_settings

    overrides: dict[str, str] = {}
    if redis_url:
        overrides["REDIS_URL"] = redis_url
    if base_url:
        overrides["OPENAI_BASE_URL"] = base_url
    return load_settings(**overrides)


@app.command()
@with_groups
def run(
    data: DatasetFlags,
    endpoint: EndpointFlags,
    limits: LimitFlags,
    task: TaskFlags,
    budget: BudgetFlags,
    delivery: DeliveryFlags,
    measure: ConfidenceFlags,
    reasoning_effort: Annotated[
        ReasoningEffortChoice | None,
        typer.Option(
            "--reasoning-effort",
            help="For reasoning models (o-series, gpt-5). Their reasoning counts against "
            "--max-tokens.",
            case_sensitive=False,
            rich_help_panel=ENDPOINT,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the run's requests, tokens and price (as `prelabel estimate`), and stop.",
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder. Default: runs/RUN_ID.")] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Follow the run and collect it (default), or print its id and return at "
            "once; `prelabel collect RUN` gets it later.",
        ),
    ] = True,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Reuse answers cached for identical requests, so reruns never pay twice.",
        ),
    ] = True,
    redis_url: RedisUrlOpt = None,
    upload: Annotated[
        Platform | None,
        typer.Option(help="Then upload the predictions: kili (KILI_API_KEY, KILI_API_ENDPOINT)."),
    ] = None,
) -> None:
    """Label a dataset: enqueue it, follow it with a progress bar, collect it into --out.

    Exits 0 when the run completed, even if some items failed (they are in
    predictions.jsonl with their reasons), and 1 when the run stopped early.
    """
    from producer.pipeline import RunOptions, run_pipeline

    if upload and not wait:
        raise ConfigError("--upload needs the collected run: drop --no-wait, or upload later")
    confidence = _confidence(measure, endpoint.model)
    settings = _settings(redis_url, endpoint.base_url)
    how = _delivery(delivery)
    labeling = _labeling(task)
    spec = _dataset_spec(data, labeling)
    options = RunOptions(
        model=endpoint.model,
        base_url=settings.openai_base_url,
        rpm=limits.rpm,
        tpm=limits.tpm,
        shard_size=limits.shard_size,
        delivery=how,
        batch_size=limits.items_per_request(endpoint.model),
        max_tokens=limits.completion_limit(endpoint.model),
        reasoning_effort=_effort(reasoning_effort),
        cache=cache,
        budget_usd=budget.budget_usd,
        budget_tokens=budget.budget_tokens,
        labeling=labeling,
        confidence=confidence,
    )
    if dry_run:
        _print_estimate(spec, options, limits.rpm, limits.tpm)
        return
    outcome = run_pipeline(settings, spec, options, out, console, wait=wait)
    if not wait:
        console.print(outcome.run_id, highlight=False)
        return
    if outcome.status != "completed":
        # The reason first, on one line, then what was kept: no report full of zeros.
        reason = escape(str(outcome.error or "no reason recorded"))
        err_console.print(
            f"[bold red]error:[/] run {outcome.run_id} {outcome.status}: {reason}",
            highlight=False,
            soft_wrap=True,
        )
        _print_short(outcome)
        raise typer.Exit(1)
    _print_outcome(outcome)
    if upload and outcome.collected is not None:
        from collector.cli import upload_after_run

        upload_after_run(outcome.collected.out_dir, settings)


def _dataset_spec(data: DatasetFlags, labeling: LabelingOptions) -> DatasetSpec:
    """The dataset flags of `run` and `estimate`, checked; with the task's label file read
    when the gold names its labels by id (`producer.labeling.with_label_file`)."""
    from producer import loading
    from producer.labeling import with_label_file

    listed = data.entity_types
    types = tuple(t.strip() for t in listed.split(",") if t.strip()) if listed else None
    if types is not None and labeling.task != TaskName.ner:
        raise ConfigError(
            f"--entity-types is for --task ner; with --task {labeling.task}, the labels are "
            "those of --labels FILE (or of the data)"
        )
    rows = loading.parse_rows(data.rows, "--rows") if data.rows is not None else None
    try:
        # Only a tags column the user named must exist: the default one (None: the task
        # type's) is optional, as text-only data labels without gold.
        spec = loading.DatasetSpec(
            source=data.dataset,
            split=str(data.split),
            limit=data.limit,
            text_field=data.text_field,
            tokens_field=data.tokens_field,
            gold_field=data.tags_field,
            id_field=data.id_field,
            labels=types,
            columns=_columns(data.columns),
            first_label_id=data.first_label_id,
            rows=rows,
        )
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    return with_label_file(spec, labeling)


def _columns(listed: str | None) -> tuple[str, ...] | None:
    """`--columns a,b,c`, checked: every column named."""
    if listed is None:
        return None
    columns = tuple(c.strip() for c in listed.split(","))
    if not all(columns):
        raise ConfigError(
            f"--columns {listed!r}: a column name is empty; name every column of the file, "
            "in order, separated by commas"
        )
    return columns


def _task_name(task: TaskName, multi_label: bool) -> str:
    """`--task` and `--multi-label` as a registered task type's name."""
    if not multi_label:
        return task.value
    if task not in (TaskName.classify, TaskName.classify_multi):
        raise ConfigError(
            f"--multi-label is for classification, not --task {task.value}; "
            "pass --task classify --multi-label"
        )
    return TaskName.classify_multi.value


def _label_file(labels: Path | None, ontology: Path | None) -> Path | None:
    if labels is not None and ontology is not None:
        raise ConfigError(
            "--labels and --ontology both name the label-set file (--ontology is NER's name "
            "for it); pass one of them"
        )
    return labels or ontology


def _effort(value: ReasoningEffortChoice | None) -> ReasoningEffort | None:
    return None if value is None else value.value


def _labeling(task: TaskFlags) -> LabelingOptions:
    from producer.labeling import LabelingOptions
    from producer.loading import parse_rows

    pool_rows = task.few_shot_rows
    return LabelingOptions(
        ontology_file=_label_file(task.labels, task.ontology),
        prompt_file=task.prompt_file,
        few_shot=task.few_shot,
        few_shot_strategy=task.few_shot_strategy.value,
        few_shot_from=task.few_shot_from,
        response_format=task.response_format.value,
        task=_task_name(task.task, task.multi_label),
        few_shot_rows=parse_rows(pool_rows, "--few-shot-rows") if pool_rows is not None else None,
    )


def parse_deadline(text: str, now: float | None = None) -> float:
    """`--deadline` as Unix time: an ISO 8601 date-time (local time unless it gives an
    offset), or HH:MM, its next occurrence in local time after `now` (default: now). Raises
    ConfigError, with one line, for anything else or a time already past."""
    from datetime import datetime, timedelta
    from datetime import time as clock

    now = time.time() if now is None else now
    value = text.strip()
    when: float
    try:
        if len(value) <= 8 and ":" in value and "-" not in value:
            at = clock.fromisoformat(value)
            if at.tzinfo is not None:
                raise ValueError("an HH:MM deadline is local time")
            today = datetime.fromtimestamp(now).date()
            # Naive datetimes are local time: .timestamp() follows the zone's DST rules.
            when = datetime.combine(today, at).timestamp()
            if when <= now:
                when = datetime.combine(today + timedelta(days=1), at).timestamp()
        else:
            if "T" not in value.upper() and " " not in value:
                raise ValueError("no time of day")
            when = datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ConfigError(
            f"--deadline {text!r}: give a date-time (ISO 8601, e.g. 2026-12-01T07:00) or a "
            "time of day as HH:MM (its next occurrence, local time)"
        ) from None
    if when <= now:
        raise ConfigError(f"--deadline {text!r} is already past: give a time to come")
    return when


def _confidence(flags: ConfidenceFlags, model: str, *, run: bool = True) -> ConfidenceConfig:
    """The confidence flags, checked, as the run's `ConfidenceConfig` (`run`: a run, which
    refuses log-probabilities from a model that never gives them)."""
    from prelabel.model import ConfidenceConfig
    from workers.transports.chat import is_reasoning_model

    try:
        config = ConfidenceConfig.parse(flags.confidence, drop_rejected=flags.drop_rejected)
    except ValueError as exc:
        raise ConfigError(f"--confidence: {exc}") from None
    if flags.drop_rejected and config.method != "verify":
        raise ConfigError(
            "--drop-rejected drops what verification rejects: pass --confidence verify"
        )
    if flags.sample_temperature is not None:
        if config.method != "consistency":
            raise ConfigError(
                "--sample-temperature is the temperature of consistency's samples: pass "
                "--confidence consistency:N"
            )
        config = config.model_copy(update={"temperature": flags.sample_temperature})
    if run and config.method == "logprobs" and is_reasoning_model(model):
        raise ConfigError(
            f"--confidence logprobs: {model} is a reasoning model, which gives no "
            "log-probabilities; use --confidence consistency:5 or verify"
        )
    return config


def _delivery(flags: DeliveryFlags, now: float | None = None) -> Delivery:
    """The transport flags, checked, as the run's `Delivery`."""
    from prelabel.model import Delivery

    transport = flags.transport
    if transport is TransportChoice.realtime:
        given = [
            name
            for name, value in (
                ("--deadline", flags.deadline),
                ("--deadline-margin", flags.deadline_margin),
                ("--enqueued-tokens", flags.enqueued_tokens),
                ("--batch-retry", flags.batch_retry),
            )
            if value is not None
        ]
        if given:
            which = "auto" if given[0].startswith("--deadline") else "batch or auto"
            raise ConfigError(
                f"{given[0]} is for the Batch API: pass --transport {which} with it "
                "(the default transport, realtime, does not use it)"
            )
        return Delivery()
    if transport is TransportChoice.auto and flags.deadline is None:
        raise ConfigError(
            "--transport auto needs --deadline TIME (e.g. 07:00): what is not back from the "
            "Batch API by then, less --deadline-margin, goes realtime; without a deadline, "
            "pass --transport batch"
        )
    if transport is TransportChoice.batch and flags.deadline is not None:
        raise ConfigError(
            "--deadline is for --transport auto (batch waits for the Batch API, up to its "
            "24 hours): pass --transport auto --deadline TIME"
        )
    if flags.deadline_margin is not None and flags.deadline is None:
        raise ConfigError("--deadline-margin is the margin before --deadline: pass --deadline")
    deadline = None
    margin = 60.0 if flags.deadline_margin is None else flags.deadline_margin
    if flags.deadline is not None:
        now = time.time() if now is None else now
        deadline = parse_deadline(flags.deadline, now)
        if deadline - margin * 60 <= now:
            raise ConfigError(
                f"--deadline {flags.deadline} less --deadline-margin {margin:g} minutes is "
                "already past: every item would go realtime; give a later deadline or a "
                "smaller margin (or pass --transport realtime)"
            )
    return Delivery(
        transport=transport.value,
        deadline=deadline,
        margin_seconds=margin * 60,
        enqueued_tokens=flags.enqueued_tokens,
        retry=flags.batch_retry.value if flags.batch_retry is not None else "batch",
    )


def _print_estimate(
    spec: DatasetSpec, options: RunOptions, rpm: int | None, tpm: int | None
) -> None:
    from producer.estimate import estimate_run, render_estimate

    estimate = estimate_run(
        spec,
        model=options.model,
        base_url=options.base_url,
        shard_size=options.shard_items,
        batch_size=options.batch_size,
        max_tokens=options.max_tokens,
        labeling=options.labeling,
        transport=options.delivery.transport,
        confidence=options.confidence,
    )
    console.print(render_estimate(estimate, rpm, tpm))


@app.command()
@with_groups
def estimate(
    data: EstimateDatasetFlags,
    endpoint: EndpointFlags,
    limits: EstimateLimitFlags,
    task: TaskFlags,
    delivery: DeliveryFlags,
    measure: ConfidenceFlags,
) -> None:
    """Print what a run would cost before starting it: requests, tokens and price.

    Takes the same dataset and labeling flags as `run`, and needs neither Redis nor the
    endpoint. Prompt tokens are counted on the real messages, plus the response format's
    schema (an estimate: its compact JSON in the model's encoding); of them, those the
    provider's prompt cache is expected to serve (a stable prefix of at least 1,024 tokens
    seen before, in 128-token steps; an estimate too). Completion tokens are estimated, with
    `max_tokens` per request as the bound. Prices: built-in table, extended by the JSON or
    TOML file in $PRELABEL_PRICES (cached input at its own price); with `--transport batch`,
    the Batch API's half price (auto: between the two). Dollars per 1,000 items are shown
    split into uncached input, cached input and output, realtime and through the Batch API.
    """
    from producer.pipeline import RunOptions

    confidence = _confidence(measure, endpoint.model, run=False)
    how = _delivery(delivery)
    labeling = _labeling(task)
    spec = _dataset_spec(data, labeling)
    url = endpoint.base_url or _settings().openai_base_url
    options = RunOptions(
        model=endpoint.model,
        base_url=url,
        shard_size=limits.shard_size,
        batch_size=limits.items_per_request(endpoint.model),
        max_tokens=limits.completion_limit(endpoint.model),
        labeling=labeling,
        delivery=how,
        confidence=confidence,
    )
    _print_estimate(spec, options, limits.rpm, limits.tpm)


def _print_outcome(outcome: RunOutcome) -> None:
    if outcome.collected is not None:
        _print_collected(outcome.collected)


def _print_short(outcome: RunOutcome) -> None:
    """A stopped run in two lines: what was done, and where the files are."""
    collected = outcome.collected
    if collected is None:
        return
    f = collected.evaluation.figures
    console.print(
        f"labeled {f.labeled:,} · failed {f.failed - collected.missing:,} · "
        f"not labeled {collected.missing:,} of {f.items:,} items · "
        f"`prelabel resume {outcome.run_id}` takes it up again",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"files in {collected.out_dir}", highlight=False, soft_wrap=True)


def _print_collected(collected: object) -> None:
    from collector import Collected
    from evaluation import render_tables

    assert isinstance(collected, Collected)
    for table in render_tables(collected.evaluation):
        console.print(table)
    console.print("files:")
    for path in collected.files:
        console.print(f"  {path}")


RunArg = Annotated[str, typer.Argument(help="The run id (`prelabel run` printed it).")]


@app.command()
def resume(
    run_id: RunArg,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Label the run's failed items again (same run; collect it again after).",
        ),
    ] = False,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Re-enqueue what a run has not done yet: a stopped, failed or interrupted run goes on.

    Items already labeled are skipped, so a resume pays only for what is left. With
    `--failed`, a run that ended (completed included) labels its failed items again.
    """
    from prelabel.connections import connect
    from prelabel.store import RunStore
    from producer.control import resume as resume_run
    from producer.control import retry_failed

    settings = _settings(redis_url)
    store = RunStore(connect(settings.redis_url, master=settings.sentinel_master))
    if not failed:
        shards = resume_run(settings, store, run_id)
        console.print(f"run {run_id}: {len(shards)} shards re-enqueued")
        return
    items, shards = retry_failed(settings, store, run_id)
    if not items:
        console.print(f"run {run_id}: no failed items, nothing to do")
        return
    console.print(
        f"run {run_id}: {items} failed items to label again, {len(shards)} shards re-enqueued; "
        f"`prelabel collect {run_id}` once it has ended writes its files anew"
    )


@app.command()
def cancel(run_id: RunArg, redis_url: RedisUrlOpt = None) -> None:
    """Stop a run cleanly: calls in flight finish and are kept, no new ones start; the
    workers cancel the run's Batch API batches (lines answered by then are kept)."""
    from prelabel.batches import FINAL
    from prelabel.connections import connect
    from prelabel.monitor import read_batches
    from prelabel.store import RunStore
    from producer.control import cancel as cancel_run

    settings = _settings(redis_url)
    store = RunStore(connect(settings.redis_url, master=settings.sentinel_master))
    cancel_run(store, run_id)
    console.print(f"run {run_id}: cancelled (`prelabel resume {run_id}` takes it up again)")
    out = [b for b in read_batches(store.redis, run_id) if b.status not in FINAL]
    if out:
        items = sum(b.items for b in out)
        console.print(
            f"its {len(out)} batches still in the Batch API ({items:,} items) are cancelled by "
            "the workers' poller; lines answered before that are kept and labeled on resume",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def collect(
    run_id: RunArg,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder. Default: the run's --out, else runs/RUN_ID."),
    ] = None,
    partial: Annotated[
        bool, typer.Option(help="Collect a run still in work: what is done so far.")
    ] = False,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Collect a run into files (predictions, CoNLL, reports), e.g. after `run --no-wait`."""
    from prelabel.connections import connect
    from prelabel.store import RunStore
    from producer.control import collect_run

    settings = _settings(redis_url)
    store = RunStore(connect(settings.redis_url, master=settings.sentinel_master))
    folder = out or store.out_dir(run_id) or Path("runs") / run_id
    _print_collected(collect_run(settings, store, run_id, folder, partial=partial))


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option(help="Worker processes (Celery prefork pool size).", min=1)
    ] = 2,
    inflight: Annotated[
        int | None,
        typer.Option(
            envvar="PRELABEL_INFLIGHT",
            show_envvar=True,
            min=1,
            help="LLM calls each process keeps in flight (≈ RPM/60 × latency in seconds "
            "÷ processes). Default: 16.",
        ),
    ] = None,
    hostname: Annotated[
        str | None,
        typer.Option(
            help="Celery node name. Default: prelabel-RANDOM@HOST, unique for each worker, so "
            "that Flower tells apart two workers on one machine."
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    redis_url: RedisUrlOpt = None,
    log_json: Annotated[
        bool,
        typer.Option("--log-json", help="JSON logs (also: PRELABEL_LOG_FORMAT=json)."),
    ] = False,
) -> None:
    """Start a Celery worker that labels shards. Reads REDIS_URL and OPENAI_API_KEY."""
    from prelabel import health, logs, tracing
    from prelabel.connections import connect

    logs.install_celery_logging(json_logs=log_json or None)
    health.install_heartbeat_file()  # $PRELABEL_HEALTH_FILE, for liveness probes

    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    if inflight:
        os.environ["PRELABEL_INFLIGHT"] = str(inflight)
    settings = _settings()
    tracing.install_worker_tracing(settings)  # OTEL_* or PRELABEL_TRACING; off by default
    connect(settings.redis_url, master=settings.sentinel_master)
    from workers.app import worker_app

    celery_app = worker_app(settings)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--queues={settings.queue}",
        f"--loglevel={loglevel}",
        "--events",
    ]
    # Celery's default, celery@HOST, is the same for two workers on one machine: Flower
    # then shows one worker, and the duplicate-name warning lands only in Flower's log.
    argv.append(f"--hostname={hostname or f'prelabel-{secrets.token_hex(3)}@%h'}")
    celery_app.worker_main(argv)


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 inside a container).")
    ] = "127.0.0.1",
    gold: Annotated[
        str | None,
        typer.Option(help="Gold dataset the oracle answers from (same forms as --dataset)."),
    ] = None,
    split: SplitOpt = Split.test,
    task: Annotated[
        TaskName, typer.Option("--task", help=TASK_HELP, case_sensitive=False)
    ] = TaskName.ner,
    multi_label: Annotated[bool, typer.Option("--multi-label", help=MULTI_LABEL_HELP)] = False,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            metavar="FILE",
            help=LABELS_HELP + " The oracle answers with its names, as the run's prompt asks.",
        ),
    ] = None,
    columns: Annotated[str | None, typer.Option("--columns", help=COLUMNS_HELP)] = None,
    text_field: Annotated[str, typer.Option("--text-field", help=TEXT_FIELD_HELP)] = "text",
    tags_field: Annotated[
        str | None,
        typer.Option("--tags-field", "--label-field", help=TAGS_FIELD_HELP, show_default=False),
    ] = None,
    first_label_id: Annotated[int, typer.Option("--first-label-id", help=FIRST_LABEL_ID_HELP)] = 0,
    id_field: Annotated[str | None, typer.Option("--id-field", help=ID_FIELD_HELP)] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests/min cap, enforced with 429s.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens/min cap, enforced with 429s.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Mean response latency.")] = 0.0,
    noise: Annotated[float, typer.Option(help="Share of gold mentions dropped/mislabeled.")] = 0.0,
    fail_rate: Annotated[float, typer.Option(help="Share of requests answered 5xx.")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(help="Share of requests that hang.")] = 0.0,
    malformed_rate: Annotated[float, typer.Option(help="Share of answers not JSON.")] = 0.0,
    drip_rate: Annotated[
        float, typer.Option(help="Share of answers sent one byte every --drip-seconds.")
    ] = 0.0,
    drip_seconds: Annotated[float, typer.Option(help="Seconds between two dripped bytes.")] = 5.0,
    retry_after: Annotated[
        float | None, typer.Option(help="Seconds every 429 asks to wait (default: the truth).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for noise and faults.")] = 0,
    header_style: Annotated[
        str,
        typer.Option(
            help="x-ratelimit-remaining-* as: bucket (what the one-second bucket holds) or "
            "openai (the hosted API's per-minute view: limit minus what is still to refill)."
        ),
    ] = "bucket",
    success_headers: Annotated[
        bool, typer.Option(help="Send x-ratelimit-* headers on 200 answers (429s always do).")
    ] = True,
    batch_seconds: Annotated[
        float, typer.Option(help="Batch API: seconds from creating a batch to `completed`.")
    ] = 2.0,
    batch_validating_seconds: Annotated[
        float | None,
        typer.Option(help="Batch API: seconds in `validating` (default: a tenth of the total)."),
    ] = None,
    batch_finalizing_seconds: Annotated[
        float | None,
        typer.Option(help="Batch API: seconds in `finalizing` (default: a tenth of the total)."),
    ] = None,
    batch_cancel_seconds: Annotated[
        float | None,
        typer.Option(
            help="Batch API: seconds from `cancelling` to `cancelled` (default: a tenth)."
        ),
    ] = None,
    batch_expire_seconds: Annotated[
        float | None,
        typer.Option(
            help="Batch API: seconds after which an unfinished batch expires, keeping the lines "
            "answered by then (default: the 24 h window)."
        ),
    ] = None,
    batch_line_fail_rate: Annotated[
        float, typer.Option(help="Batch API: share of lines answered 500 in the error file.")
    ] = 0.0,
    batch_enqueued_tokens: Annotated[
        int | None,
        typer.Option(
            help="Batch API: prompt tokens a model may have in unfinished batches; a batch "
            "over it fails with token_limit_exceeded (default: no limit)."
        ),
    ] = None,
    no_logprobs: Annotated[
        bool,
        typer.Option(
            "--no-logprobs",
            help="Answer logprobs: null even when asked, as a server without them does "
            "(else made-up token log-probabilities: they prove nothing about a model).",
        ),
    ] = False,
    ignore_n: Annotated[
        bool,
        typer.Option(
            "--ignore-n", help="Answer one choice whatever n asks, as llama.cpp's server does."
        ),
    ] = False,
    refuse_cache_key: Annotated[
        bool,
        typer.Option(
            "--refuse-cache-key",
            help="Answer a request carrying prompt_cache_key with a 400, as a strict proxy or "
            "an old Azure API version does.",
        ),
    ] = False,
    bill_schema: Annotated[
        bool,
        typer.Option(
            "--bill-schema/--no-bill-schema",
            help="Count the response format's JSON schema in prompt_tokens, as OpenAI bills "
            "it (its compact JSON in o200k_base, as prelabel estimate counts it), or not.",
        ),
    ] = True,
) -> None:
    """Start prelabel's OpenAI-compatible simulator: answers a task's prompts from gold data.

    A test and demo double, never a model: reports say when its answers were used. --gold is
    read as `prelabel run` reads --dataset, with the same --task, --labels, --columns and
    field flags.
    """
    import task_types
    from prelabel.model import LabelSet
    from producer.labeling import LabelingOptions, with_label_file
    from producer.loading import DatasetSpec, load_dataset_records

    require("aiohttp", "simulator")
    from simulator import Oracle, SimulatorConfig, serve

    name = _task_name(task, multi_label)
    records = []
    if gold:
        options = LabelingOptions(ontology_file=labels, task=name)
        try:
            spec = DatasetSpec(
                source=gold,
                split=split,
                text_field=text_field,
                gold_field=tags_field,
                id_field=id_field,
                columns=_columns(columns),
                first_label_id=first_label_id,
            )
        except ValidationError as exc:
            raise ConfigError(_first_error(exc)) from None
        records = load_dataset_records(with_label_file(spec, options), name).records
    ontology: LabelSet | None = None
    if labels is not None:
        ontology = task_types.get(name).read_labels(labels)
    config = SimulatorConfig(
        host=host,
        port=port,
        rpm=rpm,
        tpm=tpm,
        latency_ms=latency_ms,
        noise=noise,
        fail_rate=fail_rate,
        timeout_rate=timeout_rate,
        malformed_rate=malformed_rate,
        drip_rate=drip_rate,
        drip_seconds=drip_seconds,
        retry_after=retry_after,
        seed=seed,
        header_style=header_style,  # type: ignore[arg-type]  # SimulatorConfig checks it
        success_headers=success_headers,
        batch_seconds=batch_seconds,
        batch_validating_seconds=batch_validating_seconds,
        batch_finalizing_seconds=batch_finalizing_seconds,
        batch_cancel_seconds=batch_cancel_seconds,
        batch_expire_seconds=batch_expire_seconds,
        batch_line_fail_rate=batch_line_fail_rate,
        batch_enqueued_tokens=batch_enqueued_tokens,
        no_logprobs=no_logprobs,
        ignore_n=ignore_n,
        refuse_cache_key=refuse_cache_key,
        bill_schema=bill_schema,
    )
    serve(config, Oracle(records, ontology=ontology, noise=noise, seed=seed, task=name))


@app.command()
def demo(
    limit: Annotated[int, typer.Option(help="Sentences to label.")] = 500,
    workers: Annotated[int, typer.Option(help="Worker processes to start.")] = 2,
    noise: Annotated[float, typer.Option(help="Simulator noise (0 gives F1 = 100%).")] = 0.0,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder. Default: runs/demo-RUN_ID, a new one each time."),
    ] = None,
) -> None:
    """Run the whole pipeline on this machine, then stop what it started.

    Uses Redis at REDIS_URL (or starts an embedded one), starts the simulator and two
    workers, labels a sample of CoNLL-2003 and prints its evaluation.
    """
    from prelabel import launch
    from prelabel.connections import answers, embedded_redis

    require("aiohttp", "simulator")  # the demo's endpoint is the simulator
    from prelabel.settings import load_settings
    from producer.loading import DatasetSpec
    from producer.pipeline import RunOptions, run_pipeline

    # Outside the repository, beside its checkout, when there (README, "Quickstart"): the whole
    # CoNLL-2003 test split. Else the small sample the repository ships.
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003" / "test.txt"
    sample = Path(__file__).resolve().parents[1] / "producer" / "samples" / "sample.conll"
    data = shared if shared.exists() else sample
    base = load_settings()
    with ExitStack() as stack:
        redis_url = base.redis_url
        if not answers(redis_url):
            redis_url = stack.enter_context(embedded_redis())
            console.print(f"no Redis at {base.redis_url}: started an embedded one at {redis_url}")
        queue = f"prelabel-demo-{os.getpid()}"
        env = {**os.environ, "REDIS_URL": redis_url, "PRELABEL_QUEUE": queue}
        logs = Path(tempfile.mkdtemp(prefix="prelabel-demo-"))
        port = launch.free_port()
        extra = ["--noise", str(noise), "--latency-ms", "20"]
        sim = launch.start_simulator(port, data, extra=extra, env=env, log=logs / "sim.log")
        procs = [sim]
        stack.callback(launch.stop, procs)
        for i in range(workers):
            procs.append(
                launch.start_worker(
                    concurrency=1, env=env, log=logs / f"worker{i}.log", hostname=f"demo{i}@%h"
                )
            )
        console.print(f"simulator on port {port}, {workers} workers (logs in {logs})")
        settings = load_settings(REDIS_URL=redis_url, queue=queue)
        options = RunOptions(model="gpt-4o-mini", base_url=f"http://127.0.0.1:{port}/v1")
        spec = DatasetSpec(source=str(data), split="test", limit=limit)
        if out is not None and out.exists() and any(out.iterdir()):
            console.print(f"{out} holds files: the demo's replace them", highlight=False)
        outcome = run_pipeline(settings, spec, options, out, console, default_out="demo-")
        _print_outcome(outcome)
        if outcome.status != "completed":
            raise PrelabelError(f"demo run {outcome.run_id} {outcome.status}: {outcome.error}")


@app.command()
def metrics(
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9808,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    window: Annotated[
        float, typer.Option(help="Seconds over which rates and the ETA are computed.", min=1)
    ] = 60.0,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Serve Prometheus metrics for every run in Redis: items, tokens, cost, 429s, ETA."""
    from prelabel.connections import connect
    from prelabel.exporter import serve  # prometheus_client, only for this command

    settings = _settings(redis_url)
    serve(connect(settings.redis_url, master=settings.sentinel_master), port, address, window)


app.command("upload")(upload_command)
app.command("export")(export_command)
app.command("status")(status_command)
app.command("runs")(runs_command)
app.command("flower")(flower_command)
app.command("evaluate")(evaluate_command)
app.command("compare")(compare_command)


def main() -> None:
    """Entry point: exit 0 done, 1 a run stopped or failed, 2 could not start.

    A PrelabelError is one red line; a usage error is click's usual message (usage, hint,
    error), never a traceback. Typer vendors its own click (`typer._click`), whose exceptions
    derive from `typer.TyperException`, not from the `click` package's.
    """
    try:
        code = app(standalone_mode=False)
    except PrelabelError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option, missing value, bad choice
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"Error: {exc.format_message()}", highlight=False)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    # In non-standalone mode, a command's `typer.Exit(n)` comes back as the return value.
    sys.exit(code if isinstance(code, int) else 0)
