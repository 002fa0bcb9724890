"""Draw a report's charts from the data a task type gives (`task_types.charts`): horizontal
bars with whiskers, heatmaps side by side, line charts and reliability diagrams. PNG bytes,
deterministic for the same data (so that report.html is too).

Drawn on matplotlib's `Figure` with the Agg canvas directly, not through `pyplot`: no global
figure state, no GUI backend, safe in a worker or a test.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from task_types.charts import (
    Bars,
    Chart,
    Heatmap,
    Heatmaps,
    Lines,
    Reliability,
    ReliabilityPanel,
)

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


def bars_png(chart: Bars) -> bytes:
    """Horizontal bars top to bottom, the last `accented` in another colour, with whiskers."""
    names = list(chart.names)
    f1 = np.array(chart.values)
    low, high = np.array(chart.low), np.array(chart.high)
    errors = np.vstack([np.clip(f1 - low, 0, None), np.clip(high - f1, 0, None)])
    colours = [_TYPE_COLOUR] * (len(names) - chart.accented) + [_AVERAGE_COLOUR] * chart.accented

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
    ax.set_xlabel(chart.xlabel, color=_MUTED)
    ax.grid(axis="x", color="#e4e4e4", zorder=0)
    ax.set_axisbelow(True)
    _style(ax)
    fig.tight_layout()
    return _png(fig)


def _heatmap(ax: Axes, heatmap: Heatmap) -> None:
    title, xlabel, ylabel = heatmap.title, heatmap.xlabel, heatmap.ylabel
    counts = np.array(heatmap.counts, dtype=np.float64)
    labels = list(heatmap.labels)
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
            if labels[i] == labels[j] == heatmap.blank:
                continue  # not a cell to read (NER: nothing is both missed and spurious)
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


def heatmaps_png(chart: Heatmaps) -> bytes:
    """The heatmaps side by side, gold in rows, predictions in columns."""
    fig = Figure(figsize=(5.0 * len(chart.panels), 4.4))
    axes = fig.subplots(1, len(chart.panels), squeeze=False)[0]
    for ax, panel in zip(axes, chart.panels, strict=True):
        if panel is None:
            ax.set_axis_off()
        else:
            _heatmap(ax, panel)
    if all(panel is None for panel in chart.panels):
        axes[0].set_title(chart.note, fontsize=10)
    fig.tight_layout(w_pad=3.0)
    return _png(fig)


def lines_png(chart: Lines) -> bytes:
    """Series over percent axes, the first in the accent colour, dashed ones muted."""
    fig = Figure(figsize=(7.0, 4.4))
    ax = fig.add_subplot()
    for k, line in enumerate(chart.lines):
        colour = _MUTED if line.dashed else (_TYPE_COLOUR if k == 0 else _AVERAGE_COLOUR)
        ax.plot(
            line.x,
            line.y,
            color=colour,
            linestyle="--" if line.dashed else "-",
            marker="" if line.dashed else "o",
            markersize=3.5,
            linewidth=1.8,
            label=line.name,
            zorder=3,
        )
    lows = [min(line.y) for line in chart.lines if line.y]
    ax.set_xlim(0, 100)
    ax.set_ylim(max(0.0, (min(lows) if lows else 0.0) - 5), 101)
    ax.set_xticks(range(0, 101, 10))
    ax.set_xlabel(chart.xlabel, color=_MUTED)
    ax.set_ylabel(chart.ylabel, color=_MUTED)
    ax.set_title(chart.title, fontsize=10, color=_INK)
    ax.grid(color="#e4e4e4", zorder=0)
    ax.legend(loc="lower right", fontsize=9, frameon=False)
    _style(ax)
    fig.tight_layout()
    return _png(fig)


def _reliability(ax: Axes, panel: ReliabilityPanel) -> None:
    edges = np.array(panel.edges)
    left, width = edges[:-1], np.diff(edges)
    accuracy = np.array([np.nan if a is None else a for a in panel.accuracy], dtype=np.float64)
    ax.plot([0, 1], [0, 1], color=_INK, linestyle="--", linewidth=1.2, label="calibrated", zorder=5)
    ax.bar(
        left,
        np.nan_to_num(accuracy),
        width=width,
        align="edge",
        color=_TYPE_COLOUR,
        edgecolor="white",
        alpha=0.85,
        label="accuracy in the bin",
        zorder=2,
    )
    for x, w, a, n in zip(left, width, accuracy, panel.counts, strict=True):
        if n:
            ax.text(
                x + w / 2,
                min(a, 0.93) + 0.02,
                f"{n:,}",
                ha="center",
                fontsize=7,
                color=_INK,
                zorder=4,
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (bins; numbers: how many fell in each)", color=_MUTED, fontsize=9)
    ax.set_ylabel("share right", color=_MUTED, fontsize=9)
    ax.set_title(f"{panel.title} (ECE {100 * panel.ece:.1f} points)", fontsize=10, color=_INK)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    _style(ax)


def reliability_png(chart: Reliability) -> bytes:
    """Reliability diagrams side by side: accuracy per bin of confidence against the
    diagonal of a calibrated confidence."""
    fig = Figure(figsize=(5.0 * len(chart.panels), 4.4))
    axes = fig.subplots(1, len(chart.panels), squeeze=False)[0]
    for ax, panel in zip(axes, chart.panels, strict=True):
        if panel is None:
            ax.set_axis_off()
            ax.set_title(chart.note, fontsize=10, color=_MUTED)
        else:
            _reliability(ax, panel)
    fig.tight_layout(w_pad=3.0)
    return _png(fig)


def chart_png(chart: Chart) -> bytes:
    """The chart's PNG bytes."""
    if isinstance(chart, Bars):
        return bars_png(chart)
    if isinstance(chart, Lines):
        return lines_png(chart)
    if isinstance(chart, Reliability):
        return reliability_png(chart)
    return heatmaps_png(chart)


__all__ = ["bars_png", "chart_png", "heatmaps_png", "lines_png", "reliability_png"]
