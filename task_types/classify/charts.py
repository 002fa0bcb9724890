"""The data of a classification report's charts: F1 per class with its 95% intervals, and
(single-label) the confusion matrix as a heatmap, and the confidence section's two
(`task_types.confidence_report`); `evaluation.charts` draws them."""

from __future__ import annotations

from task_types import confidence_report
from task_types.charts import Bars, Chart, Heatmap, Heatmaps
from task_types.classify.evaluation import Evaluation
from task_types.classify.tables import CONFUSION_PNG, F1_PNG


def f1_bars(ev: Evaluation) -> Bars:
    """F1 per class, then micro and macro, with 95% bootstrap intervals (none: no whisker)."""
    s = ev.scores
    values = tuple(100 * x.f1 for x in (*s.per_class.values(), s.micro, s.macro))
    iv = ev.intervals.scores if ev.intervals is not None else None
    if iv is not None and iv.resamples > 0:
        bounds = [*(iv.per_type[c] for c in s.per_class), iv.micro, iv.macro]
        low = tuple(100 * b.f1.low for b in bounds)
        high = tuple(100 * b.f1.high for b in bounds)
    else:
        low, high = values, values
    kind = "label" if ev.multi_label else "class"
    return Bars(
        names=(*s.per_class, "micro avg", "macro avg"),
        values=values,
        low=low,
        high=high,
        accented=2,
        xlabel=f"F1 per {kind} (%); whiskers: 95% bootstrap interval",
    )


def confusion_heatmap(ev: Evaluation) -> Heatmaps:
    """Gold in rows, predictions in columns (single-label)."""
    s = ev.scores
    if not s.confusion:
        return Heatmaps(panels=(None,), note="no scored items: no confusion matrix")
    return Heatmaps(
        panels=(
            Heatmap(
                labels=s.classes,
                counts=s.confusion,
                title=f"confusion matrix ({ev.evaluated_items:,} items)",
                xlabel="predicted class",
                ylabel="gold class",
            ),
        )
    )


def charts(ev: Evaluation) -> dict[str, Chart]:
    """The charts by file name, in the order they are written: F1 per class, the confusion
    heatmap for single-label runs, and, when the run measured confidence, the review curve
    and the reliability diagrams."""
    out: dict[str, Chart] = {F1_PNG: f1_bars(ev)}
    if not ev.multi_label:
        out[CONFUSION_PNG] = confusion_heatmap(ev)
    if ev.confidence is not None:
        out.update(confidence_report.charts(ev.confidence, ev.figures))
    return out


__all__ = ["charts", "confusion_heatmap", "f1_bars"]
