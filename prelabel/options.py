"""Command-line options that several commands take, declared once.

Only typer is imported here: `prelabel --help` reads every command's signature.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from prelabel.defaults import DEFAULT_BATCH_SIZE, default_batch_size

#: `--redis-url`, for every command that reads or writes runs in Redis.
RedisUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="REDIS_URL",
        show_envvar=True,
        help="Redis URL (redis://, rediss://, unix://, sentinel://). "
        "Default: redis://127.0.0.1:6379/0.",
    ),
]


class Split(StrEnum):
    """Split names as `producer.loading` knows them (aliases included)."""

    train = "train"
    valid = "valid"
    validation = "validation"
    dev = "dev"
    test = "test"


class TaskName(StrEnum):
    """The registered task types (`task_types.names()`; a test keeps the two the same): listed
    here rather than asked of the registry, which would import every task type for `--help`."""

    ner = "ner"
    classify = "classify"
    classify_multi = "classify-multi"


#: `--task`'s help: every task type, and what it labels.
TASK_HELP = (
    "What to label: ner (entity mentions in each text), classify (one label per text) or "
    "classify-multi (a set of labels per text; the same as classify with --multi-label)."
)
MULTI_LABEL_HELP = "With --task classify: a set of labels per text (classify-multi)."
LABELS_HELP = (
    "Label file: one name per line (like AG News' classes.txt; in id order when the gold "
    "holds integer ids), or TOML/JSON with [[labels]] entries of name, tag and description "
    "(the description goes into the prompt). For NER the same as --ontology."
)
COLUMNS_HELP = (
    "Names of a headerless CSV or TSV file's columns, comma-separated, in order (given: the "
    "file has no header row), e.g. label,title,description."
)
TEXT_FIELD_HELP = (
    "Text column (JSONL/CSV/TSV/Parquet); several, comma-separated, are joined with a line "
    "break (e.g. title,description)."
)
TAGS_FIELD_HELP = (
    "Gold labels column. Default: the task's (ner_tags; classify: label; classify-multi: "
    "labels) when the data has it; without gold the run labels and reports everything but "
    "scores."
)
FIRST_LABEL_ID_HELP = (
    "The id of the first label when the gold holds integer ids (AG News counts from 1)."
)
ID_FIELD_HELP = "Item id column (default: SPLIT-NNNNNN by position)."


class FewShotStrategy(StrEnum):
    similar = "similar"
    random = "random"
    fixed = "fixed"


class ResponseFormat(StrEnum):
    auto = "auto"
    json_schema = "json_schema"
    json_object = "json_object"


SplitOpt = Annotated[
    Split,
    typer.Option(
        help="Split to label (valid, validation and dev are the same).", case_sensitive=False
    ),
]

# --- the option groups of `prelabel run` and `prelabel estimate` ------------------------------
# Each group is a dataclass of options; a command that takes one as a parameter (see
# `with_groups`) shows its options under the group's panel in --help, and gets them as one
# value. `estimate` takes the same groups as `run`, with its own words where they differ.

DATASET = "Dataset"
ENDPOINT = "Endpoint"
LIMITS = "Limits"
TASK = "Task"
BUDGET = "Budget"
TRANSPORT = "Transport"
CONFIDENCE = "Confidence"


@dataclass(frozen=True)
class DatasetFlags:
    """What to label, and how to read it."""

    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="A Hugging Face hub name (e.g. conll2003) or a local CoNLL file or folder, "
            "or a JSONL, CSV, TSV or Parquet file (or a folder of split files).",
            rich_help_panel=DATASET,
        ),
    ]
    split: Annotated[
        Split,
        typer.Option(
            help="Split to label (valid, validation and dev are the same).",
            case_sensitive=False,
            rich_help_panel=DATASET,
        ),
    ] = Split.test
    limit: Annotated[
        int | None,
        typer.Option(help="Label only the first N items.", min=1, rich_help_panel=DATASET),
    ] = None
    rows: Annotated[
        str | None,
        typer.Option(
            "--rows",
            metavar="START:END",
            help="Which rows of the split to label, as a Python slice counted from 0 "
            "(e.g. :7200, 7200: or -400:); --limit counts within them.",
            rich_help_panel=DATASET,
        ),
    ] = None
    entity_types: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated entity tags to label (NER; default: those in the data).",
            rich_help_panel=DATASET,
        ),
    ] = None
    columns: Annotated[
        str | None,
        typer.Option("--columns", help=COLUMNS_HELP, rich_help_panel=DATASET),
    ] = None
    text_field: Annotated[
        str, typer.Option("--text-field", help=TEXT_FIELD_HELP, rich_help_panel=DATASET)
    ] = "text"
    tokens_field: Annotated[str, typer.Option(help="Tokens column.", rich_help_panel=DATASET)] = (
        "tokens"
    )
    tags_field: Annotated[
        str | None,
        typer.Option(
            "--tags-field",
            "--label-field",
            help=TAGS_FIELD_HELP,
            show_default=False,
            rich_help_panel=DATASET,
        ),
    ] = None
    first_label_id: Annotated[
        int,
        typer.Option("--first-label-id", help=FIRST_LABEL_ID_HELP, rich_help_panel=DATASET),
    ] = 0
    id_field: Annotated[
        str | None,
        typer.Option("--id-field", help=ID_FIELD_HELP, rich_help_panel=DATASET),
    ] = None


@dataclass(frozen=True)
class EstimateDatasetFlags(DatasetFlags):
    limit: Annotated[
        int | None,
        typer.Option(help="Estimate only the first N items.", min=1, rich_help_panel=DATASET),
    ] = None


@dataclass(frozen=True)
class EndpointFlags:
    """Which model, where."""

    model: Annotated[
        str, typer.Option(help="Model name, as the endpoint knows it.", rich_help_panel=ENDPOINT)
    ]
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="OPENAI_BASE_URL",
            show_envvar=True,
            help="OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, the simulator). "
            "Default: https://api.openai.com/v1.",
            rich_help_panel=ENDPOINT,
        ),
    ] = None


#: `--shard-size`'s help: the default depends on the transport (`producer.pipeline`).
SHARD_SIZE_HELP = (
    "Items per Celery task. Default: 50; with --transport batch or auto, 1000: a shard pass "
    "is one batch file, and fewer, larger files mean fewer files, batches and polls, well "
    "under the API's 50,000 requests and 200 MB a file."
)


@dataclass(frozen=True)
class LimitFlags:
    """The caps the calls go under, and how the work is cut."""

    rpm: Annotated[
        int | None,
        typer.Option(
            help="Requests/min cap shared by every worker.", min=1, rich_help_panel=LIMITS
        ),
    ] = None
    tpm: Annotated[
        int | None,
        typer.Option(help="Tokens/min cap shared by every worker.", min=1, rich_help_panel=LIMITS),
    ] = None
    shard_size: Annotated[
        int | None,
        typer.Option(help=SHARD_SIZE_HELP, min=1, show_default=False, rich_help_panel=LIMITS),
    ] = None
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Items per LLM request: they share its instructions, schema and examples. "
            f"Default: {DEFAULT_BATCH_SIZE} for OpenAI's models, 1 for any other (a small "
            "local model labels better one item at a time).",
            min=1,
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None
    max_tokens: Annotated[
        int | None,
        typer.Option(
            help="Completion token limit per request; it counts against --tpm at admission. "
            "Default: 256 + 64 per item of the batch.",
            rich_help_panel=LIMITS,
        ),
    ] = None

    def items_per_request(self, model: str) -> int:
        """`--batch-size`, or the model's default (`prelabel.defaults.default_batch_size`)."""
        return self.batch_size or default_batch_size(model)

    def completion_limit(self, model: str) -> int:
        """`--max-tokens`, or `default_max_tokens` of the batch size."""
        return self.max_tokens or default_max_tokens(self.items_per_request(model))


def default_max_tokens(batch_size: int) -> int:
    """Room for a batch's answer: a compact CoNLL answer is about 14 tokens a sentence on
    average (28 listing every type), dense ones several times that, so that a cut-off answer
    (which splits the batch) stays rare."""
    return 256 + 64 * batch_size


@dataclass(frozen=True)
class EstimateLimitFlags(LimitFlags):
    rpm: Annotated[
        int | None,
        typer.Option(help="Requests/min cap (for the duration).", min=1, rich_help_panel=LIMITS),
    ] = None
    tpm: Annotated[
        int | None,
        typer.Option(help="Tokens/min cap (for the duration).", min=1, rich_help_panel=LIMITS),
    ] = None


@dataclass(frozen=True)
class TaskFlags:
    """What the model is asked: the task, its labels, the prompt, the examples, the format."""

    task: Annotated[
        TaskName,
        typer.Option("--task", help=TASK_HELP, case_sensitive=False, rich_help_panel=TASK),
    ] = TaskName.ner
    multi_label: Annotated[
        bool, typer.Option("--multi-label", help=MULTI_LABEL_HELP, rich_help_panel=TASK)
    ] = False
    labels: Annotated[
        Path | None,
        typer.Option("--labels", metavar="FILE", help=LABELS_HELP, rich_help_panel=TASK),
    ] = None
    ontology: Annotated[
        Path | None,
        typer.Option(
            "--ontology",
            help="NER's entity types file (TOML or JSON: a list of types, each with name, tag "
            "and description). "
            "Default: the dataset's tags, CoNLL's named PERSON, ORGANIZATION, LOCATION, "
            "MISCELLANEOUS.",
            rich_help_panel=TASK,
        ),
    ] = None
    prompt_file: Annotated[
        Path | None,
        typer.Option(
            "--prompt-file",
            help='System prompt template (TOML or JSON: system = "..." with {types} and '
            "{format} for NER, {labels} and {format} for classification); its hash is part of "
            "the prompt version recorded with each prediction.",
            rich_help_panel=TASK,
        ),
    ] = None
    few_shot: Annotated[
        int,
        typer.Option(
            "--few-shot",
            help="Labelled examples per request (0: none).",
            min=0,
            rich_help_panel=TASK,
        ),
    ] = 0
    few_shot_strategy: Annotated[
        FewShotStrategy,
        typer.Option(
            "--few-shot-strategy",
            help="How examples are chosen: similar (TF-IDF nearest neighbours per request), "
            "random (one seeded set for the run) or fixed (one set for the run, typical "
            "sentences that show every label: a stable prefix for the prompt cache).",
            rich_help_panel=TASK,
        ),
    ] = FewShotStrategy.similar
    few_shot_from: Annotated[
        str | None,
        typer.Option(
            "--few-shot-from",
            help="Labelled examples to choose from (same forms as --dataset, read with the "
            "same columns and fields). Default: the train split of --dataset's folder or hub "
            "dataset; for a file, train.EXT in its folder.",
            rich_help_panel=TASK,
        ),
    ] = None
    few_shot_rows: Annotated[
        str | None,
        typer.Option(
            "--few-shot-rows",
            metavar="START:END",
            help="Which rows of --few-shot-from are the examples, as a Python slice (e.g. "
            "7200:). From the --dataset file itself they must not overlap --rows.",
            rich_help_panel=TASK,
        ),
    ] = None
    response_format: Annotated[
        ResponseFormat,
        typer.Option(
            "--response-format",
            help="auto (a strict JSON schema, JSON mode if the endpoint refuses it), "
            "json_schema or json_object.",
            rich_help_panel=TASK,
        ),
    ] = ResponseFormat.auto


@dataclass(frozen=True)
class BudgetFlags:
    """When the run stops admitting calls."""

    budget_usd: Annotated[
        float | None,
        typer.Option(
            help="Stop admitting calls once the run has spent this many dollars.",
            rich_help_panel=BUDGET,
        ),
    ] = None
    budget_tokens: Annotated[
        int | None,
        typer.Option(
            help="Stop admitting calls once the run has spent this many tokens.",
            min=1,
            rich_help_panel=BUDGET,
        ),
    ] = None


@dataclass(frozen=True)
class ConfidenceFlags:
    """How sure the model is of each item and each label or mention, for review order."""

    confidence: Annotated[
        str,
        typer.Option(
            "--confidence",
            metavar="METHOD",
            help="none; logprobs (from the answer's token log-probabilities, where the "
            "endpoint returns them); consistency:N (N sampled answers, 2 to 20: their vote is "
            "the prediction, their agreement the confidence; N times the answer tokens); "
            "verify (one more short yes/no question per item).",
            rich_help_panel=CONFIDENCE,
        ),
    ] = "none"
    drop_rejected: Annotated[
        bool,
        typer.Option(
            "--drop-rejected",
            help="With --confidence verify: drop what the verification rejects from the "
            "predictions (it stays in the scores, for review).",
            rich_help_panel=CONFIDENCE,
        ),
    ] = False
    sample_temperature: Annotated[
        float | None,
        typer.Option(
            "--sample-temperature",
            help="With --confidence consistency:N: the samples' temperature. Default: 1.0.",
            min=0.0,
            max=2.0,
            show_default=False,
            rich_help_panel=CONFIDENCE,
        ),
    ] = None


class TransportChoice(StrEnum):
    realtime = "realtime"
    batch = "batch"
    auto = "auto"


class RetryChoice(StrEnum):
    batch = "batch"
    realtime = "realtime"


@dataclass(frozen=True)
class DeliveryFlags:
    """Which transport answers the run's requests: realtime calls, or the Batch API."""

    transport: Annotated[
        TransportChoice,
        typer.Option(
            "--transport",
            help="realtime: one call per request, under the shared caps. batch: OpenAI's "
            "Batch API, at half the price, answers within 24 hours (an overnight run). auto: "
            "batch first, and what is not back by --deadline less --deadline-margin goes "
            "realtime.",
            case_sensitive=False,
            rich_help_panel=TRANSPORT,
        ),
    ] = TransportChoice.realtime
    deadline: Annotated[
        str | None,
        typer.Option(
            "--deadline",
            metavar="TIME",
            help="With --transport auto (required there): when the run must be done, as an "
            "ISO 8601 date-time (2026-12-01T07:00, local time unless it gives an offset) or "
            "HH:MM, its next occurrence in local time.",
            show_default=False,
            rich_help_panel=TRANSPORT,
        ),
    ] = None
    deadline_margin: Annotated[
        float | None,
        typer.Option(
            "--deadline-margin",
            metavar="MINUTES",
            help="With --deadline: minutes before it at which the batches still out are "
            "cancelled and their items go realtime. Default: 60.",
            min=0,
            show_default=False,
            rich_help_panel=TRANSPORT,
        ),
    ] = None
    enqueued_tokens: Annotated[
        int | None,
        typer.Option(
            "--enqueued-tokens",
            metavar="N",
            help="With batch or auto: prompt tokens the fleet may have waiting in batches for "
            "the model (your organisation's enqueued-token limit; a batch over it fails). "
            "Default: PRELABEL_CAPS' enqueued_tokens for the model, else no limit.",
            min=1,
            show_default=False,
            rich_help_panel=TRANSPORT,
        ),
    ] = None
    batch_retry: Annotated[
        RetryChoice | None,
        typer.Option(
            "--batch-retry",
            help="With batch or auto: where a batch line that failed or expired is asked "
            "again: in a new batch, or realtime. Default: batch.",
            case_sensitive=False,
            show_default=False,
            rich_help_panel=TRANSPORT,
        ),
    ] = None


R = TypeVar("R")


def with_groups(command: Callable[..., R]) -> Callable[..., R]:
    """Let a typer command take option groups: typer sees each group parameter's fields as
    options of their own, and the command gets the group built from them."""
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[Any], list[str]]] = {}
    for parameter in signature.parameters.values():
        group = parameter.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)
        groups[parameter.name] = (group, [f.name for f in fields])
        for f in fields:
            default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            kind = inspect.Parameter.KEYWORD_ONLY
            parameters.append(
                inspect.Parameter(f.name, kind, default=default, annotation=hints[f.name])
            )

    @functools.wraps(command)
    def expanded(**options: Any) -> R:
        for name, (group, fields) in groups.items():
            options[name] = group(**{f: options.pop(f) for f in fields})
        return command(**options)

    expanded.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    expanded.__annotations__ = {p.name: p.annotation for p in parameters}
    return expanded
