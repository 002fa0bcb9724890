"""Cap utilisation: how much of a provider's caps a fleet uses, and how many 429s it gets.

For each scenario (one bound by requests/min; two by tokens/min, the second at 60,000 TPM with
prelabel's default max_tokens of 512, issue 21's case) and 1, 2 and 4 worker
processes, a simulator enforces both caps with a latency drawn around a mean (gamma, 30%
spread), and a run far larger than the measurement window is labeled through real `prelabel
worker` processes. After a warm-up, the simulator's own counters are sampled over a window:

- requests/min and tokens/min the simulator admitted, divided by its caps (tokens counted as
  the provider counts them at admission: prompt + max_tokens);
- 429s divided by requests received.

The simulator behaves as the hosted API does (`--header-style openai`): it charges prompt +
`max_tokens` at admission, holds one second of each cap, and sends `x-ratelimit-*` headers on
every answer, describing its buckets as of admission with `remaining` in the per-minute view.

Limiters side by side, each with the same caps, workers and data:

- `bucket`: prelabel's shared Redis bucket (the run's --rpm/--tpm), resynced from the headers;
- `bucket-no-headers`: the same, but the simulator drops the `x-ratelimit-*` headers from 200
  answers (as a proxy that strips them would), so the bucket runs on its own accounting;
- `celery`: no shared bucket; Celery's own per-worker `rate_limit` on the shard task, set to
  each worker's share of the cap in shards/min (what one would do with Celery alone).

A second table sets the two bucket rows side by side: cap use with headers on and off.

    python benchmarks/bench_caps.py [--warmup 8] [--seconds 30] [--workers 1 2 4]
        [--limiters bucket bucket-no-headers celery] [--header-style openai|bucket]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from common import (
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

MAX_TOKENS = 128
#: Prompt tokens of an average request (ner-v1, one CoNLL sentence, o200k): used only to set
#: the Celery baseline's rate and the run's size, never by the bucket.
PROMPT_TOKENS = 250
SHARD_SIZE = 50
#: The window is stretched to hold at least this many calls: the simulator counts a call when it
#: answers, so one call more or less in the window is 1/MIN_CALLS of the figure.
MIN_CALLS = 100


@dataclass(frozen=True)
class Scenario:
    name: str
    rpm: int
    tpm: int
    max_tokens: int = MAX_TOKENS

    @property
    def calls_per_second(self) -> float:
        """What the binding cap allows."""
        return min(self.rpm / 60, self.tpm / 60 / (PROMPT_TOKENS + self.max_tokens))

    def shards_per_minute(self) -> float:
        return self.calls_per_second * 60 / SHARD_SIZE


SCENARIOS = (
    # 20 calls/s by requests; tokens would allow 65/s.
    Scenario("requests-bound", rpm=1_200, tpm=1_500_000),
    # 12 calls/s by tokens; requests would allow 50/s.
    Scenario("tokens-bound", rpm=3_000, tpm=270_000),
    # Issue 21's case: 1.3 calls/s by tokens at prelabel's default max_tokens (512): each call
    # is ~0.76 s of the cap, so the provider's bucket is nearly full at every admission and a
    # header taken as it is (one latency old) cuts the bucket on every answer.
    Scenario("tokens-bound-60k", rpm=3_000, tpm=60_000, max_tokens=512),
)


def measure(
    scenario: Scenario,
    workers: int,
    limiter: str,
    warmup: float,
    seconds: float,
    latency: float,
    bucket_seconds: float | None = None,
    header_style: str = "openai",
) -> dict[str, Any]:
    flush()
    seconds = max(seconds, MIN_CALLS / scenario.calls_per_second)
    items = records(int(scenario.calls_per_second * (warmup + seconds + 15) * 1.3))
    caps = ["--rpm", str(scenario.rpm), "--tpm", str(scenario.tpm)]
    caps += ["--header-style", header_style]
    if limiter == "bucket-no-headers":
        caps.append("--no-success-headers")
    env: dict[str, str] = {}
    if bucket_seconds is not None:
        env["PRELABEL_BUCKET_SECONDS"] = str(bucket_seconds)
    run_caps: dict[str, int | None] = {"rpm": scenario.rpm, "tpm": scenario.tpm}
    if limiter == "celery":
        env["PRELABEL_TASK_RATE_LIMIT"] = f"{scenario.shards_per_minute() / workers:.4f}/m"
        run_caps = {"rpm": None, "tpm": None}
    with (
        logs_dir("caps") as logs,
        simulator(*caps, "--latency-ms", str(latency), logs=logs) as sim,
        fleet(workers, logs, env) as running,
    ):
        config = new_run(
            running.settings,
            items,
            sim.base_url,
            max_tokens=scenario.max_tokens,
            shard_size=SHARD_SIZE,
            **run_caps,
        )
        # The window starts `warmup` seconds after the simulator saw its first request.
        deadline = time.monotonic() + 120
        while sim.stats()["requests"] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("no request reached the simulator within 120 s")
            time.sleep(0.05)
        time.sleep(warmup)
        t0, first = time.monotonic(), sim.stats()
        time.sleep(seconds)
        t1, last = time.monotonic(), sim.stats()
        store = running.store()
        finished = done(store, config.run_id)
        counters = store.counters(config.run_id)
    elapsed = t1 - t0
    delta = {k: last[k] - first[k] for k in ("requests", "rate_limited", "faults", "sentences")}
    admitted = delta["requests"] - delta["rate_limited"]
    prompt_tokens = last["prompt_tokens"] - first["prompt_tokens"]
    tokens = prompt_tokens + delta["sentences"] * scenario.max_tokens
    rpm = admitted / elapsed * 60
    tpm = tokens / elapsed * 60
    return {
        "scenario": scenario.name,
        "limiter": limiter if bucket_seconds is None else f"{limiter} {bucket_seconds:g}s",
        "workers": workers,
        "max_tokens": scenario.max_tokens,
        "window_seconds": round(elapsed, 2),
        "requests_per_minute": round(rpm, 1),
        "tokens_per_minute": round(tpm),
        "rpm_cap": scenario.rpm,
        "tpm_cap": scenario.tpm,
        "rpm_utilisation": round(rpm / scenario.rpm, 4),
        "tpm_utilisation": round(tpm / scenario.tpm, 4),
        "utilisation_of_binding_cap": round(max(rpm / scenario.rpm, tpm / scenario.tpm), 4),
        "rate_limited": delta["rate_limited"],
        "requests": delta["requests"],
        "rate_limited_share": round(delta["rate_limited"] / max(delta["requests"], 1), 5),
        "run_requests": counters.get("requests", 0),
        "run_rate_limited": counters.get("rate_limited", 0),
        "items_done": finished,
        "items": len(items),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before the window")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help=f"seconds measured (≥ {MIN_CALLS} calls)"
    )
    parser.add_argument("--latency-ms", type=float, default=300.0, help="mean latency")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limiters", nargs="+", default=["bucket", "bucket-no-headers", "celery"])
    parser.add_argument(
        "--header-style",
        choices=["openai", "bucket"],
        default="openai",
        help="how the simulator reports x-ratelimit-remaining-* (openai: as the hosted API)",
    )
    parser.add_argument("--scenarios", nargs="+", default=[s.name for s in SCENARIOS])
    parser.add_argument(
        "--bucket-seconds",
        type=float,
        nargs="+",
        help="compare these PRELABEL_BUCKET_SECONDS (default: the workers' setting)",
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for scenario in (s for s in SCENARIOS if s.name in args.scenarios):
        for workers in args.workers:
            runs = [(limiter, None) for limiter in args.limiters if limiter != "bucket"]
            if "bucket" in args.limiters:
                runs[:0] = [("bucket", b) for b in (args.bucket_seconds or [None])]
            for limiter, bucket_seconds in runs:
                row = measure(
                    scenario,
                    workers,
                    limiter,
                    args.warmup,
                    args.seconds,
                    args.latency_ms,
                    bucket_seconds,
                    args.header_style,
                )
                rows.append(row)
                console.print(
                    f"{scenario.name} {row['limiter']} x{workers}: "
                    f"{row['utilisation_of_binding_cap']:.3f} of the cap, "
                    f"{row['rate_limited_share']:.2%} 429s"
                )
    flush()
    title = (
        f"Cap utilisation, steady state ({args.seconds:.0f} s after {args.warmup:.0f} s warm-up), "
        f"latency {args.latency_ms:.0f} ms; targets: ≥ 0.95 of the binding cap, ≤ 0.5% 429s"
    )
    columns = [
        "scenario",
        "limiter",
        "workers",
        "req/min",
        "÷ rpm cap",
        "tok/min",
        "÷ tpm cap",
        "429s",
        "÷ requests",
        "whole run: 429s ÷ requests",
    ]
    console.print(
        table(
            title,
            columns,
            [
                (
                    r["scenario"],
                    r["limiter"],
                    r["workers"],
                    r["requests_per_minute"],
                    r["rpm_utilisation"],
                    r["tokens_per_minute"],
                    r["tpm_utilisation"],
                    r["rate_limited"],
                    f"{r['rate_limited_share']:.2%}",
                    f"{r['run_rate_limited']} ÷ {r['run_requests']}",
                )
                for r in rows
            ],
        )
    )
    headers_table(rows)
    write_results(
        "caps",
        {
            "header_style": args.header_style,
            "warmup_seconds": args.warmup,
            "window_seconds": args.seconds,
            "latency_ms": args.latency_ms,
            "max_tokens": MAX_TOKENS,
            "shard_size": SHARD_SIZE,
            "rows": rows,
        },
    )


def headers_table(rows: list[dict[str, Any]]) -> None:
    """The bucket's use of the binding cap with the provider's headers on and off, side by side
    (issue 21: the resync once cost a tokens-bound run 6% of its cap)."""
    by_key = {(r["scenario"], r["limiter"], r["workers"]): r for r in rows}
    pairs = [
        (on, by_key[(on["scenario"], "bucket-no-headers", on["workers"])])
        for on in rows
        if on["limiter"] == "bucket"
        and (on["scenario"], "bucket-no-headers", on["workers"]) in by_key
    ]
    if not pairs:
        return
    columns = [
        "scenario",
        "workers",
        "headers on: ÷ cap",
        "429s",
        "headers off: ÷ cap",
        "429s",
        "on ÷ off",
    ]
    console.print(
        table(
            "Shared bucket, binding cap used with the x-ratelimit-* headers on and off "
            "(target with headers: ≥ 0.98, 0 429s)",
            columns,
            [
                (
                    on["scenario"],
                    on["workers"],
                    on["utilisation_of_binding_cap"],
                    on["rate_limited"],
                    off["utilisation_of_binding_cap"],
                    off["rate_limited"],
                    round(
                        on["utilisation_of_binding_cap"]
                        / max(off["utilisation_of_binding_cap"], 1e-9),
                        4,
                    ),
                )
                for on, off in pairs
            ],
        )
    )


if __name__ == "__main__":
    main()
