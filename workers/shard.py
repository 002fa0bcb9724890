"""One shard's life in a worker: attempts, lease, labeling, and the run's end.

A task may run twice for one shard (a redelivery, a reconciler's re-enqueue): committed
items are skipped, and only new results move the counters, so the effect is exactly once.

The run store is synchronous: its calls go to a thread (`asyncio.to_thread`), so that they
never hold up the event loop, and the calls in flight on it, of the shard they serve.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis.asyncio as aioredis

import task_types
from prelabel.errors import BudgetReached, ConfigError, RunStopped
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.settings import api_key_for
from prelabel.store import RunStatus, RunStore
from workers.context import WorkerContext
from workers.labeler import ShardLabeler
from workers.lease import LeaseHeld, shard_lease
from workers.results import ResultSink
from workers.transports import RealtimeTransport

log = logging.getLogger(__name__)


async def label_shard(context: WorkerContext, run_id: str, shard: int) -> int:
    """Label shard `shard` of run `run_id`; returns the number of items committed."""
    settings, store = context.settings, context.store
    status, _ = await asyncio.to_thread(store.status, run_id)
    if status != "running":
        log.info("run %s is %s: shard %d skipped", run_id, status, shard)
        return 0
    config = await asyncio.to_thread(store.config, run_id)
    try:
        api_key = api_key_for(settings, config.endpoint.base_url)
    except ConfigError as exc:
        await asyncio.to_thread(store.set_status, run_id, "failed", exc.message)
        log.error("run %s stopped: %s", run_id, exc.message)
        return 0
    transport = context.transport(config, api_key)
    redis = context.redis
    if await redis.sismember(RunKeys(run_id).done, str(shard)):
        return 0
    try:
        async with shard_lease(redis, run_id, shard, settings.lease_seconds):
            return await _label(context, config, shard, transport)
    except LeaseHeld as exc:
        log.info("%s: this copy of its task leaves it", exc)
        return 0


async def _label(
    context: WorkerContext, config: RunConfig, shard: int, transport: RealtimeTransport
) -> int:
    settings, store, redis = context.settings, context.store, context.redis
    run_id = config.run_id
    keys = RunKeys(run_id)
    records = await asyncio.to_thread(
        store.shard, run_id, shard, task_types.get(config.labeling.task).record_model
    )
    attempt = int(await redis.hincrby(keys.attempts, str(shard), 1))
    if attempt > settings.max_shard_attempts:
        # It started that often without finishing: something in it kills its worker.
        committed = await _fail_rest(
            redis,
            config,
            [r.id for r in records],
            f"shard {shard} was started {attempt - 1} times without finishing (its worker "
            "died each time): its unlabeled items are failed, see the worker logs",
        )
        await _shard_done(store, redis, config, shard)
        return committed
    # Made in a thread: a few-shot run's example pool is read from the store and fitted on
    # the way (once per process and run), which must not hold up the lease's heartbeat.
    labeler = await asyncio.to_thread(
        ShardLabeler, settings, config, transport, redis, store, context.refusals
    )
    # What `prelabel status` compares the run's rates against (PRELABEL_CAPS is the workers').
    caps = {"rpm": transport.bucket.caps.rpm, "tpm": transport.bucket.caps.tpm}
    await redis.hset(keys.meta, "caps", json.dumps(caps))
    try:
        committed = await labeler.label(records)
    except BudgetReached as exc:
        await _stop(store, run_id, "stopped", exc.message)
        return 0
    except RunStopped as exc:
        await _stop(store, run_id, "failed", exc.message)
        return 0
    if await labeler.sink.committed([r.id for r in records]) == {r.id for r in records}:
        await _shard_done(store, redis, config, shard)
    return committed


async def _stop(store: RunStore, run_id: str, status: RunStatus, reason: str) -> None:
    if (await asyncio.to_thread(store.status, run_id))[0] == "running":
        await asyncio.to_thread(store.set_status, run_id, status, reason)
        log.error("run %s %s: %s", run_id, status, reason)


async def _fail_rest(
    redis: aioredis.Redis, config: RunConfig, item_ids: list[str], reason: str
) -> int:
    sink = ResultSink(redis, config.run_id)
    done = await sink.committed(item_ids)
    failed = [
        task_types.get(config.labeling.task).result_model(
            id=item_id,
            status="failed",
            error=reason,
            model=config.endpoint.model,
            prompt_version=config.labeling.prompt_version,
        )
        for item_id in item_ids
        if item_id not in done
    ]
    return await sink.commit(failed)


async def _shard_done(
    store: RunStore, redis: aioredis.Redis, config: RunConfig, shard: int
) -> None:
    """Mark the shard done; the worker that finishes the last shard completes the run."""
    keys = RunKeys(config.run_id)
    await redis.sadd(keys.done, str(shard))
    if await redis.scard(keys.done) < config.shards:
        return
    if (await asyncio.to_thread(store.status, config.run_id))[0] == "running":
        await asyncio.to_thread(store.set_status, config.run_id, "completed")
