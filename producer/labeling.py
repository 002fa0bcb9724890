"""A run's labeling choices, resolved before it starts: label set, prompt, few-shot pool.

`prelabel run`, `run --dry-run` and `prelabel estimate` all resolve the same way, so that an
estimate is built from the very messages the workers will send.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import task_types
from prelabel.errors import ConfigError
from prelabel.labels import restrict
from prelabel.model import DEFAULT_TASK, LabelingConfig, LabelSet
from producer.loading import (
    DatasetSpec,
    LoadedDataset,
    Rows,
    load_dataset_records,
    show_rows,
    table_identity,
)
from task_types import Example, PromptTemplate
from workers.fewshot import MAX_EXAMPLES, STRATEGIES

ResponseFormatChoice = Literal["auto", "json_schema", "json_object"]


@dataclass(frozen=True)
class LabelingOptions:
    """What the user chose: the task type (`--task`, `--multi-label`), the label-set file
    (`--labels`, or NER's `--ontology`), `--prompt-file`, `--few-shot*`, `--response-format`."""

    #: The task type's label-set file (NER: its ontology; classification: `--labels`).
    ontology_file: Path | None = None
    prompt_file: Path | None = None
    few_shot: int = 0
    few_shot_strategy: str = "similar"
    few_shot_from: str | None = None
    response_format: ResponseFormatChoice = "auto"
    #: The task type's registered name: ner, classify, classify-multi.
    task: str = DEFAULT_TASK
    #: Which rows of the few-shot source are the example pool (`--few-shot-rows`).
    few_shot_rows: Rows | None = None


@dataclass(frozen=True)
class Labeling:
    """The resolved choices: what the workers need, with where the examples came from."""

    labels: LabelSet
    template: PromptTemplate | None
    pool: list[Example]
    pool_source: str
    options: LabelingOptions

    @property
    def prompt_version(self) -> str:
        return self.template.version if self.template else self.task.prompt_version

    @property
    def task(self) -> task_types.TaskType:
        return task_types.get(self.options.task)

    @property
    def config(self) -> LabelingConfig:
        """The run's labeling settings (`RunConfig.labeling`)."""
        return LabelingConfig(
            task=self.task.name,
            labels=self.labels,
            prompt_version=self.prompt_version,
            system_template=self.template.system if self.template else None,
            few_shot=self.options.few_shot,
            few_shot_strategy=self.options.few_shot_strategy,
        )


def with_label_file(spec: DatasetSpec, options: LabelingOptions) -> DatasetSpec:
    """The dataset to load, knowing the label-set file's labels when the task type's gold
    values are its label tags (classification): records are then read with the file's tags
    as the labels to label and, in the file's order, as the names of integer gold ids (AG
    News' 1 to 4); so the file is read before the records are built. NER's ontology names
    entity types, not gold tags (`B-PER`): its spec comes back as it is."""
    if options.ontology_file is None or spec.labels is not None:
        return spec
    task = task_types.get(options.task)
    tags = tuple(label.tag for label in task.read_labels(options.ontology_file).labels)
    if task.tags_named(tags) != frozenset(tags):
        return spec
    return spec.model_copy(update={"labels": tags})


def default_labels(dataset: LoadedDataset, options: LabelingOptions) -> tuple[LoadedDataset, str]:
    """The dataset, with the task type's default labels (NER: CoNLL's four types) when nothing
    names any (text without gold, no --entity-types, no --ontology), and a note saying so
    ("" when nothing changed). ConfigError for a task type without default labels
    (classification): its labels must come from the data or a --labels file."""
    if dataset.labels or options.ontology_file is not None:
        return dataset, ""
    task = task_types.get(options.task)
    if not task.default_labels.labels:
        raise ConfigError(
            f"--task {task.name}: the data names no labels; pass --labels FILE "
            "(one label name per line, or TOML/JSON [[labels]] with name, tag, description)"
        )
    tags = tuple(t.tag for t in task.default_labels.labels)
    note = "the data names no labels, nor do --entity-types or --ontology: labeling "
    note += ", ".join(tags)
    return dataset.model_copy(update={"labels": tags}), note


def resolve_labeling(
    dataset: LoadedDataset, spec: DatasetSpec, options: LabelingOptions
) -> Labeling:
    """Read the label-set and prompt files and load the few-shot pool; ConfigError on misuse."""
    task = task_types.get(options.task)
    if options.ontology_file is not None:
        labels = task.read_labels(options.ontology_file)
        if spec.labels:
            labels = restrict(labels, spec.labels, str(options.ontology_file))
    else:
        labels = task.labels_from_tags(dataset.labels)
    template = task.read_template(options.prompt_file) if options.prompt_file else None
    pool: list[Example] = []
    source = ""
    if options.few_shot_rows is not None and not options.few_shot:
        raise ConfigError(
            "--few-shot-rows chooses the rows of the few-shot examples' source; "
            "pass --few-shot N as well, or drop it"
        )
    if options.few_shot:
        if not 0 < options.few_shot <= MAX_EXAMPLES:
            raise ConfigError(f"--few-shot {options.few_shot}: use 1 to {MAX_EXAMPLES} examples")
        if options.few_shot_strategy not in STRATEGIES:
            raise ConfigError(
                f"--few-shot-strategy {options.few_shot_strategy!r} is unknown; "
                f"use one of {', '.join(STRATEGIES)}"
            )
        pool_spec = _pool_spec(spec, options, task)
        loaded = load_dataset_records(pool_spec, task.name)
        _check_apart(spec, dataset, pool_spec, loaded)
        pool = task.examples(loaded.records, labels)
        source = loaded.source
        if not pool:
            raise ConfigError(
                f"--few-shot-from {pool_spec.source}: no item with gold labels to show as an "
                "example; point it to a labelled train split"
            )
    return Labeling(labels, template, pool, source, options)


def _pool_spec(
    spec: DatasetSpec, options: LabelingOptions, task: task_types.TaskType
) -> DatasetSpec:
    """Where examples come from: `--few-shot-from` (its `--few-shot-rows`), else the train
    split beside the dataset: a folder's or a hub dataset's own train split, or for a file,
    `train` with the file's extension in the same folder (`conll2003/test.txt` →
    `conll2003/train.txt`). The pool is read as the dataset is (columns, fields, label ids)."""
    fields = {
        "text_field": spec.text_field,
        "tokens_field": spec.tokens_field,
        "gold_field": spec.gold_field,
        "format": spec.format,
        "columns": spec.columns,
        "tag_names": spec.tag_names,
        "first_label_id": spec.first_label_id,
        "rows": options.few_shot_rows,
    }
    if spec.labels and task.tags_named(spec.labels) == frozenset(spec.labels):
        fields["labels"] = spec.labels  # the --labels file's, as for the dataset
    if options.few_shot_from:
        return DatasetSpec(source=options.few_shot_from, split="train", **fields)
    path = Path(spec.source).expanduser()
    if path.is_file():
        beside = path.with_name("train" + path.suffix)
        if beside.is_file() and beside.resolve() != path.resolve():
            return DatasetSpec(source=str(beside), split="train", **fields)
        raise ConfigError(
            f"--few-shot needs labelled examples: {spec.source} is a single file and there is "
            f"no {beside.name} beside it; pass --few-shot-from FILE_OR_FOLDER (a train split), "
            f"or hold out part of this file: --few-shot-from {spec.source} with --few-shot-rows "
            "and --rows apart (e.g. --rows :7200 --few-shot-rows 7200:)"
        )
    # A folder holds its splits; a hub dataset has a train split of its own.
    return DatasetSpec(source=spec.source, split="train", **fields)


def _check_apart(
    spec: DatasetSpec, dataset: LoadedDataset, pool_spec: DatasetSpec, pool: LoadedDataset
) -> None:
    """ConfigError when `--rows` and `--few-shot-rows` cut one table into overlapping parts:
    an example must never be an item being labeled (its answer would be in the prompt).

    A table that is its own pool with neither range given keeps its older meaning: the
    workers leave out of each request the examples identical to an item being labeled
    (`workers.fewshot`); NER's tests and benchmarks label CoNLL this way."""
    if not _same_table(spec, pool_spec) or (spec.rows is None and pool_spec.rows is None):
        return
    (start, end), (pool_start, pool_end) = dataset.rows, pool.rows
    if max(start, pool_start) >= min(end, pool_end):
        return
    raise ConfigError(
        f"--few-shot-from {pool_spec.source} is the dataset itself, and its example rows "
        f"{show_rows(pool.rows)} overlap the rows being labeled {show_rows(dataset.rows)}: "
        "examples must never be items being labeled; give --rows and --few-shot-rows ranges "
        "that do not overlap (e.g. --rows :7200 --few-shot-rows 7200:)"
    )


def _same_table(a: DatasetSpec, b: DatasetSpec) -> bool:
    """Whether two specs read the same table: the same file (given as itself, or as its
    folder and split), or the same split of a saved dataset or hub dataset."""
    return table_identity(a) == table_identity(b)
