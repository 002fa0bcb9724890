"""report.html: one self-contained page for a browser. Inline CSS, the charts embedded as
base64 PNG data URIs, no script and no external URL, so it can be mailed or archived as is.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from task_types.ner.errors import ItemDiff, SpanRef

from .analysis import Evaluation
from .tables import (
    COST_TITLE,
    ENTITY_HEADER,
    ENTITY_TITLE,
    ERRORS_HEADER,
    ERRORS_TITLE,
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
    interval,
    loss_rows,
    marked_spans,
    method_note,
    no_gold_note,
    pct,
    ratio,
    tag_rows,
    token_rows,
    worst_diffs,
)

#: Worst items shown with their diffs.
HTML_WORST = 20

_CSS = """
:root { --ink:#1f2328; --muted:#656d76; --line:#d8dee4; --soft:#f6f8fa; --accent:#3b6fb6;
  --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9; --warn-bg:#fff8c5;
  --warn-line:#d4a72c; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f4; color:var(--ink);
  font:14px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif; }
main { max-width:1160px; margin:0 auto; padding:28px 28px 48px; }
header h1 { font-size:26px; margin:0 0 4px; }
header .facts { color:var(--muted); margin:0; }
header .facts b { color:var(--ink); font-weight:600; }
.banner { margin:16px 0 0; padding:10px 14px; background:var(--warn-bg);
  border:1px solid var(--warn-line); border-radius:6px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(160px, 1fr)); gap:12px;
  margin:20px 0 8px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase;
  letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .sub { color:var(--muted); font-size:12px; }
.card.headline { border-color:var(--accent); border-width:2px; }
.card.headline .value { font-size:32px; color:var(--accent); }
section { background:#fff; border:1px solid var(--line); border-radius:8px;
  padding:18px 20px; margin:18px 0; }
section h2 { font-size:18px; margin:0 0 4px; }
section h3 { font-size:15px; margin:18px 0 6px; }
.note { color:var(--muted); margin:0 0 10px; }
.warning { background:var(--warn-bg); border-left:4px solid var(--warn-line);
  padding:6px 10px; margin:0 0 10px; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; margin:4px 0 8px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right;
  white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
th { background:var(--soft); font-weight:600; }
tr.avg td { font-weight:600; background:#fbfcfd; }
td.text, th.text { text-align:left; white-space:normal; max-width:360px; }
.cols { display:grid; grid-template-columns:1fr 1fr; gap:20px; }
img.chart { display:block; max-width:100%; height:auto; margin:8px 0; }
.item { border-top:1px solid var(--line); padding:10px 0; }
.item .id { font-weight:600; }
.item .id span { color:var(--muted); font-weight:400; }
.line { margin:4px 0; line-height:2.1; }
.line .who { display:inline-block; width:42px; color:var(--muted); font-size:12px; }
.ent { border-radius:4px; padding:2px 4px; border:1px solid; }
.ent sub { font-size:10px; font-weight:600; margin-left:3px; }
.ent.ok { background:var(--ok-bg); border-color:#4ac26b; }
.ent.bad { background:var(--bad-bg); border-color:#ff8182; }
.item ul { margin:4px 0 0 42px; padding:0; color:var(--muted); }
dl.kinds { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:6px 0 12px; }
dl.kinds dt { font-weight:600; } dl.kinds dd { margin:0; color:var(--muted); }
footer { color:var(--muted); font-size:12px; margin-top:24px; }
"""


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    averages: int = 0,
    text_columns: Sequence[int] = (),
) -> str:
    head = "".join(
        f'<th class="text">{escape(h)}</th>' if j in text_columns else f"<th>{escape(h)}</th>"
        for j, h in enumerate(header)
    )
    body = []
    for i, row in enumerate(rows):
        cls = ' class="avg"' if averages and i >= len(rows) - averages else ""
        cells = "".join(
            f'<td class="text">{escape(c)}</td>' if j in text_columns else f"<td>{escape(c)}</td>"
            for j, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


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
    chart = _img(confusion_png, "confusion between types") if confusion_png else ""
    # Without the heatmap (no PNG given), the same counts as tables.
    tables = "".join(
        f"<h3>{name}</h3>{_table(*confusion_rows(c))}"
        for name, c in (("Span-level", e.span_confusion), ("Token-level", e.token_confusion))
    )
    return (
        f"<section><h2>{escape(ERRORS_TITLE)}</h2>"
        '<p class="note">Each gold entity pairs with at most one prediction. Boundary errors '
        "(right type, wrong span) are apart from type errors.</p>"
        f'<dl class="kinds">{kinds}</dl>'
        f"{_table(ERRORS_HEADER, error_rows(ev), averages=1)}"
        "<h3>Confusion between types</h3>"
        '<p class="note">Gold in rows, predictions in columns; colour is the share of the '
        "gold row, numbers are counts.</p>"
        f"{chart or tables}"
        '<div class="cols"><div><h3>Most frequent false positives</h3>'
        f"{_table(FREQUENT_HEADER, frequent_rows(e.false_positives), text_columns=(0, 3))}"
        "</div><div><h3>Most frequent false negatives</h3>"
        f"{_table(FREQUENT_HEADER, frequent_rows(e.false_negatives), text_columns=(0, 3))}"
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
        "<h3>Examples</h3>" + _table(("item", "reason"), examples, text_columns=(1,))
        if examples
        else ""
    )
    failures = failure_rows(ev)
    if failures:
        by_kind = _table(FAILURES_HEADER, failures, text_columns=(0, 2))
        listed = f"<h3>{escape(FAILURES_TITLE)}</h3>{by_kind}{listed}"
    return (
        f"<section><h2>{escape(LOSSES_TITLE)}</h2>"
        '<p class="note">Items that failed are not scored; mentions the aligner could not '
        "place in the text are lost before scoring. Neither is a model error.</p>"
        f"{_table(('what', 'count'), loss_rows(ev), text_columns=(0,))}{listed}</section>"
    )


def report_html(
    ev: Evaluation, f1_png: bytes | None = None, confusion_png: bytes | None = None
) -> str:
    """The page's HTML. Pass the charts' PNG bytes (see `charts`) to embed them."""
    f = ev.figures
    facts = header_facts(ev)
    fact_line = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in facts[:4])
    banner = (
        '<div class="banner"><b>Answers came from the prelabel simulator</b>, which replays '
        "gold labels: these numbers test the plumbing, not a model.</div>"
        if f.simulator
        else ""
    )
    title = f"prelabel evaluation — {f.dataset or 'dataset'} {f.split}".strip()
    note = no_gold_note(ev)
    if note is not None:
        scores = f"""<section><p class="warning">{escape(note)}</p></section>
<section><h2>{escape(FIGURES_TITLE)}</h2>{_table(("figure", "value"), figure_rows(f))}</section>
{_losses(ev)}"""
    else:
        scores = _scores(ev, f1_png, confusion_png)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body><main>
<header><h1>prelabel evaluation</h1><p class="facts">{fact_line}</p>
<p class="facts">{escape(facts[4][1])} · {escape(facts[5][1])} evaluated ·
{escape(facts[6][1])} failed</p>{banner}</header>
{scores}
<footer>{escape(method_note(ev))}</footer>
</main></body></html>
"""


def _scores(ev: Evaluation, f1_png: bytes | None, confusion_png: bytes | None) -> str:
    """Every section of a report with gold: cards, scores, errors, cost, losses, worst items."""
    f = ev.figures
    f1_chart = _img(f1_png, "entity-level F1 by type with 95% intervals") if f1_png else ""
    return f"""{_cards(ev)}
<section><h2>{escape(ENTITY_TITLE)}</h2><p class="note">{escape(ev.entity.label)}.</p>
{_table(ENTITY_HEADER, entity_rows(ev), averages=2)}{f1_chart}</section>
{_errors(ev, confusion_png)}
<section><h2>{escape(COST_TITLE)} and throughput</h2><div class="cols">
<div><h3>{escape(COST_TITLE)}</h3>{_table(("figure", "value"), cost_rows(ev))}</div>
<div><h3>{escape(FIGURES_TITLE)}</h3>{_table(("figure", "value"), figure_rows(f))}</div>
</div></section>
{_losses(ev)}
<section><h2>{escape(TOKEN_TITLE)}</h2>
<p class="warning">{escape(ev.token.label)}. Shown because the project's seed reported it;
do not compare it with published CoNLL F1.</p>
<div class="cols"><div><h3>Per type (B-/I- merged)</h3>
{_table(SCORE_HEADER, token_rows(ev), averages=2)}</div>
<div><h3>Per tag</h3>{_table(("tag", *SCORE_HEADER[1:]), tag_rows(ev))}</div></div></section>
{_worst(ev)}"""


__all__ = ["HTML_WORST", "report_html"]
