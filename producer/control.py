"""Control a run after it started: resume it, cancel it, collect it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import task_types
from collector import Collected, collect
from prelabel.counters import RunCounter
from prelabel.errors import RunError
from prelabel.files import write_atomic
from prelabel.keys import RunKeys
from prelabel.queue import enqueue
from prelabel.settings import Settings
from prelabel.store import RunStore

_FORGET_FAILED = (Path(__file__).parent / "lua" / "forget_failed.lua").read_text()


def resume(settings: Settings, store: RunStore, run_id: str) -> list[int]:
    """Re-enqueue every shard of `run_id` that is not done; returns those shards.

    Committed items are skipped by the workers, so a resume pays only for what is left.
    A stopped, failed or cancelled run is set running again, with fresh attempt counts.
    """
    config = store.config(run_id)
    status, _ = store.status(run_id)
    if status == "completed":
        raise RunError(f"run {run_id} is already completed: collect it with `prelabel collect`")
    todo = [n for n in range(config.shards) if n not in store.shards_done(run_id)]
    store.reset_attempts(run_id)
    # The run is on the resumer's queue from now on: that fleet's reconcilers look after it.
    store.set_queue(run_id, settings.queue)
    store.set_status(run_id, "running")
    enqueue(settings, run_id, todo)
    return todo


def retry_failed(settings: Settings, store: RunStore, run_id: str) -> tuple[int, list[int]]:
    """Label a run's failed items again: same run, same item ids, the rest left as it is.

    Their results are forgotten (and the `failed` counter lowered to match), their shards are
    re-enqueued, and the run is running again until they are done: `prelabel collect` then
    writes the run's files anew, in the same folder. Idempotent: with no failed item it
    changes nothing. Returns how many items, and which shards, it took up again.
    """
    config = store.config(run_id)
    task = task_types.get(config.labeling.task)
    status, _ = store.status(run_id)
    if status == "running":
        raise RunError(
            f"run {run_id} is still running: wait for it to end (or `prelabel cancel` it) "
            "before relabeling its failed items"
        )
    failed = [
        item_id
        for item_id, r in store.results(run_id, task.result_model).items()
        if r.status == "failed"
    ]
    if not failed:
        return 0, []
    keys = RunKeys(run_id)
    forget = store.redis.register_script(_FORGET_FAILED)
    forgotten = int(forget(keys=[keys.results, keys.counters], args=failed))
    wanted = set(failed)
    shards = [
        n
        for n in range(config.shards)
        if any(record.id in wanted for record in store.shard(run_id, n, task.record_model))
    ]
    if shards:
        store.redis.srem(keys.done, *map(str, shards))
    store.reset_attempts(run_id)
    store.set_queue(run_id, settings.queue)
    store.set_status(run_id, "running")
    enqueue(settings, run_id, shards)
    return forgotten, shards


def cancel(store: RunStore, run_id: str) -> None:
    """Stop a run: workers finish the calls in flight, commit them, and take no new ones."""
    status, _ = store.status(run_id)
    if status != "running":
        raise RunError(f"run {run_id} is {status}, not running: nothing to cancel")
    store.set_status(run_id, "cancelled", "cancelled by the user")


def collect_run(
    settings: Settings, store: RunStore, run_id: str, out_dir: Path, *, partial: bool = False
) -> Collected:
    """Collect a run into `out_dir`; a run still in work needs `partial`.

    Once collected, the run's data expires after `settings.run_ttl` seconds.
    """
    config = store.config(run_id)
    counters = store.counters(run_id)
    done = counters.get(RunCounter.LABELED, 0) + counters.get(RunCounter.FAILED, 0)
    status, _ = store.status(run_id)
    if done < config.total and status == "running" and not partial:
        raise RunError(
            f"run {run_id} is still in work ({done} of {config.total} items): wait for it, "
            "or pass --partial to collect what is done so far"
        )
    collected = collect(store, run_id, out_dir, wall_seconds=_wall(store, run_id))
    skipped = store.skipped(run_id)
    if skipped:
        write_atomic(
            out_dir / "skipped.jsonl",
            (
                json.dumps({"item": where, "reason": reason}, ensure_ascii=False) + "\n"
                for where, reason in skipped
            ),
        )
    store.expire(run_id, settings.run_ttl)
    return collected


def _wall(store: RunStore, run_id: str) -> float:
    """Seconds from the run's creation to its end (or to now, for a run still in work)."""
    raw = store.redis.hmget(RunKeys(run_id).meta, ["created_at", "updated_at", "status"])
    created = float(raw[0]) if raw[0] else 0.0
    ended = float(raw[1]) if raw[1] and raw[2] != b"running" else time.time()
    return max(ended - created, 0.0)
