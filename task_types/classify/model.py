"""Classification's records, results and evaluation items: the shapes both halves share.

A label's `tag` is what the dataset calls it (AG News: `Sci/Tech`), its `name` what the model
sees and answers with; they are the same unless a label file says otherwise. Records and
results hold tags, in the label set's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from prelabel.frozen import Frozen
from prelabel.model import ItemResult, Record, Scored

#: Bumped whenever the messages change, so that cached answers are not reused.
PROMPT_VERSION = "classify-v1"


class ClassifyRecord(Record):
    """A text to classify, and its gold labels' tags when known (one for single-label)."""

    gold: tuple[str, ...] | None = None


class Repair(Frozen):
    """A label in the model's answer that was not one of the label set's names as given:
    `label` is the tag it was read as (a near-miss spelling), or None when it was dropped
    (nothing close enough), and `reason` says which."""

    given: str
    label: str | None
    reason: str


class ClassifyResult(ItemResult):
    """An item's predicted labels (tags; one for single-label), and the repairs made to read
    them from the answer."""

    labels: tuple[str, ...] = ()
    repairs: tuple[Repair, ...] = ()
    prompt_version: str = PROMPT_VERSION

    def counts(self) -> dict[str, int]:
        repaired = sum(r.label is not None for r in self.repairs)
        return {
            "repaired": repaired,
            "outside": len(self.repairs) - repaired,
            "empty": int(self.status == "labeled" and not self.labels),
        }


@dataclass(frozen=True, slots=True)
class Item:
    """One item as the evaluation sees it: `pred` None for a failed item, `gold` None for an
    item without gold labels; `confidence` and `scores` are the run's (`--confidence`; None
    and () when not measured)."""

    id: str
    gold: tuple[str, ...] | None
    pred: tuple[str, ...] | None
    error: str | None = None
    repairs: tuple[Repair, ...] = ()
    confidence: float | None = None
    scores: tuple[Scored, ...] = ()


__all__ = ["PROMPT_VERSION", "ClassifyRecord", "ClassifyResult", "Item", "Repair"]
