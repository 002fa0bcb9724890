"""Compare two runs (or predictions files) on the items they share: F1 per type, micro and
macro, the difference B − A with a paired bootstrap interval and p-value, and what each run
cost for its quality.

Only items labeled in both runs, with gold, are compared; items found in one run only, or
failed in either, are counted and left out, so that neither run is judged on items the
other never saw. Beside it, each run's F1 over every item both hold with gold, a failed item
counting as one that found nothing: a run that fails its hard items reads better on the
items both labeled than it delivers.
"""

from __future__ import annotations

from rich.table import Table

from prelabel.errors import DatasetError
from prelabel.figures import CostQuality, cost_quality
from prelabel.frozen import Frozen
from task_types.base import Source
from task_types.bootstrap import RESAMPLES, PairedComparison, PairedDifference, paired_bootstrap
from task_types.ner.evaluation import Item
from task_types.ner.inputs import match_items
from task_types.ner.scores import entity_scores, item_counts
from task_types.tables import money, pct, ratio


class Comparison(Frozen):
    """B against A: the paired test, which items were compared, and cost against quality."""

    a: str
    b: str
    compared: int
    only_in_a: int
    only_in_b: int
    not_scored: int
    paired: PairedComparison
    cost_a: CostQuality
    cost_b: CostQuality
    #: Micro F1 over every item both runs hold with gold (failed: found nothing), and how many.
    f1_all_a: float = 0.0
    f1_all_b: float = 0.0
    items_all: int = 0
    failed_a: int = 0
    failed_b: int = 0


def _scored(pair: tuple[Item, Item]) -> bool:
    a, b = pair
    return a.pred is not None and b.pred is not None and a.gold is not None


def compare_sources(
    a: Source, b: Source, *, resamples: int = RESAMPLES, seed: int = 0
) -> Comparison:
    """Pair the items of A and B (by id, else by text) and test B − A on those both scored."""
    pairs, only_a, only_b = match_items(a.items, b.items)
    for x, y in pairs:
        if x.gold is not None and y.gold is not None and x.gold != y.gold:
            raise DatasetError(
                f"item {x.id!r} has different gold tags in {a.path} and {b.path}; compare runs "
                "on the same gold, or pass --gold SPEC to score both against one dataset"
            )
    scored = [p for p in pairs if _scored(p)]
    if not scored:
        raise DatasetError(
            f"{a.path} and {b.path} share no item labeled in both with gold tags; "
            "are they runs on the same dataset?"
        )
    gold = [list(x.gold or ()) for x, _ in scored]
    pred_a = [list(x.pred or ()) for x, _ in scored]
    pred_b = [list(y.pred or ()) for _, y in scored]
    for x, y in scored:
        if len(x.tokens) != len(y.tokens):
            raise DatasetError(
                f"item {x.id!r} has {len(x.tokens)} tokens in {a.path} but {len(y.tokens)} in "
                f"{b.path}; the two were tokenised differently"
            )
    score_a, score_b = entity_scores(gold, pred_a), entity_scores(gold, pred_b)
    types = sorted(set(score_a.per_type) | set(score_b.per_type))
    paired = paired_bootstrap(
        item_counts(gold, pred_a, types),
        item_counts(gold, pred_b, types),
        types,
        resamples=resamples,
        seed=seed,
    )
    with_gold = [(x, y) for x, y in pairs if x.gold is not None]
    gold_all = [list(x.gold or ()) for x, _ in with_gold]

    def found(item: Item) -> list[str]:
        return list(item.pred) if item.pred is not None else ["O"] * len(item.tokens)

    return Comparison(
        a=str(a.path),
        b=str(b.path),
        compared=len(scored),
        only_in_a=only_a,
        only_in_b=only_b,
        not_scored=len(pairs) - len(scored),
        paired=paired,
        cost_a=cost_quality(score_a.micro.f1, a.figures),
        cost_b=cost_quality(score_b.micro.f1, b.figures),
        f1_all_a=entity_scores(gold_all, [found(x) for x, _ in with_gold]).micro.f1,
        f1_all_b=entity_scores(gold_all, [found(y) for _, y in with_gold]).micro.f1,
        items_all=len(with_gold),
        failed_a=sum(x.pred is None for x, _ in with_gold),
        failed_b=sum(y.pred is None for _, y in with_gold),
    )


def _signed(x: float) -> str:
    return f"{100 * x:+.2f}"


def comparison_rows(c: Comparison) -> list[tuple[str, ...]]:
    """Per type, then micro and macro: F1 of A and B, B − A, its 95% interval, p."""

    def row(name: str, d: PairedDifference) -> tuple[str, ...]:
        ci = f"[{_signed(d.low)}, {_signed(d.high)}]"
        return (name, pct(d.a), pct(d.b), _signed(d.delta), ci, f"{d.p_value:.3f}")

    rows = [row(t, d) for t, d in c.paired.per_type.items()]
    rows.append(row("micro avg", c.paired.micro))
    rows.append(row("macro avg", c.paired.macro))
    return rows


COMPARISON_HEADER = ("type", "F1 A %", "F1 B %", "B − A", "95% CI of B − A", "p")


def render_comparison(c: Comparison) -> list[Table]:
    """The comparison table, and cost against quality for both sides (the files are named
    in `c.a` and `c.b`; print them apart, as table titles would wrap long paths).
    """
    caption = (
        f"{c.compared} items scored in both; left out: {c.only_in_a} only in A, "
        f"{c.only_in_b} only in B, {c.not_scored} failed or without gold. Paired bootstrap, "
        f"{c.paired.resamples} resamples (seed {c.paired.seed}); p = share of resamples where "
        "B − A is 0 or has the other sign."
    )
    table = Table(
        title="B vs A: entity-level F1 (strict)",
        caption=caption,
        title_justify="left",
    )
    for i, head in enumerate(COMPARISON_HEADER):
        table.add_column(head, justify="left" if i == 0 else "right")
    rows = comparison_rows(c)
    for i, r in enumerate(rows):
        table.add_row(*r, end_section=i == len(rows) - 3)
    headline = Table(
        title=f"Entity-level micro F1 over all {c.items_all:,} items with gold "
        "(a failed item finds nothing)",
        title_justify="left",
    )
    for head in ("", "A", "B"):
        headline.add_column(head, justify="left" if not head else "right")
    headline.add_row("F1 over all items", pct(c.f1_all_a), pct(c.f1_all_b))
    headline.add_row("failed items", f"{c.failed_a:,}", f"{c.failed_b:,}")
    headline.add_row("F1 over items labeled in both", pct(c.paired.micro.a), pct(c.paired.micro.b))
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
    "render_comparison",
]
