"""A shard's lease: one task holds it, renewed by a heartbeat, while it labels the shard.

If the worker dies, the heartbeat stops, the lease runs out, and the reconciler puts the
shard back in the queue within about `lease_seconds + reconcile_interval`, instead of
after the broker's visibility timeout. A copy of the shard's task that starts while the
lease is held (a re-enqueue, a redelivery) finds it taken and leaves the shard alone, so no
item is sent to the LLM twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import redis
import redis.asyncio as aioredis

from prelabel.keys import RunKeys

log = logging.getLogger(__name__)
_SCRIPT = (Path(__file__).parent / "lua" / "lease.lua").read_text()


class LeaseHeld(Exception):
    """Another task holds the shard's lease: it is labeling the shard now."""


@contextlib.asynccontextmanager
async def shard_lease(
    client: aioredis.Redis, run_id: str, shard: int, seconds: float
) -> AsyncIterator[None]:
    """Hold the lease on `shard` while the body runs (LeaseHeld if another task holds it)."""
    keys = RunKeys(run_id)
    lease = client.register_script(_SCRIPT)
    token = secrets.token_hex(8)
    where = [keys.leases, keys.holders]
    if not await lease(keys=where, args=[shard, seconds, token]):
        raise LeaseHeld(f"shard {shard} of run {run_id} is being labeled by another task")

    stop = asyncio.Event()

    async def heartbeat() -> None:
        # The stop event, not cancellation, ends the loop: redis-py may turn a cancellation
        # that lands mid-command into its own TimeoutError (a RedisError), which a loop that
        # waits to be cancelled would take for a Redis hiccup and outlive. Each renewal is
        # bounded, so the loop notices the event within a third of the lease.
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds / 3)
                return
            try:
                renewed = await asyncio.wait_for(
                    lease(keys=where, args=[shard, seconds, token]), seconds / 3
                )
            except (redis.RedisError, TimeoutError) as exc:  # Redis restarting: try again
                log.warning("lease heartbeat for shard %d failed: %r", shard, exc)
                continue
            if not renewed:
                # This task stalled past its lease and a copy took the shard over. Both
                # commit each item at most once; this one keeps going rather than leave
                # its calls in flight unrecorded.
                log.warning("shard %d: lease taken over by another task", shard)

    beat = asyncio.create_task(heartbeat(), name=f"lease-heartbeat-{run_id}-{shard}")
    try:
        yield
    finally:
        stop.set()
        # Leaving the lease never waits on the heartbeat for longer than one renewal: the
        # shard's end (and the worker's next task) must not depend on it.
        await asyncio.wait({beat}, timeout=seconds / 3)
        if not beat.done():
            beat.cancel()
            beat.add_done_callback(_retrieve)
        with contextlib.suppress(redis.RedisError, TimeoutError):
            await asyncio.wait_for(lease(keys=where, args=[shard, 0, token]), seconds / 3)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Read an abandoned heartbeat's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
