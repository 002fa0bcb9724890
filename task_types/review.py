"""How confidence orders human review, and how it reads in the tools' own scales, whatever
the task type (what each task's predictions are is its own: `Reporting.review_predictions`).

- Review order (review.csv): failed items first, then labeled items whose confidence was not
  measured (a verification that failed, say: nothing vouches for them), then the rest from
  the least to the most confident; ties by item id.
- Kili asset priority (Kili serves higher priorities first; equal ones first in, first out:
  docs.kili-technology.com/docs/queue-prioritization): `round((1 - confidence) * 100)`, so 0
  for a sure item and 100 for one at confidence 0; an item with no confidence (failed, or not
  measured) gets 101, above every labeled one.
- Kili category `confidence`: an integer percentage, `round(confidence * 100)` (the SDK's
  parser, `services/label_data_parsing/category.py`, takes any number and states no range,
  so this scale is prelabel's choice, said in the README).
- Label Studio `score`: the confidence as it is, a float in [0, 1].

Rows of a run that measured no confidence (older runs, `--confidence none`) carry none of
these: `measured` is false, and every export and upload stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from prelabel.model import Scored
from task_types.base import PredictionRow

R = TypeVar("R", bound=PredictionRow)

#: Kili's scale of a category's confidence, and of an asset's priority from confidence.
KILI_SCALE = 100
#: The Kili priority of an item with no confidence (failed, or not measured).
PRIORITY_UNSURE = KILI_SCALE + 1


def measured(rows: Iterable[PredictionRow]) -> bool:
    """Whether any row carries a confidence: the run measured it."""
    return any(r.confidence is not None for r in rows)


def order_key(failed: bool, confidence: float | None, id: str) -> tuple[int, float, str]:
    """Sort key of review order (module docstring), shared with the review curve."""
    if failed:
        return (0, 0.0, id)
    if confidence is None:
        return (1, 0.0, id)
    return (2, confidence, id)


def review_key(row: PredictionRow) -> tuple[int, float, str]:
    """Sort key of a row in review order."""
    return order_key(row.status != "labeled", row.confidence, row.id)


def review_order(rows: Iterable[R]) -> list[R]:
    """The rows from the one to review first to the one to review last."""
    return sorted(rows, key=review_key)


def kili_confidence(confidence: float) -> int:
    """A confidence in [0, 1] on Kili's 0-100 integer scale."""
    return round(confidence * KILI_SCALE)


def kili_priority(row: PredictionRow) -> int:
    """The Kili priority of a row's asset: the least sure item highest (module docstring)."""
    if row.status != "labeled" or row.confidence is None:
        return PRIORITY_UNSURE
    return round((1.0 - row.confidence) * KILI_SCALE)


def category_key(category: Mapping[str, Any]) -> tuple[str, float]:
    """A Kili json_response category's name and confidence (-1 without one), comparable
    whatever Kili returns (87 or 87.0)."""
    confidence = category.get("confidence")
    return (str(category["name"]), -1.0 if confidence is None else float(confidence))


def least_sure(scores: Sequence[Scored]) -> Scored | None:
    """The proposal the model was least sure of (rejected ones included), the first of
    equals; None when nothing was proposed."""
    return min(scores, key=lambda s: s.confidence, default=None)


def label_confidence(scores: Sequence[Scored], label: str) -> float | None:
    """The confidence of a kept proposal of `label` (classification: one per label)."""
    return next((s.confidence for s in scores if s.label == label and s.kept), None)


__all__ = [
    "KILI_SCALE",
    "PRIORITY_UNSURE",
    "category_key",
    "kili_confidence",
    "kili_priority",
    "label_confidence",
    "least_sure",
    "measured",
    "review_key",
    "review_order",
]
