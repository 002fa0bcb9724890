"""NER's report sections: the terminal tables and report.md's sections (entity-level scores
with intervals, errors by kind, losses, token-level scores, cost, figures, method), and
`NerReport`, the task type's `Report`. The rows are `tables`'; report.html's sections are in
`html.py`, the charts' data in `charts.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from task_types import confidence_report
from task_types.base import HtmlSections
from task_types.charts import Chart
from task_types.ner.charts import charts
from task_types.ner.compare import Comparison, render_comparison
from task_types.ner.evaluation import Evaluation
from task_types.ner.html import html_sections
from task_types.ner.tables import (
    CONFUSION_PNG,
    COST_TITLE,
    ENTITY_HEADER,
    ENTITY_TITLE,
    ERRORS_HEADER,
    ERRORS_TITLE,
    F1_PNG,
    FAILURES_HEADER,
    FAILURES_TITLE,
    FIGURES_TITLE,
    FREQUENT_HEADER,
    HEADLINE_TITLE,
    KIND_HELP,
    LOSSES_TITLE,
    SCORE_HEADER,
    TOKEN_TITLE,
    bracketed,
    confusion_rows,
    cost_rows,
    describe,
    entity_rows,
    error_rows,
    failure_rows,
    figure_rows,
    frequent_rows,
    header_facts,
    headline_rows,
    loss_rows,
    marked_spans,
    method_note,
    no_gold_note,
    tag_rows,
    token_rows,
    worst_diffs,
)
from task_types.tables import interval, md_table, pct

#: Worst items shown in report.md (report.json holds the diffs of every item with an error).
MD_WORST = 10


def _score_table(
    title: str, caption: str, header: tuple[str, ...], rows: list[tuple[str, ...]], averages: int
) -> Table:
    # Wide enough for the title, so that the token table's warning is never wrapped away.
    table = Table(title=title, caption=caption, title_justify="left", min_width=len(title))
    for i, head in enumerate(header):
        table.add_column(head, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=i == len(rows) - averages - 1)
    return table


def _pairs_table(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def render_tables(ev: Evaluation) -> list[Table]:
    """Terminal tables: entity-level with intervals, errors by kind, token-level (labelled as
    such), what was lost before scoring, and the run's figures with cost against quality.
    """
    entity = _score_table(
        ENTITY_TITLE,
        f"{ev.evaluated_items} items; {ev.entity.label}",
        ENTITY_HEADER,
        entity_rows(ev),
        averages=2,
    )
    note = no_gold_note(ev)
    if note is not None:
        tables = [Table(title=note, title_justify="left", show_header=False)]
        tables.append(_pairs_table(LOSSES_TITLE, loss_rows(ev)))
        tables.append(_pairs_table(FIGURES_TITLE, figure_rows(ev.figures)))
        return tables
    tables = [_pairs_table(HEADLINE_TITLE, headline_rows(ev)), entity]
    errors = error_rows(ev)
    if errors:
        tables.append(
            _score_table(
                ERRORS_TITLE,
                "boundary = right type, wrong span; type = right span, wrong type",
                ERRORS_HEADER,
                errors,
                averages=1,
            )
        )
    if ev.confidence is not None:
        tables += confidence_report.tables(ev.confidence, ev.figures)
    tables.append(
        _score_table(
            TOKEN_TITLE,
            f"{ev.evaluated_tokens} tokens; {ev.token.label}",
            SCORE_HEADER,
            token_rows(ev),
            averages=2,
        )
    )
    tables.append(_pairs_table(LOSSES_TITLE, loss_rows(ev)))
    failures = failure_rows(ev)
    if failures:
        table = Table(title=FAILURES_TITLE, title_justify="left")
        for head in FAILURES_HEADER:
            table.add_column(head, justify="right" if head == "items" else "left")
        for row in failures:
            table.add_row(*row)
        tables.append(table)
    tables.append(_pairs_table(FIGURES_TITLE, figure_rows(ev.figures) + cost_rows(ev)))
    return tables


def _md_errors(ev: Evaluation) -> list[str]:
    if ev.errors is None:
        return []
    e = ev.errors
    lines = [f"## {ERRORS_TITLE}", ""]
    lines += [f"- **{kind}**: {text}" for kind, text in KIND_HELP.items()]
    lines += ["", *md_table(ERRORS_HEADER, error_rows(ev)), ""]
    for title, confusion in (
        ("Confusion between types, span-level (paired entities)", e.span_confusion),
        ("Confusion between types, token-level (B-/I- merged, O included)", e.token_confusion),
    ):
        header, rows = confusion_rows(confusion)
        lines += [f"### {title}", "", *md_table(header, rows), ""]
    lines += ["### Most frequent false positives", "", "_predicted, not in gold as such_", ""]
    lines += [*md_table(FREQUENT_HEADER, frequent_rows(e.false_positives)), ""]
    lines += ["### Most frequent false negatives", "", "_in gold, not predicted as such_", ""]
    lines += [*md_table(FREQUENT_HEADER, frequent_rows(e.false_negatives)), ""]
    worst = worst_diffs(ev)[:MD_WORST]
    if worst:
        lines += ["### Worst items", "", "`✗` marks a span that is part of an error.", ""]
    for diff in worst:
        wrong_gold, wrong_pred = marked_spans(diff)
        lines += [
            f"**{diff.id}** — {len(diff.errors)} errors, {diff.tp} correct",
            "",
            "```text",
            "gold: " + bracketed(diff.tokens, diff.gold, wrong_gold),
            "pred: " + bracketed(diff.tokens, diff.pred, wrong_pred),
            "```",
            "",
            *(f"- {describe(x.kind, x.gold, x.pred)}" for x in diff.errors),
            "",
        ]
    return lines


def _md_losses(ev: Evaluation) -> list[str]:
    losses = ev.losses
    lines = [f"## {LOSSES_TITLE}", "", *md_table(("what", "count"), loss_rows(ev)), ""]
    failures = failure_rows(ev)
    if failures:
        lines += [f"### {FAILURES_TITLE}", "", *md_table(FAILURES_HEADER, failures), ""]
    examples = [(x.id, x.reason) for x in losses.failed_examples] + [
        (x.id, f'{x.type} "{x.mention}": {x.reason}') for x in losses.unaligned_examples
    ]
    if examples:
        lines += ["Examples:", ""]
        lines += [f"- `{item}`: {reason}" for item, reason in examples]
        lines.append("")
    return lines


def markdown_sections(ev: Evaluation, *, images: bool = False) -> list[str]:
    """report.md's lines after the facts. With `images`, they link the charts written beside
    it (`f1_by_type.png`, `confusion.png`)."""
    micro = ev.entity.micro
    ci = ev.intervals.micro.f1 if ev.intervals is not None and ev.intervals.resamples else None
    lines: list[str] = []
    note = no_gold_note(ev)
    if note is not None:
        lines += ["", f"> **{note}**", "", *_md_losses(ev), f"## {FIGURES_TITLE}", ""]
        lines += [*md_table(("figure", "value"), figure_rows(ev.figures)), ""]
        return lines
    (first, first_f1), *rest = headline_rows(ev)
    beside = "".join(f"; {name}: {f1}" for name, f1 in rest)
    lines += [
        "",
        f"**Entity-level micro F1 {first}: {first_f1}**{beside} "
        f"(95% CI {interval(ci)}; P {pct(micro.precision)}, R {pct(micro.recall)}, "
        "on labeled items)",
        "",
        f"## {ENTITY_TITLE}",
        "",
        f"_{ev.entity.label}_",
        "",
        *md_table(ENTITY_HEADER, entity_rows(ev)),
        "",
    ]
    if images:
        lines += [f"![entity-level F1 by type, with 95% intervals]({F1_PNG})", ""]
    lines += _md_errors(ev)
    if images and ev.errors is not None:
        lines += [f"![confusion between types]({CONFUSION_PNG})", ""]
    if ev.confidence is not None:
        lines += confidence_report.markdown(ev.confidence, ev.figures, images=images)
    lines += _md_losses(ev)
    lines += [
        f"## {TOKEN_TITLE}",
        "",
        f"_{ev.token.label}_",
        "",
        *md_table(SCORE_HEADER, token_rows(ev)),
        "",
        "Per B-/I- tag (scikit-learn):",
        "",
        *md_table(("tag", *SCORE_HEADER[1:]), tag_rows(ev)),
        "",
        f"## {COST_TITLE}",
        "",
        *md_table(("figure", "value"), cost_rows(ev)),
        "",
        f"## {FIGURES_TITLE}",
        "",
        *md_table(("figure", "value"), figure_rows(ev.figures)),
        "",
        "## Method",
        "",
        method_note(ev),
        "",
    ]
    return lines


class NerReport:
    """NER's `Report`: the layouts above, over one `Evaluation`."""

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


__all__ = ["MD_WORST", "NerReport", "markdown_sections", "render_tables"]
