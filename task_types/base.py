"""The task-type protocol (the registry is `task_types.registry`).

The protocol has two halves, so that each side of the pipeline sees only what it uses:
`Labeling` (producer, workers, simulator) and `Reporting` (collector, evaluation).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from pydantic import BaseModel

from prelabel.counters import CounterSpec
from prelabel.errors import ItemError
from prelabel.figures import RunFigures
from prelabel.labels import read_label_set
from prelabel.model import (
    ItemResult,
    ItemStatus,
    Label,
    LabelSet,
    Record,
    RunConfig,
    Scored,
    Usage,
)
from prelabel.offsets import OffsetUnit
from task_types.charts import Chart
from task_types.verification import Proposal

if TYPE_CHECKING:
    from rich.table import Table

#: One item's answer as the task type read it (NER: mentions per type name).
Answer = Any


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled item shown as a few-shot example: its text and its answer's values per
    label name, in order of appearance."""

    text: str
    mentions: Mapping[str, Sequence[str]]


class SkipItem(Exception):
    """A dataset row that cannot be used; the message is the reason the load lists it with."""


@dataclass(frozen=True, slots=True)
class RowFields:
    """Which columns of a dataset's rows hold what (None: the table has no such column)."""

    #: The item as a list of tokens (wins over `text` when a table has both).
    tokens: str | None
    text: str | None
    #: The gold labels, as strings or as integer ids into `tag_names`.
    tags: str | None
    tag_names: tuple[str, ...] | None = None
    #: The id of `tag_names[0]` when the gold holds integer ids (AG News counts from 1).
    first_id: int = 0
    #: The label tags the gold may use (None: any).
    allowed: frozenset[str] | None = None
    #: Where the rows come from, for messages.
    origin: str = ""


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A user's system-prompt template and the prompt version recorded with its predictions."""

    system: str
    version: str


@runtime_checkable
class Labeling(Protocol):
    """What the producer, the workers and the simulator need from a task type."""

    #: The name a run's configuration carries (`RunConfig.labeling.task`).
    name: str
    #: Bumped whenever the messages change, so that cached answers are not reused.
    prompt_version: str
    #: Whether a CoNLL file (a token and its tag per line) can hold this task's data; for a
    #: task that does not read CoNLL, a `.tsv` file is a tab-separated table.
    reads_conll: bool

    @property
    def gold_field(self) -> str:
        """The gold column of a dataset's rows when none is named (NER: `ner_tags`)."""
        ...

    @property
    def record_model(self) -> type[Record]:
        """The model a run's shards are stored as."""
        ...

    @property
    def result_model(self) -> type[ItemResult]:
        """The model a run's results are stored as."""
        ...

    @property
    def counters(self) -> tuple[CounterSpec, ...]:
        """Counters (beside labeled and failed) its results add to (`ItemResult.counts`), and
        how `prelabel status` and the exporter show them."""
        ...

    @property
    def default_labels(self) -> LabelSet:
        """The labels a run asks for when nothing chose others."""
        ...

    def labels(self, config: RunConfig) -> LabelSet:
        """The run's label set: its own, else the default."""
        ...

    def record(self, id: str, row: Mapping[str, Any], fields: RowFields) -> Record:
        """The record (with its gold, when the row has any) of a dataset row; `SkipItem` when
        the row cannot be used, DatasetError when no row of the table can."""
        ...

    def tags_named(self, values: Iterable[str] | None) -> frozenset[str]:
        """The label tags that gold values name (NER: `B-PER` names `PER`)."""
        ...

    def gold_tags(self, record: Record) -> frozenset[str]:
        """The label tags `record`'s gold uses."""
        ...

    def read_labels(self, path: Path) -> LabelSet:
        """A user's label-set file; ConfigError naming the file and the fix."""
        ...

    def example_labels(self, example: Example) -> frozenset[str]:
        """The label names `example`'s answer shows (what the `fixed` few-shot strategy
        covers): an NER example's types with mentions, a classification example's labels."""
        ...

    def read_template(self, path: Path) -> PromptTemplate:
        """A user's system-prompt file (`--prompt-file`); ConfigError when unusable."""
        ...

    def messages(
        self, batch: Sequence[Record], config: RunConfig, examples: Sequence[Example]
    ) -> list[dict[str, str]]:
        """The chat messages asking for `batch`'s labels (with the run's system template,
        `config.labeling.system_template`)."""
        ...

    def response_format(self, batch: Sequence[Record], config: RunConfig) -> dict[str, Any]:
        """The strict structured-output schema for `batch`'s answer."""
        ...

    def parse(self, content: str, size: int, config: RunConfig) -> list[Answer | ItemError]:
        """One answer per item of a batch of `size`, or why that item's answer is unusable."""
        ...

    def predict(
        self, record: Record, answer: Answer, config: RunConfig, usage: Usage
    ) -> ItemResult | str:
        """The labeled result for `record`, or why the answer cannot be one."""
        ...

    def examples(self, records: Iterable[Record], labels: LabelSet) -> list[Example]:
        """A few-shot pool from gold-labelled records."""
        ...

    def labels_from_tags(self, tags: Sequence[str]) -> LabelSet:
        """A label set for a dataset's own tag names."""
        ...

    def gold(self, record: Record) -> list[tuple[str, str]] | None:
        """`(tag, value)` pairs of `record`'s gold in order of appearance (None without gold):
        the simulator's answer; DatasetError when the gold cannot be read."""
        ...

    def guess_answer(self, batch: Sequence[Record], labels: LabelSet) -> str:
        """An answer of plausible length for `batch`, to estimate completion tokens."""
        ...

    def oracle_answer(
        self,
        gold: Sequence[tuple[str, str]],
        labels: LabelSet,
        noise: float,
        rng: random.Random | None,
    ) -> Any:
        """The simulator's answer (a JSON value in the single-item answer's shape) for an item
        whose gold (`Labeling.gold`) is `gold`, `[]` for one it does not know; with `rng`,
        each gold value is corrupted with probability `noise` (NER: dropped or relabeled)."""
        ...

    # Confidence (`RunConfig.confidence`, `workers.measure`): what an answer proposes, an
    # answer rebuilt from proposals, and the proposals scored on the result.

    @property
    def single_label(self) -> bool:
        """Whether an answer proposes exactly one label (single-label classification): the
        samples' vote is then a plurality, and a verification asks nothing about what is
        missing."""
        ...

    @property
    def proposal_noun(self) -> str:
        """What the verification question calls the proposals (`entities`, `labels`)."""
        ...

    def proposals(self, answer: Answer, config: RunConfig) -> list[Proposal]:
        """What `answer` proposes, in its order: the labels or mentions a prediction from it
        holds (names as the model sees them)."""
        ...

    def answer_from(self, proposals: Sequence[Proposal], config: RunConfig) -> Answer:
        """An answer proposing exactly `proposals` (a vote's, or what verification kept)."""
        ...

    def scores(
        self,
        result: ItemResult,
        proposals: Sequence[Proposal],
        confidences: Sequence[float],
        config: RunConfig,
    ) -> tuple[Scored, ...]:
        """Each proposal of `result` (predicted from an answer proposing `proposals`) with its
        confidence: its tag, and for a mention its text and span in the item's text (None when
        it was not placed)."""
        ...


class LabelingDefaults:
    """What most task types share: no counters of their own, and a label set whose tags are
    the dataset's label names, read from a `[[labels]]` file."""

    default_labels: LabelSet = LabelSet()
    counters: tuple[CounterSpec, ...] = ()
    reads_conll = False
    gold_field = "label"

    def labels(self, config: RunConfig) -> LabelSet:
        return config.labeling.labels if config.labeling.labels.labels else self.default_labels

    def read_labels(self, path: Path) -> LabelSet:
        return read_label_set(path, flag="--ontology", key="labels", noun="labels")

    def labels_from_tags(self, tags: Sequence[str]) -> LabelSet:
        return LabelSet(labels=tuple(Label(name=tag, tag=tag) for tag in tags))

    def tags_named(self, values: Iterable[str] | None) -> frozenset[str]:
        return frozenset(values or ())

    def example_labels(self, example: Example) -> frozenset[str]:
        # The names with values: an example's answer lists every type, most of them empty.
        return frozenset(name for name, values in example.mentions.items() if values)

    # A task type that does not measure confidence says so when a run asks it to.
    single_label = True
    proposal_noun = "labels"

    def proposals(self, answer: Answer, config: RunConfig) -> list[Proposal]:
        raise NotImplementedError(f"task type {config.labeling.task} measures no confidence")

    def answer_from(self, proposals: Sequence[Proposal], config: RunConfig) -> Answer:
        raise NotImplementedError(f"task type {config.labeling.task} measures no confidence")

    def scores(
        self,
        result: ItemResult,
        proposals: Sequence[Proposal],
        confidences: Sequence[float],
        config: RunConfig,
    ) -> tuple[Scored, ...]:
        raise NotImplementedError(f"task type {config.labeling.task} measures no confidence")


@runtime_checkable
class PredictionRow(Protocol):
    """One line of predictions.jsonl, as the core frames read it.

    A task type's row model (`Reporting.row_model`, a frozen pydantic model) holds what its
    predictions are besides these; the frames write and read it whole.
    """

    @property
    def id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def status(self) -> ItemStatus: ...
    @property
    def error(self) -> str | None: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def model(self) -> str: ...
    @property
    def prompt_version(self) -> str: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def scores(self) -> tuple[Scored, ...]: ...
    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


#: A task type's own row model (contravariant where it is only taken, never given).
RowT = TypeVar("RowT", bound=BaseModel)
RowT_contra = TypeVar("RowT_contra", bound=BaseModel, contravariant=True)
#: Writes one export format of rows into a folder; returns the files written.
RowsWriter = Callable[[Path, Sequence[RowT]], tuple[Path, ...]]


@runtime_checkable
class KiliJob(Protocol[RowT_contra]):
    """A task type's Kili job: the interface of the projects prelabel creates, and its rows
    as `json_response`s (the upload frame, collector/kili.py, does the rest)."""

    #: The job's name in the projects prelabel creates (`--kili-job` by default).
    default_job: str
    #: Kili's `mlTask` of the job; a given project's job must have it.
    ml_task: str

    def json_interface(self, labels: LabelSet, job: str) -> dict[str, Any]:
        """A json_interface with one job whose categories are the labels' tags."""
        ...

    def json_response(self, row: RowT_contra, job: str, unit: OffsetUnit) -> dict[str, Any]:
        """A labeled row as a json_response, character offsets counted in `unit`."""
        ...

    def response_key(self, response: Mapping[str, Any], job: str) -> object:
        """What two json_responses share when they say the same (an upload that finds Kili
        already holding it sends nothing)."""
        ...

    def read_response(
        self, response: Mapping[str, Any], text: str, job: str, unit: OffsetUnit
    ) -> Any:
        """A json_response read back from Kili, in the task type's own terms."""
        ...


@dataclass(frozen=True)
class Source:
    """What `prelabel evaluate` and `compare` read from one predictions file: the task type's
    evaluation items, the run's figures as far as the file tells, and how it was read
    (`format`, and `figures_from`: the file itself, a report.json or run.json found beside
    it, or "" when the file holds no run figures)."""

    path: Path
    format: str
    items: list[Any]
    figures: RunFigures
    figures_from: str
    #: The task type whose items these are.
    task: str


@runtime_checkable
class ItemsFormat(Protocol):
    """A predictions file format of a task type's own (NER: conlleval, Kili exports), read by
    `prelabel evaluate` and `compare` besides prelabel's predictions.jsonl."""

    def detects(self, head: str) -> bool:
        """Whether a file whose first 4 KiB, stripped, are `head` is in this format."""
        ...

    def read(self, path: Path, gold: Sequence[Record] | None, assets: Path | None) -> Source:
        """The file's items, with the gold of `gold`'s records when the file has none;
        `assets` maps item ids to texts where the format needs them."""
        ...


@runtime_checkable
class Compared(Protocol):
    """A task type's comparison of two runs, B against A: a pydantic model (what
    `prelabel compare --json` prints) naming both files."""

    @property
    def a(self) -> str: ...
    @property
    def b(self) -> str: ...
    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


@runtime_checkable
class Evaluated(Protocol):
    """A task type's evaluation of a run: a frozen pydantic model, whose JSON dump is
    report.json, naming its task type so that the report frame finds the task's `Report`."""

    #: The task type's name (a class variable: report.json does not carry it).
    task: ClassVar[str]

    @property
    def figures(self) -> RunFigures: ...
    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...
    @classmethod
    def model_validate_json(cls, json_data: str | bytes) -> Self: ...


#: A task type's evaluation model, where it is only taken.
EvT_contra = TypeVar("EvT_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class HtmlSections:
    """A task type's part of report.html; the frame writes the page around it."""

    #: HTML for the header's second line, under the identity facts.
    summary: str
    #: The sections, in order.
    body: str
    #: Plain text: how the numbers were computed.
    footer: str


@runtime_checkable
class Report(Protocol[EvT_contra]):
    """A task type's report sections in each layout; the frame (`evaluation`) writes the
    header (title, simulator banner, facts), the files and the charts' pictures."""

    def facts(self, ev: EvT_contra) -> list[tuple[str, str]]:
        """What was evaluated, as (name, value); the first four are identities (model,
        prompt version, dataset, split), which report.md quotes as code."""
        ...

    def tables(self, ev: EvT_contra) -> list[Table]:
        """The terminal tables."""
        ...

    def markdown(self, ev: EvT_contra, *, images: bool) -> list[str]:
        """report.md's lines after the facts; with `images`, linking the `charts` files
        written beside it."""
        ...

    def html(self, ev: EvT_contra, charts: Mapping[str, bytes]) -> HtmlSections:
        """report.html's part, embedding the PNG bytes of those `charts` it is given (by
        file name)."""
        ...

    def charts(self, ev: EvT_contra) -> dict[str, Chart]:
        """The charts' data by file name, in the order they are written."""
        ...

    def comparison_tables(self, comparison: Any) -> list[Table]:
        """The terminal tables of a comparison (`Reporting.compare`)."""
        ...


@runtime_checkable
class Reporting(Protocol[RowT]):
    """What the collector and the evaluation need from a task type: its predictions.jsonl
    row, the checks and figures of its rows, its evaluation and report sections, its own
    export formats and its Kili job."""

    name: str
    #: The row of predictions.jsonl; the frames read a line with `row_model.model_validate_json`.
    row_model: type[RowT]
    #: Predictions formats `evaluate` and `compare` read besides predictions.jsonl, by the
    #: name `--format` gives; `auto` picks the first that detects a file.
    input_formats: Mapping[str, ItemsFormat]

    @property
    def formats(self) -> Mapping[str, RowsWriter[RowT]]:
        """Export formats of the task type's own, by name (NER: `conll`), besides
        prelabel's JSONL, Kili and the other tools' formats below; collect writes each into
        the run folder. (Read-only: a class attribute or a property, e.g. one that depends
        on the instance, as classification's single- or multi-label CSV does.)"""
        ...

    @property
    def kili(self) -> KiliJob[RowT]:
        """The task type's Kili job (read-only, as `formats`)."""
        ...

    @property
    def report(self) -> Report[Any]:
        """The report's sections, in each layout."""
        ...

    @property
    def evaluation_model(self) -> type[Evaluated]:
        """The model `evaluate` returns; `evaluation.read_report_json` reads into it."""
        ...

    def row(self, record: Any, result: Any) -> RowT:
        """Join an item's record with its result (the task type's record and result models)."""
        ...

    def check_rows(self, rows: Iterable[RowT]) -> None:
        """Raise a DatasetError naming the first row whose predictions do not fit its text;
        every export and upload checks first."""
        ...

    def figures(self, rows: Sequence[RowT]) -> dict[str, int]:
        """The task type's own run figures (`prelabel.figures.RunFigures` fields) over its rows."""
        ...

    def item(self, row: RowT) -> Any:
        """A predictions row as an item of the task type's evaluation."""
        ...

    def evaluate(
        self, items: Sequence[Any], figures: RunFigures, *, resamples: int, seed: int
    ) -> Evaluated:
        """Score a run's items (labeled or failed, with gold or without), with bootstrap
        intervals from `resamples` draws seeded with `seed`, and count what was lost before
        scoring."""
        ...

    def attach_gold(self, items: Sequence[Any], gold: Sequence[Record], where: str) -> list[Any]:
        """The items with the gold of their records (`where` names the file in errors)."""
        ...

    def can_score(self, items: Sequence[Any]) -> bool:
        """Whether any item has both gold and a prediction (else there is nothing to score)."""
        ...

    def compare(self, a: Source, b: Source, *, resamples: int, seed: int) -> Compared:
        """B against A on the items both hold, with a paired bootstrap test."""
        ...

    def label_studio_config(self, labels: LabelSet) -> str:
        """A Label Studio labeling config for the labels."""
        ...

    def label_studio_result(self, row: RowT) -> list[dict[str, Any]]:
        """A labeled row's prediction `result` for Label Studio (each region or choice with
        its confidence as `score` where the run measured it)."""
        ...

    def review_predictions(self, row: RowT) -> str:
        """A row's predictions in short, for review.csv (NER: `PER: John; LOC: Paris`)."""
        ...

    def hf_columns(
        self, rows: Sequence[RowT], labels: LabelSet
    ) -> tuple[Any, dict[str, list[Any]]]:
        """The `datasets.Features` and the columns of the rows as a Hugging Face dataset."""
        ...


@runtime_checkable
class TaskType(Labeling, Reporting[Any], Protocol):
    """A task type: both halves."""
