"""Nothing holds a shard for ever: a lease heartbeat stops when told, a call has a deadline on
its whole answer, and a provider's long retry-after is capped. Real Redis, the real `openai`
client over HTTP to the simulator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from openai import AsyncOpenAI

from prelabel.errors import ItemError, RunStopped
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from tests.test_llm import ACCOUNT, RUN, ask, simulator
from workers.lease import shard_lease
from workers.ratelimit import Caps, TokenBucket
from workers.results import ResultSink
from workers.transports import PauseLimits, RealtimeTransport

#: Long enough that only a hang reaches it.
HANG = 60.0


@asynccontextmanager
async def transport(
    redis_url: str,
    base_url: str,
    *,
    timeout: float,
    attempts: int,
    pauses: PauseLimits | None = None,
) -> AsyncIterator[RealtimeTransport]:
    """A realtime transport for run `RUN` at `base_url`, on its own clients, closed after."""
    client = aioredis.Redis.from_url(redis_url)
    llm = AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=timeout)
    config = RunConfig(run_id=RUN, model="gpt-4o-mini", base_url=base_url, max_tokens=64)
    bucket = TokenBucket(client, ACCOUNT, Caps(None, None))
    try:
        sink = ResultSink(client, RUN)
        yield RealtimeTransport(llm, bucket, sink, config, attempts, pauses or PauseLimits())
    finally:
        await llm.close()
        await client.aclose()


class CancelSwallowingRedis(aioredis.Redis):
    """A real client whose scripts, once `stall` is set, hang until cancelled, and then raise
    redis-py's TimeoutError instead of CancelledError: what redis-py was seen doing when a
    cancellation landed mid-command."""

    stall = False

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        if self.stall:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise redis.TimeoutError("Timeout reading from socket") from None
        return await super().evalsha(*args, **kwargs)


def test_a_heartbeat_that_swallows_its_cancellation_does_not_hold_the_shard(
    redis_url: str, redis_client: redis.Redis
) -> None:
    async def scenario() -> None:
        client = CancelSwallowingRedis.from_url(redis_url)
        try:
            async with shard_lease(client, "r1", 0, 0.6):
                client.stall = True  # every renewal from now on hangs
                await asyncio.sleep(0.5)  # a renewal is in flight
        finally:
            await client.aclose()

    # Before: leaving the lease awaited the heartbeat, which took its cancellation for a
    # Redis hiccup and kept looping: the shard task never ended (nor could it be cancelled,
    # hence a thread of its own here).
    thread = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive(), "the shard's lease was never left"


def test_a_dripped_answer_is_abandoned_at_the_call_deadline(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """httpx's timeout bounds each read; a body sent one byte a second never trips it."""

    async def scenario(base_url: str) -> None:
        async with transport(redis_url, base_url, timeout=2, attempts=1) as caller:
            with pytest.raises(ItemError, match="no whole answer within 2s"):
                await ask(caller)

    with simulator(drip_rate=1.0, drip_seconds=1.0) as sim:
        asyncio.run(asyncio.wait_for(scenario(sim.base_url), HANG))
    # The abandoned call counts as a request: it may have been paid for.
    assert int(redis_client.hget(RunKeys(RUN).counters, "requests") or 0) == 1


def test_an_hour_long_retry_after_is_capped_and_a_run_paused_too_long_stops(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """One request a minute at the provider, and every 429 asks for an hour."""

    async def scenario(base_url: str) -> None:
        limits = PauseLimits(longest=0.5, in_all=1.2)
        async with transport(redis_url, base_url, timeout=10, attempts=10, pauses=limits) as a:
            await ask(a)  # the minute's one
        async with transport(redis_url, base_url, timeout=10, attempts=10, pauses=limits) as b:
            with pytest.raises(RunStopped, match="paused 2 s in all, over PRELABEL_MAX_PAUSED"):
                await ask(b)

    with simulator(rpm=1, retry_after=3600) as sim:
        asyncio.run(asyncio.wait_for(scenario(sim.base_url), HANG))
        assert sim.stats.rate_limited == 3  # paused 0.5 s after each, not an hour
    counters = redis_client.hgetall(RunKeys(RUN).counters)
    assert int(counters[b"paused_ms"]) >= 1200
    assert int(counters[b"pause_asked_ms"]) == 3_600_000


def test_status_says_a_run_is_paused() -> None:
    from prelabel.monitor import RunView, Sample, snapshot
    from prelabel.status import one_line, pause_text

    config = RunConfig(run_id="r", model="m", base_url="http://x/v1", total=10)
    counters = {"paused_ms": 90_000, "pause_until_ms": 1_000_030_000, "pause_asked_ms": 3_600_000}
    view = RunView(config, "running", None, Sample(at=1_000_000, counters=counters), None)
    snap = snapshot(view)
    assert (
        pause_text(snap)
        == "now, 30s left (retry-after 1h 00m) · 1m 30s in all by the endpoint's 429s"
    )
    assert "paused_s=90" in one_line(snap)
