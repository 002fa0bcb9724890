"""The report's two charts as PNG bytes: F1 per type with its interval, and the confusion
heatmaps (span-level and token-level side by side).

Drawn on matplotlib's `Figure` with the Agg canvas directly, not through `pyplot`: no global
figure state, no GUI backend, safe in a worker or a test.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from task_types.ner.errors import NO_ENTITY, Confusion

from .analysis import Evaluation
from .tables import CONFUSION_PNG, F1_PNG

_TYPE_COLOUR = "#3b6fb6"
_AVERAGE_COLOUR = "#7a4fa3"
_INK = "#222222"
_MUTED = "#666666"
_DPI = 110


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # Metadata pinned so that the same evaluation gives the same bytes.
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=_INK, labelsize=9)


def f1_chart(ev: Evaluation) -> bytes:
    """Horizontal F1 bars per type, then micro and macro, with 95% bootstrap intervals."""
    names = [*ev.entity.per_type, "micro avg", "macro avg"]
    scores = [*ev.entity.per_type.values(), ev.entity.micro, ev.entity.macro]
    f1 = np.array([100 * s.f1 for s in scores])
    if ev.intervals is not None and ev.intervals.resamples > 0:
        bounds = [*ev.intervals.per_type.values(), ev.intervals.micro, ev.intervals.macro]
        low = np.array([100 * b.f1.low for b in bounds])
        high = np.array([100 * b.f1.high for b in bounds])
    else:
        low, high = f1, f1
    errors = np.vstack([np.clip(f1 - low, 0, None), np.clip(high - f1, 0, None)])
    colours = [_TYPE_COLOUR] * len(ev.entity.per_type) + [_AVERAGE_COLOUR] * 2

    fig = Figure(figsize=(7.0, 0.42 * len(names) + 1.0))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, f1, color=colours, height=0.62, zorder=2)
    ax.errorbar(f1, y, xerr=errors, fmt="none", ecolor=_INK, elinewidth=1.3, capsize=4, zorder=3)
    for yi, value, top in zip(y, f1, high, strict=True):
        ax.text(
            min(top + 1.2, 101), yi, f"{value:.1f}", va="center", fontsize=9, color=_INK, zorder=4
        )
    ax.set_yticks(y, names)
    ax.set_xlim(0, 108)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("entity-level F1 (%), strict; whiskers: 95% bootstrap interval", color=_MUTED)
    ax.grid(axis="x", color="#e4e4e4", zorder=0)
    ax.set_axisbelow(True)
    _style(ax)
    fig.tight_layout()
    return _png(fig)


def _heatmap(ax: Axes, confusion: Confusion, title: str, xlabel: str, ylabel: str) -> None:
    counts = np.array(confusion.counts, dtype=np.float64)
    labels = list(confusion.labels)
    if counts.size == 0:
        ax.set_axis_off()
        ax.set_title(f"{title}\n(nothing to show)", fontsize=10, color=_INK)
        return
    totals = counts.sum(axis=1, keepdims=True)
    # Colour by share of the gold row, so that `O` (tens of thousands of tokens) does not
    # wash every other cell out; the numbers printed are the raw counts.
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    n = len(labels)
    for i in range(n):
        for j in range(n):
            if labels[i] == labels[j] == NO_ENTITY:
                continue  # nothing is both missed and spurious: not a cell to read
            value = int(counts[i, j])
            colour = "white" if share[i, j] > 0.55 else _INK
            weight = "bold" if i == j else "normal"
            ax.text(
                j,
                i,
                f"{value:,}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
                fontweight=weight,
            )
    ax.set_xticks(range(n), labels, fontsize=9)
    ax.set_yticks(range(n), labels, fontsize=9)
    ax.set_xlabel(xlabel, color=_MUTED, fontsize=9)
    ax.set_ylabel(ylabel, color=_MUTED, fontsize=9)
    ax.set_title(title, fontsize=10, color=_INK)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def confusion_chart(ev: Evaluation) -> bytes:
    """Span-level and token-level confusion heatmaps, gold in rows, predictions in columns."""
    fig = Figure(figsize=(10.0, 4.4))
    span_ax, token_ax = fig.subplots(1, 2)
    if ev.errors is None:
        for ax in (span_ax, token_ax):
            ax.set_axis_off()
        span_ax.set_title("no error analysis in this report", fontsize=10)
    else:
        _heatmap(
            span_ax,
            ev.errors.span_confusion,
            "span-level: paired entities",
            "predicted type (none = missed)",
            "gold type (none = spurious)",
        )
        _heatmap(
            token_ax,
            ev.errors.token_confusion,
            "token-level: B-/I- merged, O included",
            "predicted",
            "gold",
        )
    fig.tight_layout(w_pad=3.0)
    return _png(fig)


__all__ = ["CONFUSION_PNG", "F1_PNG", "confusion_chart", "f1_chart"]
