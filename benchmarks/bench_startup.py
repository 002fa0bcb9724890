"""Start-up time of the command line: `prelabel --help` against `celery --help`, and the
commands an operator types most (`prelabel status`, `prelabel worker --help`).

Each command runs as a fresh process through its installed console script, alternating
between the commands so that the machine's load falls on all of them alike; the median wall
time of each is printed side by side, with the ratio to `celery --help`. Target: `prelabel
--help` no slower than `celery --help`. `prelabel status` is timed against a run id that does
not exist, so it measures imports, settings and one Redis round trip.

    python benchmarks/bench_startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REDIS_URL, console, table, write_results

BIN = Path(sys.executable).parent


def commands() -> dict[str, list[str]]:
    return {
        "celery --help": [str(BIN / "celery"), "--help"],
        "prelabel --help": [str(BIN / "prelabel"), "--help"],
        "prelabel run --help": [str(BIN / "prelabel"), "run", "--help"],
        "prelabel worker --help": [str(BIN / "prelabel"), "worker", "--help"],
        "prelabel status RUN": [str(BIN / "prelabel"), "status", "no-such-run"],
    }


def time_once(argv: list[str]) -> float:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "COLUMNS": "100"}
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    cmds = commands()
    for argv in cmds.values():  # warm the file cache and the bytecode once
        time_once(argv)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.rounds):
        for name, argv in cmds.items():
            times[name].append(time_once(argv))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    celery = medians["celery --help"]
    rows = [
        (name, medians[name], min(times[name]), max(times[name]), medians[name] / celery)
        for name in cmds
    ]
    console.print(
        table(
            f"start-up, median of {args.rounds} runs (wall seconds)",
            ("command", "median s", "min s", "max s", "÷ celery --help"),
            rows,
        )
    )
    write_results(
        "bench_startup",
        {
            "rounds": args.rounds,
            "median_seconds": medians,
            "min_seconds": {n: min(t) for n, t in times.items()},
            "ratio_to_celery_help": {n: medians[n] / celery for n in cmds},
        },
    )


if __name__ == "__main__":
    main()
