"""The rows every classification report shows, as plain strings: the terminal tables,
report.md and report.html are three layouts of these same rows, so they can never disagree.
"""

from __future__ import annotations

from task_types.bootstrap import Interval
from task_types.classify.evaluation import ClassScores, Evaluation
from task_types.tables import confidence_fact, interval, money, pct, per_thousand_rows, ratio
from task_types.tables import figure_rows as core_figure_rows

#: The chart files written beside report.md and embedded in report.html.
F1_PNG = "f1_by_class.png"
CONFUSION_PNG = "confusion.png"

FIGURES_TITLE = "Run figures"
LOSSES_TITLE = "Not model errors: failed items"
FAILURES_TITLE = "Failed items by kind"
FAILURES_HEADER = ("kind", "items", "example")
REPAIRS_TITLE = "Answer repairs"
REPAIRS_HEADER = ("item", "answer", "read as", "reason")
CONFUSION_TITLE = "Confusion matrix"
CONFUSED_TITLE = "Most confused classes"
CONFUSED_HEADER = ("gold", "predicted as", "items")
WRONG_TITLE = "Wrong items"
WRONG_HEADER = ("item", "gold", "predicted")
COST_TITLE = "Cost against quality"
CLASS_HEADER = ("class", "P %", "R %", "F1 %", "F1 95% CI", "support", "predicted", "tp")


def class_title(ev: Evaluation) -> str:
    return (
        "Per-label scores (multi-label, scikit-learn)"
        if ev.multi_label
        else "Per-class scores (single-label, scikit-learn)"
    )


def headline_title(ev: Evaluation) -> str:
    return "Headline: subset (exact-set) accuracy" if ev.multi_label else "Headline: accuracy"


def class_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Each class, then the micro and macro averages, with F1 intervals."""
    iv = ev.intervals.scores if ev.intervals is not None and ev.intervals.scores.resamples else None

    def row(name: str, s: ClassScores, ci: Interval | None) -> tuple[str, ...]:
        return (
            name,
            pct(s.precision),
            pct(s.recall),
            pct(s.f1),
            interval(ci),
            str(s.support),
            str(s.predicted),
            str(s.tp),
        )

    rows = [
        row(c, s, iv.per_type[c].f1 if iv is not None and c in iv.per_type else None)
        for c, s in ev.scores.per_class.items()
    ]
    rows.append(row("micro avg", ev.scores.micro, iv.micro.f1 if iv else None))
    rows.append(row("macro avg", ev.scores.macro, iv.macro.f1 if iv else None))
    return rows


def summary_rows(ev: Evaluation) -> list[tuple[str, str, str]]:
    """The run's summary scores over the labeled items, each with its 95% interval."""
    iv = ev.intervals if ev.intervals is not None and ev.intervals.scores.resamples else None
    s = ev.scores
    rows = [
        (
            "subset accuracy (exact set)" if ev.multi_label else "accuracy",
            pct(s.accuracy),
            interval(iv.accuracy if iv else None),
        ),
        ("micro F1", pct(s.micro.f1), interval(iv.scores.micro.f1 if iv else None)),
        ("macro F1", pct(s.macro.f1), interval(iv.scores.macro.f1 if iv else None)),
    ]
    if ev.multi_label and s.hamming_loss is not None:
        rows.append(
            (
                "Hamming loss (lower is better)",
                pct(s.hamming_loss),
                interval(iv.hamming_loss if iv else None),
            )
        )
    return rows


SUMMARY_HEADER = ("score", "%", "95% CI")


def headline_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Accuracy over all items with gold (a failed item is wrong) first, then over labeled
    items, and micro F1 the same two ways."""
    h = ev.headline
    what = "subset accuracy" if ev.multi_label else "accuracy"
    if h is None:
        return [(f"{what} over labeled items", pct(ev.scores.accuracy))]
    return [
        (
            f"{what} over all {h.items:,} items (the {h.failed:,} failed are wrong)",
            pct(h.accuracy_all),
        ),
        (f"{what} over the {h.items - h.failed:,} labeled items", pct(h.accuracy_labeled)),
        ("micro F1 over all items (a failed item predicts no label)", pct(h.micro_f1_all)),
        ("micro F1 over the labeled items", pct(h.micro_f1_labeled)),
    ]


def repair_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """How many labels were repaired or dropped to read the answers."""
    r = ev.repairs
    rows = [
        ("labels repaired (near-miss spelling read as a label)", str(r.repaired)),
        ("  of which in the item's gold", str(r.repaired_right)),
        ("labels outside the label set (dropped)", str(r.dropped)),
        ("items with a repair", str(r.items)),
    ]
    if ev.multi_label:
        rows.append(("items labeled with no label (empty answer)", str(r.empty)))
    return rows


def repair_examples(ev: Evaluation) -> list[tuple[str, str, str, str]]:
    return [
        (x.id, x.given, x.label if x.label is not None else "(dropped)", x.reason)
        for x in ev.repairs.examples
    ]


def loss_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Failed items (by kind) and labeled items without gold, counted apart from errors."""
    losses = ev.losses
    rows = [
        ("failed items (not scored; wrong in the headline)", str(losses.failed)),
        ("labeled items without gold (not scored)", str(losses.without_gold)),
    ]
    rows += [(f"failed: {reason}", str(n)) for reason, n in losses.failed_reasons.items()][:10]
    return rows


def failure_rows(ev: Evaluation) -> list[tuple[str, str, str]]:
    """Failed items grouped by kind of reason, each with one item's whole reason."""
    return [
        (k.kind, f"{k.items:,}", f"{k.example.id}: {k.example.reason}")
        for k in ev.losses.failed_kinds
    ]


def confusion_rows(ev: Evaluation) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The confusion matrix (single-label) as a header and one row per gold class."""
    s = ev.scores
    header = ("gold \\ pred", *s.classes)
    rows = [
        (c, *(f"{n:,}" for n in counts))
        for c, counts in zip(s.classes, s.confusion or (), strict=False)
    ]
    return header, rows


def confused_rows(ev: Evaluation) -> list[tuple[str, str, str]]:
    return [(c.gold, c.pred, f"{c.count:,}") for c in ev.confused]


def wrong_rows(ev: Evaluation) -> list[tuple[str, str, str]]:
    return [(w.id, ", ".join(w.gold), ", ".join(w.pred) or "(none)") for w in ev.wrong]


def figure_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """The run's figures, with classification's: labels repaired and dropped."""
    return core_figure_rows(
        ev.figures,
        (
            ("labels repaired", str(ev.repairs.repaired)),
            ("labels outside the set", str(ev.repairs.dropped)),
        ),
    )


def cost_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Micro F1 against spend: per dollar and per thousand tokens."""
    c = ev.cost
    if c is None:
        return []
    return [
        ("micro F1 (points, labeled items)", f"{c.f1_points:.2f}"),
        ("tokens (prompt + completion)", f"{c.tokens:,}"),
        ("cost", money(c.cost_usd)),
        *per_thousand_rows(ev.figures),
        ("F1 points per $", ratio(c.f1_per_dollar)),
        ("F1 points per 1k tokens", ratio(c.f1_per_1k_tokens, 4)),
    ]


def no_gold_note(ev: Evaluation) -> str | None:
    """What a report says instead of scores when no labeled item has gold labels."""
    if ev.evaluated_items or not ev.losses.without_gold:
        return None
    return (
        f"No gold labels: none of the {ev.losses.without_gold:,} labeled items has gold labels, "
        "so there are no scores. Everything else (predictions, failures, repairs, tokens, "
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
    kind = "multi-label" if ev.multi_label else "single-label"
    return [
        ("model", f.model or "unknown"),
        ("prompt version", f.prompt_version or "unknown"),
        ("dataset", f.dataset or "unknown"),
        ("split", f.split or "unknown"),
        ("answers from", answered),
        ("evaluated", f"{ev.evaluated_items} items, {kind}, {len(ev.scores.classes)} classes"),
        ("failed items, not scored", str(ev.losses.failed or f.failed)),
        *confidence_fact(f),
    ]


def method_note(ev: Evaluation) -> str:
    """How the numbers were computed, in one paragraph."""
    iv = ev.intervals
    boot = (
        f"95% intervals: percentile bootstrap over items, {iv.scores.resamples} resamples, "
        f"seed {iv.scores.seed}."
        if iv is not None and iv.scores.resamples > 0
        else "No bootstrap intervals were computed."
    )
    if ev.multi_label:
        how = (
            "Multi-label scores are scikit-learn's on each item's label set as a row of 0/1 "
            "per label: per-label precision, recall and F1, micro F1 (pooled over every "
            "(item, label) decision) and macro F1 (the unweighted mean over labels); subset "
            "accuracy counts an item right only when its whole set is the gold set; Hamming "
            "loss is the share of (item, label) decisions that are wrong."
        )
    else:
        how = (
            "Single-label scores are scikit-learn's: accuracy, per-class precision, recall and "
            "F1, micro F1 (equal to accuracy with one label per item) and macro F1 (the "
            "unweighted mean over classes); the confusion matrix has gold in rows."
        )
    return (
        f"{how} Classes are the tags the scored items' gold and predictions use; a score "
        f"without a denominator counts as 0. {boot} Failed items are left out of the scores "
        "and counted apart, by kind of reason; the headline counts them as wrong over every "
        "item with gold. A repaired label (a near-miss spelling read as a label) is scored as "
        "the label it was read as; a dropped one is not predicted."
    )


__all__ = [
    "CLASS_HEADER",
    "CONFUSED_HEADER",
    "CONFUSED_TITLE",
    "CONFUSION_PNG",
    "CONFUSION_TITLE",
    "COST_TITLE",
    "F1_PNG",
    "FAILURES_HEADER",
    "FAILURES_TITLE",
    "FIGURES_TITLE",
    "LOSSES_TITLE",
    "REPAIRS_HEADER",
    "REPAIRS_TITLE",
    "SUMMARY_HEADER",
    "WRONG_HEADER",
    "WRONG_TITLE",
    "class_rows",
    "class_title",
    "confused_rows",
    "confusion_rows",
    "cost_rows",
    "failure_rows",
    "figure_rows",
    "header_facts",
    "headline_rows",
    "headline_title",
    "loss_rows",
    "method_note",
    "no_gold_note",
    "repair_examples",
    "repair_rows",
    "summary_rows",
    "wrong_rows",
]
