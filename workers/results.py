"""Commit item results and spend counters from async worker code."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from prelabel.keys import RunKeys
from prelabel.model import ItemResult

_COMMIT = (Path(__file__).parent / "lua" / "commit.lua").read_text()


class ResultSink:
    """Where a shard's results go: committed once each, with the run's counters."""

    def __init__(self, client: aioredis.Redis, run_id: str) -> None:
        self.redis = client
        self.keys = RunKeys(run_id)
        self._commit = client.register_script(_COMMIT)

    async def commit(self, result: ItemResult) -> bool:
        """Commit `result` unless the item already has one; True when this call committed."""
        field = "labeled" if result.status == "labeled" else "failed"
        done = await self._commit(
            keys=[self.keys.results, self.keys.counters],
            args=[result.id, result.model_dump_json(), field, len(result.unaligned)],
        )
        return bool(done)

    async def committed(self, item_ids: list[str]) -> set[str]:
        """Which of `item_ids` already have a result (a redelivered shard skips them)."""
        if not item_ids:
            return set()
        found = await self.redis.hmget(self.keys.results, item_ids)
        return {i for i, raw in zip(item_ids, found, strict=True) if raw is not None}

    async def spend(self, **amounts: int) -> None:
        """Add to the run's spend counters (requests, tokens, 429s, retries)."""
        pipe = self.redis.pipeline(transaction=False)
        for name, amount in amounts.items():
            if amount:
                pipe.hincrby(self.keys.counters, name, amount)
        await pipe.execute()
