"""Confidence on a real model: does it put the wrong items first in review?

Runs each confidence method (`--confidence logprobs`, `consistency:N`, `verify`) through the
real system (Redis, one `prelabel worker` keeping as many calls in flight as the server has
slots, `prelabel run` through the CLI, the collector's report.json) against a local
OpenAI-compatible server such as llama.cpp's `llama-server` with Gemma 3 270M
(../shared/tools/real-model/), on the first N CoNLL-2003 test sentences and the first N AG
News test items (held-out examples from rows 7,200 on, as the README documents). For each
it prints the figures of the report's confidence section: AUROC of confidence for finding
wrong items, the expected calibration error (items and proposals), the share of wrong items
among the least-confident 10/20/50%, and the review curve against random order, with the
issue's target: a method whose review curve beats random order at every X from 10% to 50%.
Writes benchmarks/results/confidence.json.

Figures from the simulator prove nothing about a model (its log-probabilities are made up),
so this benchmark has no simulator mode: when no server answers at --base-url it says so and
exits 0 without running (skipped). Redis is `PRELABEL_BENCH_REDIS_URL` (default db 11 of
the local server), which it flushes.

    python benchmarks/bench_confidence.py [--base-url URL] [--model ID] [--limit N]
        [--methods logprobs,consistency:3,verify] [--datasets conll,ag_news]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_real_model import DEFAULT_URL, served_models, slots
from common import CONLL, REDIS_URL, ROOT, console, fleet, flush, logs_dir, table, write_results

DATA = ROOT.parent / "shared" / "data"
#: The shares of items reviewed at which the target compares ordered and random review.
TARGET_SHARES = (10, 15, 20, 25, 30, 35, 40, 45, 50)


@dataclass(frozen=True)
class Task:
    """A dataset and the `prelabel run` flags that label it on a small local model."""

    name: str
    path: Path
    flags: tuple[str, ...]


TASKS = {
    "conll": Task(
        "CoNLL-2003 NER",
        CONLL / "test.txt",
        # The small-model settings the README recommends: few-shot from the train split.
        ("--few-shot", "5", "--max-tokens", "160", "--response-format", "json_schema"),
    ),
    "ag_news": Task(
        "AG News",
        DATA / "ag_news" / "test.csv",
        (
            "--task",
            "classify",
            "--labels",
            str(DATA / "ag_news" / "classes.txt"),
            "--columns",
            "label,title,description",
            "--text-field",
            "title,description",
            "--first-label-id",
            "1",
            "--few-shot",
            "4",
            "--few-shot-from",
            str(DATA / "ag_news" / "test.csv"),
            "--few-shot-rows",
            "7200:",
            "--max-tokens",
            "24",
            "--response-format",
            "json_schema",
        ),
    ),
}


def run(
    task: Task, method: str, args: argparse.Namespace, model: str, inflight: int
) -> dict[str, Any]:
    """One `prelabel run` of `task` with `--confidence method`; the report's figures."""
    flush()
    out = Path(tempfile.mkdtemp(prefix="prelabel-bench-confidence-"))
    rows = ("--rows", f":{args.limit}") if "--few-shot-rows" in task.flags else ()
    limit = () if rows else ("--limit", str(args.limit))
    env = {"PRELABEL_INFLIGHT": str(inflight), "PRELABEL_REQUEST_TIMEOUT": "240"}
    with logs_dir("confidence") as logs, fleet(1, logs, env) as running:
        command = [
            sys.executable,
            "-m",
            "prelabel",
            "run",
            "--dataset",
            str(task.path),
            "--split",
            "test",
            *task.flags,
            *rows,
            *limit,
            "--model",
            model,
            "--base-url",
            args.base_url,
            "--confidence",
            method,
            "--no-cache",
            "--shard-size",
            str(max(args.limit // 4, 1)),
            "--out",
            str(out),
        ]
        environ = {**os.environ, "REDIS_URL": REDIS_URL, "PRELABEL_QUEUE": running.settings.queue}
        started = time.monotonic()
        done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
    if done.returncode != 0:
        return {"error": f"prelabel run exited {done.returncode}: {done.stderr.strip()[-400:]}"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    figures = report["figures"]
    confidence = report.get("confidence")
    if not confidence:
        return {"error": "the report has no confidence section", "out": str(out)}
    review = confidence["review"]
    ordered = dict(zip(review["shares"], review["ordered"], strict=True))
    random = dict(zip(review["shares"], review["random"], strict=True))
    beats = all(ordered[x] > random[x] for x in TARGET_SHARES)
    proposals = confidence.get("proposal_calibration") or {}
    return {
        # The simulator's log-probabilities are made up: such figures test the plumbing only.
        "simulated": bool(figures.get("simulator")),
        "items": confidence["items"],
        "measured": confidence["measured"],
        "failed": confidence["failed"],
        "wrong": confidence["wrong"],
        "auroc": confidence["auroc"],
        "ece_items": confidence["item_calibration"]["ece"],
        "ece_proposals": proposals.get("ece"),
        "wrong_among_least_confident": {
            f"{round(p['share'] * 100)}%": p["precision"] for p in confidence["precision_at"]
        },
        "metric": review["metric"],
        "review_ordered": ordered,
        "review_random": random,
        "beats_random_10_to_50": beats,
        "requests": figures["requests"],
        "prompt_tokens": figures["prompt_tokens"],
        "completion_tokens": figures["completion_tokens"],
        "seconds": seconds,
        "out": str(out),
    }


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=DEFAULT_URL, help="the local server's /v1 URL")
    parser.add_argument("--model", help="the model id (default: the one the server lists)")
    parser.add_argument("--limit", type=int, default=200, help="items per dataset")
    parser.add_argument("--methods", default="logprobs,verify,consistency:3")
    parser.add_argument("--datasets", default="conll,ag_news")
    parser.add_argument("--inflight", type=int, help="calls in flight (default: server slots)")
    args = parser.parse_args()

    models = served_models(args.base_url)
    if models is None:
        console.print(
            f"[yellow]skipped:[/] no server answers at {args.base_url}; start one (for Gemma 3 "
            "270M: ../shared/tools/real-model/setup.sh, then DIR/serve.sh 8091) or pass "
            "--base-url. The simulator's log-probabilities are made up, so it is no stand-in."
        )
        return
    tasks = {name: TASKS[name] for name in args.datasets.split(",")}
    absent = [str(t.path) for t in tasks.values() if not t.path.exists()]
    if absent:
        console.print(f"[yellow]skipped:[/] absent: {', '.join(absent)}")
        return
    model = args.model or (models[0] if len(models) == 1 else None)
    if model is None:
        parser.error(f"the server lists {len(models)} models; pass --model (one of {models})")
    inflight = args.inflight or slots(args.base_url) or 2
    results: dict[str, dict[str, Any]] = {}
    for key, task in tasks.items():
        for method in args.methods.split(","):
            console.print(f"{task.name}, --confidence {method}: {args.limit} items ...")
            results[f"{key} {method}"] = result = run(task, method, args, model, inflight)
            if "error" in result:
                console.print(f"[red]{result['error']}[/]")
            elif result["simulated"]:
                console.print(
                    "[yellow]the answers came from prelabel's simulator: its confidence is "
                    "made up, and these figures prove nothing about a model[/]"
                )
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append((name, r["error"][:60], "", "", "", "", "", "", ""))
            continue
        at = r["wrong_among_least_confident"]
        rows.append(
            (
                name,
                f"{r['items']} / {r['wrong']}",
                "n/a" if r["auroc"] is None else f"{r['auroc']:.3f}",
                f"{r['ece_items']:.3f}",
                "n/a" if r["ece_proposals"] is None else f"{r['ece_proposals']:.3f}",
                " / ".join(pct(at.get(s)) for s in ("10%", "20%", "50%")),
                f"{pct(r['review_ordered'][0])} -> {pct(r['review_ordered'][20])} "
                f"(random {pct(r['review_random'][20])})",
                "yes" if r["beats_random_10_to_50"] else "no",
                f"{r['requests']} / {r['seconds']:.0f}",
            )
        )
    console.print(
        table(
            f"Confidence on {Path(model).name} at {args.base_url}",
            (
                "dataset, method",
                "items / wrong",
                "AUROC",
                "ECE items",
                "ECE proposals",
                "wrong in least-sure 10/20/50%",
                "metric: 0% -> 20% reviewed",
                "beats random 10-50%",
                "requests / s",
            ),
            rows,
        )
    )
    for name, r in results.items():
        if "error" in r:
            continue
        shares = sorted(r["review_ordered"])
        console.print(
            table(
                f"Review curve, {name} ({r['metric']})",
                ("reviewed", *(f"{s}%" for s in shares if s <= 60 and s % 10 == 0)),
                [
                    (
                        "confidence order",
                        *(pct(r["review_ordered"][s]) for s in shares if s <= 60 and s % 10 == 0),
                    ),
                    (
                        "random order",
                        *(pct(r["review_random"][s]) for s in shares if s <= 60 and s % 10 == 0),
                    ),
                ],
            )
        )
    write_results(
        "confidence",
        {"base_url": args.base_url, "model": model, "limit": args.limit, "results": results},
    )


if __name__ == "__main__":
    main()
