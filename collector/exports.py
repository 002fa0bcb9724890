"""File writers for a run's results: predictions.jsonl (one row per item) and a CoNLL file
that conlleval reads. Pure: they take rows and a path; the collector gathers the rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prelabel.errors import DatasetError, RunError
from prelabel.files import write_atomic
from prelabel.model import ItemStatus, Usage
from task_types.ner.model import Entity, NerRecord, NerResult, Unaligned

_WHITESPACE = re.compile(r"\s+")


class PredictionRow(BaseModel):
    """One line of predictions.jsonl: an item's text and tokens, what the model found, and
    what it cost. `tags` is one BIO tag per token, or `[]` for a failed item.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    tokens: tuple[str, ...]
    entities: tuple[Entity, ...] = ()
    tags: tuple[str, ...] = ()
    gold_tags: tuple[str, ...] | None = None
    status: ItemStatus
    error: str | None = None
    unaligned: tuple[Unaligned, ...] = ()
    model: str = ""
    prompt_version: str = ""
    usage: Usage = Usage()

    @model_validator(mode="after")
    def _tags_fit_tokens(self) -> PredictionRow:
        n = len(self.tokens)
        if self.status == "labeled" and len(self.tags) != n:
            raise ValueError(f"item {self.id}: {len(self.tags)} tags for {n} tokens")
        if self.status == "failed" and self.tags:
            raise ValueError(f"item {self.id}: a failed item carries no tags")
        if self.gold_tags is not None and len(self.gold_tags) != n:
            raise ValueError(f"item {self.id}: {len(self.gold_tags)} gold tags for {n} tokens")
        return self

    @classmethod
    def from_result(cls, record: NerRecord, result: NerResult) -> PredictionRow:
        """Join an item's record (text, tokens, gold) with the worker's result for it."""
        if record.id != result.id:
            raise RunError(f"result for item {result.id!r} was paired with record {record.id!r}")
        try:
            return cls(
                id=record.id,
                text=record.text,
                tokens=record.tokens,
                entities=result.entities,
                tags=result.tags if result.status == "labeled" else (),
                gold_tags=record.gold_tags,
                status=result.status,
                error=result.error,
                unaligned=result.unaligned,
                model=result.model,
                prompt_version=result.prompt_version,
                usage=result.usage,
            )
        except ValidationError as exc:
            raise RunError(
                f"item {record.id!r}: its result does not fit its record "
                f"({exc.errors()[0]['msg']}); the run's records and results disagree"
            ) from exc


def write_predictions_jsonl(path: Path, rows: Iterable[PredictionRow]) -> int:
    """Write one JSON object per row (UTF-8, non-ASCII kept as is), atomically; return the count."""
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for row in rows:
            count += 1
            yield json.dumps(row.model_dump(mode="json"), ensure_ascii=False) + "\n"

    write_atomic(path, lines())
    return count


def read_predictions_jsonl(path: Path) -> list[PredictionRow]:
    """Read predictions.jsonl back; blank lines are skipped, a bad line names its number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"predictions file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read predictions file {path}: {exc}") from exc
    rows: list[PredictionRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(PredictionRow.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            raise DatasetError(
                f"{path}:{number}: not a prediction row ({where}: {first['msg']}); "
                "was it written by prelabel?"
            ) from exc
    return rows


def _conll_token(token: str) -> str:
    # conlleval splits lines on whitespace, so a token may hold none and may not be empty.
    return _WHITESPACE.sub("_", token) or "_"


def write_conll(path: Path, rows: Iterable[PredictionRow]) -> int:
    """Write conlleval's input, atomically; return the number of sentences written.

    One token per line as `token gold pred`, a blank line after each sentence, no comments and
    no `-DOCSTART-` lines. Gold is `O` where the item has no gold tags. Failed items are skipped
    (they have no predicted tags; predictions.jsonl and the run figures count them), and so are
    items without tokens, which would read as an extra sentence break. Whitespace
    inside a token, and an empty token, become `_` so that every line keeps three columns.
    """
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for row in rows:
            if row.status != "labeled" or not row.tokens:
                continue
            count += 1
            gold = row.gold_tags if row.gold_tags is not None else ("O",) * len(row.tokens)
            for token, g, p in zip(row.tokens, gold, row.tags, strict=True):
                yield f"{_conll_token(token)} {g} {p}\n"
            yield "\n"

    write_atomic(path, lines())
    return count


__all__ = ["PredictionRow", "read_predictions_jsonl", "write_conll", "write_predictions_jsonl"]
