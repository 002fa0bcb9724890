"""NER's part of report.html: score cards, the entity-level table and chart, errors by
kind with the confusion heatmap, cost, losses, the token-level tables and the worst items,
each gold and predicted span marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from task_types import confidence_report
from task_types.base import HtmlSections
from task_types.ner.errors import ItemDiff, SpanRef
from task_types.ner.evaluation import Evaluation
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
    KIND_HELP,
    LOSSES_TITLE,
    SCORE_HEADER,
    TOKEN_TITLE,
    confusion_rows,
    cost_rows,
    describe,
    entity_rows,
    error_rows,
    failure_rows,
    figure_rows,
    frequent_rows,
    header_facts,
    loss_rows,
    marked_spans,
    method_note,
    no_gold_note,
    tag_rows,
    token_rows,
    worst_diffs,
)
from task_types.tables import html_img, html_table, interval, pct, ratio

#: Worst items shown with their diffs.
HTML_WORST = 20


def _card(label: str, value: str, sub: str = "", cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="sub">{escape(sub)}</div></div>'
    )


def _cards(ev: Evaluation) -> str:
    micro = ev.entity.micro
    iv = ev.intervals
    ci = interval(iv.micro.f1) if iv is not None and iv.resamples else "no interval"
    errors = sum(ev.errors.kinds.values()) if ev.errors is not None else 0
    boundary = ev.errors.kinds.get("boundary", 0) if ev.errors is not None else 0
    cost = ev.cost
    h = ev.headline
    cards = [
        _card(
            "entity-level micro F1, all items",
            pct(h.all_items.f1),
            f"the {h.failed:,} failed of {h.items:,} find nothing",
            "headline",
        )
        if h is not None
        else "",
        _card("micro F1, labeled items", pct(micro.f1), f"95% CI {ci}", "" if h else "headline"),
        _card("precision", pct(micro.precision), f"{micro.tp} of {micro.predicted} predicted"),
        _card("recall", pct(micro.recall), f"{micro.tp} of {micro.support} gold"),
        _card("model errors", f"{errors:,}", f"{boundary:,} boundary only"),
        _card(
            "not scored",
            f"{ev.losses.failed:,}",
            f"failed items; {ev.losses.unaligned:,} unaligned mentions",
        ),
        _card(
            "F1 per $",
            ratio(cost.f1_per_dollar) if cost else "n/a",
            f"{ratio(cost.f1_per_1k_tokens, 3)} per 1k tokens" if cost else "",
        ),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _marked(tokens: Sequence[str], found: Sequence[SpanRef], wrong: set[SpanRef]) -> str:
    starts = {s.start: s for s in found}
    out: list[str] = []
    k = 0
    while k < len(tokens):
        span = starts.get(k)
        if span is None:
            out.append(escape(tokens[k]))
            k += 1
            continue
        cls = "bad" if span in wrong else "ok"
        text = escape(" ".join(tokens[span.start : span.end]))
        out.append(f'<span class="ent {cls}">{text}<sub>{escape(span.type)}</sub></span>')
        k = span.end
    return " ".join(out)


def _item(diff: ItemDiff) -> str:
    wrong_gold, wrong_pred = marked_spans(diff)
    errors = "".join(f"<li>{escape(describe(e.kind, e.gold, e.pred))}</li>" for e in diff.errors)
    return (
        f'<div class="item"><div class="id">{escape(diff.id)} '
        f"<span>{len(diff.errors)} errors, {diff.tp} correct</span></div>"
        f'<div class="line"><span class="who">gold</span>'
        f"{_marked(diff.tokens, diff.gold, wrong_gold)}</div>"
        f'<div class="line"><span class="who">pred</span>'
        f"{_marked(diff.tokens, diff.pred, wrong_pred)}</div><ul>{errors}</ul></div>"
    )


def _errors(ev: Evaluation, confusion_png: bytes | None) -> str:
    if ev.errors is None:
        return ""
    e = ev.errors
    kinds = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in KIND_HELP.items())
    chart = html_img(confusion_png, "confusion between types") if confusion_png else ""
    # Without the heatmap (no PNG given), the same counts as tables.
    tables = "".join(
        f"<h3>{name}</h3>{html_table(*confusion_rows(c))}"
        for name, c in (("Span-level", e.span_confusion), ("Token-level", e.token_confusion))
    )
    return (
        f"<section><h2>{escape(ERRORS_TITLE)}</h2>"
        '<p class="note">Each gold entity pairs with at most one prediction. Boundary errors '
        "(right type, wrong span) are apart from type errors.</p>"
        f'<dl class="kinds">{kinds}</dl>'
        f"{html_table(ERRORS_HEADER, error_rows(ev), averages=1)}"
        "<h3>Confusion between types</h3>"
        '<p class="note">Gold in rows, predictions in columns; colour is the share of the '
        "gold row, numbers are counts.</p>"
        f"{chart or tables}"
        '<div class="cols"><div><h3>Most frequent false positives</h3>'
        f"{html_table(FREQUENT_HEADER, frequent_rows(e.false_positives), text_columns=(0, 3))}"
        "</div><div><h3>Most frequent false negatives</h3>"
        f"{html_table(FREQUENT_HEADER, frequent_rows(e.false_negatives), text_columns=(0, 3))}"
        "</div></div></section>"
    )


def _worst(ev: Evaluation) -> str:
    worst = worst_diffs(ev)[:HTML_WORST]
    if not worst:
        return ""
    items = "".join(_item(d) for d in worst)
    return (
        f"<section><h2>Worst items</h2>"
        '<p class="note">The items with most errors. Green: exact match; red: part of an '
        f"error. Every item with an error is in report.json.</p>{items}</section>"
    )


def _losses(ev: Evaluation) -> str:
    examples = [(x.id, x.reason) for x in ev.losses.failed_examples] + [
        (x.id, f'{x.type} "{x.mention}": {x.reason}') for x in ev.losses.unaligned_examples
    ]
    listed = (
        "<h3>Examples</h3>" + html_table(("item", "reason"), examples, text_columns=(1,))
        if examples
        else ""
    )
    failures = failure_rows(ev)
    if failures:
        by_kind = html_table(FAILURES_HEADER, failures, text_columns=(0, 2))
        listed = f"<h3>{escape(FAILURES_TITLE)}</h3>{by_kind}{listed}"
    return (
        f"<section><h2>{escape(LOSSES_TITLE)}</h2>"
        '<p class="note">Items that failed are not scored; mentions the aligner could not '
        "place in the text are lost before scoring. Neither is a model error.</p>"
        f"{html_table(('what', 'count'), loss_rows(ev), text_columns=(0,))}{listed}</section>"
    )


def _scores(ev: Evaluation, charts: Mapping[str, bytes]) -> str:
    """Every section of a report with gold: cards, scores, errors, confidence (when the run
    measured it), cost, losses, worst items."""
    f = ev.figures
    f1_png, confusion_png = charts.get(F1_PNG), charts.get(CONFUSION_PNG)
    confidence = (
        confidence_report.html(ev.confidence, f, charts) if ev.confidence is not None else ""
    )
    f1_chart = html_img(f1_png, "entity-level F1 by type with 95% intervals") if f1_png else ""
    return f"""{_cards(ev)}
<section><h2>{escape(ENTITY_TITLE)}</h2><p class="note">{escape(ev.entity.label)}.</p>
{html_table(ENTITY_HEADER, entity_rows(ev), averages=2)}{f1_chart}</section>
{_errors(ev, confusion_png)}
{confidence}
<section><h2>{escape(COST_TITLE)} and throughput</h2><div class="cols">
<div><h3>{escape(COST_TITLE)}</h3>{html_table(("figure", "value"), cost_rows(ev))}</div>
<div><h3>{escape(FIGURES_TITLE)}</h3>{html_table(("figure", "value"), figure_rows(f))}</div>
</div></section>
{_losses(ev)}
<section><h2>{escape(TOKEN_TITLE)}</h2>
<p class="warning">{escape(ev.token.label)}. Shown because the project's seed reported it;
do not compare it with published CoNLL F1.</p>
<div class="cols"><div><h3>Per type (B-/I- merged)</h3>
{html_table(SCORE_HEADER, token_rows(ev), averages=2)}</div>
<div><h3>Per tag</h3>{html_table(("tag", *SCORE_HEADER[1:]), tag_rows(ev))}</div></div></section>
{_worst(ev)}"""


def html_sections(ev: Evaluation, charts: Mapping[str, bytes]) -> HtmlSections:
    """NER's part of report.html; the charts (`f1_by_type.png`, `confusion.png`, and with
    confidence `review_curve.png`, `reliability.png`) that are given are embedded, the
    confusion matrices are tables otherwise."""
    facts = header_facts(ev)
    summary = (
        f"{escape(facts[4][1])} · {escape(facts[5][1])} evaluated ·\n{escape(facts[6][1])} failed"
    )
    summary += "".join(f" · {escape(name)} {escape(value)}" for name, value in facts[7:])
    note = no_gold_note(ev)
    if note is not None:
        figures = html_table(("figure", "value"), figure_rows(ev.figures))
        body = f"""<section><p class="warning">{escape(note)}</p></section>
<section><h2>{escape(FIGURES_TITLE)}</h2>{figures}</section>
{_losses(ev)}"""
    else:
        body = _scores(ev, charts)
    return HtmlSections(summary=summary, body=body, footer=method_note(ev))


__all__ = ["HTML_WORST", "html_sections"]
