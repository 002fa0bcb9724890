"""Classification's line of predictions.jsonl: an item's text, its predicted labels and gold,
the repairs made to read the answer, and what it cost; and the checks of a run's rows."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prelabel.errors import DatasetError, RunError
from prelabel.model import ItemStatus, Scored, Usage
from task_types.classify.model import ClassifyRecord, ClassifyResult, Item, Repair


class ClassifyRow(BaseModel):
    """One line of predictions.jsonl. `labels` are the predicted label tags (one for
    single-label, `[]` for a failed item), `gold` the gold tags or null. (The field order is
    the order of the JSON keys in the file.)"""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    labels: tuple[str, ...] = ()
    gold: tuple[str, ...] | None = None
    status: ItemStatus
    error: str | None = None
    repairs: tuple[Repair, ...] = ()
    model: str = ""
    prompt_version: str = ""
    usage: Usage = Usage()
    #: How sure the model is of the item (None: not measured, or the item failed).
    confidence: float | None = None
    #: Each proposed label or mention with its confidence (`--confidence`).
    scores: tuple[Scored, ...] = ()

    @model_validator(mode="after")
    def _labels_are_a_set(self) -> ClassifyRow:
        if self.status == "failed" and self.labels:
            raise ValueError(f"item {self.id}: a failed item carries no labels")
        for name, tags in (("labels", self.labels), ("gold labels", self.gold or ())):
            if len(set(tags)) != len(tags):
                raise ValueError(f"item {self.id}: its {name} repeat a label: {list(tags)}")
            if any(not t for t in tags):
                raise ValueError(f"item {self.id}: its {name} hold an empty label")
        return self

    @classmethod
    def from_result(cls, record: ClassifyRecord, result: ClassifyResult) -> ClassifyRow:
        """Join an item's record (text, gold) with the worker's result for it."""
        if record.id != result.id:
            raise RunError(f"result for item {result.id!r} was paired with record {record.id!r}")
        try:
            return cls(
                id=record.id,
                text=record.text,
                labels=result.labels if result.status == "labeled" else (),
                gold=record.gold,
                status=result.status,
                error=result.error,
                repairs=result.repairs,
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


def check_rows(rows: Iterable[ClassifyRow], *, multi_label: bool) -> None:
    """Raise a DatasetError naming the first row that cannot be a prediction of its task: a
    single-label row labeled with other than one label (a set of labels, even an empty one,
    is multi-label's), or a row with a label tag that holds no visible character."""
    for row in rows:
        if row.status != "labeled":
            continue
        if not multi_label and len(row.labels) != 1:
            raise DatasetError(
                f"item {row.id!r} is labeled with {len(row.labels)} labels "
                f"({', '.join(row.labels) or 'none'}) in a single-label run; a multi-label "
                "run's predictions go with --task classify --multi-label, so nothing was "
                "uploaded or exported"
            )
        blank = [t for t in row.labels if not t.strip()]
        if blank:
            raise DatasetError(
                f"item {row.id!r} has a blank label {blank[0]!r}; the predictions are "
                "damaged, so nothing was uploaded or exported"
            )


def item_of_row(row: ClassifyRow) -> Item:
    """A predictions.jsonl row as an evaluation item (a failed row predicts nothing)."""
    return Item(
        id=row.id,
        gold=row.gold,
        pred=row.labels if row.status == "labeled" else None,
        error=row.error,
        repairs=row.repairs,
        confidence=row.confidence if row.status == "labeled" else None,
        scores=row.scores,
    )


__all__ = ["ClassifyRow", "check_rows", "item_of_row"]
