"""Evaluation speed on the whole CoNLL-2003 test split (3,453 sentences), perturbed so that
every part of the report has work to do (5% of mentions dropped, 4% shifted by a token, 5%
swapped to another type; 1% of items failed).

Each stage runs `--repeat` times and the median is reported: scoring (seqeval, scikit-learn),
the bootstrap (1,000 resamples), the error analysis, each chart, each report file, and all of
`evaluate_items` + `write_reports` together (what `prelabel run` adds after labeling). Side by
side, the bootstrap as prelabel computes it (one matrix product over resample weights)
against the plain way (a Python loop that re-sums the drawn items' counts per resample).

    python benchmarks/bench_evaluation.py [--repeat 5] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, console, table, write_results

from evaluation.charts import chart_png
from evaluation.html import report_html
from evaluation.outputs import write_reports
from evaluation.report import report_json, report_markdown
from prelabel.figures import RunFigures
from producer.conll import read_conll
from task_types.bootstrap import bootstrap_intervals, paired_bootstrap, scores
from task_types.ner.bio import spans
from task_types.ner.charts import confusion_heatmaps, f1_bars
from task_types.ner.errors import analyse
from task_types.ner.evaluation import Item, evaluate_items
from task_types.ner.scores import entity_scores, item_counts, token_scores

TYPES = ["LOC", "MISC", "ORG", "PER"]


def perturbed_items(path: Path, seed: int) -> list[Item]:
    rng = random.Random(seed)
    items = []
    for i, sentence in enumerate(read_conll(path)):
        gold = list(sentence.tags)
        if rng.random() < 0.01:
            items.append(Item(f"test-{i:06d}", sentence.tokens, sentence.tags, None, "failed"))
            continue
        pred = ["O"] * len(gold)
        for kind, start, end in sorted(spans(gold), key=lambda s: s[1]):
            x = rng.random()
            if x < 0.05:
                continue
            if x < 0.10:
                kind = rng.choice([t for t in TYPES if t != kind])
            elif x < 0.14 and end - start > 1:
                end -= 1
            pred[start:end] = ["B-" + kind] + ["I-" + kind] * (end - start - 1)
        items.append(Item(f"test-{i:06d}", sentence.tokens, sentence.tags, tuple(pred)))
    return items


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def loop_bootstrap(counts: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The plain bootstrap: draw item indices, re-sum their counts, one resample at a time."""
    rng = np.random.default_rng(seed)
    n = counts.shape[0]
    out = np.empty(resamples)
    for b in range(resamples):
        drawn = rng.integers(0, n, size=n)
        out[b] = float(scores(counts[drawn].sum(0).astype(float)).micro_f1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    data = ROOT.parent / "shared" / "data" / "conll2003" / "test.txt"
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark needs the CoNLL-2003 test split")
    items = perturbed_items(data, seed=1)
    other = perturbed_items(data, seed=2)
    scored = [i for i in items if i.pred is not None and i.gold is not None]
    gold = [list(i.gold or ()) for i in scored]
    pred = [list(i.pred or ()) for i in scored]
    tokens = [list(i.tokens) for i in scored]
    figures = RunFigures(items=len(items), labeled=len(scored), cost_usd=1.0, simulator=True)
    ev = evaluate_items(items, figures, resamples=args.resamples)
    counts = item_counts(gold, pred, TYPES)
    # The second run, on the same items (an item it failed predicts nothing).
    by_id = {i.id: i.pred for i in other}
    other_pred = [list(by_id[i.id] or ["O"] * len(i.tokens)) for i in scored]
    other_counts = item_counts(gold, other_pred, TYPES)
    out = Path(tempfile.mkdtemp(prefix="bench-evaluation-"))
    r = args.repeat
    stages: list[tuple[str, float]] = [
        ("entity_scores (seqeval strict)", median_seconds(lambda: entity_scores(gold, pred), r)),
        ("token_scores (scikit-learn)", median_seconds(lambda: token_scores(gold, pred), r)),
        ("item_counts", median_seconds(lambda: item_counts(gold, pred, TYPES), r)),
        (
            f"bootstrap intervals, {args.resamples} resamples",
            median_seconds(lambda: bootstrap_intervals(counts, TYPES, resamples=args.resamples), r),
        ),
        (
            f"paired bootstrap, {args.resamples} resamples",
            median_seconds(
                lambda: paired_bootstrap(counts, other_counts, TYPES, resamples=args.resamples),
                r,
            ),
        ),
        (
            "error analysis",
            median_seconds(lambda: analyse([i.id for i in scored], tokens, gold, pred), r),
        ),
        (
            "evaluate_items (all of the above)",
            median_seconds(lambda: evaluate_items(items, figures, resamples=args.resamples), r),
        ),
        ("f1_by_type.png", median_seconds(lambda: chart_png(f1_bars(ev)), r)),
        ("confusion.png", median_seconds(lambda: chart_png(confusion_heatmaps(ev)), r)),
        ("report.html (charts given)", median_seconds(lambda: report_html(ev, {}), r)),
        ("report.md", median_seconds(lambda: report_markdown(ev, images=True), r)),
        ("report.json", median_seconds(lambda: report_json(ev), r)),
        ("write_reports (all files)", median_seconds(lambda: write_reports(ev, out), r)),
        (
            "evaluate_items + write_reports",
            median_seconds(
                lambda: write_reports(
                    evaluate_items(items, figures, resamples=args.resamples), out
                ),
                r,
            ),
        ),
    ]
    console.print(
        table(
            f"Evaluation of CoNLL-2003 test ({len(scored)} scored items, "
            f"{sum(len(g) for g in gold)} tokens), median of {r}",
            ["stage", "seconds"],
            stages,
        )
    )
    fast = median_seconds(lambda: bootstrap_intervals(counts, TYPES, resamples=args.resamples), r)
    slow = median_seconds(lambda: loop_bootstrap(counts, args.resamples, 0), max(1, r // 2))
    console.print(
        table(
            f"Bootstrap, {args.resamples} resamples over {len(scored)} items, side by side",
            ["method", "seconds", "× faster"],
            [
                ("resample weights @ counts (prelabel)", fast, slow / fast),
                ("loop over resamples, re-sum drawn items", slow, 1.0),
            ],
        )
    )
    write_results(
        "evaluation",
        {
            "items": len(items),
            "scored": len(scored),
            "resamples": args.resamples,
            "repeat": r,
            "stages": dict(stages),
            "bootstrap_vectorised_seconds": fast,
            "bootstrap_loop_seconds": slow,
            "micro_f1": ev.entity.micro.f1,
        },
    )


if __name__ == "__main__":
    main()
