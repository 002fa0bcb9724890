"""Agreement of sampled answers (`--confidence consistency:N`).

The prediction is the vote: a proposal is kept when more than half the samples hold it
(single-label: the plurality label, ties going to the first sample's). A proposal's
confidence is the share of samples holding it; the item's is the least, over every proposal
any sample made, of max(share, 1 - share): a mention half the samples saw is the doubt,
whether it was kept or not (single-label: the winner's share). A sample that could not be
read agrees with nothing, and still counts in the shares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from task_types.verification import Proposal


@dataclass(frozen=True, slots=True)
class Vote:
    """The kept proposals in order of first appearance, their shares, and the item's
    confidence."""

    proposals: tuple[Proposal, ...]
    confidences: tuple[float, ...]
    item: float


def vote(samples: Sequence[Sequence[Proposal] | None], *, single: bool) -> Vote | None:
    """The vote of `samples` (None: a sample that could not be read); None when none could."""
    usable = [s for s in samples if s is not None]
    if not usable:
        return None
    n = len(samples)
    if single:
        return _plurality([s[0] for s in usable if s], n)
    # A mention said twice (two "Paris" in a sentence) is two proposals: counted by rank.
    counts: Counter[tuple[Proposal, int]] = Counter()
    order: list[tuple[Proposal, int]] = []
    for sample in usable:
        seen: Counter[Proposal] = Counter()
        for p in sample:
            key = (p, seen[p])
            seen[p] += 1
            if key not in counts:
                order.append(key)
            counts[key] += 1
    kept = [key for key in order if counts[key] * 2 > n]
    item = min((max(c / n, 1 - c / n) for c in counts.values()), default=1.0)
    return Vote(tuple(p for p, _ in kept), tuple(counts[k] / n for k in kept), item)


def _plurality(firsts: list[Proposal], n: int) -> Vote:
    if not firsts:
        return Vote((), (), 1.0 if n else 0.0)
    counts = Counter(firsts)
    top = max(counts.values())
    # Counter keeps first-seen order: the first tied label is the earliest sample's.
    winner = next(p for p in counts if counts[p] == top)
    share = top / n
    return Vote((winner,), (share,), share)
