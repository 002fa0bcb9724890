"""Framework overhead: items/s through prelabel, against a bare `AsyncOpenAI` loop.

The same simulator (zero latency, no caps) serves both, in one run:

- prelabel: a run of N items end to end (enqueue, two real `prelabel worker` processes with
  the shared bucket, answer parsing, alignment, commit), timed from enqueue to the last
  committed item;
- bare: two processes each sending their half of the same requests (same messages, response
  format, max_tokens and item-id header) with `AsyncOpenAI.chat.completions.create` and the
  same number of calls in flight, parsing each answer's JSON, and nothing else;
- bare, client.post: the same loop sending each request as prelabel does, with the client's
  `post` (no typed-params transform, no response model), so that the ratio to it is
  prelabel's own overhead alone.

Both paths are timed warm, and the CPU each process used is read from /proc: CPU ms per item
is steadier than items/s on a shared machine.

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
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    MODEL,
    Fleet,
    console,
    cpu_seconds,
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

from prelabel.model import ITEM_IDS_HEADER, Endpoint, RunConfig
from prelabel.settings import load_settings
from task_types.ner.model import NerRecord
from workers.requests import RequestBuilder

MAX_TOKENS = 128
WORKERS = 2
#: The bare loop that sends its requests as prelabel does (`client.post`, no typed params).
BARE_POST = "bare, client.post"
#: Items of the untimed first pass of each path.
WARMUP = 200


@dataclass
class Round:
    """One timed pass over the items: items/s, and CPU seconds by role."""

    items_per_second: float
    cpu: dict[str, float]


def run_prelabel(
    running: Fleet, items: list[NerRecord], base_url: str, sim_pid: int, shard_size: int = 50
) -> Round:
    """One run through the (already warm) fleet, timed from enqueue to the last commit."""
    store = running.store()
    mains = [p.pid for p in running.procs]
    cpu_all, cpu_main, cpu_sim = (
        cpu_seconds(mains),
        cpu_seconds(mains, False),
        cpu_seconds([sim_pid]),
    )
    started = time.perf_counter()
    config = new_run(
        running.settings, items, base_url, max_tokens=MAX_TOKENS, shard_size=shard_size
    )
    while done(store, config.run_id) < len(items):
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    main = cpu_seconds(mains, False) - cpu_main
    cpu = {
        "Celery main processes": main,
        "pool processes": cpu_seconds(mains) - cpu_all - main,
        "simulator": cpu_seconds([sim_pid]) - cpu_sim,
    }
    counters = store.counters(config.run_id)
    if counters.get("labeled", 0) != len(items):
        raise RuntimeError(f"prelabel labeled {counters.get('labeled')} of {len(items)}")
    return Round(len(items) / elapsed, cpu)


def profile_prelabel(
    running: Fleet,
    items: list[NerRecord],
    base_url: str,
    sim_pid: int,
    spy: str,
    logs: Path,
    shard_size: int,
) -> None:
    """One more run, with py-spy sampling every worker process (main and pool)."""
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
    ]
    time.sleep(1.0)
    run_prelabel(running, items, base_url, sim_pid, shard_size)
    for proc in spies:
        proc.send_signal(2)  # SIGINT: py-spy writes its samples and exits
    for proc in spies:
        proc.wait(30)


def _bare_process(
    base_url: str,
    requests: list[dict[str, Any]],
    inflight: int,
    post: bool,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One bare loop: ready once imported and connected, timed from the parent's go."""
    try:
        import httpx
        from openai import AsyncOpenAI

        async def create(client: AsyncOpenAI, request: dict[str, Any]) -> str:
            reply = await client.chat.completions.create(**request)
            return reply.choices[0].message.content or ""

        async def by_post(client: AsyncOpenAI, request: dict[str, Any]) -> str:
            body = {k: v for k, v in request.items() if k != "extra_headers"}
            options = {"headers": request["extra_headers"]}
            reply = await client.post(
                "/chat/completions", body=body, cast_to=httpx.Response, options=options
            )
            return str(reply.json()["choices"][0]["message"]["content"])

        call = by_post if post else create

        async def main() -> tuple[int, float, float, float]:
            client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0, timeout=60)
            gate = asyncio.Semaphore(inflight)
            parsed = 0

            async def one(request: dict[str, Any]) -> None:
                nonlocal parsed
                async with gate:
                    content = await call(client, request)
                json.loads(content)
                parsed += 1

            ready.set()
            await asyncio.to_thread(go.wait)
            started, cpu = time.time(), time.process_time()
            await asyncio.gather(*(one(r) for r in requests))
            ended, cpu = time.time(), time.process_time() - cpu
            await client.close()
            return parsed, started, ended, cpu

        out.put(asyncio.run(main()))
    except BaseException as exc:  # the parent must hear of it rather than wait
        out.put(f"{type(exc).__name__}: {exc}")


def run_bare(
    items: list[NerRecord], base_url: str, inflight: int, sim_pid: int, post: bool = False
) -> Round:
    """Items/s of two processes, each a bare AsyncOpenAI loop over half of the requests, with
    `chat.completions.create` (or, with `post`, with `client.post` as prelabel calls)."""
    endpoint = Endpoint(model=MODEL, base_url=base_url, max_tokens=MAX_TOKENS)
    config = RunConfig(run_id="bare", endpoint=endpoint)
    builder = RequestBuilder(config)
    requests = [
        {
            "model": MODEL,
            "messages": builder.messages([r]),
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
            "response_format": builder.response_format([r]),
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
            target=_bare_process,
            args=(base_url, requests[i::WORKERS], inflight, post, r, go, out),
        )
        for i, r in enumerate(readies)
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("a bare loop process did not start within 120 s")
    cpu_sim = cpu_seconds([sim_pid])
    go.set()
    replies = [out.get(timeout=600) for _ in procs]
    cpu_sim = cpu_seconds([sim_pid]) - cpu_sim
    for proc in procs:
        proc.join(10)
    failed = [r for r in replies if isinstance(r, str)]
    if failed:
        raise RuntimeError(f"a bare loop process failed: {failed}")
    parsed = sum(r[0] for r in replies)
    if parsed != len(items):
        raise RuntimeError(f"the bare loop parsed {parsed} of {len(items)}")
    elapsed: float = max(r[2] for r in replies) - min(r[1] for r in replies)
    return Round(len(items) / elapsed, {"loops": sum(r[3] for r in replies), "simulator": cpu_sim})


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
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--profile", metavar="PY_SPY", help="path to py-spy: profile a run")
    parser.add_argument("--shard-size", type=int, default=50, help="items per shard (50)")
    args = parser.parse_args()
    items = records(args.items)
    warmup = records(WARMUP)
    inflight = load_settings().inflight
    rounds: dict[str, list[Round]] = {"prelabel": [], "bare": [], BARE_POST: []}
    profile: tuple[list[tuple[str, float]], list[tuple[str, float]]] | None = None
    flush()
    with logs_dir("overhead") as logs, simulator(logs=logs) as sim, fleet(WORKERS, logs) as running:
        pid = sim.proc.pid
        # Both are timed warm: the bare loops with their imports done and the simulator's
        # caches filled, the workers with their first shards (tokenizer, client) behind them.
        run_bare(items, sim.base_url, inflight, pid)
        run_prelabel(running, warmup, sim.base_url, pid, args.shard_size)
        for _ in range(args.rounds):
            rounds["bare"].append(run_bare(items, sim.base_url, inflight, pid))
            rounds[BARE_POST].append(run_bare(items, sim.base_url, inflight, pid, post=True))
            rounds["prelabel"].append(
                run_prelabel(running, items, sim.base_url, pid, args.shard_size)
            )
        if args.profile:
            profile_prelabel(running, items, sim.base_url, pid, args.profile, logs, args.shard_size)
            profile = where_time_goes(logs)
    flush()
    best = {k: max(r.items_per_second for r in v) for k, v in rounds.items()}
    # CPU per item, by role (median of the rounds): less noisy than items/s on a shared machine.
    cpu = {
        path: {
            role: statistics.median(r.cpu[role] for r in v) * 1000 / args.items for role in v[0].cpu
        }
        for path, v in rounds.items()
    }
    total = {path: sum(c.values()) for path, c in cpu.items()}
    console.print(
        table(
            f"Framework overhead: {args.items:,} items, {WORKERS} processes, "
            f"{inflight} calls in flight each, simulator at zero latency, no caps "
            "(best of each; target ≥ 0.8)",
            [
                "path",
                "items/s (each round)",
                "items/s (best)",
                "÷ bare",
                "CPU ms/item",
                "bare ÷ it",
            ],
            [
                (
                    path,
                    " ".join(f"{r.items_per_second:,.0f}" for r in v),
                    best[path],
                    best[path] / best["bare"],
                    total[path],
                    total["bare"] / total[path],
                )
                for path, v in rounds.items()
            ],
        )
    )
    console.print(
        table(
            "CPU ms per item, by process (median of the rounds; the simulator serves both)",
            ["path", "process", "CPU ms/item"],
            [(path, role, ms) for path, c in cpu.items() for role, ms in c.items()],
        )
    )
    payload: dict[str, Any] = {
        "items": args.items,
        "processes": WORKERS,
        "inflight": inflight,
        "shard_size": args.shard_size,
        "items_per_second": {k: [r.items_per_second for r in v] for k, v in rounds.items()},
        "best": best,
        "ratio": round(best["prelabel"] / best["bare"], 4),
        "cpu_ms_per_item": cpu,
        "cpu_ratio": round(total["bare"] / total["prelabel"], 4),
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
