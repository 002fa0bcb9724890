"""Realtime against the Batch API: dollars per 1,000 sentences, API requests, Redis memory.

Every CoNLL-2003 test sentence (3,453) is labeled three times through `prelabel run`, two
real workers and the simulator (answering gold), at gpt-4o-mini's list prices:

- `realtime`: one HTTP call per request, under the shared bucket;
- `batch`: the Batch API, each shard pass one batch file (shards of 1,000 items);
- `auto`: batch, with a deadline 40 s after the workers are ready, while the simulator's
  batches take a minute: the poller cancels them at the deadline (the lines they answered by
  then are kept and billed at the batch price) and the rest of the run goes through the
  realtime transport.

For each: items labeled and lost, the run's cost and dollars per 1,000 sentences, the
requests made to the API (chat calls; files uploaded and downloaded, batches created,
polls), and the peak Redis memory the run's keys took. The target: batch at most 0.5× the
realtime cost, with no item lost.

    python benchmarks/bench_batch.py [--limit N] [--batch-seconds S]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from common import (
    CONLL,
    MODEL,
    REDIS_URL,
    console,
    flush,
    logs_dir,
    run_conll,
    table,
    write_results,
)

POLL_SECONDS = "0.5"


class MemoryWatch:
    """The peak of the Redis keys' memory (used_memory less what it was at the start)."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(REDIS_URL)
        self.base = int(self.client.info("memory")["used_memory"])
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            used = int(self.client.info("memory")["used_memory"]) - self.base
            self.peak = max(self.peak, used)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


def one_run(
    name: str,
    transport: Callable[[], list[str]],
    limit: int | None,
    batch_seconds: float,
    logs: Path,
) -> dict[str, Any]:
    flush()  # before the watch takes its base (run_conll flushes again: nothing left to drop)
    with MemoryWatch() as memory:
        run = run_conll(
            name,
            lambda: ["--batch-size", "10", *transport()],
            logs,
            limit=limit,
            simulator_options=["--batch-seconds", str(batch_seconds), "--latency-ms", "0"],
            env={"PRELABEL_BATCH_POLL_SECONDS": POLL_SECONDS},
        )
    rows, stats, figures = run.rows, run.stats, run.figures
    cost = float(figures.get("cost_usd") or 0.0)
    return {
        "transport": name,
        "items": len(rows),
        "labeled": sum(r["status"] == "labeled" for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "cost_usd": cost,
        "usd_per_1k": 1000 * cost / len(rows) if rows else 0.0,
        "chat_requests": stats.get("requests", 0),
        "batch_lines": stats.get("batch_lines", 0),
        "files_uploaded": stats.get("files_uploaded", 0),
        "file_downloads": stats.get("file_downloads", 0),
        "batches_created": stats.get("batches_created", 0),
        "batch_polls": stats.get("batch_retrieves", 0) + stats.get("batch_lists", 0),
        "redis_peak_mb": memory.peak / 1e6,
        "seconds": run.seconds,
        "figures": figures,
    }


def auto_flags(seconds: float) -> list[str]:
    """`--transport auto` with a deadline `seconds` from now."""
    deadline = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + seconds))
    return ["--transport", "auto", "--deadline", deadline, "--deadline-margin", "0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences only")
    parser.add_argument(
        "--batch-seconds", type=float, default=20.0, help="the simulator's time to a batch's end"
    )
    args = parser.parse_args()
    if not (CONLL / "test.txt").exists():
        raise SystemExit(f"skipped: CoNLL-2003 not found in {CONLL}")
    results = []
    with logs_dir("bench-batch") as logs:
        results.append(one_run("realtime", list, args.limit, args.batch_seconds, logs))
        batch = ["--transport", "batch"]
        results.append(one_run("batch", lambda: batch, args.limit, args.batch_seconds, logs))

        # The deadline, twice --batch-seconds after the workers are ready, falls before the
        # batches are back (they take three times as long here): the poller cancels them,
        # keeps what they answered, and the rest goes realtime.
        def auto() -> list[str]:
            return auto_flags(2 * args.batch_seconds)

        results.append(one_run("auto", auto, args.limit, 3 * args.batch_seconds, logs))
    base = results[0]["cost_usd"] or 1.0
    console.print(
        table(
            f"{results[0]['items']:,} CoNLL-2003 test sentences, {MODEL} list prices, batch 10",
            [
                "transport",
                "labeled",
                "failed",
                "$ / 1k",
                "× realtime",
                "chat calls",
                "batch lines",
                "files up/down",
                "batches",
                "polls",
                "Redis peak MB",
                "s",
            ],
            [
                [
                    r["transport"],
                    r["labeled"],
                    r["failed"],
                    f"{r['usd_per_1k']:.4f}",
                    f"{r['cost_usd'] / base:.2f}",
                    r["chat_requests"],
                    r["batch_lines"],
                    f"{r['files_uploaded']}/{r['file_downloads']}",
                    r["batches_created"],
                    r["batch_polls"],
                    r["redis_peak_mb"],
                    r["seconds"],
                ]
                for r in results
            ],
        )
    )
    write_results("bench_batch", {"runs": results})


if __name__ == "__main__":
    main()
