"""The BIO tag scheme, in one place: reading entity spans from tags, and IOB1 to IOB2.

Two readings, both in use:
- strict (`checked_iob2`, `mention_spans`), for gold tags read from a dataset: a tag that is
  not `O`, `B-X` or `I-X` raises `TagError`, naming the tag and its token;
- lenient (`to_iob2`, `spans`), for scoring: every tag that is not `O` takes part, so a
  malformed prediction still counts against the model rather than stopping the report.
On valid tags they agree. An `I-X` after `O`, the sentence's start or another type opens an
entity in both (IOB1, as in the original CoNLL-2003 release).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

OUTSIDE = "O"

#: An entity as `(type, first token, end token exclusive)`.
Span = tuple[str, int, int]


class TagError(ValueError):
    """A tag sequence breaks the IOB scheme; the message says which tag and where."""


def types_of(tags: Iterable[str] | None) -> frozenset[str]:
    """Entity types named by IOB tags; anything that is not `B-X`/`I-X` names none."""
    if tags is None:
        return frozenset()
    return frozenset(t[2:] for t in tags if t[:2] in ("B-", "I-") and len(t) > 2)


def checked_iob2(tags: Sequence[str], allowed: frozenset[str] | None = None) -> tuple[str, ...]:
    """Check IOB tags and return them in IOB2, where every entity starts with `B-`.

    IOB1 starts an entity with `I-` and uses `B-` only between two adjacent entities of one
    type; an `I-X` that follows `O` or another type therefore becomes `B-X`. IOB2 input comes
    back unchanged. Raises `TagError` for a tag that is not `O`, `B-X` or `I-X`, or whose type
    is not in `allowed` when that is given.
    """
    out: list[str] = []
    previous_type: str | None = None
    for i, tag in enumerate(tags):
        if tag == OUTSIDE:
            out.append(tag)
            previous_type = None
            continue
        prefix, kind = _parts(tag, i)
        if allowed is not None and kind not in allowed:
            raise TagError(
                f"tag {tag!r} at token {i} has type {kind!r}, not one of the entity types "
                f"{', '.join(sorted(allowed))}"
            )
        out.append(f"B-{kind}" if prefix == "I" and previous_type != kind else tag)
        previous_type = kind
    return tuple(out)


def mention_spans(tags: Sequence[str]) -> list[Span]:
    """The entities of valid IOB tags, in order; raises `TagError` on any other tag."""
    spans: list[Span] = []
    kind: str | None = None
    start = 0
    for i, tag in enumerate(tags):
        if tag == OUTSIDE:
            if kind is not None:
                spans.append((kind, start, i))
                kind = None
            continue
        prefix, typ = _parts(tag, i)
        if prefix == "B" or typ != kind:
            if kind is not None:
                spans.append((kind, start, i))
            kind, start = typ, i
    if kind is not None:
        spans.append((kind, start, len(tags)))
    return spans


def to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 (or loose BIO) tags as IOB2: an `I-X` that opens an entity becomes `B-X`.

    An `I-X` opens an entity when it follows `O`, the start of the sentence, or a tag of another
    type. IOB2 input comes back unchanged. Nothing is checked (see `checked_iob2`).
    """
    out: list[str] = []
    prev = OUTSIDE
    for tag in tags:
        if tag.startswith("I-") and (prev == OUTSIDE or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def spans(tags: Sequence[str]) -> set[Span]:
    """The entities of one tag sequence, read the way `to_iob2` reads (nothing is checked).

    Written without seqeval on purpose: it is the independent count that checks seqeval's.
    """
    found: set[Span] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, OUTSIDE]):
        if tag.startswith("I-") and start >= 0 and tag[2:] == kind:
            continue
        if start >= 0:
            found.add((kind, start, i))
            start, kind = -1, ""
        if tag != OUTSIDE:
            start, kind = i, tag[2:]
    return found


def _parts(tag: str, i: int) -> tuple[str, str]:
    prefix, sep, kind = tag.partition("-")
    if prefix not in ("B", "I") or not sep or not kind:
        raise TagError(f"unknown tag {tag!r} at token {i} (expected O, B-TYPE or I-TYPE)")
    return prefix, kind
