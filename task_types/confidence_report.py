"""The report section every task type shows when a run measured confidence: does it put the
errors first? The rows (plain strings), the terminal tables, report.md's and report.html's
sections and the two charts' data (`review_curve.png`, `reliability.png`), all from one
`task_types.confidence_figures.ConfidenceFigures`, so that the layouts never disagree and no task
type writes them twice.

Answers from the simulator carry confidences the simulator made up, so the section then says
so first (`SIMULATOR_CAVEAT`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from rich.table import Table

from prelabel.figures import RunFigures
from task_types.charts import Chart, Line, Lines, Reliability, ReliabilityPanel
from task_types.confidence_figures import (
    QUOTED_SHARE,
    Calibration,
    ConfidenceFigures,
    reviewed_count,
)
from task_types.tables import html_img, html_table, md_table, pct

REVIEW_PNG = "review_curve.png"
RELIABILITY_PNG = "reliability.png"

CONFIDENCE_TITLE = "Confidence: does it put the errors first?"
REVIEW_TITLE = "Review curve"
CALIBRATION_TITLE = "Calibration (reliability diagram)"
REVIEW_HEADER = ("reviewed %", "items", "least confident first", "random order", "gain")
BIN_HEADER = ("confidence", "count", "mean confidence %", "right %", "gap")
SIMULATOR_CAVEAT = (
    "confidence from the simulator is made up: these figures prove nothing about a model"
)
#: The review curve's points the terminal table shows (report.md and report.html show all).
TERMINAL_SHARES = (0, 10, 20, 30, 40, 50, 75, 100)


def _one(x: float) -> str:
    return f"{100 * x:.1f}"


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def review_sentence(c: ConfidenceFigures, share: int = QUOTED_SHARE) -> str:
    """The sentence the section quotes, e.g. `reviewing the least-confident 20% of items
    brings F1 from 84.0 to 95.1; in random order, to 87.2`."""
    r = c.review
    ordered, random = r.at(share)
    return (
        f"reviewing the least-confident {share}% of items brings {r.metric} from "
        f"{_one(r.ordered[0])} to {_one(ordered)}; in random order, to {_one(random)}"
    )


def caveat(figures: RunFigures) -> str | None:
    """The simulator caveat when the answers came from the simulator."""
    return SIMULATOR_CAVEAT if figures.simulator else None


def _method(figures: RunFigures) -> str:
    return figures.confidence_method or "unknown"


def summary_rows(c: ConfidenceFigures, figures: RunFigures) -> list[tuple[str, str]]:
    """What the section's first table says: method, counts, calibration, error finding."""
    wrong_rate = c.wrong / c.items if c.items else 0.0
    proposals = c.proposal_calibration
    rows = [
        ("confidence method", _method(figures)),
        ("items with gold", f"{c.items:,}"),
        ("labeled with a confidence", f"{c.measured:,}"),
        ("labeled without a confidence (reviewed first)", f"{c.unmeasured:,}"),
        ("failed (reviewed first, counted wrong)", f"{c.failed:,}"),
        ("wrong items (whole prediction)", f"{c.wrong:,} ({pct(wrong_rate)}%)"),
        ("ECE, items (10 bins; points)", _one(c.item_calibration.ece)),
        (
            "ECE, proposals (10 bins; points)",
            f"{_one(proposals.ece)} over {proposals.count:,}" if proposals else "n/a",
        ),
        (
            "AUROC of low confidence for wrong items",
            f"{c.auroc:.3f}" if c.auroc is not None else "n/a (only one class)",
        ),
    ]
    for p in c.precision_at:
        value = (
            f"{pct(p.precision)}% ({p.wrong:,} of {p.items:,})"
            if p.precision is not None
            else "n/a (no item)"
        )
        rows.append((f"wrong among the least-confident {100 * p.share:.0f}%", value))
    return rows


def review_rows(
    c: ConfidenceFigures, shares: Sequence[int] | None = None
) -> list[tuple[str, str, str, str, str]]:
    """The review curve as rows: share reviewed, items, ordered, random, ordered - random."""
    r = c.review
    rows = []
    for share, ordered, random in zip(r.shares, r.ordered, r.random, strict=True):
        if shares is not None and share not in shares:
            continue
        items = reviewed_count(c.items, share)
        gain = round(100 * (ordered - random), 1) or 0.0  # no "-0.0"
        rows.append((f"{share}", f"{items:,}", _one(ordered), _one(random), f"{gain:+.1f}"))
    return rows


def bin_rows(cal: Calibration) -> list[tuple[str, str, str, str, str]]:
    """The non-empty bins of a reliability diagram as rows."""
    return [
        (
            f"{b.low:.1f}–{b.high:.1f}",
            f"{b.count:,}",
            _one(b.confidence or 0.0),
            _one(b.accuracy or 0.0),
            f"{100 * ((b.accuracy or 0.0) - (b.confidence or 0.0)):+.1f}",
        )
        for b in cal.bins
        if b.count
    ]


def method_note(c: ConfidenceFigures) -> str:
    """How the section's numbers were computed."""
    r = c.review
    return (
        "An item is right when its whole prediction equals its gold. Review order: items "
        "without a confidence (failed, or not measured) first, then ascending confidence, "
        "ties by id. ECE: 10 equal-width bins of confidence, the mean |share right − mean "
        "confidence| weighted by the bin's size, over the items (and, apart, the kept "
        "proposals: a label in the gold set, a mention whose type and character span are a "
        "gold entity's; a mention that could not be placed is left out) that carry a "
        "confidence. AUROC (scikit-learn) of 1 − confidence for wrong items, a failed item "
        f"wrong with confidence 0. Review curve: {r.metric} over every item with gold once a "
        "human has corrected the first X% of the order (rounded down); random order is the "
        f"mean of {r.shuffles} seeded shuffles (seed {r.seed})."
    )


# --- terminal -----------------------------------------------------------------------------


def tables(c: ConfidenceFigures, figures: RunFigures) -> list[Table]:
    """The terminal tables: the review sentence (and the simulator caveat, when it applies),
    the summary, and the review curve."""
    said = Table(title=CONFIDENCE_TITLE, title_justify="left", show_header=False, box=None)
    said.add_column("what", no_wrap=True)
    note = caveat(figures)
    if note is not None:
        said.add_row(_first_upper(note) + ".", style="bold")
    said.add_row(_first_upper(review_sentence(c)) + ".")
    summary = Table(title="Calibration and error finding", title_justify="left", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in summary_rows(c, figures):
        summary.add_row(name, value)
    curve = Table(title=f"{REVIEW_TITLE}: {c.review.metric} %", title_justify="left")
    for i, head in enumerate(REVIEW_HEADER):
        curve.add_column(head, justify="left" if i == 0 else "right")
    for row in review_rows(c, TERMINAL_SHARES):
        curve.add_row(*row)
    return [said, summary, curve]


# --- report.md and report.html -------------------------------------------------------------


def markdown(c: ConfidenceFigures, figures: RunFigures, *, images: bool) -> list[str]:
    """report.md's section; with `images`, linking the two charts written beside it."""
    lines = [f"## {CONFIDENCE_TITLE}", ""]
    note = caveat(figures)
    if note is not None:
        lines += [f"> **{_first_upper(note)}.**", ""]
    lines += [f"**{_first_upper(review_sentence(c))}.**", ""]
    lines += [*md_table(("figure", "value"), summary_rows(c, figures)), ""]
    lines += [
        f"### {REVIEW_TITLE}: {c.review.metric} %",
        "",
        *md_table(REVIEW_HEADER, review_rows(c)),
    ]
    lines.append("")
    if images:
        lines += [f"![review curve: least confident first against random order]({REVIEW_PNG})"]
        lines.append("")
    lines += [f"### {CALIBRATION_TITLE}", "", "Items:", ""]
    lines += [*md_table(BIN_HEADER, bin_rows(c.item_calibration)), ""]
    if c.proposal_calibration is not None:
        lines += ["Proposals:", "", *md_table(BIN_HEADER, bin_rows(c.proposal_calibration)), ""]
    if images:
        lines += [f"![reliability diagrams]({RELIABILITY_PNG})", ""]
    lines += [f"_{method_note(c)}_", ""]
    return lines


def html(c: ConfidenceFigures, figures: RunFigures, charts: Mapping[str, bytes]) -> str:
    """report.html's section, embedding those of the two charts it is given."""
    note = caveat(figures)
    warning = f'<p class="warning">{escape(_first_upper(note))}.</p>' if note else ""
    curve_png, reliability_png = charts.get(REVIEW_PNG), charts.get(RELIABILITY_PNG)
    curve = html_img(curve_png, "review curve against random order") if curve_png else ""
    reliability = html_img(reliability_png, "reliability diagrams") if reliability_png else ""
    proposals = (
        f"<div><h3>Proposals</h3>{html_table(BIN_HEADER, bin_rows(c.proposal_calibration))}</div>"
        if c.proposal_calibration is not None
        else ""
    )
    return (
        f"<section><h2>{escape(CONFIDENCE_TITLE)}</h2>{warning}"
        f"<p><b>{escape(_first_upper(review_sentence(c)))}.</b></p>"
        f"{html_table(('figure', 'value'), summary_rows(c, figures), text_columns=(0,))}"
        f"<h3>{escape(REVIEW_TITLE)}: {escape(c.review.metric)} %</h3>{curve}"
        f"{html_table(REVIEW_HEADER, review_rows(c))}"
        f"<h3>{escape(CALIBRATION_TITLE)}</h3>{reliability}"
        f'<div class="cols"><div><h3>Items</h3>'
        f"{html_table(BIN_HEADER, bin_rows(c.item_calibration))}</div>{proposals}</div>"
        f'<p class="note">{escape(method_note(c))}</p></section>'
    )


# --- charts ------------------------------------------------------------------------------


def _panel(title: str, cal: Calibration) -> ReliabilityPanel:
    return ReliabilityPanel(
        title=f"{title}: {cal.count:,}",
        edges=(*(b.low for b in cal.bins), cal.bins[-1].high),
        accuracy=tuple(b.accuracy for b in cal.bins),
        counts=tuple(b.count for b in cal.bins),
        ece=cal.ece,
    )


def charts(c: ConfidenceFigures, figures: RunFigures) -> dict[str, Chart]:
    """The review curve and the reliability diagrams (items; proposals) by file name."""
    r = c.review
    shares = tuple(float(s) for s in r.shares)
    simulated = " — simulator: made up" if figures.simulator else ""
    curve = Lines(
        lines=(
            Line("least confident first", shares, tuple(100 * v for v in r.ordered)),
            Line(
                f"random order (mean of {r.shuffles})",
                shares,
                tuple(100 * v for v in r.random),
                dashed=True,
            ),
        ),
        title=f"{r.metric} once the first X% of items are corrected{simulated}",
        xlabel="items reviewed (%)",
        ylabel=f"{r.metric} (%)",
    )
    proposals = (
        _panel("proposals", c.proposal_calibration) if c.proposal_calibration is not None else None
    )
    reliability = Reliability(
        panels=(_panel("items", c.item_calibration), proposals),
        note="no proposal carried a confidence",
    )
    return {REVIEW_PNG: curve, RELIABILITY_PNG: reliability}


__all__ = [
    "BIN_HEADER",
    "CALIBRATION_TITLE",
    "CONFIDENCE_TITLE",
    "RELIABILITY_PNG",
    "REVIEW_HEADER",
    "REVIEW_PNG",
    "REVIEW_TITLE",
    "SIMULATOR_CAVEAT",
    "bin_rows",
    "caveat",
    "charts",
    "html",
    "markdown",
    "method_note",
    "review_rows",
    "review_sentence",
    "summary_rows",
    "tables",
]
