"""NER's Kili job: a NAMED_ENTITIES_RECOGNITION job whose categories are the ontology's tags,
and entities as its json_response (`{"<JOB>": {"annotations": [...]}}`, `beginOffset` a
character offset into the asset's text, counted in the unit the upload uses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prelabel.offsets import OffsetMap, OffsetUnit, span_matches
from task_types.ner.exports import PALETTE, entity_confidences
from task_types.ner.model import Entity, Ontology
from task_types.ner.rows import NerRow
from task_types.review import category_key, kili_confidence

#: The NER job of the Kili projects prelabel creates.
KILI_JOB = "NAMED_ENTITIES_RECOGNITION_JOB"


def kili_json_interface(ontology: Ontology, job: str = KILI_JOB) -> dict[str, Any]:
    """A Kili json_interface with one NER job whose categories are the ontology's tags."""
    categories = {
        t.tag: {"name": t.name, "children": [], "color": PALETTE[i % len(PALETTE)]}
        for i, t in enumerate(ontology.labels)
    }
    return {
        "jobs": {
            job: {
                "mlTask": "NAMED_ENTITIES_RECOGNITION",
                "content": {"categories": categories, "input": "radio"},
                "instruction": "Named entities",
                "required": 0,
                "isChild": False,
            }
        }
    }


def kili_json_response(row: NerRow, job: str, unit: OffsetUnit) -> dict[str, Any]:
    """A labeled row's entities as a Kili NER json_response, offsets counted in `unit`.

    An item labeled with no entity gets an empty annotation list rather than no prediction, so
    that uploading it replaces an earlier prediction that had some. Where the run measured
    confidence, each category carries the entity's, on Kili's 0-100 scale
    (`task_types.review`).
    """
    offsets = OffsetMap.of(row.text)
    annotations = []
    for k, (e, confidence) in enumerate(zip(row.entities, entity_confidences(row), strict=True)):
        category: dict[str, Any] = {"name": e.type}
        if confidence is not None:
            category["confidence"] = kili_confidence(confidence)
        annotations.append(
            {
                "categories": [category],
                "beginOffset": offsets.to_unit(e.start, unit),
                "content": e.text,
                "mid": f"{row.id}#{k}",
            }
        )
    return {job: {"annotations": annotations}}


def entities_from_kili(
    json_response: Mapping[str, Any], text: str, job: str, unit: OffsetUnit
) -> list[Entity]:
    """Read a Kili NER json_response back into code-point entities of `text`, in text order.

    Raises ValueError when an annotation does not sit on its content in the text.
    """
    offsets = OffsetMap.of(text)
    entities = []
    for annotation in (json_response.get(job) or {}).get("annotations", []):
        content = annotation["content"]
        start = offsets.from_unit(annotation["beginOffset"], unit)
        if not span_matches(text, start, content):
            raise ValueError(
                f"annotation {content!r} at {annotation['beginOffset']} ({unit}) is "
                f"{text[start : start + len(content)]!r} in the text"
            )
        names = [c["name"] for c in annotation.get("categories", [])]
        entities.append(Entity(type=names[0], start=start, end=start + len(content), text=content))
    return sorted(entities, key=lambda e: (e.start, e.end, e.type))


def response_key(
    response: Mapping[str, Any], job: str
) -> list[tuple[tuple[tuple[str, float], ...], int, str]]:
    """The categories (with their confidence), offsets and contents of a json_response's
    annotations, sorted: two responses with the same key place the same categories on the
    same spans, as sure of each."""
    annotations = (response.get(job) or {}).get("annotations", [])
    return sorted(
        (
            tuple(sorted(category_key(c) for c in a.get("categories", []))),
            int(a["beginOffset"]),
            str(a["content"]),
        )
        for a in annotations
    )


class NerKiliJob:
    """NER's Kili job (`task_types.KiliJob`)."""

    default_job = KILI_JOB
    ml_task = "NAMED_ENTITIES_RECOGNITION"

    def json_interface(self, labels: Ontology, job: str) -> dict[str, Any]:
        return kili_json_interface(labels, job)

    def json_response(self, row: NerRow, job: str, unit: OffsetUnit) -> dict[str, Any]:
        return kili_json_response(row, job, unit)

    def response_key(self, response: Mapping[str, Any], job: str) -> object:
        return response_key(response, job)

    def read_response(
        self, response: Mapping[str, Any], text: str, job: str, unit: OffsetUnit
    ) -> list[Entity]:
        return entities_from_kili(response, text, job, unit)


__all__ = [
    "KILI_JOB",
    "NerKiliJob",
    "entities_from_kili",
    "kili_json_interface",
    "kili_json_response",
    "response_key",
]
