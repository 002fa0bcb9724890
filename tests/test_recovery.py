"""Recovery pieces on a real Redis: the shard lease is held by one task at a time, and the
reconciler finds a shard whose message a dead worker took without starting it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
import redis.asyncio as aioredis

from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.queue import shard_task_id
from prelabel.settings import load_settings
from prelabel.store import RunStore
from producer.runs import start_run
from task_types.ner.model import NerRecord
from workers.lease import LeaseHeld, shard_lease
from workers.reconciler import UNACKED, UNACKED_INDEX, reconcile

QUEUE = "prelabel-test-recovery"


def test_one_task_holds_a_shard_lease_at_a_time(redis_url: str, redis_client: redis.Redis) -> None:
    keys = RunKeys("r1")

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with shard_lease(client, "r1", 3, 30):
                assert await client.zscore(keys.leases, "3") is not None
                with pytest.raises(LeaseHeld):
                    async with shard_lease(client, "r1", 3, 30):
                        pytest.fail("a second task entered a held lease")
                # The copy that was refused did not release the holder's lease.
                assert await client.zscore(keys.leases, "3") is not None
                async with shard_lease(client, "r1", 4, 30):  # another shard is free
                    pass
            # Released at the end: the next task takes it.
            assert await client.zscore(keys.leases, "3") is None
            async with shard_lease(client, "r1", 3, 30):
                pass
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_run_out_lease_can_be_taken_over(redis_url: str, redis_client: redis.Redis) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with shard_lease(client, "r1", 0, 0.2):
                await client.zadd(RunKeys("r1").leases, {"0": 0})  # as if it ran out long ago
                async with shard_lease(client, "r1", 0, 30):
                    pass
        finally:
            await client.aclose()

    asyncio.run(scenario())


@pytest.fixture
def running(redis_url: str, redis_client: redis.Redis) -> tuple[RunConfig, redis.Redis]:
    """A running run of three shards, its messages in the queue `QUEUE`."""
    records = [NerRecord.from_tokens(f"i{n}", ["Paris", str(n)]) for n in range(3)]
    config = RunConfig(
        run_id="recovery-1", model="m", base_url="http://127.0.0.1:1/v1", shard_size=1, shards=3
    )
    settings = load_settings(REDIS_URL=redis_url, queue=QUEUE, lease_seconds=5)
    start_run(settings, RunStore(redis_client), records, config)
    return config, redis_client


def _take(client: redis.Redis, run_id: str, shard: int, delivered_at: float) -> None:
    """Move the shard's message from the queue to the unacked hash, as a worker taking it."""
    for raw in client.lrange(QUEUE, 0, -1):
        if json.loads(raw)["headers"]["id"] == shard_task_id(run_id, shard):
            client.lrem(QUEUE, 1, raw)
            tag = f"tag-{shard}"
            client.hset(UNACKED, tag, json.dumps([json.loads(raw), "", QUEUE]))
            client.zadd(UNACKED_INDEX, {tag: delivered_at})
            return
    raise AssertionError(f"shard {shard} is not in the queue")


def _queued_shards(client: redis.Redis) -> list[int]:
    return sorted(
        int(json.loads(raw)["headers"]["id"].rsplit(":", 1)[1])
        for raw in client.lrange(QUEUE, 0, -1)
    )


def test_a_message_taken_by_a_dead_worker_is_re_enqueued(
    running: tuple[RunConfig, redis.Redis], redis_url: str
) -> None:
    config, client = running
    settings = load_settings(REDIS_URL=redis_url, queue=QUEUE, lease_seconds=5)
    now = time.time()
    _take(client, config.run_id, 0, now - 60)  # taken a minute ago, never started
    _take(client, config.run_id, 1, now)  # just taken: its worker is about to start it
    suspects: set[tuple[str, int]] = set()
    assert reconcile(client, settings, suspects) == []  # first sighting: only a suspect
    assert reconcile(client, settings, suspects) == [(config.run_id, 0)]
    assert _queued_shards(client) == [0, 2]


def test_a_taken_shard_under_lease_is_left_alone(
    running: tuple[RunConfig, redis.Redis], redis_url: str
) -> None:
    config, client = running
    settings = load_settings(REDIS_URL=redis_url, queue=QUEUE, lease_seconds=5)
    _take(client, config.run_id, 0, time.time() - 60)  # a long shard, still being labeled
    client.zadd(RunKeys(config.run_id).leases, {"0": time.time() + 5})
    suspects: set[tuple[str, int]] = set()
    assert reconcile(client, settings, suspects) == []
    assert reconcile(client, settings, suspects) == []


def test_a_reconciler_never_judges_another_queues_runs(
    running: tuple[RunConfig, redis.Redis], redis_url: str
) -> None:
    """Two fleets on one Redis: fleet B's reconciler does not take A's queued shards for lost."""
    config, client = running
    other = load_settings(REDIS_URL=redis_url, queue="prelabel-test-other-fleet", lease_seconds=5)
    suspects: set[tuple[str, int]] = set()
    for _ in range(3):
        assert reconcile(client, other, suspects) == []
    assert client.llen("prelabel-test-other-fleet") == 0
    assert _queued_shards(client) == [0, 1, 2]
    # The run's own fleet still recovers what it loses.
    own = load_settings(REDIS_URL=redis_url, queue=QUEUE, lease_seconds=5)
    _take(client, config.run_id, 1, time.time() - 60)
    assert reconcile(client, own, suspects) == []
    assert reconcile(client, own, suspects) == [(config.run_id, 1)]


def test_a_recovered_shard_is_the_next_one_taken(
    running: tuple[RunConfig, redis.Redis], redis_url: str
) -> None:
    config, client = running
    settings = load_settings(REDIS_URL=redis_url, queue=QUEUE, lease_seconds=5)
    _take(client, config.run_id, 2, time.time() - 60)  # the newest shard, its worker died
    client.zadd(RunKeys(config.run_id).leases, {"2": time.time() - 1})  # its lease ran out
    client.hset(RunKeys(config.run_id).holders, "2", "dead-worker")
    assert reconcile(client, settings) == [(config.run_id, 2)]
    # Workers take from the right end of the list (BRPOP): shard 2 first, then 0 and 1.
    taken_order = [
        json.loads(raw)["headers"]["id"] for raw in reversed(client.lrange(QUEUE, 0, -1))
    ]
    assert taken_order == [shard_task_id(config.run_id, n) for n in (2, 0, 1)]
