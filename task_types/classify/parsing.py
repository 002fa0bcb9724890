"""Read a model's answer into the label names it gave, and those names into the label set's
tags, repairing near misses (the JSON itself is read by `task_types.answers`, which repairs
the usual sloppiness).

Reading (`parse_answer`, `parse_batch_answer`) takes what the model wrote: the `label` or
`labels` key (or `class`/`category`, any casing), a lone string for a list (split on commas
for multi-label) or a list of one for a string, `null` for none, and for a single text a
bare answer that is not JSON at all (`Sports`). What cannot be a label answer (no such key,
an object where a name belongs, no label or several for single-label) is an `ItemError`, so
that a batch's item is asked again.

Matching (`match_labels`) turns names into tags, never silently:
- a label's name as written is that label;
- the same letters and digits, case and punctuation aside (`sci-tech`, `SPORTS`), or the
  dataset's tag for a label whose name differs, is that label with a `Repair`;
- a near-miss spelling, difflib ratio at least `NEAR_MISS` over the letters and digits of a
  word of at least `NEAR_MISS_MIN_CHARS`, clearly closer to one label than to any other
  (`NEAR_MISS_MARGIN`), is that label with a `Repair` giving the similarity;
- anything else is outside the set: a `Repair` with no label (multi-label drops it and keeps
  the rest; single-label fails the item, `predict`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from prelabel.errors import ItemError
from prelabel.model import Label, LabelSet
from task_types.answers import check_length, extract_object, kind, read_batch, snippet, unwrap
from task_types.classify.model import Repair

#: The lowest difflib ratio (of the letters and digits, case-folded) read as a near miss.
#: One typo in a name of five letters or more (a swap, a dropped or doubled letter:
#: `Sprots` 0.83, `Wrold` 0.80, `Busines` 0.93, `admiraton` 0.95) scores at least this; other
#: words for a label do not (`Technology` for Sci/Tech 0.47, `annoyed` for annoyance 0.75,
#: `nervous` for nervousness 0.78). No two AG News labels come close (0.40 at most); of
#: GoEmotions', `approval`/`disapproval` score 0.84, hence `NEAR_MISS_MARGIN` (tests check
#: every one-typo spelling of every label of five letters or more of both sets).
NEAR_MISS = 0.8
#: How much closer than to any other label a near miss must be to its label.
NEAR_MISS_MARGIN = 0.05
#: Shorter answers are never read as near misses: one letter is too much of them (`jo`).
NEAR_MISS_MIN_CHARS = 4
#: The most labels one text's answer may give: more is a model looping.
MAX_GIVEN = 200
#: Keys an answer's labels may come under, case-folded (the prompt asks for `label`/`labels`).
LABEL_KEYS = ("label", "labels", "class", "classes", "category", "categories")
#: The longest answer about one text read as a bare label name when it is not JSON.
_BARE_MAX_CHARS = 100
_NOT_WORD = re.compile(r"[\W_]+")

#: What a text's answer is until it is matched: the label names as given, stripped.
Given = tuple[str, ...]


def parse_answer(content: str, *, multi_label: bool) -> Given:
    """The label names a single-text answer gives; `ItemError` when it gives none usable."""
    check_length(content)
    try:
        answer = extract_object(content)
    except ItemError:
        bare = _bare(content)
        if bare is None:
            raise
        return _checked(bare, multi_label)
    return read_one(unwrap(answer, _is_label_key), multi_label=multi_label)


def parse_batch_answer(content: str, size: int, *, multi_label: bool) -> list[Given | ItemError]:
    """One entry per line number 1..`size` of a batched answer: its label names, or why not
    (`task_types.answers.read_batch`)."""
    return read_batch(content, size, lambda value: read_one(value, multi_label=multi_label))


def read_one(answer: Mapping[Any, Any], *, multi_label: bool) -> Given:
    """The label names of one text's answer object."""
    found = [key for key in answer if _is_label_key(str(key).strip().casefold())]
    if not found:
        want = '"labels"' if multi_label else '"label"'
        raise ItemError(f"answer has no {want} key: {snippet(repr(dict(answer)))}")
    value = answer[found[0]]
    if multi_label and isinstance(value, str):
        # A lone string for a list: models in JSON mode write "joy, love" as often as ["joy"].
        return _checked(value.split(","), multi_label)
    return _checked(_names(value), multi_label)


def _is_label_key(key: str) -> bool:
    return key in LABEL_KEYS


def _names(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    if not isinstance(value, list | tuple):
        raise ItemError(f"answer's label is a {kind(value)}, not a name: {snippet(repr(value))}")
    names: list[str] = []
    for item in value:
        if item is None:
            continue
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            names.append(str(item))
        else:
            raise ItemError(
                f"answer's labels hold a {kind(item)} where a name belongs: {snippet(repr(item))}"
            )
    return names


def _checked(names: Sequence[str], multi_label: bool) -> Given:
    given = tuple(n.strip() for n in names if n.strip())
    if len(given) > MAX_GIVEN:
        raise ItemError(
            f"answer gives {len(given)} labels for one text: the model was probably looping; "
            f"{snippet(repr(given[:5]))}"
        )
    if not multi_label and len(given) != 1:
        if not given:
            raise ItemError("answer gives no label; one label is needed")
        raise ItemError(
            f"answer gives {len(given)} labels ({snippet(', '.join(given))}); one label is needed"
        )
    return given


def _bare(content: str) -> list[str] | None:
    """A single-text answer that is not a JSON object, read as label names: a JSON string or
    list of strings, or one short line (`Sports`, `"Sports".`); None for anything else."""
    text = content.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if not text or "\n" in text or len(text) > _BARE_MAX_CHARS or set("{}[]") & set(text):
        return None
    return [text.strip("`\"'. ")]


def match_labels(given: Given, labels: LabelSet) -> tuple[tuple[str, ...], tuple[Repair, ...]]:
    """The tags `given` names, in the label set's order and each once, and a `Repair` for
    every name that was not a label's name as written (`label` None: outside the set)."""
    matcher = _matcher(labels)
    tags: set[str] = set()
    repairs: list[Repair] = []
    for name in given:
        tag, repair = matcher.match(name)
        if tag is not None:
            tags.add(tag)
        if repair is not None:
            repairs.append(repair)
    return tuple(t.tag for t in labels.labels if t.tag in tags), tuple(repairs)


class _Matcher:
    """A label set's names, exact and folded to their letters and digits."""

    def __init__(self, labels: LabelSet) -> None:
        self.exact = {t.name: t for t in labels.labels}
        folded: dict[str, list[Label]] = {}
        for t in labels.labels:
            for key in {fold(t.name), fold(t.tag)}:
                if key and t not in folded.setdefault(key, []):
                    folded[key].append(t)
        self.folded = folded

    def match(self, name: str) -> tuple[str | None, Repair | None]:
        exact = self.exact.get(name)
        if exact is not None:
            return exact.tag, None
        key = fold(name)
        same = self.folded.get(key, [])
        if len(same) == 1:
            (label,) = same
            how = "case and punctuation aside" if fold(label.name) == key else "its dataset tag"
            return label.tag, Repair(
                given=name, label=label.tag, reason=f"read as {label.name}: {how}"
            )
        if len(key) >= NEAR_MISS_MIN_CHARS and not same:
            near = self._near(key)
            if near is not None:
                label, ratio = near
                return label.tag, Repair(
                    given=name,
                    label=label.tag,
                    reason=f"read as {label.name}: a near-miss spelling (similarity {ratio:.2f})",
                )
        why = "names more than one label" if same else "not one of the labels"
        return None, Repair(given=name, label=None, reason=why)

    def _near(self, key: str) -> tuple[Label, float] | None:
        """The one label `key` is a near miss of, with its ratio; None when none is, or when
        another label is nearly as close (it could be either)."""
        best: dict[str, tuple[Label, float]] = {}
        for folded, found in self.folded.items():
            ratio = difflib.SequenceMatcher(None, key, folded).ratio()
            for label in found:
                if ratio > best.get(label.tag, (label, -1.0))[1]:
                    best[label.tag] = (label, ratio)
        ranked = sorted(best.values(), key=lambda pair: -pair[1])
        if not ranked or ranked[0][1] < NEAR_MISS:
            return None
        if len(ranked) > 1 and ranked[1][1] > ranked[0][1] - NEAR_MISS_MARGIN:
            return None
        return ranked[0]


@lru_cache(maxsize=32)
def _matcher(labels: LabelSet) -> _Matcher:
    return _Matcher(labels)


def fold(name: str) -> str:
    """A name's letters and digits, case-folded: what case and punctuation leave of it."""
    return _NOT_WORD.sub("", name.casefold())


def outside_reason(given: Given, labels: LabelSet) -> str:
    """Why a single-label answer naming no label fails: the answer and the labels."""
    names = ", ".join(t.name for t in labels.labels)
    return f"answered {snippet(', '.join(given))!r}, not one of the labels ({names})"
