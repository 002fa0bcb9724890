"""Classification's part of report.html: score cards, the summary and per-class tables with
the F1 chart, the confusion heatmap (single-label), wrong items, repairs, cost and losses."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from task_types import confidence_report
from task_types.base import HtmlSections
from task_types.classify.evaluation import Evaluation
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
    loss_rows,
    method_note,
    no_gold_note,
    repair_examples,
    repair_rows,
    summary_rows,
    wrong_rows,
)
from task_types.tables import html_img, html_table, interval, pct, ratio


def _card(label: str, value: str, sub: str = "", cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="sub">{escape(sub)}</div></div>'
    )


def _cards(ev: Evaluation) -> str:
    s, h, cost = ev.scores, ev.headline, ev.cost
    what = "subset accuracy" if ev.multi_label else "accuracy"
    iv = ev.intervals if ev.intervals is not None and ev.intervals.scores.resamples else None
    cards = [
        _card(
            f"{what}, all items",
            pct(h.accuracy_all),
            f"the {h.failed:,} failed of {h.items:,} are wrong",
            "headline",
        )
        if h is not None
        else "",
        _card(
            f"{what}, labeled items",
            pct(s.accuracy),
            f"95% CI {interval(iv.accuracy) if iv else 'n/a'}",
            "" if h else "headline",
        ),
        _card(
            "macro F1", pct(s.macro.f1), f"95% CI {interval(iv.scores.macro.f1 if iv else None)}"
        ),
        _card(
            "micro F1", pct(s.micro.f1), f"95% CI {interval(iv.scores.micro.f1 if iv else None)}"
        ),
        _card("Hamming loss", pct(s.hamming_loss), "wrong (item, label) decisions")
        if ev.multi_label and s.hamming_loss is not None
        else "",
        _card("repaired labels", f"{ev.repairs.repaired:,}", f"{ev.repairs.dropped:,} dropped"),
        _card("not scored", f"{ev.losses.failed:,}", "failed items"),
        _card(
            "F1 per $",
            ratio(cost.f1_per_dollar) if cost else "n/a",
            f"{ratio(cost.f1_per_1k_tokens, 3)} per 1k tokens" if cost else "",
        ),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _confusion(ev: Evaluation, png: bytes | None) -> str:
    if not ev.scores.confusion:
        return ""
    shown = html_img(png, "confusion matrix") if png else html_table(*confusion_rows(ev))
    confused = (
        f"<h3>{escape(CONFUSED_TITLE)}</h3>{html_table(CONFUSED_HEADER, confused_rows(ev))}"
        if ev.confused
        else ""
    )
    return (
        f"<section><h2>{escape(CONFUSION_TITLE)}</h2>"
        '<p class="note">Gold in rows, predictions in columns; colour is the share of the '
        f"gold row, numbers are counts.</p>{shown}{confused}</section>"
    )


def _wrong(ev: Evaluation) -> str:
    rows = wrong_rows(ev)
    if not rows:
        return ""
    return (
        f"<section><h2>{escape(WRONG_TITLE)}</h2>"
        f'<p class="note">{ev.wrong_items:,} scored items are wrong; the first are listed '
        f"(report.json holds the same).</p>{html_table(WRONG_HEADER, rows, text_columns=(1, 2))}"
        "</section>"
    )


def _repairs(ev: Evaluation) -> str:
    examples = repair_examples(ev)
    listed = html_table(REPAIRS_HEADER, examples, text_columns=(1, 2, 3)) if examples else ""
    return (
        f"<section><h2>{escape(REPAIRS_TITLE)}</h2>"
        '<p class="note">Answers that named no label as given: a near-miss spelling is read '
        "as the label it is close to and scored as it; a name with nothing close is dropped."
        f"</p>{html_table(('what', 'count'), repair_rows(ev), text_columns=(0,))}{listed}"
        "</section>"
    )


def _losses(ev: Evaluation) -> str:
    failures = failure_rows(ev)
    listed = (
        f"<h3>{escape(FAILURES_TITLE)}</h3>"
        + html_table(FAILURES_HEADER, failures, text_columns=(0, 2))
        if failures
        else ""
    )
    return (
        f"<section><h2>{escape(LOSSES_TITLE)}</h2>"
        '<p class="note">Items that failed are not scored; the headline counts them as wrong.'
        f"</p>{html_table(('what', 'count'), loss_rows(ev), text_columns=(0,))}{listed}</section>"
    )


def _scores(ev: Evaluation, charts: Mapping[str, bytes]) -> str:
    f1 = charts.get(F1_PNG)
    chart = html_img(f1, "F1 by class with 95% intervals") if f1 else ""
    confidence = (
        confidence_report.html(ev.confidence, ev.figures, charts)
        if ev.confidence is not None
        else ""
    )
    return f"""{_cards(ev)}
<section><h2>Scores over labeled items</h2>
{html_table(SUMMARY_HEADER, summary_rows(ev))}</section>
<section><h2>{escape(class_title(ev))}</h2>
{html_table(CLASS_HEADER, class_rows(ev), averages=2)}{chart}</section>
{_confusion(ev, charts.get(CONFUSION_PNG))}
{_wrong(ev)}
{confidence}
{_repairs(ev)}
<section><h2>{escape(COST_TITLE)} and throughput</h2><div class="cols">
<div><h3>{escape(COST_TITLE)}</h3>{html_table(("figure", "value"), cost_rows(ev))}</div>
<div><h3>{escape(FIGURES_TITLE)}</h3>{html_table(("figure", "value"), figure_rows(ev))}</div>
</div></section>
{_losses(ev)}"""


def html_sections(ev: Evaluation, charts: Mapping[str, bytes]) -> HtmlSections:
    """Classification's part of report.html; the charts given are embedded, the confusion
    matrix is a table otherwise."""
    facts = header_facts(ev)
    summary = f"{escape(facts[4][1])} · {escape(facts[5][1])} ·\n{escape(facts[6][1])} failed"
    summary += "".join(f" · {escape(name)} {escape(value)}" for name, value in facts[7:])
    note = no_gold_note(ev)
    if note is not None:
        figures = html_table(("figure", "value"), figure_rows(ev))
        body = f"""<section><p class="warning">{escape(note)}</p></section>
<section><h2>{escape(FIGURES_TITLE)}</h2>{figures}</section>
{_repairs(ev)}
{_losses(ev)}"""
    else:
        body = _scores(ev, charts)
    return HtmlSections(summary=summary, body=body, footer=method_note(ev))


__all__ = ["html_sections"]
