"""The data of NER's charts: entity-level F1 per type with its 95% intervals, the span-level
and token-level confusion between types, and the confidence section's two
(`task_types.confidence_report`); `evaluation.charts` draws them."""

from __future__ import annotations

from task_types import confidence_report
from task_types.charts import Bars, Chart, Heatmap, Heatmaps
from task_types.ner.errors import NO_ENTITY, Confusion
from task_types.ner.evaluation import Evaluation
from task_types.ner.tables import CONFUSION_PNG, F1_PNG


def f1_bars(ev: Evaluation) -> Bars:
    """F1 per type, then micro and macro, with 95% bootstrap intervals (none: no whisker)."""
    scores = [*ev.entity.per_type.values(), ev.entity.micro, ev.entity.macro]
    f1 = tuple(100 * s.f1 for s in scores)
    if ev.intervals is not None and ev.intervals.resamples > 0:
        bounds = [*ev.intervals.per_type.values(), ev.intervals.micro, ev.intervals.macro]
        low = tuple(100 * b.f1.low for b in bounds)
        high = tuple(100 * b.f1.high for b in bounds)
    else:
        low, high = f1, f1
    return Bars(
        names=(*ev.entity.per_type, "micro avg", "macro avg"),
        values=f1,
        low=low,
        high=high,
        accented=2,
        xlabel="entity-level F1 (%), strict; whiskers: 95% bootstrap interval",
    )


def _heatmap(confusion: Confusion, title: str, xlabel: str, ylabel: str) -> Heatmap:
    return Heatmap(
        labels=tuple(confusion.labels),
        counts=tuple(tuple(row) for row in confusion.counts),
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        blank=NO_ENTITY,
    )


def confusion_heatmaps(ev: Evaluation) -> Heatmaps:
    """Span-level and token-level confusion, gold in rows, predictions in columns."""
    if ev.errors is None:
        return Heatmaps(panels=(None, None), note="no error analysis in this report")
    return Heatmaps(
        panels=(
            _heatmap(
                ev.errors.span_confusion,
                "span-level: paired entities",
                "predicted type (none = missed)",
                "gold type (none = spurious)",
            ),
            _heatmap(
                ev.errors.token_confusion,
                "token-level: B-/I- merged, O included",
                "predicted",
                "gold",
            ),
        )
    )


def charts(ev: Evaluation) -> dict[str, Chart]:
    """The charts by file name, in the order they are written: F1 by type, the confusion,
    and, when the run measured confidence, the review curve and the reliability diagrams."""
    out: dict[str, Chart] = {F1_PNG: f1_bars(ev), CONFUSION_PNG: confusion_heatmaps(ev)}
    if ev.confidence is not None:
        out.update(confidence_report.charts(ev.confidence, ev.figures))
    return out


__all__ = ["charts", "confusion_heatmaps", "f1_bars"]
