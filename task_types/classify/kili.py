"""Classification's Kili job: a CLASSIFICATION job, single choice (`input: radio`) or
multiple choice (`input: checkbox`), whose categories are the labels' tags; an item's labels
as its json_response, `{"<JOB>": {"categories": [{"name": "<tag>"}, ...]}}`.

Category keys are the label tags as they are, as NER's are (collector/kili_project.py checks a
given project's categories by them); a category's `name`, what Kili shows, is the label's
name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prelabel.model import LabelSet
from prelabel.offsets import OffsetUnit
from task_types.classify.rows import ClassifyRow
from task_types.review import category_key, kili_confidence, label_confidence

#: The classification job of the Kili projects prelabel creates.
KILI_JOB = "CLASSIFICATION_JOB"
ML_TASK = "CLASSIFICATION"

#: Category colours, in label order (those of NER's, so projects look alike).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def kili_json_interface(
    labels: LabelSet, job: str = KILI_JOB, *, multi_label: bool = False
) -> dict[str, Any]:
    """A Kili json_interface with one classification job whose categories are the tags."""
    categories = {
        t.tag: {"name": t.name, "children": [], "color": PALETTE[i % len(PALETTE)]}
        for i, t in enumerate(labels.labels)
    }
    return {
        "jobs": {
            job: {
                "mlTask": ML_TASK,
                "content": {
                    "categories": categories,
                    "input": "checkbox" if multi_label else "radio",
                },
                "instruction": "Labels" if multi_label else "Label",
                "required": 0,
                "isChild": False,
            }
        }
    }


def kili_json_response(row: ClassifyRow, job: str) -> dict[str, Any]:
    """A labeled row's labels as a Kili classification json_response.

    An item labeled with no label (multi-label's empty set) gets an empty category list
    rather than no prediction, so that uploading it replaces an earlier prediction that had
    some. Where the run measured confidence, each category carries its label's, on Kili's
    0-100 scale (`task_types.review`).
    """
    categories = []
    for tag in row.labels:
        category: dict[str, Any] = {"name": tag}
        confidence = label_confidence(row.scores, tag)
        if confidence is not None:
            category["confidence"] = kili_confidence(confidence)
        categories.append(category)
    return {job: {"categories": categories}}


def labels_from_kili(response: Mapping[str, Any], job: str) -> tuple[str, ...]:
    """The category tags of a classification json_response, in its order."""
    return tuple(str(c["name"]) for c in (response.get(job) or {}).get("categories", []))


def response_key(response: Mapping[str, Any], job: str) -> tuple[tuple[str, float], ...]:
    """The categories with their confidence, sorted: two responses with the same key choose
    the same labels, as sure of each."""
    return tuple(sorted(category_key(c) for c in (response.get(job) or {}).get("categories", [])))


class ClassifyKiliJob:
    """Classification's Kili job (`task_types.KiliJob`), single or multiple choice."""

    default_job = KILI_JOB
    ml_task = ML_TASK

    def __init__(self, *, multi_label: bool) -> None:
        self.multi_label = multi_label

    def json_interface(self, labels: LabelSet, job: str) -> dict[str, Any]:
        return kili_json_interface(labels, job, multi_label=self.multi_label)

    def json_response(self, row: ClassifyRow, job: str, unit: OffsetUnit) -> dict[str, Any]:
        return kili_json_response(row, job)  # no offsets: `unit` does not apply

    def response_key(self, response: Mapping[str, Any], job: str) -> object:
        return response_key(response, job)

    def read_response(
        self, response: Mapping[str, Any], text: str, job: str, unit: OffsetUnit
    ) -> tuple[str, ...]:
        return labels_from_kili(response, job)


__all__ = [
    "KILI_JOB",
    "ML_TASK",
    "ClassifyKiliJob",
    "kili_json_interface",
    "kili_json_response",
    "labels_from_kili",
    "response_key",
]
