"""The halving helper, on its own: task-agnostic, it asks again in halves what an attempt left."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from workers.halving import by_halves


def run(batch: list[int], unsettled: set[int]) -> tuple[list[str], list[list[int]]]:
    """Results and the batches tried, for an attempt that cannot settle `unsettled` items
    in a batch of more than one."""
    tried: list[list[int]] = []

    async def attempt(part: Sequence[int]) -> tuple[list[str], list[int]]:
        tried.append(list(part))
        if len(part) == 1:
            return [f"r{part[0]}"], []
        return [f"r{i}" for i in part if i not in unsettled], [i for i in part if i in unsettled]

    return asyncio.run(by_halves(batch, attempt)), tried


@pytest.mark.parametrize(
    ("unsettled", "tried"),
    [
        (set(), [[0, 1, 2, 3]]),
        ({2}, [[0, 1, 2, 3], [2]]),
        ({1, 2}, [[0, 1, 2, 3], [1], [2]]),
        ({1, 2, 3}, [[0, 1, 2, 3], [1], [2, 3], [2], [3]]),
        ({0, 1, 2, 3}, [[0, 1, 2, 3], [0, 1], [0], [1], [2, 3], [2], [3]]),
    ],
)
def test_what_an_attempt_leaves_is_asked_again_in_halves(
    unsettled: set[int], tried: list[list[int]]
) -> None:
    results, seen = run([0, 1, 2, 3], unsettled)
    assert sorted(results) == ["r0", "r1", "r2", "r3"]
    assert seen == tried


def test_an_attempt_must_settle_a_single_item() -> None:
    async def attempt(part: Sequence[int]) -> tuple[list[str], list[int]]:
        return [], list(part)

    with pytest.raises(ValueError, match="single item"):
        asyncio.run(by_halves([0], attempt))
