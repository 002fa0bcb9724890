"""Run benchmarks on two commits in one session, alternating, and set their figures side by side.

A refactor promises the same figures as the commit before it; on a shared machine the only
comparison worth making is one measured at the same time. This checks out `--base` (default
`HEAD~1`) as a git worktree beside the repository (so that `../shared/data` resolves the same),
then runs each benchmark script there and here in turn (`--rounds` times, alternating), with
this interpreter and each tree first on `PYTHONPATH`, and prints every figure the result files
hold, the median of the rounds on each side, with the ratio of this tree's to the base's. A
base whose dependencies differ from this tree's is run with this tree's (the venv is shared).

    python benchmarks/side_by_side.py --base 68104df bench_alignment.py bench_tokens.py \
        "bench_caps.py --workers 2 --scenarios tokens-bound --limiters bucket"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import ROOT, console, table, write_results


def checkout(ref: str) -> Path:
    """A worktree of `ref` beside the repository, made once and reused."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = ROOT.parent / f".prelabel-base-{sha}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), sha], check=True
        )
    return tree


def run(tree: Path, command: str) -> dict[str, Any]:
    """Run one benchmark command in `tree`; return the result file it wrote."""
    argv = shlex.split(command)
    script = tree / "benchmarks" / argv[0]
    results = tree / "benchmarks" / "results"
    before = {p: p.stat().st_mtime for p in results.glob("*.json")} if results.exists() else {}
    env = {**os.environ, "PYTHONPATH": str(tree)}
    console.rule(f"{tree.name}: {command}")
    subprocess.run([sys.executable, str(script), *argv[1:]], cwd=tree, env=env, check=True)
    written = [p for p in results.glob("*.json") if before.get(p) != p.stat().st_mtime]
    if len(written) != 1:
        raise SystemExit(f"{command} in {tree} wrote {len(written)} result files, not one")
    data: dict[str, Any] = json.loads(written[0].read_text())
    return data


def figures(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a result file, by its path (`rows.2.share_of_cap`)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in ("cpus", "load_average"):
                yield from figures(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from figures(inner, f"{prefix}.{i}" if prefix else str(i))


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds (a figure some round lacks is left out)."""
    return {
        name: statistics.median(r[name] for r in runs)
        for name in runs[0]
        if all(name in r for r in runs)
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _ratio(base: float | None, this: float | None) -> str:
    if base is None or this is None:
        return "-"
    return f"{this / base:.3f}" if base else ("=" if this == base else "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="the commit to compare with (HEAD~1)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate this often; medians are compared (1)"
    )
    parser.add_argument(
        "--differences", action="store_true", help="list only the figures that differ"
    )
    parser.add_argument("commands", nargs="+", help="benchmark scripts with their arguments")
    args = parser.parse_args()
    base = checkout(args.base)
    payload: dict[str, Any] = {"base": args.base, "benchmarks": {}}
    for command in args.commands:
        rounds = [(run(base, command), run(ROOT, command)) for _ in range(args.rounds)]
        a = _medians([dict(figures(t)) for t, _ in rounds])
        b = _medians([dict(figures(o)) for _, o in rounds])
        rows = [
            (name, _cell(a.get(name)), _cell(b.get(name)), _ratio(a.get(name), b.get(name)))
            for name in [*a, *(n for n in b if n not in a)]
        ]
        same = sum(name in b and a[name] == b[name] for name in a)
        if args.differences:
            rows = [row for row in rows if row[1] != row[2]]
        console.print(table(command, ["figure", args.base, "this tree", "ratio"], rows))
        console.print(f"{command}: {same} of {len(a)} figures identical, {len(a) - same} differ")
        payload["benchmarks"][command] = {"rounds": args.rounds, "base": a, "this": b}
    write_results("side_by_side", payload)


if __name__ == "__main__":
    main()
