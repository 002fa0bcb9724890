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
from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records
from task_types import Example, PromptTemplate
from workers.fewshot import MAX_EXAMPLES, STRATEGIES

ResponseFormatChoice = Literal["auto", "json_schema", "json_object"]


@dataclass(frozen=True)
class LabelingOptions:
    """What the user chose: `--ontology`, `--prompt-file`, `--few-shot*`, `--response-format`,
    and the task type."""

    ontology_file: Path | None = None
    prompt_file: Path | None = None
    few_shot: int = 0
    few_shot_strategy: str = "similar"
    few_shot_from: str | None = None
    response_format: ResponseFormatChoice = "auto"
    task: str = DEFAULT_TASK


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


def default_labels(dataset: LoadedDataset, options: LabelingOptions) -> tuple[LoadedDataset, str]:
    """The dataset, with the task type's default labels (NER: CoNLL's four types) when nothing
    names any (text without gold, no --entity-types, no --ontology), and a note saying so
    ("" when nothing changed)."""
    if dataset.labels or options.ontology_file is not None:
        return dataset, ""
    tags = tuple(t.tag for t in task_types.get(options.task).default_labels.labels)
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
    if options.few_shot:
        if not 0 < options.few_shot <= MAX_EXAMPLES:
            raise ConfigError(f"--few-shot {options.few_shot}: use 1 to {MAX_EXAMPLES} examples")
        if options.few_shot_strategy not in STRATEGIES:
            raise ConfigError(
                f"--few-shot-strategy {options.few_shot_strategy!r} is unknown; "
                f"use one of {', '.join(STRATEGIES)}"
            )
        pool_spec = _pool_spec(spec, options)
        loaded = load_dataset_records(pool_spec, task.name)
        pool = task.examples(loaded.records, labels)
        source = loaded.source
        if not pool:
            raise ConfigError(
                f"--few-shot-from {pool_spec.source}: no sentence with gold tags to show as an "
                "example; point it to a labelled train split"
            )
    return Labeling(labels, template, pool, source, options)


def _pool_spec(spec: DatasetSpec, options: LabelingOptions) -> DatasetSpec:
    """Where examples come from: `--few-shot-from`, else the train split beside the dataset:
    a folder's or a hub dataset's own train split, or for a file, `train` with the file's
    extension in the same folder (`conll2003/test.txt` → `conll2003/train.txt`)."""
    fields = {
        "text_field": spec.text_field,
        "tokens_field": spec.tokens_field,
        "gold_field": spec.gold_field,
        "format": spec.format,
    }
    if options.few_shot_from:
        return DatasetSpec(source=options.few_shot_from, split="train", **fields)
    path = Path(spec.source).expanduser()
    if path.is_file():
        beside = path.with_name("train" + path.suffix)
        if beside.is_file() and beside.resolve() != path.resolve():
            return DatasetSpec(source=str(beside), split="train", **fields)
        raise ConfigError(
            f"--few-shot needs labelled examples: {spec.source} is a single file and there is "
            f"no {beside.name} beside it; pass --few-shot-from FILE_OR_FOLDER (a train split)"
        )
    # A folder holds its splits; a hub dataset has a train split of its own.
    return DatasetSpec(source=spec.source, split="train", **fields)
