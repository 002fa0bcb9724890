"""One shard's life in a worker: attempts, lease, labeling, and the run's end.

A task may run twice for one shard (a redelivery, a reconciler's re-enqueue): committed
items are skipped, and only new results move the counters, so the effect is exactly once.
"""

from __future__ import annotations

import json
import logging

import redis.asyncio as aioredis
from openai import AsyncOpenAI

from prelabel.errors import BudgetReached, ConfigError, RunStopped
from prelabel.keys import RunKeys
from prelabel.model import ItemResult, RunConfig
from prelabel.settings import Settings, api_key_for
from prelabel.store import RunStatus, RunStore
from workers.context import WorkerContext
from workers.labeler import ShardLabeler
from workers.lease import LeaseHeld, shard_lease
from workers.results import ResultSink

log = logging.getLogger(__name__)


async def label_shard(context: WorkerContext, run_id: str, shard: int) -> int:
    """Label shard `shard` of run `run_id`; returns the number of items committed."""
    settings, store = context.settings, context.store
    status, _ = store.status(run_id)
    if status != "running":
        log.info("run %s is %s: shard %d skipped", run_id, status, shard)
        return 0
    config = store.config(run_id)
    try:
        api_key = api_key_for(settings, config.base_url)
    except ConfigError as exc:
        store.set_status(run_id, "failed", exc.message)
        log.error("run %s stopped: %s", run_id, exc.message)
        return 0
    client = context.client(config.base_url, api_key)
    redis = context.redis
    if await redis.sismember(RunKeys(run_id).done, str(shard)):
        return 0
    try:
        async with shard_lease(redis, run_id, shard, settings.lease_seconds):
            return await _label(settings, store, config, shard, client, redis)
    except LeaseHeld as exc:
        log.info("%s: this copy of its task leaves it", exc)
        return 0


async def _label(
    settings: Settings,
    store: RunStore,
    config: RunConfig,
    shard: int,
    client: AsyncOpenAI,
    redis: aioredis.Redis,
) -> int:
    run_id = config.run_id
    keys = RunKeys(run_id)
    records = store.shard(run_id, shard)
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
    labeler = ShardLabeler(settings, config, client, redis, store)
    # What `prelabel status` compares the run's rates against (PRELABEL_CAPS is the workers').
    caps = {"rpm": labeler.caps.rpm, "tpm": labeler.caps.tpm}
    await redis.hset(keys.meta, "caps", json.dumps(caps))
    try:
        committed = await labeler.label(records)
    except BudgetReached as exc:
        _stop(store, run_id, "stopped", exc.message)
        return 0
    except RunStopped as exc:
        _stop(store, run_id, "failed", exc.message)
        return 0
    if await labeler.sink.committed([r.id for r in records]) == {r.id for r in records}:
        await _shard_done(store, redis, config, shard)
    return committed


def _stop(store: RunStore, run_id: str, status: RunStatus, reason: str) -> None:
    if store.status(run_id)[0] == "running":
        store.set_status(run_id, status, reason)
        log.error("run %s %s: %s", run_id, status, reason)


async def _fail_rest(
    redis: aioredis.Redis, config: RunConfig, item_ids: list[str], reason: str
) -> int:
    sink = ResultSink(redis, config.run_id)
    done = await sink.committed(item_ids)
    failed = [
        ItemResult(
            id=item_id,
            status="failed",
            error=reason,
            model=config.model,
            prompt_version=config.prompt_version,
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
    if await redis.scard(keys.done) >= config.shards and store.status(config.run_id)[0] == (
        "running"
    ):
        store.set_status(config.run_id, "completed")
