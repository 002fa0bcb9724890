"""Dataset rows to classification records: the text (columns joined by the producer) and the
gold labels' tags, from names or integer ids (helper A)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from task_types.base import RowFields, SkipItem
from task_types.classify.model import ClassifyRecord


def record_from_row(
    rid: str, row: Mapping[str, Any], fields: RowFields, *, multi_label: bool
) -> ClassifyRecord:
    """A text and its gold labels; `SkipItem` when the row cannot be used."""
    assert fields.text is not None
    text = row[fields.text]
    if not isinstance(text, str) or not text.strip():
        raise SkipItem("no text")
    gold = None
    if fields.tags is not None and row.get(fields.tags) is not None:
        value = row[fields.tags]
        gold = tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)
    return ClassifyRecord(id=rid, text=text.strip(), gold=gold)
