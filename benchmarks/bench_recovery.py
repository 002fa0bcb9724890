"""Recovery time: seconds from a fault to the shards it hit being done, with a full queue.

For each fault, a run of `--items` items (shards of `--shard-size`) is labeled by `--workers`
real `prelabel worker --concurrency 2` processes against the simulator, under `--rpm`, so that
most of the run's shards wait in the queue when the fault strikes (a quarter of the way in):

- `none`: no fault (the paid-calls baseline);
- `sigkill-main`: SIGKILL of a worker's main process and, at once, of its pool processes
  (a pod or machine lost: a pool process orphaned by its main process alone may finish its
  shard by itself, which measures nothing);
- `sigkill-child`: SIGKILL of one pool process busy with a shard;
- `sigstop`: SIGSTOP of a whole worker (main and pool), never continued during the run;
- `redis-restart`: Redis (a private redis-server with AOF, on a free port) stopped and
  started again 3 s later.

The shards the fault hit are those the worker (or process) was running and had not finished,
asked from Celery just before it; for a Redis restart, every shard under a lease then.
Reported: seconds from the fault to the last of them done, to the whole run done, and the
simulator's requests per item (paid calls; its 5xx are off, so every request is paid). The
workers run with the default lease (30 s) and reconciler interval (15 s), as a user's would.

    python benchmarks/bench_recovery.py [--items 3000] [--rpm 1800] [--workers 3]
        [--faults none sigkill-main sigkill-child sigstop redis-restart]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import redis
from common import console, kill, logs_dir, records, simulator, table, write_results

from prelabel import launch
from prelabel.errors import BrokerError
from prelabel.queue import make_app
from prelabel.store import RunStore

FAULTS = ("none", "sigkill-main", "sigkill-child", "sigstop", "redis-restart")
#: A run still not done this long after its fault counts as stuck.
DEADLINE = 900.0


def active(settings: Any, worker: str) -> list[dict[str, Any]]:
    """The shard tasks `worker` is running (asked of it alone: the answer comes as soon as it
    replies, rather than after the whole timeout)."""
    control = make_app(settings).control
    replies = control.inspect(destination=[worker], limit=1, timeout=5).active() or {}
    return [task for tasks in replies.values() for task in tasks]


def worker_name(settings: Any, prefix: str) -> str:
    for reply in make_app(settings).control.ping(timeout=3) or []:
        for name in reply:
            if name.startswith(prefix):
                return str(name)
    raise SystemExit(f"no worker named {prefix}* answered")


def done_shards(client: redis.Redis, run_id: str) -> set[int]:
    return {int(m) for m in client.smembers(f"prelabel:run:{run_id}:done")}


def shards_of(tasks: list[dict[str, Any]]) -> set[int]:
    return {int(str(t["id"]).rsplit(":", 1)[1]) for t in tasks}


def measure(fault: str, args: argparse.Namespace, redis_box: dict[str, Any]) -> dict[str, Any]:
    url = common.REDIS_URL
    client = redis.Redis.from_url(url)
    client.flushdb()
    items = records(args.items)
    with (
        logs_dir(f"recovery-{fault}") as logs,
        simulator(
            "--latency-ms", str(args.latency_ms), "--rpm", str(args.rpm * 2), logs=logs
        ) as sim,
    ):
        env = {"PRELABEL_INFLIGHT": str(args.inflight)}
        with common.fleet(args.workers, logs, env) as fleet:
            config = common.new_run(
                fleet.settings, items, sim.base_url, rpm=args.rpm, shard_size=args.shard_size
            )
            store = RunStore(client)
            deadline = time.monotonic() + DEADLINE
            while common.done(store, config.run_id) < args.items // 4:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{fault}: the run did not reach a quarter")
                time.sleep(0.2)
            victim = fleet.procs[0]
            name = worker_name(fleet.settings, f"{fleet.settings.queue}-0@")
            # The shards the fault hits: in work on the victim (or anywhere, for Redis), and
            # not done by the time it strikes (a shard may end while Celery answers).
            tasks: list[dict[str, Any]] = []
            hit: set[int] = set()
            if fault == "redis-restart":  # every shard in work: those under a lease
                leased = client.zrange(f"prelabel:run:{config.run_id}:leases", 0, -1)
                hit = {int(m) for m in leased} - done_shards(client, config.run_id)
            for _ in range(50 if fault not in ("none", "redis-restart") else 0):
                tasks = active(fleet.settings, name)
                if fault == "sigkill-child":
                    tasks = tasks[:1]
                hit = shards_of(tasks) - done_shards(client, config.run_id)
                if hit:
                    break
            struck = time.monotonic()
            inflict(fault, victim, tasks, redis_box)
            if fault != "redis-restart":
                hit -= done_shards(client, config.run_id)
            hit_done_at: float | None = None if hit else struck
            while True:
                try:
                    now_done = done_shards(client, config.run_id)
                    status, _ = store.status(config.run_id)
                except (redis.RedisError, BrokerError):
                    time.sleep(0.2)
                    continue
                now = time.monotonic()
                if hit_done_at is None and hit <= now_done:
                    hit_done_at = now
                if status != "running" or now - struck > DEADLINE:
                    break
                time.sleep(0.2)
            ended = time.monotonic()
            if fault == "sigstop":
                os.killpg(victim.pid, signal.SIGCONT)
            counters = store.counters(config.run_id)
            stats = sim.stats()
        kill(fleet.procs)
    return {
        "fault": fault,
        "items": args.items,
        "shards_hit": sorted(hit),
        "hit_done_s": None if hit_done_at is None else hit_done_at - struck,
        "run_done_after_fault_s": ended - struck,
        "status": status,
        "labeled": counters.get("labeled", 0),
        "failed": counters.get("failed", 0),
        "paid_calls_per_item": stats["requests"] / args.items,
    }


def inflict(
    fault: str,
    victim: subprocess.Popen[bytes],
    tasks: list[dict[str, Any]],
    redis_box: dict[str, Any],
) -> None:
    if fault == "sigkill-main":
        os.killpg(victim.pid, signal.SIGKILL)
    elif fault == "sigkill-child" and tasks:
        os.kill(int(tasks[0]["worker_pid"]), signal.SIGKILL)
    elif fault == "sigstop":
        os.killpg(victim.pid, signal.SIGSTOP)
    elif fault == "redis-restart":
        server: subprocess.Popen[bytes] = redis_box["server"]
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        time.sleep(3.0)
        redis_box["server"] = launch.start_redis(redis_box["port"], redis_box["data"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument(
        "--rpm", type=int, default=1800, help="the run's cap (the queue drains at it)"
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="prelabel-recovery-redis-"))
    port = launch.free_port()
    redis_box: dict[str, Any] = {
        "port": port,
        "data": data,
        "server": launch.start_redis(port, data),
    }
    common.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    rows: list[dict[str, Any]] = []
    try:
        for fault in args.faults:
            row = measure(fault, args, redis_box)
            rows.append(row)
            console.print(row)
    finally:
        kill([redis_box["server"]])
        shutil.rmtree(data, ignore_errors=True)
    console.print(
        table(
            f"recovery: {args.items} items, shards of {args.shard_size}, --rpm {args.rpm}, "
            f"{args.workers} workers x 2 processes",
            [
                "fault",
                "shards hit",
                "hit shards done (s)",
                "run done after (s)",
                "status",
                "failed",
                "paid calls/item",
            ],
            [
                [
                    r["fault"],
                    len(r["shards_hit"]),
                    _s(r["hit_done_s"]),
                    r["run_done_after_fault_s"],
                    r["status"],
                    r["failed"],
                    r["paid_calls_per_item"],
                ]
                for r in rows
            ],
        )
    )
    write_results("recovery", {"args": vars(args), "rows": rows})


def _s(value: float | None) -> Any:
    return "n/a" if value is None else value


if __name__ == "__main__":
    main()
