"""The data of a report's charts, as a task type gives it; `evaluation.charts` draws them
(matplotlib), so that no task type imports a plotting library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bars:
    """Horizontal bars, top to bottom, each with a whisker from `low` to `high` (percent)."""

    names: tuple[str, ...]
    values: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    #: The last bars (averages, say) are drawn in another colour.
    accented: int
    xlabel: str


@dataclass(frozen=True, slots=True)
class Heatmap:
    """A matrix of counts, coloured by share of its row; rows and columns are `labels`."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    title: str
    xlabel: str
    ylabel: str
    #: A label whose diagonal cell is not a cell to read (NER: nothing is both missed and
    #: spurious); its count is not printed.
    blank: str | None = None


@dataclass(frozen=True, slots=True)
class Heatmaps:
    """Heatmaps side by side; a None panel is left empty, and when every panel is, the first
    is titled with `note`."""

    panels: tuple[Heatmap | None, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a line chart; `dashed` draws it as a reference (random order, say)."""

    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Lines:
    """Series over the same axes (both in percent, 0 to 100), with a legend."""

    lines: tuple[Line, ...]
    title: str
    xlabel: str
    ylabel: str


@dataclass(frozen=True, slots=True)
class ReliabilityPanel:
    """A reliability diagram: per equal-width bin of confidence (`edges` has one more entry
    than the bins), the accuracy and the count of what fell in it (accuracy None: empty)."""

    title: str
    edges: tuple[float, ...]
    accuracy: tuple[float | None, ...]
    counts: tuple[int, ...]
    #: Expected calibration error, quoted in the panel.
    ece: float


@dataclass(frozen=True, slots=True)
class Reliability:
    """Reliability diagrams side by side (a None panel is left empty, titled `note`)."""

    panels: tuple[ReliabilityPanel | None, ...]
    note: str = ""


Chart = Bars | Heatmaps | Lines | Reliability

__all__ = [
    "Bars",
    "Chart",
    "Heatmap",
    "Heatmaps",
    "Line",
    "Lines",
    "Reliability",
    "ReliabilityPanel",
]
