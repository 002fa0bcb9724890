"""Classification's labeling half: records, the label set, messages, parsing and predictions."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prelabel.counters import CounterSpec
from prelabel.errors import ConfigError, ItemError
from prelabel.model import ItemResult, LabelSet, Record, RunConfig, Scored, Usage
from task_types.base import Answer, Example, LabelingDefaults, PromptTemplate, RowFields
from task_types.classify import labelfile, parsing, prompts, records
from task_types.classify.gold import examples_from_records, gold_labels, oracle_answer
from task_types.classify.model import PROMPT_VERSION, ClassifyRecord, ClassifyResult
from task_types.verification import Proposal

#: The counters a classification run adds to (`ClassifyResult.counts`).
COUNTERS = (
    CounterSpec(
        "repaired",
        "repaired labels",
        "Answered labels read as a label despite case, punctuation or a near-miss spelling.",
    ),
    CounterSpec(
        "outside",
        "labels outside the set",
        "Answered labels that are no label of the set, dropped from multi-label answers "
        "(a single-label item answering one fails instead, counted as failed).",
    ),
    CounterSpec(
        "empty",
        "empty answers",
        "Multi-label items labeled with no label at all.",
    ),
)


class ClassifyLabeling(LabelingDefaults):
    """A label (or, with `multi_label`, a set of labels) per text."""

    name: str
    multi_label: bool
    prompt_version = PROMPT_VERSION
    record_model = ClassifyRecord
    result_model = ClassifyResult
    counters = COUNTERS

    @property
    def gold_field(self) -> str:  # type: ignore[override]
        return "labels" if self.multi_label else "label"

    def record(self, id: str, row: Mapping[str, Any], fields: RowFields) -> Record:
        return records.record_from_row(id, row, fields, multi_label=self.multi_label)

    def gold_tags(self, record: Record) -> frozenset[str]:
        assert isinstance(record, ClassifyRecord)
        return frozenset(record.gold or ())

    def example_labels(self, example: Example) -> frozenset[str]:
        # A classification example names its labels only, each without values (gold.py).
        return frozenset(example.mentions)

    def tags_named(self, values: Iterable[str] | None) -> frozenset[str]:
        return frozenset(values or ())

    def read_labels(self, path: Path) -> LabelSet:
        return labelfile.read_labels(path)

    def read_template(self, path: Path) -> PromptTemplate:
        return prompts.load_template(path)

    def messages(
        self, batch: Sequence[Record], config: RunConfig, examples: Sequence[Example]
    ) -> list[dict[str, str]]:
        return prompts.build_messages(
            _classify(batch),
            _asked(self.labels(config)),
            multi_label=self.multi_label,
            examples=examples,
            template=config.labeling.system_template,
        )

    def response_format(self, batch: Sequence[Record], config: RunConfig) -> dict[str, Any]:
        return prompts.response_format(
            _asked(self.labels(config)), len(batch), multi_label=self.multi_label
        )

    def parse(self, content: str, size: int, config: RunConfig) -> list[Answer | ItemError]:
        if size > 1:
            return list(parsing.parse_batch_answer(content, size, multi_label=self.multi_label))
        try:
            return [parsing.parse_answer(content, multi_label=self.multi_label)]
        except ItemError as exc:
            return [exc]

    def predict(
        self, record: Record, answer: Answer, config: RunConfig, usage: Usage
    ) -> ItemResult | str:
        """The labels `answer`'s names are (`parsing.match_labels`); a single-label answer
        naming no label is why the item fails."""
        assert isinstance(record, ClassifyRecord)
        labels = self.labels(config)
        tags, repairs = parsing.match_labels(answer, labels)
        if not self.multi_label and not tags:
            return parsing.outside_reason(answer, labels)
        return ClassifyResult(
            id=record.id,
            status="labeled",
            labels=tags,
            repairs=repairs,
            usage=usage,
            model=config.endpoint.model,
            prompt_version=config.labeling.prompt_version,
        )

    @property
    def single_label(self) -> bool:  # type: ignore[override]
        return not self.multi_label

    proposal_noun = "labels"

    def proposals(self, answer: Answer, config: RunConfig) -> list[Proposal]:
        """The labels the answer's names are (`parsing.match_labels`), by their names."""
        labels = self.labels(config)
        tags, _ = parsing.match_labels(answer, labels)
        by_tag = labels.by_tag()
        return [Proposal(by_tag[tag].name) for tag in tags]

    def answer_from(self, proposals: Sequence[Proposal], config: RunConfig) -> Answer:
        return tuple(p.label for p in proposals)

    def scores(
        self,
        result: ItemResult,
        proposals: Sequence[Proposal],
        confidences: Sequence[float],
        config: RunConfig,
    ) -> tuple[Scored, ...]:
        by_name = self.labels(config).by_name()
        return tuple(
            Scored(label=by_name[p.label].tag, confidence=c)
            for p, c in zip(proposals, confidences, strict=True)
        )

    def examples(self, records: Iterable[Record], labels: LabelSet) -> list[Example]:
        return examples_from_records(_classify(list(records)), labels, multi_label=self.multi_label)

    def gold(self, record: Record) -> list[tuple[str, str]] | None:
        assert isinstance(record, ClassifyRecord)
        return gold_labels(record)

    def guess_answer(self, batch: Sequence[Record], labels: LabelSet) -> str:
        return prompts.guessed_answer(len(batch), labels, multi_label=self.multi_label)

    def oracle_answer(
        self,
        gold: Sequence[tuple[str, str]],
        labels: LabelSet,
        noise: float,
        rng: random.Random | None,
    ) -> dict[str, Any]:
        return oracle_answer(gold, labels, noise, rng, multi_label=self.multi_label)


def _asked(labels: LabelSet) -> LabelSet:
    """The labels a request asks for; ConfigError when there are none (classification has no
    default label set)."""
    if not labels.labels:
        raise ConfigError(
            "classification needs labels, and neither the data nor --labels names any: pass "
            "--labels FILE (one name per line, or [[labels]] with name, tag, description)"
        )
    return labels


def _classify(records: Sequence[Record]) -> list[ClassifyRecord]:
    """`records` as classification records (a run of this task type stores nothing else)."""
    out = [r for r in records if isinstance(r, ClassifyRecord)]
    if len(out) != len(records):
        raise TypeError("a classification run's records must be ClassifyRecords")
    return out


__all__ = ["COUNTERS", "ClassifyLabeling", "ClassifyResult"]
