"""Classification's labeling half: records, the label set, messages, parsing and predictions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prelabel.model import LabelSet, Record
from task_types.base import LabelingDefaults, RowFields
from task_types.classify import labelfile, records
from task_types.classify.model import PROMPT_VERSION, ClassifyRecord, ClassifyResult


class ClassifyLabeling(LabelingDefaults):
    """A label (or, with `multi_label`, a set of labels) per text."""

    name: str
    multi_label: bool
    prompt_version = PROMPT_VERSION
    record_model = ClassifyRecord
    result_model = ClassifyResult

    @property
    def gold_field(self) -> str:  # type: ignore[override]
        return "labels" if self.multi_label else "label"

    def record(self, id: str, row: Mapping[str, Any], fields: RowFields) -> Record:
        return records.record_from_row(id, row, fields, multi_label=self.multi_label)

    def gold_tags(self, record: Record) -> frozenset[str]:
        assert isinstance(record, ClassifyRecord)
        return frozenset(record.gold or ())

    def tags_named(self, values: Iterable[str] | None) -> frozenset[str]:
        return frozenset(values or ())

    def read_labels(self, path: Path) -> LabelSet:
        return labelfile.read_labels(path)

    # TODO(helper B): messages, response_format, parse, predict, examples, gold,
    # guess_answer, oracle_answer, read_template, counters.


__all__ = ["ClassifyLabeling", "ClassifyResult"]
