"""Place a model's mentions on the record's tokens, and turn them into spans and IOB2 tags.

Where other tools go wrong (the Kili tutorial's `str.find`, autolabel's k-th regex match,
spacy-llm's tagging of every occurrence), and what this module does instead:
- `str.find` sends every repeated mention to its first occurrence: here each type keeps a
  cursor, so the k-th "Paris" goes to the k-th free occurrence after that type's previous
  mention (then, for models that list out of order, anywhere in the sentence).
- Substrings match inside words ("US" in "USA"): here a match must start at a token start
  and end at a token end.
- Spacing differs ("Washington, D.C." for "Washington , D.C ."): matching ignores
  whitespace on both sides, and the span always covers whole tokens of the source text.
Two mentions never share a token. A mention that cannot be placed is reported with its
reason, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from task_types.ner.model import Entity, EntityType, NerRecord, Ontology, Unaligned

NOT_FOUND = "not found in the sentence on token boundaries"
REPEATED = "repeated more often than the sentence holds it"
#: The longest mention text an unaligned entry keeps: the rest says nothing more, and one
#: item's result must stay small in Redis and in the files.
MAX_KEPT_CHARS = 200
CLAIMED = "every occurrence on token boundaries is already taken by another mention"
EMPTY = "empty mention"


@dataclass(frozen=True, slots=True)
class Alignment:
    """Entities sorted by start, IOB2 tags over the record's tokens, and what did not fit."""

    entities: tuple[Entity, ...]
    tags: tuple[str, ...]
    unaligned: tuple[Unaligned, ...]


def align(
    record: NerRecord, mentions: Mapping[str, Sequence[str]], ontology: Ontology
) -> Alignment:
    """Place `mentions` (type NAME -> mentions in order of appearance) on `record`'s tokens.

    Types are placed in ontology order. When a mention only failed because another type
    had taken its tokens (an "England" inside "Bank of England"), the types that lost go
    first in another pass, and the pass that places most mentions wins.
    """
    # A lone string is one mention, not a sequence of one-letter mentions.
    mentions = {name: [m] if isinstance(m, str) else m for name, m in mentions.items()}
    index = _Index(record)
    by_name = ontology.by_name()
    rank = {t.name: i for i, t in enumerate(ontology.labels)}
    unknown = [
        _Miss(
            len(rank),
            k,
            Unaligned(type=name, mention=m[:MAX_KEPT_CHARS], reason=_unknown_type(name)),
        )
        for name, given in mentions.items()
        if name not in by_name
        for k, m in enumerate(given)
    ]
    order = [t for t in ontology.labels if t.name in mentions]
    best = _place(index, mentions, order, rank)
    for _ in range(len(order)):
        losers = {miss.unaligned.type for miss in best.misses if miss.unaligned.reason == CLAIMED}
        if not losers:
            break
        order = [t for t in order if t.name in losers] + [t for t in order if t.name not in losers]
        attempt = _place(index, mentions, order, rank)
        if len(attempt.misses) >= len(best.misses):
            break
        best = attempt

    spans = sorted(best.spans)
    tags = ["O"] * len(record.tokens)
    entities = []
    for first, last, tag in spans:
        tags[first] = f"B-{tag}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{tag}"
        start, end = record.offsets[first][0], record.offsets[last][1]
        entities.append(Entity(type=tag, start=start, end=end, text=record.text[start:end]))
    misses = sorted([*best.misses, *unknown], key=lambda miss: (miss.rank, miss.position))
    return Alignment(
        entities=tuple(entities),
        tags=tuple(tags),
        unaligned=tuple(miss.unaligned for miss in misses),
    )


def _unknown_type(name: str) -> str:
    return f"type {name!r} is not in the ontology"


@dataclass(frozen=True, slots=True)
class _Miss:
    rank: int
    position: int
    unaligned: Unaligned


@dataclass(frozen=True, slots=True)
class _Placement:
    spans: list[tuple[int, int, str]]  # (first token, last token, dataset tag)
    misses: list[_Miss]


class _Index:
    """The record's text with whitespace removed, and where its tokens start and end in it."""

    __slots__ = ("compact", "ends", "folded", "record", "starts")

    def __init__(self, record: NerRecord) -> None:
        self.record = record
        # before[i]: non-space characters in text[:i], i.e. position i in compact text.
        before = [0] * (len(record.text) + 1)
        kept: list[str] = []
        for i, char in enumerate(record.text):
            if not char.isspace():
                kept.append(char)
            before[i + 1] = len(kept)
        self.compact = "".join(kept)
        self.folded = _folded(self.compact)
        self.starts: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        for token, (start, end) in enumerate(record.offsets):
            if before[start] == before[end]:
                continue  # a blank token can neither start nor end a mention
            self.starts.setdefault(before[start], token)
            self.ends[before[end]] = token

    def find(
        self, needle: str, *, folded: bool, start: int, taken: Sequence[bool]
    ) -> tuple[int, int, int] | bool:
        """The first free whole-token match from `start`: (first, last token, compact end).

        Otherwise True when a whole-token match exists but its tokens are taken, else False.
        """
        haystack = self.folded if folded else self.compact
        saw_taken = False
        pos = haystack.find(needle, start)
        while pos != -1:
            first = self.starts.get(pos)
            last = self.ends.get(pos + len(needle))
            if first is not None and last is not None and last >= first:
                if not any(taken[first : last + 1]):
                    return first, last, pos + len(needle)
                saw_taken = True
            pos = haystack.find(needle, pos + 1)
        return saw_taken


def _place(
    index: _Index,
    mentions: Mapping[str, Sequence[str]],
    order: Sequence[EntityType],
    rank: Mapping[str, int],
) -> _Placement:
    """One greedy pass: each type's mentions in order, types in `order`."""
    taken = [False] * len(index.record.tokens)
    spans: list[tuple[int, int, str]] = []
    misses: list[_Miss] = []
    for entity_type in order:
        cursor = 0
        placed: set[str] = set()
        for position, mention in enumerate(mentions[entity_type.name]):
            compact = "".join(mention.split())
            found: tuple[int, int, int] | bool = False
            if compact:
                found = _search(index, compact, cursor, taken)
            if isinstance(found, tuple):
                first, last, cursor = found
                for i in range(first, last + 1):
                    taken[i] = True
                spans.append((first, last, entity_type.tag))
                _check(index.record, first, last, compact)
                placed.add(compact)
                continue
            reason = CLAIMED if found else (NOT_FOUND if compact else EMPTY)
            if found and compact in placed:
                # A looping model's "Tokyo", "Tokyo", ...: no other type would take it.
                reason = REPEATED
            unaligned = Unaligned(
                type=entity_type.name, mention=mention[:MAX_KEPT_CHARS], reason=reason
            )
            misses.append(_Miss(rank[entity_type.name], position, unaligned))
    return _Placement(spans=spans, misses=misses)


def _search(
    index: _Index, compact: str, cursor: int, taken: Sequence[bool]
) -> tuple[int, int, int] | bool:
    """Exact case, then any case; after the cursor, then (out-of-order lists) from the start."""
    saw_taken = False
    folded = _folded(compact)
    starts = (cursor, 0) if cursor else (0,)
    for start in starts:
        for needle, fold in ((compact, False), (folded, True)):
            found = index.find(needle, folded=fold, start=start, taken=taken)
            if isinstance(found, tuple):
                return found
            saw_taken = saw_taken or found
    return saw_taken


def _folded(text: str) -> str:
    """`text` in lower case, one character for one, so that positions stay the same."""
    if text.isascii():
        return text.lower()
    # Per character: some lower to two ("İ"), and whole-string lowering is context-sensitive
    # (a final sigma), which would make a mention fold unlike the same letters in a sentence.
    return "".join(_fold_char(char) for char in text)


def _fold_char(char: str) -> str:
    lower = char.lower()
    return lower if len(lower) == 1 else char


def _check(record: NerRecord, first: int, last: int, compact: str) -> None:
    """Guard the invariant that a span's text is the source text of whole tokens."""
    start, end = record.offsets[first][0], record.offsets[last][1]
    text = "".join(record.text[start:end].split())
    if text != compact and _folded(text) != _folded(compact):
        raise AssertionError(f"alignment bug: {compact!r} placed on {text!r} in {record.id}")
