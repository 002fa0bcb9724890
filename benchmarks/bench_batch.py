"""Realtime against the Batch API: dollars per 1,000 sentences, API requests, Redis memory.

Every CoNLL-2003 test sentence (3,453) is labeled three times through `prelabel run`, two
real workers and the simulator (answering gold), at gpt-4o-mini's list prices:

- `realtime`: one HTTP call per request, under the shared bucket;
- `batch`: the Batch API, each shard pass one batch file (shards of 1,000 items);
- `auto`: batch, with a deadline 15 s after the start, while the simulator's batches take a
  minute: the poller cancels them at the deadline (the lines they answered by then are kept
  and billed at the batch price) and the rest of the run goes through the realtime transport.

For each: items labeled and lost, the run's cost and dollars per 1,000 sentences, the
requests made to the API (chat calls; files uploaded and downloaded, batches created,
polls), and the peak Redis memory the run's keys took. The target: batch at most 0.5× the
realtime cost, with no item lost.

    python benchmarks/bench_batch.py [--limit N] [--batch-seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from common import CONLL, REDIS_URL, console, fleet, flush, kill, logs_dir, table, write_results

from prelabel import launch

MODEL = "gpt-4o-mini"
POLL_SECONDS = "0.5"


def simulator_stats(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


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
    name: str, transport: list[str], limit: int | None, batch_seconds: float, logs: Path
) -> dict[str, Any]:
    flush()
    port = launch.free_port()
    extra = ["--batch-seconds", str(batch_seconds), "--latency-ms", "0"]
    sim = launch.start_simulator(
        port, CONLL / "test.txt", split="test", extra=extra, log=logs / f"sim-{name}.log"
    )
    out = Path(tempfile.mkdtemp(prefix=f"prelabel-bench-batch-{name}-"))
    try:
        env_extra = {"PRELABEL_BATCH_POLL_SECONDS": POLL_SECONDS}
        with fleet(2, logs, env=env_extra) as running, MemoryWatch() as memory:
            env = {**os.environ, "REDIS_URL": REDIS_URL, "PRELABEL_QUEUE": running.settings.queue}
            env.pop("OPENAI_API_KEY", None)
            limit_args = ["--limit", str(limit)] if limit else []
            args = [
                sys.executable,
                "-m",
                "prelabel",
                "run",
                "--dataset",
                str(CONLL),
                "--split",
                "test",
                *limit_args,
                "--model",
                MODEL,
                "--base-url",
                f"http://127.0.0.1:{port}/v1",
                "--batch-size",
                "10",
                "--no-cache",
                "--out",
                str(out),
                *transport,
            ]
            started = time.monotonic()
            proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{name}: prelabel run exited {proc.returncode}:\n{proc.stderr}")
        stats = simulator_stats(port)
    finally:
        kill([sim])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open(encoding="utf-8")]
    figures = json.loads((out / "report.json").read_text(encoding="utf-8"))["figures"]
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
        "seconds": seconds,
        "figures": figures,
    }


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
        results.append(one_run("realtime", [], args.limit, args.batch_seconds, logs))
        results.append(
            one_run("batch", ["--transport", "batch"], args.limit, args.batch_seconds, logs)
        )
        # The deadline falls before the batches are back (they take three times as long
        # here): the poller cancels them, keeps what they answered, and the rest goes realtime.
        deadline = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 15))
        auto = ["--transport", "auto", "--deadline", deadline, "--deadline-margin", "0"]
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
