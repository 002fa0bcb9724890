"""Put lost shards back in work: those whose worker died (lease ran out), and those that
are nowhere (not done, not leased, not in the queue: lost with Redis data or a purge).

A shard's message that a worker took and never started (the worker died between the two)
stays in Kombu's unacknowledged hash until the broker's visibility timeout, hours later. A
delivery older than twice the lease whose shard holds no lease counts as nowhere: a live
worker starts what it takes within moments. Should it start after all, the shard's lease
lets one copy of the task label it.

One pass runs at a time across the fleet (a Redis lock). Workers run it in a thread of
their main process, and `prelabel run` runs it while it follows a run, so a run recovers
whether or not anybody watches it. A reconciler judges only the runs on its own queue (two
fleets may share one Redis, each with its queue, key and caps): another fleet's queued
message is not in this queue, and must not be taken for a lost one. A recovered shard goes
to the head of the queue.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Iterable
from typing import cast

import redis

from prelabel.connections import client_for
from prelabel.keys import RECONCILER_LOCK, RUNS, RunKeys
from prelabel.queue import enqueue, shard_task_id
from prelabel.settings import Settings
from prelabel.store import RunStore

log = logging.getLogger(__name__)

DEFAULT_QUEUE: str = Settings.model_fields["queue"].default

#: Kombu's Redis transport keeps delivered-but-unacknowledged messages in this hash, and
#: their delivery times (the worker's clock) in this sorted set.
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


def reconcile(
    client: redis.Redis, settings: Settings, suspects: set[tuple[str, int]] | None = None
) -> list[tuple[str, int]]:
    """One pass over every running run; returns the (run, shard) pairs it re-enqueued.

    A shard found nowhere is re-enqueued only if it was already nowhere in the caller's
    previous pass (`suspects`, updated in place): a message is briefly in neither the
    queue nor the unacked hash while a worker takes it, and that must not cause a copy.
    """
    token = secrets.token_hex(8)
    lock_ms = int(settings.reconcile_interval * 2000)
    if not client.set(RECONCILER_LOCK, token, nx=True, px=lock_ms):
        return []  # another reconciler is acting now
    store = RunStore(client)
    requeued: list[tuple[str, int]] = []
    try:
        now = _server_time(client)
        nowhere: dict[str, list[int]] = {}
        for run_id in _running_runs(client, settings.queue):
            expired, unleased = _shard_states(client, store, run_id, now)
            if expired:
                enqueue(settings, run_id, expired, first=True)
                requeued += [(run_id, n) for n in expired]
            if unleased:
                nowhere[run_id] = unleased
        if nowhere:
            queued = _queued_task_ids(client, settings.queue, now - 2 * settings.lease_seconds)
            missing = {
                (run_id, n)
                for run_id, shards in nowhere.items()
                for n in shards
                if shard_task_id(run_id, n) not in queued
            }
            confirmed = missing if suspects is None else missing & suspects
            if suspects is not None:
                suspects.clear()
                suspects.update(missing - confirmed)
            for run_id, n in sorted(confirmed):
                enqueue(settings, run_id, [n], first=True)
                requeued.append((run_id, n))
        elif suspects is not None:
            suspects.clear()
    finally:
        # Release only our own lock (a slow pass may have outlived it).
        if client.get(RECONCILER_LOCK) == token.encode():
            client.delete(RECONCILER_LOCK)
    for run_id, shard in requeued:
        log.warning("run %s: shard %d was lost, re-enqueued", run_id, shard)
    return requeued


def _server_time(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return float(seconds) + micros / 1e6


def _running_runs(client: redis.Redis, queue: str) -> Iterable[str]:
    """Running runs whose shards go to `queue` (a run that names no queue is older than the
    field, and on the default one)."""
    for raw in cast("list[bytes]", client.zrange(RUNS, 0, -1)):
        run_id = raw.decode()
        status, run_queue = client.hmget(RunKeys(run_id).meta, ["status", "queue"])
        if status == b"running" and (run_queue or DEFAULT_QUEUE.encode()) == queue.encode():
            yield run_id


def _shard_states(
    client: redis.Redis, store: RunStore, run_id: str, now: float
) -> tuple[list[int], list[int]]:
    """Shards whose lease ran out (their lease is dropped), and shards with no lease at all."""
    keys = RunKeys(run_id)
    shards = store.config(run_id).shards
    done = {int(m) for m in client.smembers(keys.done)}
    pairs = cast("list[tuple[bytes, float]]", client.zrange(keys.leases, 0, -1, withscores=True))
    leases = {int(m): score for m, score in pairs}
    expired = [n for n, until in leases.items() if until < now and n not in done]
    if expired:
        client.zrem(keys.leases, *map(str, expired))
    # A shard whose batch is not back yet waits on purpose. Imported here for start-up time
    # (`prelabel run` follows runs with this module; the transport brings in openai).
    from workers.transports.batch import waiting_shards

    waiting = waiting_shards(client, run_id)
    unleased = [n for n in range(shards) if n not in done | waiting and n not in leases]
    return expired, unleased


def _queued_task_ids(client: redis.Redis, queue: str, delivered_since: float) -> set[str]:
    """Ids of the tasks waiting in `queue`, or delivered since `delivered_since` (a Unix time)
    and not yet acknowledged."""
    ids: set[str] = set()
    for raw in client.lrange(queue, 0, -1):
        ids.add(_task_id(raw))
    recent = cast("list[bytes]", client.zrangebyscore(UNACKED_INDEX, delivered_since, "+inf"))
    delivered = cast("list[bytes | None]", client.hmget(UNACKED, recent) if recent else [])
    for entry in delivered:
        try:
            message = json.loads(entry or b"")[0]
        except (ValueError, IndexError, TypeError):
            continue
        ids.add(_task_id(json.dumps(message)))
    return ids


def _task_id(raw: bytes | str) -> str:
    try:
        message = json.loads(raw)
        return str(message.get("headers", {}).get("id", ""))
    except (ValueError, AttributeError):
        return ""


class ReconcilerThread(threading.Thread):
    """Runs `reconcile` every `settings.reconcile_interval` seconds until stopped, each pass
    followed by a pass of the batch poller (`workers.batch_poller`)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="prelabel-reconciler", daemon=True)
        self.settings = settings
        self._stop_event = threading.Event()

    def run(self) -> None:
        # Imported here for start-up time: `prelabel run` imports this module for `reconcile`,
        # and the poller brings in the openai client.
        from workers.batch_poller import BatchPoller

        client = client_for(self.settings.redis_url, self.settings.sentinel_master)
        suspects: set[tuple[str, int]] = set()
        poller = BatchPoller(self.settings)
        while not self._stop_event.wait(self.settings.reconcile_interval):
            try:
                reconcile(client, self.settings, suspects)
            except redis.RedisError as exc:  # Redis restarting: try again next time
                log.warning("reconciler: %s", exc)
            # The Batch API's batches, after each pass (a lock of its own).
            try:
                poller.run_pass(client)
            except redis.RedisError as exc:
                log.warning("batch poller: %s", exc)
            except Exception:  # a poller's bug must not stop the reconciler
                log.exception("batch poller: pass failed, trying again next time")
        poller.close()

    def stop(self) -> None:
        self._stop_event.set()
