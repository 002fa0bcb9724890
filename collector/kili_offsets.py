"""Which unit an upload counts Kili's `beginOffset` in.

Kili documents `beginOffset` only as the "position of the first character". Its own code
(the NER pre-annotation recipe, its AutoML models) computes offsets with Python string
indices, that is code points, and nothing in the SDK or kili-formats converts units; its
labeling interface is a web app, whose JavaScript strings count UTF-16 code units. The two
differ only after a character beyond U+FFFF (most emoji): one code point, two units.

So an upload (`--offset-unit auto`, the default):
- counts code points when no text of the run holds such a character (both units agree), or
  when the job has no offsets (classification);
- otherwise reads the human labels already in the target project on the run's own assets
  (labels of type DEFAULT or REVIEW: a person placed them in Kili's interface) and takes the
  unit in which their annotations' `content` sits at their `beginOffset` in texts where the
  units differ;
- refuses to guess when no such label tells, or when they disagree: one line saying to pass
  `--offset-unit utf16` or `codepoint`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from prelabel.errors import UploadError
from prelabel.offsets import OffsetMap, OffsetUnit
from task_types import PredictionRow

if TYPE_CHECKING:
    from kili.client import Kili

#: `--offset-unit`: a unit, or `auto` (module docstring).
OffsetChoice = Literal["auto", "utf16", "codepoint"]
#: What Kili's own code counts, and the answer where the units cannot differ.
DEFAULT_UNIT: OffsetUnit = "codepoint"
#: Kili's job types whose annotations carry character offsets.
OFFSET_TASKS = frozenset({"NAMED_ENTITIES_RECOGNITION"})
#: Label types a person makes in Kili's interface.
HUMAN_LABELS = ["DEFAULT", "REVIEW"]


def needs_unit(texts: Iterable[str]) -> bool:
    """Whether any text holds a character beyond U+FFFF (where the two units differ)."""
    return any(OffsetMap.of(text).astral for text in texts)


def unit_shown(labels: Iterable[tuple[str, Mapping[str, Any]]]) -> set[OffsetUnit]:
    """The units in which the annotations of `(text, json_response)` pairs sit where they
    say, counting only annotations whose two readings differ (after an astral character)."""
    shown: set[OffsetUnit] = set()
    for text, response in labels:
        offsets = OffsetMap.of(text)
        if not offsets.astral:
            continue
        for job in response.values():
            annotations = job.get("annotations", []) if isinstance(job, Mapping) else []
            for annotation in annotations:
                begin, content = annotation.get("beginOffset"), annotation.get("content")
                if not isinstance(begin, int) or not isinstance(content, str) or not content:
                    continue
                as_points = offsets.holds(begin, content, "codepoint")
                as_units = offsets.holds(begin, content, "utf16")
                if as_points != as_units:  # the annotation tells the units apart
                    shown.add("codepoint" if as_points else "utf16")
    return shown


def resolve_unit(
    choice: OffsetChoice,
    ml_task: str,
    items: Sequence[PredictionRow],
    human_labels: Callable[[], Iterable[tuple[str, Mapping[str, Any]]]],
) -> OffsetUnit:
    """The unit to send offsets in (module docstring); UploadError when it cannot tell.
    `human_labels` is called only when the unit matters."""
    if choice != "auto":
        return choice
    if ml_task not in OFFSET_TASKS or not needs_unit(r.text for r in items):
        return DEFAULT_UNIT
    shown = unit_shown(human_labels())
    if len(shown) == 1:
        return shown.pop()
    why = (
        "the project's human labels disagree"
        if shown
        else "no human label in the project shows how Kili counts them"
    )
    raise UploadError(
        "some texts hold characters beyond U+FFFF (emoji), where Kili's offsets in code "
        f"points and in UTF-16 units differ, and {why}: pass --offset-unit codepoint (what "
        "Kili's own code counts) or --offset-unit utf16 (what a browser counts)"
    )


def human_labels(
    kili: Kili, project_id: str, texts: Mapping[str, str]
) -> list[tuple[str, Mapping[str, Any]]]:
    """The human labels of the project on the run's own assets, with the asset's text."""
    found = kili.labels(
        project_id,
        type_in=HUMAN_LABELS,
        fields=["jsonResponse", "labelOf.externalId"],
        output_format="dict",
        disable_tqdm=True,
    )
    out: list[tuple[str, Mapping[str, Any]]] = []
    for label in found:
        text = texts.get(str((label.get("labelOf") or {}).get("externalId")))
        response = label.get("jsonResponse")
        if isinstance(response, str):
            response = json.loads(response)
        if text is not None and isinstance(response, Mapping):
            out.append((text, response))
    return out


__all__ = [
    "DEFAULT_UNIT",
    "OffsetChoice",
    "human_labels",
    "needs_unit",
    "resolve_unit",
    "unit_shown",
]
