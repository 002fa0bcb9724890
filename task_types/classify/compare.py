"""Compare two classification runs on the items they share: accuracy (single-label: of the
label; multi-label: of the whole set), F1 per class, micro and macro, the difference B − A
with a paired bootstrap interval and p-value, and what each run cost for its quality.

Items are paired by id (a classification item's id is its dataset row's). Only items labeled
in both runs, with gold, are compared; items found in one run only, or failed in either, are
counted and left out. Beside it, each run's accuracy over every item both hold with gold, a
failed item counting as wrong.
"""

from __future__ import annotations

import numpy as np
from rich.table import Table

from prelabel.errors import DatasetError
from prelabel.figures import CostQuality, cost_quality
from prelabel.frozen import Frozen
from task_types.base import Source
from task_types.bootstrap import (
    LEVEL,
    RESAMPLES,
    PairedComparison,
    PairedDifference,
    paired_bootstrap,
    resample_weights,
)
from task_types.classify.evaluation import indicator, item_counts, scores
from task_types.classify.model import Item
from task_types.tables import money, pct, ratio


class Comparison(Frozen):
    """B against A: the paired tests, which items were compared, and cost against quality."""

    a: str
    b: str
    multi_label: bool
    compared: int
    only_in_a: int
    only_in_b: int
    not_scored: int
    accuracy: PairedDifference
    paired: PairedComparison
    cost_a: CostQuality
    cost_b: CostQuality
    #: Accuracy over every item both runs hold with gold (a failed item is wrong), and how many.
    accuracy_all_a: float = 0.0
    accuracy_all_b: float = 0.0
    items_all: int = 0
    failed_a: int = 0
    failed_b: int = 0


def match_items(a: list[Item], b: list[Item]) -> tuple[list[tuple[Item, Item]], int, int]:
    """Pair the items of two runs by id; returns the pairs and how many of A and of B found
    no partner."""
    by_id = {i.id: i for i in b}
    pairs = [(x, by_id[x.id]) for x in a if x.id in by_id]
    return pairs, len(a) - len(pairs), len(b) - len(pairs)


def paired_accuracy(
    right_a: list[bool], right_b: list[bool], *, resamples: int, seed: int
) -> PairedDifference:
    """Accuracy of A and B on the same items, B − A with its percentile interval, and the
    one-sided p of `task_types.bootstrap.paired_bootstrap` (the share of resamples where
    B − A is zero or has the other sign; 1.0 when no difference was observed). The draws are
    those of `paired_bootstrap` for the same seed and items."""
    ea, eb = np.array(right_a, dtype=np.float64), np.array(right_b, dtype=np.float64)
    a_all, b_all = float(ea.mean()), float(eb.mean())
    observed = b_all - a_all
    if not len(ea) or resamples < 1:
        return PairedDifference(
            a=a_all, b=b_all, delta=observed, low=observed, high=observed, p_value=1.0
        )
    weights = resample_weights(len(ea), resamples, seed)
    deltas = (weights @ eb - weights @ ea) / len(ea)
    p_value = float(np.mean(deltas * np.sign(observed) <= 0)) if observed != 0 else 1.0
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return PairedDifference(
        a=a_all, b=b_all, delta=observed, low=float(low), high=float(high), p_value=p_value
    )


def compare_sources(
    a: Source, b: Source, *, multi_label: bool, resamples: int = RESAMPLES, seed: int = 0
) -> Comparison:
    """Pair the items of A and B by id and test B − A on those both scored."""
    pairs, only_a, only_b = match_items(list(a.items), list(b.items))
    for x, y in pairs:
        if x.gold is not None and y.gold is not None and set(x.gold) != set(y.gold):
            raise DatasetError(
                f"item {x.id!r} has different gold labels in {a.path} and {b.path}; compare "
                "runs on the same gold"
            )
    scored = [
        (x, y) for x, y in pairs if x.pred is not None and y.pred is not None and x.gold is not None
    ]
    if not scored:
        raise DatasetError(
            f"{a.path} and {b.path} share no item labeled in both with gold labels; "
            "are they runs on the same dataset?"
        )
    gold = [list(x.gold or ()) for x, _ in scored]
    pred_a = [list(x.pred or ()) for x, _ in scored]
    pred_b = [list(y.pred or ()) for _, y in scored]
    ids = [x.id for x, _ in scored]
    score_a = scores(gold, pred_a, multi_label=multi_label, ids=ids)
    score_b = scores(gold, pred_b, multi_label=multi_label, ids=ids)
    classes = sorted(set(score_a.classes) | set(score_b.classes))
    g = indicator(gold, classes)
    paired = paired_bootstrap(
        item_counts(g, indicator(pred_a, classes)),
        item_counts(g, indicator(pred_b, classes)),
        classes,
        resamples=resamples,
        seed=seed,
    )
    accuracy = paired_accuracy(
        [set(p) == set(t) for p, t in zip(pred_a, gold, strict=True)],
        [set(p) == set(t) for p, t in zip(pred_b, gold, strict=True)],
        resamples=resamples,
        seed=seed,
    )
    with_gold = [(x, y) for x, y in pairs if x.gold is not None]

    def right(item: Item) -> bool:
        return item.pred is not None and set(item.pred) == set(item.gold or ())

    n = len(with_gold)
    return Comparison(
        a=str(a.path),
        b=str(b.path),
        multi_label=multi_label,
        compared=len(scored),
        only_in_a=only_a,
        only_in_b=only_b,
        not_scored=len(pairs) - len(scored),
        accuracy=accuracy,
        paired=paired,
        cost_a=cost_quality(score_a.micro.f1, a.figures),
        cost_b=cost_quality(score_b.micro.f1, b.figures),
        accuracy_all_a=sum(right(x) for x, _ in with_gold) / n,
        accuracy_all_b=sum(right(y) for _, y in with_gold) / n,
        items_all=n,
        failed_a=sum(x.pred is None for x, _ in with_gold),
        failed_b=sum(y.pred is None for _, y in with_gold),
    )


def _signed(x: float) -> str:
    return f"{100 * x:+.2f}"


COMPARISON_HEADER = ("score", "A %", "B %", "B − A", "95% CI of B − A", "p")


def comparison_rows(c: Comparison) -> list[tuple[str, ...]]:
    """Accuracy, then F1 per class, then micro and macro F1: A, B, B − A, its interval, p."""

    def row(name: str, d: PairedDifference) -> tuple[str, ...]:
        ci = f"[{_signed(d.low)}, {_signed(d.high)}]"
        return (name, pct(d.a), pct(d.b), _signed(d.delta), ci, f"{d.p_value:.3f}")

    rows = [row("subset accuracy" if c.multi_label else "accuracy", c.accuracy)]
    rows += [row(f"F1 {t}", d) for t, d in c.paired.per_type.items()]
    rows.append(row("micro F1", c.paired.micro))
    rows.append(row("macro F1", c.paired.macro))
    return rows


def render_comparison(c: Comparison) -> list[Table]:
    """The headline over all items, the comparison table, and cost against quality."""
    caption = (
        f"{c.compared} items scored in both; left out: {c.only_in_a} only in A, "
        f"{c.only_in_b} only in B, {c.not_scored} failed or without gold. Paired bootstrap, "
        f"{c.paired.resamples} resamples (seed {c.paired.seed}); p = share of resamples where "
        "B − A is 0 or has the other sign."
    )
    kind = "multi-label" if c.multi_label else "single-label"
    table = Table(title=f"B vs A: {kind} classification", caption=caption, title_justify="left")
    for i, head in enumerate(COMPARISON_HEADER):
        table.add_column(head, justify="left" if i == 0 else "right")
    rows = comparison_rows(c)
    for i, r in enumerate(rows):
        table.add_row(*r, end_section=i in (0, len(rows) - 3))
    what = "subset accuracy" if c.multi_label else "accuracy"
    headline = Table(
        title=f"{what.capitalize()} over all {c.items_all:,} items with gold "
        "(a failed item is wrong)",
        title_justify="left",
    )
    for head in ("", "A", "B"):
        headline.add_column(head, justify="left" if not head else "right")
    headline.add_row(f"{what} over all items", pct(c.accuracy_all_a), pct(c.accuracy_all_b))
    headline.add_row("failed items", f"{c.failed_a:,}", f"{c.failed_b:,}")
    headline.add_row(f"{what} over items labeled in both", pct(c.accuracy.a), pct(c.accuracy.b))
    cost = Table(title="Cost against quality", title_justify="left")
    for head in ("", "A", "B"):
        cost.add_column(head, justify="left" if not head else "right")
    for name, a, b in (
        ("micro F1 (points)", *(f"{q.f1_points:.2f}" for q in (c.cost_a, c.cost_b))),
        ("tokens", *(f"{q.tokens:,}" for q in (c.cost_a, c.cost_b))),
        ("cost", *(money(q.cost_usd) for q in (c.cost_a, c.cost_b))),
        ("F1 points per $", *(ratio(q.f1_per_dollar) for q in (c.cost_a, c.cost_b))),
        ("F1 points per 1k tokens", *(ratio(q.f1_per_1k_tokens, 4) for q in (c.cost_a, c.cost_b))),
    ):
        cost.add_row(name, a, b)
    return [headline, table, cost]


__all__ = [
    "COMPARISON_HEADER",
    "Comparison",
    "compare_sources",
    "comparison_rows",
    "match_items",
    "paired_accuracy",
    "render_comparison",
]
