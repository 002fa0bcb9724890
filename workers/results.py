"""Commit item results and spend counters from async worker code."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from prelabel.counters import RunCounter
from prelabel.keys import RunKeys
from prelabel.model import ItemResult

_COMMIT = (Path(__file__).parent / "lua" / "commit.lua").read_text()


class ResultSink:
    """Where a shard's results go: committed once each, with the run's counters.

    Commits are grouped: results handed over while a commit is on its way to Redis go
    together in the next one (one script call for all of them), so a busy worker makes one
    round trip per group of results rather than one per item, and an idle one commits at once.
    """

    def __init__(self, client: aioredis.Redis, run_id: str) -> None:
        self.redis = client
        self.keys = RunKeys(run_id)
        self._commit = client.register_script(_COMMIT)
        self._waiting: list[tuple[Sequence[ItemResult], asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def commit(self, results: Sequence[ItemResult]) -> int:
        """Commit `results`, except for items that already have one; returns how many this
        call committed. Returns once they are in Redis."""
        if not results:
            return 0
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((results, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
            self._writer.add_done_callback(self._writer_done)
        return await done

    async def _write(self) -> None:
        group: list[tuple[Sequence[ItemResult], asyncio.Future[int]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                args: list[str | int] = []
                for results, _ in group:
                    for r in results:
                        counter = RunCounter.LABELED if r.status == "labeled" else RunCounter.FAILED
                        args += [r.id, r.model_dump_json(), counter, json.dumps(r.counts())]
                try:
                    flags = iter(
                        await self._commit(keys=[self.keys.results, self.keys.counters], args=args)
                    )
                except Exception as exc:  # each waiting caller hears of it
                    for _, done in group:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for results, done in group:
                    n = sum(int(next(flags)) for _ in results)
                    if not done.done():  # a caller cancelled meanwhile has left
                        done.set_result(n)
                group = []
        finally:  # cancelled (the worker's context closing) mid-commit
            for _, done in group:
                done.cancel()

    def _writer_done(self, writer: asyncio.Task[None]) -> None:
        """A writer cancelled before it took its group: nobody waits forever."""
        if writer is self._writer and writer.cancelled():
            waiting, self._waiting = self._waiting, []
            for _, done in waiting:
                done.cancel()

    async def committed(self, item_ids: list[str]) -> set[str]:
        """Which of `item_ids` already have a result (a redelivered shard skips them)."""
        if not item_ids:
            return set()
        found = await self.redis.hmget(self.keys.results, item_ids)
        return {i for i, raw in zip(item_ids, found, strict=True) if raw is not None}

    async def spend(self, counts: Mapping[str, int]) -> None:
        """Add to the run's spend counters (requests, tokens, 429s, retries...), and note when
        (the run's `active_at`: a one-shot `prelabel status` averages rates up to it)."""
        pipe = self.redis.pipeline(transaction=False)
        for name, amount in counts.items():
            if amount:
                pipe.hincrby(self.keys.counters, name, amount)
        pipe.hset(self.keys.meta, "active_at", time.time())
        await pipe.execute()
