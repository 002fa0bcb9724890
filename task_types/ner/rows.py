"""NER's line of predictions.jsonl: an item's text and tokens, what the model found, and what
it cost; and the check that every entity of a row sits where it claims to be."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prelabel.errors import DatasetError, RunError
from prelabel.model import ItemStatus, Scored, Usage
from prelabel.offsets import span_matches
from task_types.ner.model import Entity, NerRecord, NerResult, Unaligned


class NerRow(BaseModel):
    """One line of predictions.jsonl. `tags` is one BIO tag per token, or `[]` for a failed
    item. (The field order is the order of the JSON keys in the file.)
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
    #: How sure the model is of the item (None: not measured, or the item failed).
    confidence: float | None = None
    #: Each proposed label or mention with its confidence (`--confidence`).
    scores: tuple[Scored, ...] = ()

    @model_validator(mode="after")
    def _tags_fit_tokens(self) -> NerRow:
        n = len(self.tokens)
        if self.status == "labeled" and len(self.tags) != n:
            raise ValueError(f"item {self.id}: {len(self.tags)} tags for {n} tokens")
        if self.status == "failed" and self.tags:
            raise ValueError(f"item {self.id}: a failed item carries no tags")
        if self.gold_tags is not None and len(self.gold_tags) != n:
            raise ValueError(f"item {self.id}: {len(self.gold_tags)} gold tags for {n} tokens")
        return self

    @classmethod
    def from_result(cls, record: NerRecord, result: NerResult) -> NerRow:
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
                confidence=result.confidence,
                scores=result.scores,
            )
        except ValidationError as exc:
            raise RunError(
                f"item {record.id!r}: its result does not fit its record "
                f"({exc.errors()[0]['msg']}); the run's records and results disagree"
            ) from exc


def check_entities(item_id: str, text: str, entities: Iterable[Entity]) -> None:
    """Raise a DatasetError naming the first entity that is not where it claims to be."""
    for k, entity in enumerate(entities):
        if not span_matches(text, entity.start, entity.text) or entity.end != entity.start + len(
            entity.text
        ):
            found = text[entity.start : entity.start + len(entity.text)]
            raise DatasetError(
                f"item {item_id!r}, entity {k} ({entity.type} {_short(entity.text)!r} at "
                f"{entity.start}-{entity.end}): the text there is {_short(found)!r}; the "
                "predictions do not match their text, so nothing was uploaded or exported"
            )


def _short(text: str, keep: int = 40) -> str:
    return text if len(text) <= keep else text[: keep - 1] + "…"


def check_rows(rows: Iterable[NerRow]) -> None:
    """Check every labeled row's spans against its text; raise on the first that is off."""
    for row in rows:
        if row.status == "labeled":
            check_entities(row.id, row.text, row.entities)


__all__ = ["NerRow", "check_entities", "check_rows"]
