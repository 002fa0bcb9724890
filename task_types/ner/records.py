"""Dataset rows to NER's records: tokens (or text split into words), and gold tags in IOB2.

The producer reads the table (CSV, JSONL, Parquet, CoNLL, the hub, a saved dataset) and hands
each row here; the columns that hold tokens, text and tags are named by `RowFields`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any

from prelabel.errors import DatasetError
from task_types.base import RowFields, SkipItem
from task_types.ner.bio import TagError, checked_iob2
from task_types.ner.model import NerRecord

#: Words (with inner hyphens and apostrophes) and single punctuation marks.
_WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def record_from_row(rid: str, row: Mapping[str, Any], fields: RowFields) -> NerRecord:
    """A sentence from a row: its tokens (or its text, split into words and punctuation) and
    its gold tags in IOB2 when the row has any; `SkipItem` when the row cannot be used."""
    if fields.tokens is not None:
        tokens = _str_list(row[fields.tokens], "tokens")
        if not any(t.strip() for t in tokens):
            raise SkipItem("empty sentence")
        for k, token in enumerate(tokens):
            if not token.strip():
                raise SkipItem(f"token {k} is empty or whitespace")
        gold = _gold_tags(row, fields, len(tokens))
        return NerRecord.from_tokens(rid, tokens, gold)
    assert fields.text is not None
    text = row[fields.text]
    if text is None:
        raise SkipItem("no text")
    if not isinstance(text, str):
        raise SkipItem(f"text is a {type(text).__name__}, not a string")
    if not text.strip():
        raise SkipItem("empty sentence")
    words = tokenised(rid, text)
    return NerRecord(
        id=rid,
        tokens=words.tokens,
        text=text,
        offsets=words.offsets,
        gold_tags=_gold_tags(row, fields, len(words.tokens)),
    )


def tokenised(rid: str, text: str) -> NerRecord:
    """A record of `text` split into words and punctuation. It keeps the original text and
    the tokens' true offsets in it, so that spans found in the text are spans of the source,
    not of a re-joined copy."""
    spans = word_spans(text)
    return NerRecord(
        id=rid,
        tokens=tuple(token for token, _, _ in spans),
        text=text,
        offsets=tuple((start, end) for _, start, end in spans),
    )


def _gold_tags(row: Mapping[str, Any], fields: RowFields, count: int) -> tuple[str, ...] | None:
    value = row[fields.tags] if fields.tags is not None else None
    # No tags (null, or a blank CSV cell) means an unlabeled item, not a mismatch.
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    names = fields.tag_names
    tags: list[str] = []
    for item in _as_list(value, "tags"):
        if isinstance(item, str) and item.strip().isdigit() and names is not None:
            item = int(item)
        if isinstance(item, int) and not isinstance(item, bool):
            if names is None:
                raise DatasetError(
                    f"{fields.origin}: field {fields.tags!r} holds integer tags and the data does "
                    "not name them; pass tag_names in index order (e.g. O,B-PER,I-PER,...)"
                )
            if not 0 <= item < len(names):
                raise SkipItem(f"tag id {item} is out of range for {len(names)} tag names")
            tags.append(names[item])
        elif isinstance(item, str):
            tags.append(item.strip())
        else:
            raise SkipItem(f"tag {item!r} is neither a string nor an integer")
    if len(tags) != count:
        unit = "tokens" if fields.tokens else "tokens (text split into words and punctuation)"
        raise SkipItem(f"{len(tags)} tags for {count} {unit}")
    try:
        return checked_iob2(tags, fields.allowed)
    except TagError as e:
        raise SkipItem(str(e)) from None


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into words and punctuation marks, each with its `(start, end)` in `text`.

    Words keep inner hyphens and apostrophes ("pre-war", "O'Neil"); every other non-space
    character is a token of its own, so only whitespace falls between tokens.
    """
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _str_list(value: object, what: str) -> list[str]:
    items = _as_list(value, what)
    if not all(isinstance(item, str) for item in items):
        raise SkipItem(f"{what} must all be strings")
    return [str(item) for item in items]


def _as_list(value: object, what: str) -> list[object]:
    """A list from a list, a JSON/Python list literal (as CSV stores one), or spaced words."""
    if isinstance(value, list | tuple):
        return list(value)
    if value is None:
        raise SkipItem(f"no {what}")
    if not isinstance(value, str):
        raise SkipItem(f"{what} is a {type(value).__name__}, not a list")
    stripped = value.strip()
    if not stripped.startswith("["):
        return list(stripped.split())
    parsed: object
    try:
        parsed = json.loads(stripped)
    except ValueError:
        try:
            parsed = ast.literal_eval(stripped)  # literals only: never runs code
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise SkipItem(f"cannot parse the {what} list {stripped[:40]!r}") from None
    if not isinstance(parsed, list):
        raise SkipItem(f"{what} {stripped[:40]!r} is not a list")
    return list(parsed)
