"""Classification's report sections: the terminal tables and report.md's sections (headline,
summary scores with intervals, per-class scores, the confusion matrix, repairs, losses, cost,
figures, method), and `ClassifyReport`, the task type's `Report`. The rows are `tables`';
report.html's sections are in `html.py`, the charts' data in `charts.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from task_types import confidence_report
from task_types.base import HtmlSections
from task_types.charts import Chart
from task_types.classify.charts import charts
from task_types.classify.compare import Comparison, render_comparison
from task_types.classify.evaluation import Evaluation
from task_types.classify.html import html_sections
from task_types.classify.tables import (
    CLASS_HEADER,
    CONFUSED_HEADER,
    CONFUSED_TITLE,
    CONFUSION_PNG,
    CONFUSION_TITLE,
    COST_TITLE,
    F1_PNG,
    FAILURES_HEADER,
    FAILURES_TITLE,
    FIGURES_TITLE,
    LOSSES_TITLE,
    REPAIRS_HEADER,
    REPAIRS_TITLE,
    SUMMARY_HEADER,
    WRONG_HEADER,
    WRONG_TITLE,
    class_rows,
    class_title,
    confused_rows,
    confusion_rows,
    cost_rows,
    failure_rows,
    figure_rows,
    header_facts,
    headline_rows,
    headline_title,
    loss_rows,
    method_note,
    no_gold_note,
    repair_examples,
    repair_rows,
    summary_rows,
    wrong_rows,
)
from task_types.tables import md_table

#: Wrong items listed in report.md (report.json holds the first `evaluation.EXAMPLES`).
MD_WRONG = 10


def _table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    averages: int = 0,
    caption: str | None = None,
) -> Table:
    table = Table(title=title, caption=caption, title_justify="left", min_width=len(title))
    for i, head in enumerate(header):
        table.add_column(head, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=bool(averages) and i == len(rows) - averages - 1)
    return table


def _pairs_table(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def render_tables(ev: Evaluation) -> list[Table]:
    """Terminal tables: the headline, summary scores and per-class scores with intervals,
    the confusion matrix (single-label), repairs, losses, and the run's figures with cost."""
    note = no_gold_note(ev)
    if note is not None:
        return [
            Table(title=note, title_justify="left", show_header=False),
            _pairs_table(REPAIRS_TITLE, repair_rows(ev)),
            _pairs_table(LOSSES_TITLE, loss_rows(ev)),
            _pairs_table(FIGURES_TITLE, figure_rows(ev)),
        ]
    tables = [
        _pairs_table(headline_title(ev), headline_rows(ev)),
        _table(
            "Scores over labeled items",
            SUMMARY_HEADER,
            summary_rows(ev),
            caption=f"{ev.evaluated_items} items scored",
        ),
        _table(class_title(ev), CLASS_HEADER, class_rows(ev), averages=2),
    ]
    if ev.scores.confusion:
        header, rows = confusion_rows(ev)
        tables.append(_table(f"{CONFUSION_TITLE} (gold in rows)", header, rows))
    if ev.confidence is not None:
        tables += confidence_report.tables(ev.confidence, ev.figures)
    tables.append(_pairs_table(REPAIRS_TITLE, repair_rows(ev)))
    tables.append(_pairs_table(LOSSES_TITLE, loss_rows(ev)))
    failures = failure_rows(ev)
    if failures:
        table = Table(title=FAILURES_TITLE, title_justify="left")
        for head in FAILURES_HEADER:
            table.add_column(head, justify="right" if head == "items" else "left")
        for row in failures:
            table.add_row(*row)
        tables.append(table)
    tables.append(_pairs_table(FIGURES_TITLE, figure_rows(ev) + cost_rows(ev)))
    return tables


def _md_losses(ev: Evaluation) -> list[str]:
    lines = [f"## {LOSSES_TITLE}", "", *md_table(("what", "count"), loss_rows(ev)), ""]
    failures = failure_rows(ev)
    if failures:
        lines += [f"### {FAILURES_TITLE}", "", *md_table(FAILURES_HEADER, failures), ""]
    if ev.losses.failed_examples:
        lines += ["Examples:", ""]
        lines += [f"- `{x.id}`: {x.reason}" for x in ev.losses.failed_examples]
        lines.append("")
    return lines


def _md_repairs(ev: Evaluation) -> list[str]:
    lines = [f"## {REPAIRS_TITLE}", "", *md_table(("what", "count"), repair_rows(ev)), ""]
    examples = repair_examples(ev)
    if examples:
        lines += [*md_table(REPAIRS_HEADER, examples), ""]
    return lines


def markdown_sections(ev: Evaluation, *, images: bool = False) -> list[str]:
    """report.md's lines after the facts. With `images`, they link the charts written beside
    it (`f1_by_class.png`, and `confusion.png` for single-label)."""
    lines: list[str] = []
    note = no_gold_note(ev)
    if note is not None:
        lines += ["", f"> **{note}**", "", *_md_repairs(ev), *_md_losses(ev)]
        lines += [f"## {FIGURES_TITLE}", "", *md_table(("figure", "value"), figure_rows(ev)), ""]
        return lines
    (first, value), *rest = headline_rows(ev)
    beside = "".join(f"; {name}: {v}" for name, v in rest)
    lines += [
        "",
        f"**{first}: {value}**{beside}",
        "",
        "## Scores over labeled items",
        "",
        *md_table(SUMMARY_HEADER, summary_rows(ev)),
        "",
        f"## {class_title(ev)}",
        "",
        *md_table(CLASS_HEADER, class_rows(ev)),
        "",
    ]
    if images:
        lines += [f"![F1 by class, with 95% intervals]({F1_PNG})", ""]
    if ev.scores.confusion:
        header, rows = confusion_rows(ev)
        lines += [f"## {CONFUSION_TITLE}", "", "_gold in rows, predictions in columns_", ""]
        lines += [*md_table(header, rows), ""]
        if images:
            lines += [f"![confusion matrix]({CONFUSION_PNG})", ""]
        if ev.confused:
            lines += [f"### {CONFUSED_TITLE}", "", *md_table(CONFUSED_HEADER, confused_rows(ev))]
            lines.append("")
    wrong = wrong_rows(ev)[:MD_WRONG]
    if wrong:
        lines += [f"## {WRONG_TITLE}", "", f"_{ev.wrong_items:,} items wrong; the first:_", ""]
        lines += [*md_table(WRONG_HEADER, wrong), ""]
    if ev.confidence is not None:
        lines += confidence_report.markdown(ev.confidence, ev.figures, images=images)
    lines += _md_repairs(ev)
    lines += _md_losses(ev)
    lines += [
        f"## {COST_TITLE}",
        "",
        *md_table(("figure", "value"), cost_rows(ev)),
        "",
        f"## {FIGURES_TITLE}",
        "",
        *md_table(("figure", "value"), figure_rows(ev)),
        "",
        "## Method",
        "",
        method_note(ev),
        "",
    ]
    return lines


class ClassifyReport:
    """Classification's `Report`: the layouts above, over one `Evaluation`."""

    def facts(self, ev: Evaluation) -> list[tuple[str, str]]:
        return header_facts(ev)

    def tables(self, ev: Evaluation) -> list[Table]:
        return render_tables(ev)

    def markdown(self, ev: Evaluation, *, images: bool) -> list[str]:
        return markdown_sections(ev, images=images)

    def html(self, ev: Evaluation, charts: Mapping[str, bytes]) -> HtmlSections:
        return html_sections(ev, charts)

    def charts(self, ev: Evaluation) -> dict[str, Chart]:
        return charts(ev)

    def comparison_tables(self, comparison: Comparison) -> list[Table]:
        return render_comparison(comparison)


__all__ = ["MD_WRONG", "ClassifyReport", "markdown_sections", "render_tables"]
