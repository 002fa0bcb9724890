"""Confidence from an answer's token log-probabilities (`--confidence logprobs`).

A proposal's confidence is the product of the probabilities of the tokens that overlap its
quoted value in the answer (quotes included: the token that opened the quote decided that a
value starts). An item's is the least of its proposals' and of the probability of every token
in its part of the answer: a confident-looking `]` that closed a list too early lowers it too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from task_types.verification import Proposal
from workers.confidence.scan import StringValue, item_parts, scan
from workers.transports.base import TokenLogprob


@dataclass(frozen=True, slots=True)
class Measured:
    """An item's confidence and each of its proposals', in the proposals' order."""

    item: float
    proposals: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class _Tokens:
    starts: list[int]
    ends: list[int]
    probs: list[float]

    def overlapping(self, start: int, end: int) -> list[float]:
        """The probabilities of the tokens that overlap [start, end)."""
        first = bisect.bisect_right(self.ends, start)
        last = bisect.bisect_left(self.starts, end)
        return self.probs[first:last]


def place_tokens(content: str, tokens: Sequence[TokenLogprob]) -> _Tokens | None:
    """The character span of each token in `content`, or None when the tokens do not spell
    it. Whitespace the tokens hold around the content is allowed: llama.cpp's server strips
    the newline its grammar ends an answer with from the content, not from the tokens."""
    spelled = "".join(t.token for t in tokens)
    lead = spelled.find(content) if content else -1
    if lead < 0 or spelled[:lead].strip() or spelled[lead + len(content) :].strip():
        return None
    starts, ends, probs, at = [], [], [], -lead
    for t in tokens:
        if not t.token:
            continue
        starts.append(at)
        at += len(t.token)
        ends.append(at)
        probs.append(min(1.0, math.exp(t.logprob)))
    return _Tokens(starts, ends, probs)


def logprob_confidence(
    content: str,
    tokens: Sequence[TokenLogprob],
    proposals: Sequence[Sequence[Proposal] | None],
) -> list[Measured | None] | None:
    """Each item's confidence (`proposals[i]`: the proposals of the answer's i-th item, None
    for an item whose answer is unusable, which gets None); None for all when the tokens do
    not spell the content. A proposal whose value is not found in its item's part (a bare
    answer, a label repaired from another spelling) gets the part's least token probability.
    """
    placed = place_tokens(content, tokens)
    if placed is None:
        return None
    parts = item_parts(content, len(proposals))
    strings = scan(content).strings
    out: list[Measured | None] = []
    for part, found in zip(parts, proposals, strict=True):
        if part is None or found is None:
            out.append(None)
            continue
        inside = placed.overlapping(*part)
        least = min(inside, default=1.0)
        values = [s for s in strings if part[0] <= s.start and s.end <= part[1]]
        confidences = tuple(
            least if span is None else math.prod(placed.overlapping(*span))
            for span in locate(found, values)
        )
        out.append(Measured(min((least, *confidences)), confidences))
    return out


def locate(
    proposals: Sequence[Proposal], values: Sequence[StringValue]
) -> list[tuple[int, int] | None]:
    """The span of each proposal's quoted value among `values` (each used once, in order):
    a mention's text under a key naming its label first, then anywhere; a label's name."""
    used: set[int] = set()
    spans: list[tuple[int, int] | None] = []
    for p in proposals:
        wanted = _fold(p.text or p.label)
        label = _fold(p.label)
        candidates = [i for i, v in enumerate(values) if i not in used and _fold(v.value) == wanted]
        if p.text:
            under = [i for i in candidates if _fold(values[i].key) == label]
            candidates = under or candidates
        if not candidates:
            spans.append(None)
            continue
        used.add(candidates[0])
        spans.append((values[candidates[0]].start, values[candidates[0]].end))
    return spans


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()
