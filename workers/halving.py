"""Halving: what a batch's answer leaves unsettled is asked again in halves.

A batch can fail in part (some lines of the answer unusable), or as a whole (an empty
answer, a request too long for the context window): its items are asked again in two
smaller batches, down to single items, which the attempt must always settle (a result for
each, labeled or failed). It knows nothing of what an item or a result is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: One try at a batch: results for the items it settled, and the items it left.
Attempt = Callable[[Sequence[Item]], Awaitable[tuple[list[Result], list[Item]]]]


async def by_halves(batch: Sequence[Item], attempt: Attempt[Item, Result]) -> list[Result]:
    """Results for every item of `batch`: `attempt` first, then halves of what it left, one
    after the other (a half's calls are spent before the next half is asked)."""
    results, left = await attempt(batch)
    if left and len(batch) == 1:
        raise ValueError("an attempt at a single item must settle it")
    half = max(1, len(left) // 2)
    for part in (left[:half], left[half:]):
        if part:
            results.extend(await by_halves(part, attempt))
    return results
