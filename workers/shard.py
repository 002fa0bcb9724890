"""One shard's life in a worker: attempts, lease, labeling, and the run's end.

A task may run twice for one shard (a redelivery, a reconciler's re-enqueue): committed
items are skipped, and only new results move the counters, so the effect is exactly once.

With the Batch API (`delivery.transport` `batch` or `auto`), a pass labels what the run's
collected batches answered, and submits every request left without an answer as one batch
(`BatchTransport.submit`, idempotent): the shard is not done while any request is pending,
and its task ends (the poller enqueues it again when the batch is back). Such a pass is not a
worker dying: it gives back its start in the shard's attempt count. A submission the
enqueued-token limit refuses, or the API fails, is tried again after `RETRY_SUBMIT_SECONDS`.

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
from prelabel.queue import TASK_NAME, make_app, shard_task_id
from prelabel.settings import Settings, api_key_for
from prelabel.store import RunStatus, RunStore
from workers.context import WorkerContext
from workers.labeler import ShardLabeler
from workers.lease import LeaseHeld, shard_lease
from workers.ratelimit import caps_for
from workers.results import ResultSink
from workers.transports import BatchTransport, RealtimeTransport
from workers.transports.batch import SubmitFailed

log = logging.getLogger(__name__)

#: Seconds before a shard whose batch could not be submitted (the enqueued-token limit, an
#: API error) is tried again.
RETRY_SUBMIT_SECONDS = 30.0


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
    transport = await context.transport_for(config, api_key, shard)
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
    context: WorkerContext,
    config: RunConfig,
    shard: int,
    transport: RealtimeTransport | BatchTransport,
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
        ShardLabeler,
        settings,
        config,
        transport,
        redis,
        store,
        context.refusals,
        context.sampling,
    )
    # What `prelabel status` compares the run's rates against (PRELABEL_CAPS is the workers').
    bucket_caps = caps_for(settings, config)
    caps = {"rpm": bucket_caps.rpm, "tpm": bucket_caps.tpm}
    await redis.hset(keys.meta, "caps", json.dumps(caps))
    try:
        committed = await labeler.label(records)
    except BudgetReached as exc:
        await _stop(store, run_id, "stopped", exc.message)
        return 0
    except RunStopped as exc:
        await _stop(store, run_id, "failed", exc.message)
        return 0
    if isinstance(transport, BatchTransport) and transport.pending:
        await _submit(settings, store, redis, config, shard, transport)
        await redis.hincrby(keys.attempts, str(shard), -1)  # it waits: it did not die
        return committed
    if await labeler.sink.committed([r.id for r in records]) == {r.id for r in records}:
        if isinstance(transport, BatchTransport):
            await transport.forget_answers()
        await _shard_done(store, redis, config, shard)
    return committed


async def _submit(
    settings: Settings,
    store: RunStore,
    redis: aioredis.Redis,
    config: RunConfig,
    shard: int,
    transport: BatchTransport,
) -> None:
    """Submit the pass's pending requests as one batch; when that cannot be done now, the
    shard is tried again later."""
    run_id = config.run_id
    try:
        submitted = await transport.submit()
    except BudgetReached as exc:  # the file's reservation: as a realtime call's would
        await _stop(store, run_id, "stopped", exc.message)
        return
    except RunStopped as exc:
        await _stop(store, run_id, "failed", exc.message)
        return
    except SubmitFailed as exc:
        log.warning("run %s shard %d: %s; tried again later", run_id, shard, exc.message)
        await asyncio.to_thread(_later, settings, run_id, shard, RETRY_SUBMIT_SECONDS)
        return
    if submitted.batch_id is None:
        log.info(
            "run %s shard %d: %d prompt tokens would pass the enqueued-token limit (%s): "
            "the batch waits",
            run_id,
            shard,
            submitted.prompt_tokens,
            transport.limit,
        )
        await asyncio.to_thread(_later, settings, run_id, shard, RETRY_SUBMIT_SECONDS)
        return
    log.info(
        "run %s shard %d: %d requests in batch %s (%s)",
        run_id,
        shard,
        submitted.requests,
        submitted.batch_id,
        submitted.how,
    )


def _later(settings: Settings, run_id: str, shard: int, seconds: float) -> None:
    """Enqueue the shard's task again, to start in `seconds`."""
    app = make_app(settings)
    app.send_task(
        TASK_NAME,
        args=[run_id, shard],
        task_id=shard_task_id(run_id, shard),
        queue=settings.queue,
        countdown=seconds,
    )


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
