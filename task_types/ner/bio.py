"""BIO tags and the spans they mark: the one reading of IOB1/IOB2 tags that NER's scores,
error analysis and bootstrap counts share."""

from __future__ import annotations

from collections.abc import Sequence

#: A span as `(type, start, end)`, token indices, `end` exclusive.
Span = tuple[str, int, int]


def to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 (or loose BIO) tags as IOB2: an `I-X` that opens an entity becomes `B-X`.

    An `I-X` opens an entity when it follows `O`, the start of the sentence, or a tag of another
    type. IOB2 input comes back unchanged.
    """
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def spans(tags: Sequence[str]) -> set[Span]:
    """The entities of one tag sequence as `(type, start, end)`, read the way `to_iob2` reads.

    Written without seqeval on purpose: it is the independent count that checks seqeval's.
    """
    found: set[Span] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        continues = tag.startswith("I-") and start >= 0 and tag[2:] == kind
        if continues:
            continue
        if start >= 0:
            found.add((kind, start, i))
            start, kind = -1, ""
        if tag != "O":
            start, kind = i, tag[2:]
    return found


__all__ = ["Span", "spans", "to_iob2"]
