"""A run's data in Redis: its configuration, shards, counters and results (layout: keys.py).

The producer writes a run, workers read it and commit results (workers/results.py),
the collector and the CLI read it back. All of it expires once a run is collected.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar, cast

import redis
from pydantic import TypeAdapter
from redis.typing import EncodableT, FieldT

from prelabel.counters import NEW_RUN_COUNTERS, CounterSpec
from prelabel.errors import BrokerError, RunError
from prelabel.keys import RUNS, RunKeys
from prelabel.model import ItemResult, Record, RunConfig

T = TypeVar("T")
R = TypeVar("R", bound=Record)
Res = TypeVar("Res", bound=ItemResult)

RunStatus = Literal["running", "completed", "failed", "cancelled", "stopped"]


class RunStore:
    """Synchronous access to runs, for the producer, the collector and the CLI."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(
        self,
        config: RunConfig,
        shards: Sequence[Sequence[Record]],
        skipped: Sequence[tuple[str, str]] = (),
        *,
        queue: str | None = None,
        out_dir: Path | None = None,
        counters: Sequence[CounterSpec] = (),
    ) -> None:
        """Write a new run: its config, its shards, zeroed counters and the input items
        that could not be read (with their reasons), in one transaction.

        `queue` (the Celery queue its shards go to) and `out_dir` (its `--out`, absolute)
        are kept beside the config: `status` names the queue when no worker takes the run,
        and `collect` writes where `run --out` said. `counters` are the task type's own,
        kept beside the config too: `status` and the exporter show them.
        """
        keys = RunKeys(config.run_id)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(
                keys.meta,
                mapping={
                    "config": config.model_dump_json(),
                    "status": "running",
                    "created_at": config.created_at,
                    "skipped": json.dumps(list(skipped)),
                    "counters": json.dumps([dataclasses.asdict(c) for c in counters]),
                    **({"queue": queue} if queue else {}),
                    **({"out": str(out_dir.resolve())} if out_dir is not None else {}),
                },
            )
            for n, shard in enumerate(shards):
                pipe.set(keys.shard(n), json.dumps([r.model_dump(mode="json") for r in shard]))
            pipe.hset(
                keys.counters,
                mapping=dict.fromkeys((*NEW_RUN_COUNTERS, *(c.name for c in counters)), 0),
            )
            pipe.zadd(RUNS, {config.run_id: config.created_at})
            pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"could not write run {config.run_id} to Redis: {exc}") from None

    def config(self, run_id: str) -> RunConfig:
        raw = self._get(lambda: self.redis.hget(RunKeys(run_id).meta, "config"))
        if raw is None:
            raise RunError(f"run {run_id!r} is not in Redis: check the id with `prelabel runs`")
        return RunConfig.model_validate_json(raw)

    def status(self, run_id: str) -> tuple[RunStatus, str | None]:
        """The run's status and, when it failed, why."""
        raw = self._get(lambda: self.redis.hmget(RunKeys(run_id).meta, ["status", "error"]))
        status, error = raw
        if status is None:
            raise RunError(f"run {run_id!r} is not in Redis: check the id with `prelabel runs`")
        return _text(status), _text(error) if error else None  # type: ignore[return-value]

    def set_status(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        mapping: dict[FieldT, EncodableT] = {"status": status, "updated_at": time.time()}
        if error:
            mapping["error"] = error
        self._get(lambda: self.redis.hset(RunKeys(run_id).meta, mapping=mapping))

    def out_dir(self, run_id: str) -> Path | None:
        """The run's `--out` folder, when it was given one."""
        raw = self._get(lambda: self.redis.hget(RunKeys(run_id).meta, "out"))
        return Path(_text(raw)) if raw else None

    def started_shards(self, run_id: str) -> int:
        """How many shards a worker has started (taken from the queue) at least once."""
        return int(self._get(lambda: self.redis.hlen(RunKeys(run_id).attempts)))

    def set_queue(self, run_id: str, queue: str) -> None:
        """Record the queue the run's shards go to (only that queue's reconcilers judge it)."""
        self._get(lambda: self.redis.hset(RunKeys(run_id).meta, "queue", queue))

    def counters(self, run_id: str) -> dict[str, int]:
        raw = self._get(lambda: self.redis.hgetall(RunKeys(run_id).counters))
        return {_text(k): int(v) for k, v in raw.items()}

    def shard(self, run_id: str, n: int, model: type[R]) -> list[R]:
        """Shard `n`'s records, read as `model` (the run's task type's `record_model`)."""
        raw = self._get(lambda: self.redis.get(RunKeys(run_id).shard(n)))
        if raw is None:
            raise RunError(f"shard {n} of run {run_id!r} is not in Redis")
        return _list_of(model).validate_json(raw)

    def records(self, run_id: str, model: type[R]) -> Iterator[R]:
        """Every record of the run, in shard order."""
        for n in range(self.config(run_id).shards):
            yield from self.shard(run_id, n, model)

    def skipped(self, run_id: str) -> list[tuple[str, str]]:
        """Input items that could not be read, as (where, reason)."""
        raw = self._get(lambda: self.redis.hget(RunKeys(run_id).meta, "skipped"))
        return [(str(w), str(r)) for w, r in json.loads(raw)] if raw else []

    def shards_done(self, run_id: str) -> set[int]:
        return {int(m) for m in self._get(lambda: self.redis.smembers(RunKeys(run_id).done))}

    def reset_attempts(self, run_id: str) -> None:
        self._get(lambda: self.redis.delete(RunKeys(run_id).attempts))

    def run_ids(self) -> list[str]:
        """Runs still in Redis, oldest first (ids of expired runs are dropped on the way)."""
        raw = cast("list[bytes]", self._get(lambda: self.redis.zrange(RUNS, 0, -1)))
        ids = [_text(r) for r in raw]
        alive = [i for i in ids if self.redis.exists(RunKeys(i).meta)]
        gone = set(ids) - set(alive)
        if gone:
            self._get(lambda: self.redis.zrem(RUNS, *gone))
        return alive

    def results(self, run_id: str, model: type[Res]) -> dict[str, Res]:
        """Committed results by item id, read as `model` (the task type's `result_model`)."""
        out: dict[str, Res] = {}
        for item_id, raw in self.redis.hscan_iter(RunKeys(run_id).results, count=1000):
            out[_text(item_id)] = model.model_validate_json(raw)
        return out

    def expire(self, run_id: str, seconds: int) -> None:
        """Let a collected run's data expire."""
        keys = RunKeys(run_id)
        shards = self.config(run_id).shards
        pipe = self.redis.pipeline()
        for key in (
            keys.meta,
            keys.counters,
            keys.results,
            keys.done,
            keys.attempts,
            keys.leases,
            keys.holders,
            keys.budget,
            keys.fewshot,
            keys.batches,
            keys.batch_submits,
            keys.batch_answers,
            keys.batch_tries,
            *map(keys.shard, range(shards)),
        ):
            pipe.expire(key, seconds)
        self._get(pipe.execute)

    @staticmethod
    def _get(call: Callable[[], T]) -> T:
        try:
            return call()
        except redis.RedisError as exc:
            raise BrokerError(f"Redis error: {exc}") from None


@cache
def _list_of(model: type[R]) -> TypeAdapter[list[R]]:
    """A shard as stored: a JSON array of records (parsed and validated in one pass)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
