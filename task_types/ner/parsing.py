"""Read a model's answer into mentions per type (the JSON itself is read by
`task_types.answers`, which repairs the usual sloppiness).

Models give a lone string for a list or `null` for none, and change the casing of type
names or answer with the dataset's tags: all of that is repaired here. Keys that are not
ontology types are kept under their own name: alignment reports their mentions as unaligned,
rather than losing them without a trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prelabel.errors import ItemError
from task_types.answers import (
    check_length,
    extract_object,
    kind,
    read_batch,
    snippet,
    unwrap,
)
from task_types.ner.model import Ontology

#: The most mentions one sentence's answer may hold (a CoNLL sentence has at most about 40):
#: more is a model looping, and would make one item's result megabytes in Redis and files.
MAX_MENTIONS = 500


def parse_answer(content: str, ontology: Ontology) -> dict[str, list[str]]:
    """Mentions per type NAME from a single-sentence answer.

    Every ontology type is a key (`[]` when the model gave none), in ontology order; keys
    the ontology does not know follow under their own name. Raises `ItemError` when the
    answer cannot be read.
    """
    check_length(content)
    answer = extract_object(content)
    return _mentions_by_type(unwrap(answer, _type_aliases(ontology).__contains__), ontology)


def parse_batch_answer(
    content: str, size: int, ontology: Ontology
) -> list[dict[str, list[str]] | ItemError]:
    """One entry per line number 1..`size` of a batched answer: its mentions, or why not
    (`task_types.answers.read_batch`)."""
    return read_batch(content, size, lambda value: _mentions_by_type(value, ontology))


def _type_aliases(ontology: Ontology) -> set[str]:
    return {t.name.casefold() for t in ontology.labels} | {
        t.tag.casefold() for t in ontology.labels
    }


def _mentions_by_type(answer: Mapping[Any, Any], ontology: Ontology) -> dict[str, list[str]]:
    names = {t.name: t.name for t in ontology.labels}
    # Models echo names in other casings, or the dataset's tags (PER for PERSON).
    aliases = {t.name.casefold(): t.name for t in ontology.labels}
    for t in ontology.labels:
        aliases.setdefault(t.tag.casefold(), t.name)
    mentions: dict[str, list[str]] = {t.name: [] for t in ontology.labels}
    total = 0
    for key, value in answer.items():
        given = str(key).strip()
        name = names.get(given) or aliases.get(given.casefold(), given)
        found = _mention_list(name, value)
        total += len(found)
        if total > MAX_MENTIONS:
            raise ItemError(
                f"answer holds more than {MAX_MENTIONS} mentions for one sentence: the model "
                f"was probably looping; {snippet(repr(found[:5]))}"
            )
        mentions.setdefault(name, []).extend(found)
    return mentions


def _mention_list(name: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    if not isinstance(value, list | tuple):
        raise ItemError(
            f"answer for {name} is a {kind(value)}, not a list of mentions: {snippet(repr(value))}"
        )
    mentions: list[str] = []
    for item in value:
        if item is None:
            continue
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            mentions.append(str(item))
        else:
            raise ItemError(
                f"answer for {name} holds a {kind(item)} where a mention string belongs: "
                f"{snippet(repr(item))}"
            )
    return mentions
