"""Framework overhead: items/s through prelabel, against a bare `AsyncOpenAI` loop.

The same simulator (zero latency, no caps) serves both, in one run:

- prelabel: a run of N items end to end (enqueue, two real `prelabel worker` processes with
  the shared bucket, answer parsing, alignment, commit), timed from enqueue to the last
  committed item;
- bare: two processes each sending their half of the same requests (same messages, response
  format, max_tokens and item-id header) with `AsyncOpenAI` and the same number of calls in
  flight, parsing each answer's JSON, and nothing else.

With `--profile`, py-spy (https://github.com/benfred/py-spy; not a prelabel dependency: pass
its path) samples the prelabel workers during a second run and the table says where their
CPU time goes: by prelabel function (the deepest frame in prelabel's own code) and by library
(the frame at the top of the stack).

    python benchmarks/bench_overhead.py [--items 2000] [--profile /path/to/py-spy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import (
    MODEL,
    console,
    done,
    fleet,
    flush,
    logs_dir,
    new_run,
    records,
    simulator,
    table,
    write_results,
)

from prelabel.model import ITEM_IDS_HEADER, Record, RunConfig
from prelabel.settings import load_settings
from workers.requests import RequestBuilder

MAX_TOKENS = 128
WORKERS = 2


def run_prelabel(
    items: list[Record], base_url: str, logs: Path, spy: str | None, shard_size: int = 50
) -> float:
    """Items/s of one run through two worker processes (optionally sampled by py-spy)."""
    flush()
    with fleet(WORKERS, logs) as running:
        spies = [
            subprocess.Popen(
                [
                    *(spy, "record", "--pid", str(p.pid), "--subprocesses", "--rate", "200"),
                    *("--format", "raw", "--output", str(logs / f"spy-{p.pid}.txt")),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for p in running.procs
            if spy is not None
        ]
        time.sleep(1.0 if spy else 0)
        store = running.store()
        started = time.perf_counter()
        config = new_run(
            running.settings, items, base_url, max_tokens=MAX_TOKENS, shard_size=shard_size
        )
        while done(store, config.run_id) < len(items):
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        for proc in spies:
            proc.send_signal(2)  # SIGINT: py-spy writes its samples and exits
        for proc in spies:
            proc.wait(30)
        counters = store.counters(config.run_id)
    if counters.get("labeled", 0) != len(items):
        raise RuntimeError(f"prelabel labeled {counters.get('labeled')} of {len(items)}")
    return len(items) / elapsed


def _bare_process(
    base_url: str, requests: list[dict[str, Any]], inflight: int, ready: Any, go: Any, out: Any
) -> None:
    """One bare loop: ready once imported and connected, timed from the parent's go."""
    try:
        from openai import AsyncOpenAI

        async def main() -> tuple[int, float, float]:
            client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0, timeout=60)
            gate = asyncio.Semaphore(inflight)
            parsed = 0

            async def one(request: dict[str, Any]) -> None:
                nonlocal parsed
                async with gate:
                    reply = await client.chat.completions.create(**request)
                json.loads(reply.choices[0].message.content or "")
                parsed += 1

            ready.set()
            await asyncio.to_thread(go.wait)
            started = time.time()
            await asyncio.gather(*(one(r) for r in requests))
            ended = time.time()
            await client.close()
            return parsed, started, ended

        out.put(asyncio.run(main()))
    except BaseException as exc:  # the parent must hear of it rather than wait
        out.put(f"{type(exc).__name__}: {exc}")


def run_bare(items: list[Record], base_url: str, inflight: int) -> float:
    """Items/s of two processes, each a bare AsyncOpenAI loop over half of the requests."""
    config = RunConfig(run_id="bare", model=MODEL, base_url=base_url, max_tokens=MAX_TOKENS)
    builder = RequestBuilder(config)
    requests = [
        {
            "model": MODEL,
            "messages": builder.messages([r]),
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
            "response_format": builder.response_format(1),
            "extra_headers": {ITEM_IDS_HEADER: json.dumps([r.id])},
        }
        for r in items
    ]
    # spawn: this process has threads (Celery, rich) that a fork could copy mid-lock. Start-up
    # (imports) is not timed: like the workers, the loops are up before the clock starts.
    ctx = multiprocessing.get_context("spawn")
    out, go = ctx.Queue(), ctx.Event()
    readies = [ctx.Event() for _ in range(WORKERS)]
    procs = [
        ctx.Process(
            target=_bare_process, args=(base_url, requests[i::WORKERS], inflight, r, go, out)
        )
        for i, r in enumerate(readies)
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("a bare loop process did not start within 120 s")
    go.set()
    replies = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(10)
    failed = [r for r in replies if isinstance(r, str)]
    if failed:
        raise RuntimeError(f"a bare loop process failed: {failed}")
    parsed = sum(r[0] for r in replies)
    if parsed != len(items):
        raise RuntimeError(f"the bare loop parsed {parsed} of {len(items)}")
    elapsed: float = max(r[2] for r in replies) - min(r[1] for r in replies)
    return len(items) / elapsed


def where_time_goes(logs: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Shares of samples by deepest prelabel frame, and by library at the top of the stack."""
    own: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for path in logs.glob("spy-*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            mine = [f for f in frames if _own(f)]
            own[_name(mine[-1]) if mine else "(outside prelabel: Celery, start-up)"] += n
            leaf[_library(frames[-1])] += n
    top_own = [(k, v / total) for k, v in own.most_common(14)]
    top_leaf = [(k, v / total) for k, v in leaf.most_common(12)]
    return top_own, top_leaf


_OWN = ("workers/", "prelabel/", "producer/", "collector/", "evaluation/")


def _where(frame: str) -> tuple[str, str]:
    # py-spy writes "function (path/to/file.py:line)", the path relative to its sys.path entry.
    func, _, where = frame.partition(" (")
    return func.strip(), where.rstrip(")").rsplit(":", 1)[0]


def _own(frame: str) -> bool:
    return _where(frame)[1].startswith(_OWN)


def _name(frame: str) -> str:
    func, path = _where(frame)
    return f"{path}:{func}"


def _library(frame: str) -> str:
    func, path = _where(frame)
    if path.startswith(_OWN):
        return f"{path}:{func}"
    return path.split("/", 1)[0].removesuffix(".py") or func


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each")
    parser.add_argument("--profile", metavar="PY_SPY", help="path to py-spy: profile a run")
    parser.add_argument("--shard-size", type=int, default=50, help="items per shard (50)")
    args = parser.parse_args()
    items = records(args.items)
    inflight = load_settings().inflight
    results: dict[str, list[float]] = {"prelabel": [], "bare": []}
    profile: tuple[list[tuple[str, float]], list[tuple[str, float]]] | None = None
    with logs_dir("overhead") as logs, simulator(logs=logs) as sim:
        run_bare(items[:200], sim.base_url, inflight)  # warm the simulator's caches
        for _ in range(args.rounds):
            results["bare"].append(run_bare(items, sim.base_url, inflight))
            results["prelabel"].append(
                run_prelabel(items, sim.base_url, logs, None, args.shard_size)
            )
        if args.profile:
            run_prelabel(items, sim.base_url, logs, args.profile, args.shard_size)
            profile = where_time_goes(logs)
    flush()
    best = {k: max(v) for k, v in results.items()}
    ratio = best["prelabel"] / best["bare"]
    console.print(
        table(
            f"Framework overhead: {args.items:,} items, {WORKERS} processes, "
            f"{inflight} calls in flight each, simulator at zero latency, no caps "
            "(best of each; target ≥ 0.8)",
            ["path", "items/s (each round)", "items/s (best)", "÷ bare"],
            [
                (k, " ".join(f"{x:,.0f}" for x in v), best[k], best[k] / best["bare"])
                for k, v in results.items()
            ],
        )
    )
    payload: dict[str, Any] = {
        "items": args.items,
        "processes": WORKERS,
        "inflight": inflight,
        "shard_size": args.shard_size,
        "items_per_second": results,
        "best": best,
        "ratio": round(ratio, 4),
    }
    if profile:
        own, leaf = profile
        console.print(
            table(
                "prelabel workers' CPU samples, by prelabel function",
                ["function", "share"],
                [(k, f"{v:.1%}") for k, v in own],
            )
        )
        console.print(
            table(
                "... and by library at the top of the stack",
                ["library", "share"],
                [(k, f"{v:.1%}") for k, v in leaf],
            )
        )
        payload["profile"] = {"by_function": dict(own), "by_library": dict(leaf)}
    write_results("overhead", payload)


if __name__ == "__main__":
    main()
