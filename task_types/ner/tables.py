"""The rows every report shows, as plain strings: the terminal tables, report.md and
report.html are three layouts of these same rows, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

from prelabel.figures import RunFigures
from task_types.bootstrap import Interval
from task_types.ner.errors import ERROR_KINDS, Confusion, FrequentError, ItemDiff, SpanRef
from task_types.ner.evaluation import Evaluation
from task_types.ner.scores import LabelScores, TypeScores
from task_types.tables import confidence_fact, interval, money, pct, per_thousand_rows, ratio
from task_types.tables import figure_rows as core_figure_rows

#: The chart files written beside report.md and embedded in report.html.
F1_PNG = "f1_by_type.png"
CONFUSION_PNG = "confusion.png"

ENTITY_TITLE = "Entity-level (seqeval, strict IOB2)"
TOKEN_TITLE = "Token-level (seed's method, includes O — reads higher than entity-level F1)"
FIGURES_TITLE = "Run figures"
ERRORS_TITLE = "Errors by kind"
LOSSES_TITLE = "Not model errors: failed items and alignment losses"
HEADLINE_TITLE = "Headline: entity-level micro F1"
FAILURES_TITLE = "Failed items by kind"
FAILURES_HEADER = ("kind", "items", "example")
COST_TITLE = "Cost against quality"

SCORE_HEADER = ("type", "P %", "R %", "F1 %", "support")
# Entity rows also show predicted and correct counts, so P and R can be checked by hand,
# and the F1 interval, so that a difference of a point is not read as a finding.
ENTITY_HEADER = ("type", "P %", "R %", "F1 %", "F1 95% CI", "support", "predicted", "tp")
ERRORS_HEADER = ("entity type", *ERROR_KINDS)
FREQUENT_HEADER = ("text", "type", "count", "how")

KIND_HELP = {
    "type": "right span, wrong type",
    "boundary": "right type, overlapping span with other boundaries",
    "type+boundary": "overlapping span, other boundaries and another type",
    "missed": "gold entity that no prediction overlaps",
    "spurious": "predicted entity that overlaps no gold entity",
}


def entity_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Rows of the entity-level table: each type, then the micro and macro averages."""
    iv = ev.intervals if ev.intervals is not None and ev.intervals.resamples > 0 else None

    def row(name: str, s: TypeScores, ci: Interval | None) -> tuple[str, ...]:
        scores = (pct(s.precision), pct(s.recall), pct(s.f1), interval(ci))
        return (name, *scores, str(s.support), str(s.predicted), str(s.tp))

    rows = [
        row(t, s, iv.per_type[t].f1 if iv is not None and t in iv.per_type else None)
        for t, s in ev.entity.per_type.items()
    ]
    rows.append(row("micro avg", ev.entity.micro, iv.micro.f1 if iv else None))
    rows.append(row("macro avg", ev.entity.macro, iv.macro.f1 if iv else None))
    return rows


def token_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Rows of the token-level table: each type (B-/I- merged) and O, then weighted averages."""

    def row(name: str, s: LabelScores) -> tuple[str, ...]:
        return (name, pct(s.precision), pct(s.recall), pct(s.f1), str(s.support))

    rows = [row(t, s) for t, s in ev.token.per_type.items()]
    rows.append(row("weighted avg (B-/I-/O tags)", ev.token.weighted))
    rows.append(row("weighted avg (types + O)", ev.token.weighted_by_type))
    return rows


def tag_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Rows of the token-level table per B-/I- tag and O, as scikit-learn reports them."""
    return [
        (t, pct(s.precision), pct(s.recall), pct(s.f1), str(s.support))
        for t, s in ev.token.per_tag.items()
    ]


def figure_rows(f: RunFigures) -> list[tuple[str, str]]:
    """The run's figures, with NER's: mentions the aligner could not place, and their rate
    among all the model proposed."""
    return core_figure_rows(
        f,
        (
            ("unaligned mentions", str(f.unaligned_mentions)),
            ("unalignable rate", _share(f.unaligned_mentions, f.mentions_proposed)),
        ),
    )


def cost_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Micro F1 against spend: per dollar and per thousand tokens."""
    c = ev.cost
    if c is None:
        return []
    return [
        ("micro F1 (points)", f"{c.f1_points:.2f}"),
        ("tokens (prompt + completion)", f"{c.tokens:,}"),
        ("cost", money(c.cost_usd)),
        *per_thousand_rows(ev.figures),
        ("F1 points per $", ratio(c.f1_per_dollar)),
        ("F1 points per 1k tokens", ratio(c.f1_per_1k_tokens, 4)),
    ]


def error_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Errors by kind per type (the gold type, or the predicted one for spurious entities)."""
    if ev.errors is None:
        return []
    rows = [
        (t, *(str(kinds.get(k, 0)) for k in ERROR_KINDS))
        for t, kinds in ev.errors.kinds_by_type.items()
    ]
    rows.append(("all", *(str(ev.errors.kinds.get(k, 0)) for k in ERROR_KINDS)))
    return rows


def confusion_rows(confusion: Confusion) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """A confusion matrix as a header (`gold \\ pred`, labels) and one row per gold label."""
    header = ("gold \\ pred", *confusion.labels)
    rows = [
        (label, *(f"{c:,}" for c in counts))
        for label, counts in zip(confusion.labels, confusion.counts, strict=True)
    ]
    return header, rows


def frequent_rows(found: Sequence[FrequentError]) -> list[tuple[str, ...]]:
    """Frequent false positives (or negatives): text, type, count, and the kinds of error."""
    return [
        (
            f.text,
            f.type,
            str(f.count),
            ", ".join(f"{k} {n}" for k, n in sorted(f.kinds.items(), key=lambda kv: -kv[1])),
        )
        for f in found
    ]


def _rate(ev: Evaluation) -> str:
    proposed = ev.figures.mentions_proposed
    return f"{100 * ev.losses.unaligned / proposed:.2f}%" if proposed else "n/a"


def loss_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Failed items and alignment losses, counted apart from the model's errors."""
    losses = ev.losses
    rows = [
        ("failed items (not scored)", str(losses.failed)),
        ("labeled items without gold (not scored)", str(losses.without_gold)),
        ("unaligned mentions", str(losses.unaligned)),
        ("unalignable rate (unaligned / mentions proposed)", _rate(ev)),
        ("items with unaligned mentions", str(losses.unaligned_items)),
        ("unaligned mentions matching a missed gold entity", str(losses.unaligned_missed)),
    ]
    rows += [(f"failed: {reason}", str(n)) for reason, n in losses.failed_reasons.items()][:10]
    rows += [(f"unaligned: {reason}", str(n)) for reason, n in losses.unaligned_reasons.items()]
    return rows


def headline_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """F1 over all items (a failed item finds nothing) first, then over labeled items."""
    h = ev.headline
    if h is None:
        return [("over labeled items", pct(ev.entity.micro.f1))]
    return [
        (
            f"over all {h.items:,} items (the {h.failed:,} failed find nothing)",
            pct(h.all_items.f1),
        ),
        (f"over the {h.items - h.failed:,} labeled items", pct(h.labeled_items.f1)),
    ]


def failure_rows(ev: Evaluation) -> list[tuple[str, str, str]]:
    """Failed items grouped by kind of reason, each with one item's whole reason."""
    return [
        (k.kind, f"{k.items:,}", f"{k.example.id}: {k.example.reason}")
        for k in ev.losses.failed_kinds
    ]


def worst_diffs(ev: Evaluation) -> list[ItemDiff]:
    """The diffs of the items with most errors, worst first."""
    if ev.errors is None:
        return []
    by_id = {d.id: d for d in ev.errors.diffs}
    return [by_id[i] for i in ev.errors.worst if i in by_id]


def marked_spans(diff: ItemDiff) -> tuple[set[SpanRef], set[SpanRef]]:
    """The gold spans and predicted spans of an item that are part of an error."""
    wrong_gold = {e.gold for e in diff.errors if e.gold is not None}
    wrong_pred = {e.pred for e in diff.errors if e.pred is not None}
    return wrong_gold, wrong_pred


def bracketed(tokens: Sequence[str], found: Sequence[SpanRef], wrong: set[SpanRef]) -> str:
    """Tokens with spans as `[text]TYPE`, a `✗` after those that are part of an error."""
    out: list[str] = []
    starts = {s.start: s for s in found}
    k = 0
    while k < len(tokens):
        span = starts.get(k)
        if span is None:
            out.append(tokens[k])
            k += 1
            continue
        mark = "✗" if span in wrong else ""
        out.append(f"[{' '.join(tokens[span.start : span.end])}]{span.type}{mark}")
        k = span.end
    return " ".join(out)


def describe(kind: str, gold: SpanRef | None, pred: SpanRef | None) -> str:
    """One error in words, e.g. `boundary: LOC "New York City" → LOC "New York"`."""

    def side(s: SpanRef | None) -> str:
        return "nothing" if s is None else f'{s.type} "{s.text}"'

    return f"{kind}: {side(gold)} → {side(pred)}"


def no_gold_note(ev: Evaluation) -> str | None:
    """What a report says instead of scores when no labeled item has gold labels."""
    if ev.evaluated_items or not ev.losses.without_gold:
        return None
    return (
        f"No gold labels: none of the {ev.losses.without_gold:,} labeled items has gold tags, "
        "so there are no scores. Everything else (predictions, failures, alignment, tokens, "
        "cost, throughput) is below."
    )


def header_facts(ev: Evaluation) -> list[tuple[str, str]]:
    """What was evaluated: model, prompt version, dataset, split, who answered, how many,
    the failed, and the confidence method when the run measured one."""
    f = ev.figures
    answered = (
        "the prelabel simulator (not a real model)"
        if f.simulator
        else f"model {f.model or 'unknown'}"
    )
    return [
        ("model", f.model or "unknown"),
        ("prompt version", f.prompt_version or "unknown"),
        ("dataset", f.dataset or "unknown"),
        ("split", f.split or "unknown"),
        ("answers from", answered),
        ("evaluated", f"{ev.evaluated_items} items ({ev.evaluated_tokens} tokens)"),
        ("failed items, not scored", str(ev.losses.failed or f.failed)),
        *confidence_fact(f),
    ]


def method_note(ev: Evaluation) -> str:
    """How the numbers were computed, in one paragraph."""
    iv = ev.intervals
    boot = (
        f"95% intervals: percentile bootstrap over items (sentences), {iv.resamples} "
        f"resamples, seed {iv.seed}."
        if iv is not None and iv.resamples > 0
        else "No bootstrap intervals were computed."
    )
    return (
        "Entity-level scores are strict (seqeval, IOB2; IOB1 input is converted): an entity "
        "counts only with its exact type and boundaries. " + boot + " Errors pair each gold "
        "span with at most one predicted span: same span, other type (type); same type, "
        "overlapping (boundary); other type, overlapping (type+boundary); else missed or "
        "spurious. Failed items are left out of the scores and counted apart. A mention the "
        "aligner could not place on the item's tokens is dropped: its gold entity counts as "
        "missed, and the alignment losses table says how many of the missed ones it explains."
    )


__all__ = [
    "CONFUSION_PNG",
    "COST_TITLE",
    "ENTITY_HEADER",
    "ENTITY_TITLE",
    "ERRORS_HEADER",
    "ERRORS_TITLE",
    "F1_PNG",
    "FIGURES_TITLE",
    "FREQUENT_HEADER",
    "KIND_HELP",
    "LOSSES_TITLE",
    "SCORE_HEADER",
    "TOKEN_TITLE",
    "bracketed",
    "confusion_rows",
    "cost_rows",
    "describe",
    "entity_rows",
    "error_rows",
    "figure_rows",
    "frequent_rows",
    "header_facts",
    "loss_rows",
    "marked_spans",
    "method_note",
    "tag_rows",
    "token_rows",
    "worst_diffs",
]


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "n/a"
