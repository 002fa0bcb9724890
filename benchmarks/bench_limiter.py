"""Limiter cost: admissions per second one process can make through the shared bucket.

One asyncio process against the local Redis (`PRELABEL_BENCH_REDIS_URL`, db 11 by default),
caps far above what it can reach so that every call is admitted at once:

- `acquire`, one caller at a time: the latency of one admission (one acquire.lua round trip);
- `acquire`, N callers at once: what the process-wide turn (one poller at a time) allows;
- `acquire + settle`: a capped call's full bucket cost (admission, then settling its tokens
  and headers);
- `acquire, uncapped`: a bucket without caps only checks the fleet's pause, at most every
  100 ms, so its admissions cost no round trip at all.

    python benchmarks/bench_limiter.py [--seconds 5] [--callers 1 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import redis.asyncio
from common import REDIS_URL, console, flush, table, write_results

from workers.ratelimit import Caps, ProviderLimits, TokenBucket

#: Far above what one process reaches: every call is admitted without waiting.
HUGE = Caps(rpm=10**9, tpm=10**12)
LIMITS = ProviderLimits(10**9, 10**12, 10**9, 10**12, 0.0, 0.0)


async def rate(bucket: TokenBucket, callers: int, seconds: float, settle: bool) -> float:
    """Admissions per second with `callers` coroutines calling for `seconds`."""
    count = 0
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            admission = await bucket.acquire(300)
            if settle:
                await bucket.settle(300, 297, LIMITS, admission)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return count / (time.perf_counter() - started)


async def measure(seconds: float, callers: list[int]) -> list[dict[str, Any]]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    rows: list[dict[str, Any]] = []
    try:
        capped = TokenBucket(client, "bench-limiter", HUGE)
        uncapped = TokenBucket(client, "bench-limiter-uncapped", Caps(None, None))
        await rate(capped, 1, 0.5, settle=True)  # loads the scripts, warms the pool
        for n in callers:
            rows.append(
                {
                    "path": "acquire",
                    "callers": n,
                    "per_second": await rate(capped, n, seconds, False),
                }
            )
        for n in callers:
            rows.append(
                {
                    "path": "acquire + settle",
                    "callers": n,
                    "per_second": await rate(capped, n, seconds, True),
                }
            )
        rows.append(
            {
                "path": "acquire, uncapped",
                "callers": max(callers),
                "per_second": await rate(uncapped, max(callers), seconds, False),
            }
        )
    finally:
        await client.aclose()
    for row in rows:
        row["per_second"] = round(row["per_second"])
        row["microseconds_each"] = round(1e6 / row["per_second"], 1) if row["per_second"] else None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    flush()
    rows = asyncio.run(measure(args.seconds, args.callers))
    flush()
    console.print(
        table(
            f"Limiter cost: admissions/s of one process against {REDIS_URL} "
            f"({args.seconds:g} s each)",
            ["path", "callers", "admissions/s", "µs each"],
            [(r["path"], r["callers"], r["per_second"], r["microseconds_each"]) for r in rows],
        )
    )
    write_results("limiter", {"seconds": args.seconds, "redis": REDIS_URL, "rows": rows})


if __name__ == "__main__":
    main()
