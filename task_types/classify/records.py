"""Dataset rows to classification records: the text (several columns are joined by the
producer) and the gold labels' tags, from names or integer ids.

A gold value is a label tag when it is one (or when nothing names the labels: any string
then is a tag); a whole number (an int, or a string of digits that is not a tag) is an id into
`RowFields.tag_names`, the first of which has the id `RowFields.first_id`. For multi-label,
the gold is a list of such values, or a string of them separated by commas ("2,15", as
GoEmotions stores them), or a JSON/Python list literal (as a CSV file stores a list).
A value that is none of these skips the row with a reason naming it and what to pass.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any

from prelabel.errors import DatasetError
from task_types.base import RowFields, SkipItem
from task_types.classify.model import ClassifyRecord

#: Labels named in a skip reason before "...".
_SHOWN = 8


def record_from_row(
    rid: str, row: Mapping[str, Any], fields: RowFields, *, multi_label: bool
) -> ClassifyRecord:
    """A text and its gold labels' tags (in the label set's order, each once); `SkipItem`
    when the row cannot be used, DatasetError when no row can (integer ids nothing names)."""
    text = _text(row, fields)
    value = row.get(fields.tags) if fields.tags is not None else None
    # No gold (null, or a blank CSV cell) means an unlabeled item, not an error.
    if value is None or (isinstance(value, str) and not value.strip()):
        return ClassifyRecord(id=rid, text=text)
    values = _values(value, multi_label)
    if not multi_label and len(values) != 1:
        raise SkipItem(
            f"{len(values)} gold labels ({_show(values)}) for a single-label task; "
            "pass --multi-label to keep every label"
        )
    tags = [_tag(v, fields) for v in values]
    return ClassifyRecord(id=rid, text=text, gold=_ordered(tags, fields.tag_names))


def _text(row: Mapping[str, Any], fields: RowFields) -> str:
    if fields.text is not None:
        text = row.get(fields.text)
    elif fields.tokens is not None:
        # A tokenised table without a text column: its tokens, spaced.
        tokens = row.get(fields.tokens)
        text = " ".join(str(t) for t in tokens) if isinstance(tokens, list) else tokens
    else:  # the producer resolves one of them or refuses the table
        raise SkipItem("no text")
    if text is None:
        raise SkipItem("no text")
    if not isinstance(text, str):
        raise SkipItem(f"text is a {type(text).__name__}, not a string")
    if not text.strip():
        raise SkipItem("empty text")
    return text.strip()


def _values(value: object, multi_label: bool) -> list[object]:
    """The gold value(s) of a row: one for a scalar, the items of a list."""
    if isinstance(value, list | tuple):
        return list(value)
    if not isinstance(value, str) or not multi_label:
        return [value]
    stripped = value.strip()
    if stripped.startswith("["):
        return _list_literal(stripped)
    return [part.strip() for part in stripped.split(",") if part.strip()]


def _list_literal(text: str) -> list[object]:
    parsed: object
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            parsed = ast.literal_eval(text)  # literals only: never runs code
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise SkipItem(f"cannot parse the label list {text[:40]!r}") from None
    if not isinstance(parsed, list):
        raise SkipItem(f"labels {text[:40]!r} are not a list")
    return parsed


def _tag(value: object, fields: RowFields) -> str:
    """The label tag a gold value names."""
    names = fields.tag_names
    if isinstance(value, str):
        name = value.strip()
        if names is not None and name in names:
            return name
        if not _is_whole(name):
            if names is not None:
                raise SkipItem(
                    f"label {name!r} is not one of the {len(names)} labels ({_show(names)}); "
                    "fix the data, or the --labels file"
                )
            return _allowed(name, fields)
        value = int(name)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)  # a Parquet or JSON column of whole numbers read as floats
    if isinstance(value, bool) or not isinstance(value, int):
        raise SkipItem(f"label {value!r} is neither a label name nor an integer id")
    return _allowed(_named(value, fields), fields)


def _is_whole(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _named(label_id: int, fields: RowFields) -> str:
    names = fields.tag_names
    if names is None:
        column = f"field {fields.tags!r}" if fields.tags else "the gold"
        raise DatasetError(
            f"{fields.origin}: {column} holds integer label ids ({label_id}) and nothing names "
            "them; pass --labels FILE with the label names in id order (one per line)"
        )
    first = fields.first_id
    index = label_id - first
    if 0 <= index < len(names):
        return names[index]
    last = first + len(names) - 1
    reason = f"label id {label_id} is out of range: {len(names)} labels have ids {first} to {last}"
    if label_id == last + 1 and first == 0:
        raise SkipItem(f"{reason}; if the ids count from 1, pass --first-label-id 1")
    if 0 <= label_id < first:
        raise SkipItem(
            f"{reason}; if the ids count from {label_id}, pass --first-label-id {label_id}"
        )
    raise SkipItem(f"{reason}; fix the data, or name every label in the --labels file")


def _allowed(tag: str, fields: RowFields) -> str:
    if fields.allowed is not None and tag not in fields.allowed:
        shown = _show(sorted(fields.allowed))
        raise SkipItem(
            f"label {tag!r} is not one of the labels to label ({shown}); "
            "fix the data, or add it to the --labels file"
        )
    return tag


def _ordered(tags: Sequence[str], names: Sequence[str] | None) -> tuple[str, ...]:
    """Each tag once, in the label set's order (the names' order when known)."""
    unique = list(dict.fromkeys(tags))
    if names is None:
        return tuple(unique)
    order = {name: i for i, name in enumerate(names)}
    return tuple(sorted(unique, key=lambda tag: order.get(tag, len(order))))


def _show(values: Sequence[object]) -> str:
    shown = ", ".join(str(v) for v in values[:_SHOWN])
    return shown + (", ..." if len(values) > _SHOWN else "")
