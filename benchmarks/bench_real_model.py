"""A real model behind a local OpenAI-compatible server: what prelabel gets out of it.

Labels the first N sentences of the CoNLL-2003 test split (default 100) through the real
system (Redis, one `prelabel worker` process keeping as many calls in flight as the server has
slots, the collector's files) against a server on this machine, such as llama.cpp's
`llama-server` with Gemma 3 270M (../shared/tools/real-model/), with the recommended settings
for small local models unless told otherwise. It prints the entity-level F1 over all items (a
failed item finds nothing) and over the labeled items, the failures by kind with an example,
tokens per sentence and seconds per request, and writes benchmarks/results/real_model.json.

When no server answers at --base-url, it says so and exits 0 without running (skipped).
Redis is `PRELABEL_BENCH_REDIS_URL` (default db 11 of the local server), which it flushes.

    python benchmarks/bench_real_model.py [--base-url URL] [--model ID] [--limit N]
        [--few-shot K] [--batch-size K] [--max-tokens N] [--response-format F] [--inflight N]
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import CONLL, REDIS_URL, console, fleet, flush, logs_dir, table, write_results

from prelabel.errors import failure_kind
from producer.labeling import LabelingOptions
from producer.loading import DatasetSpec

DEFAULT_URL = "http://127.0.0.1:8091/v1"


def served_models(base_url: str) -> list[str] | None:
    """The model ids the server lists, or None when nothing answers."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=5) as response:
            data = json.load(response)
    except (OSError, ValueError):
        return None
    entries = data.get("data") if isinstance(data, dict) else None
    return [str(e.get("id")) for e in entries or [] if isinstance(e, dict)]


def slots(base_url: str) -> int | None:
    """llama.cpp's server's parallel slots (`/props` `total_slots`), when it says."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(root + "/props", timeout=5) as response:
            value = json.load(response).get("total_slots")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def label(args: argparse.Namespace, model: str, inflight: int) -> dict[str, Any]:
    """One run through the real system; its figures from the collector's files."""
    from rich.console import Console

    from producer.pipeline import RunOptions, run_pipeline

    flush()
    test = CONLL / "test.txt"
    env = {"PRELABEL_INFLIGHT": str(inflight), "PRELABEL_REQUEST_TIMEOUT": "180"}
    with logs_dir("real-model") as logs, fleet(1, logs, env) as running:
        spec = DatasetSpec(source=str(test), split="test", limit=args.limit)
        options = RunOptions(
            model=model,
            base_url=args.base_url,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            shard_size=max(args.limit // 4, 1),
            cache=False,
            labeling=LabelingOptions(
                few_shot=args.few_shot,
                few_shot_strategy=args.few_shot_strategy,
                response_format=args.response_format,
            ),
        )
        started = time.monotonic()
        outcome = run_pipeline(running.settings, spec, options, logs / "out", Console(quiet=True))
        seconds = time.monotonic() - started
    out = logs / "out"
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    figures = report["figures"]
    failed = [r for r in rows if r["status"] == "failed"]
    kinds: dict[str, dict[str, Any]] = {}
    for row in failed:
        kind = kinds.setdefault(failure_kind(row["error"]), {"items": 0, "example": row["error"]})
        kind["items"] += 1
    headline = report["headline"]
    tokens = figures["prompt_tokens"] + figures["completion_tokens"]
    return {
        "status": outcome.status,
        "items": len(rows),
        "labeled": len(rows) - len(failed),
        "failed": len(failed),
        "f1_all_items": headline["all_items"]["f1"],
        "f1_labeled_items": headline["labeled_items"]["f1"],
        "failures_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["items"])),
        "unaligned_mentions": figures["unaligned_mentions"],
        "mentions_proposed": figures["mentions_proposed"],
        "requests": figures["requests"],
        "prompt_tokens": figures["prompt_tokens"],
        "completion_tokens": figures["completion_tokens"],
        "tokens_per_sentence": tokens / max(len(rows), 1),
        "seconds": seconds,
        # Requests overlap (one per slot): a request's own time is the wall time spread over
        # the requests one slot served.
        "seconds_per_request": seconds * inflight / max(figures["requests"], 1),
        "out": str(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=DEFAULT_URL, help="the local server's /v1 URL")
    parser.add_argument("--model", help="the model id (default: the one the server lists)")
    parser.add_argument("--limit", type=int, default=100, help="CoNLL test sentences to label")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--few-shot", type=int, default=5)
    parser.add_argument("--few-shot-strategy", default="similar")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument(
        "--response-format", default="json_schema", choices=("auto", "json_schema", "json_object")
    )
    parser.add_argument("--inflight", type=int, help="calls in flight (default: server slots)")
    parser.add_argument("--name", default="real_model", help="results file name")
    args = parser.parse_args()

    models = served_models(args.base_url)
    if models is None:
        console.print(
            f"[yellow]skipped:[/] no server answers at {args.base_url}; start one (for Gemma 3 "
            "270M: ../shared/tools/real-model/setup.sh, then DIR/serve.sh 8091) or pass --base-url"
        )
        return
    if not (CONLL / "test.txt").exists():
        console.print(f"[yellow]skipped:[/] {CONLL / 'test.txt'} is absent")
        return
    model = args.model or (models[0] if len(models) == 1 else None)
    if model is None:
        parser.error(f"the server lists {len(models)} models; pass --model (one of {models})")
    inflight = args.inflight or slots(args.base_url) or 2
    setting = (
        f"batch {args.batch_size}, {args.few_shot} {args.few_shot_strategy} examples, "
        f"max_tokens {args.max_tokens}, {args.response_format}"
    )
    console.print(f"{args.limit} sentences, {setting}, {inflight} in flight, redis {REDIS_URL}")
    result = label(args, model, inflight)
    console.print(
        table(
            f"{Path(model).name} at {args.base_url}: {setting}",
            ("figure", "value"),
            [
                ("items", result["items"]),
                ("labeled / failed", f"{result['labeled']} / {result['failed']}"),
                ("entity F1 over all items (failed find nothing)", pct(result["f1_all_items"])),
                ("entity F1 over labeled items", pct(result["f1_labeled_items"])),
                (
                    "unaligned / proposed mentions",
                    f"{result['unaligned_mentions']} / {result['mentions_proposed']}",
                ),
                ("requests", result["requests"]),
                ("tokens per sentence (prompt + completion)", result["tokens_per_sentence"]),
                ("seconds per request", result["seconds_per_request"]),
                ("wall seconds", result["seconds"]),
            ],
        )
    )
    if result["failures_by_kind"]:
        console.print(
            table(
                "Failures by kind",
                ("kind", "items", "example"),
                [
                    (k, v["items"], v["example"][:160])
                    for k, v in result["failures_by_kind"].items()
                ],
            )
        )
    write_results(
        args.name,
        {
            "base_url": args.base_url,
            "model": model,
            "limit": args.limit,
            "batch_size": args.batch_size,
            "few_shot": args.few_shot,
            "few_shot_strategy": args.few_shot_strategy,
            "max_tokens": args.max_tokens,
            "response_format": args.response_format,
            "inflight": inflight,
            **result,
        },
    )


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


if __name__ == "__main__":
    main()
