"""A shard's lease: a worker holds it, renewed by a heartbeat, while it labels the shard.

If the worker dies, the heartbeat stops, the lease runs out, and the reconciler puts the
shard back in the queue within about `lease_seconds + reconcile_interval`, instead of
after the broker's visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import redis
import redis.asyncio as aioredis

from prelabel.keys import RunKeys

log = logging.getLogger(__name__)
_SCRIPT = (Path(__file__).parent / "lua" / "lease.lua").read_text()


@contextlib.asynccontextmanager
async def shard_lease(
    client: aioredis.Redis, run_id: str, shard: int, seconds: float
) -> AsyncIterator[None]:
    """Hold the lease on `shard` while the body runs; release it when the body ends."""
    keys = RunKeys(run_id)
    renew = client.register_script(_SCRIPT)
    await renew(keys=[keys.leases], args=[shard, seconds])

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                await renew(keys=[keys.leases], args=[shard, seconds])
            except redis.RedisError as exc:  # Redis restarting: keep labeling, try again
                log.warning("lease heartbeat for shard %d failed: %s", shard, exc)

    beat = asyncio.create_task(heartbeat())
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        with contextlib.suppress(redis.RedisError):
            await client.zrem(keys.leases, shard)
