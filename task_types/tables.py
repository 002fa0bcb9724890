"""Cells and table layouts every task type's report shares: percentages, money and ratios as
the reports quote them, the run's figures as rows, and one table as Markdown or HTML.

A task type's report sections are built from these, so that its tables look like every
other's; the report frame (`evaluation`) lays the sections out.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from prelabel.figures import RunFigures

if TYPE_CHECKING:
    from task_types.bootstrap import Interval


def pct(x: float) -> str:
    """A fraction as a percentage with two decimals, as scores are usually quoted."""
    return f"{100 * x:.2f}"


def interval(i: Interval | None) -> str:
    """`low–high` in percent, or `n/a` without an interval."""
    return "n/a" if i is None else f"{pct(i.low)}–{pct(i.high)}"


def money(x: float | None) -> str:
    return "n/a" if x is None else f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def ratio(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02.0f}s"
    if minutes:
        return f"{minutes}m{secs:04.1f}s"
    return f"{secs:.1f}s"


def figure_rows(f: RunFigures, own: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The run's figures as (name, value) rows, in the order the report shows them, with the
    task type's `own` rows (of its `Reporting.figures`) after the retries."""
    return [
        ("items", str(f.items)),
        ("labeled", str(f.labeled)),
        ("failed", str(f.failed)),
        ("requests", str(f.requests)),
        ("prompt tokens", f"{f.prompt_tokens:,}"),
        *(
            (("cached prompt tokens", f"{f.cached_prompt_tokens:,}"),)
            if f.cached_prompt_tokens
            else ()
        ),
        ("completion tokens", f"{f.completion_tokens:,}"),
        ("429s", str(f.rate_limited)),
        ("retries", str(f.retries)),
        *own,
        ("skipped input items", str(f.skipped)),
        ("answers from cache", str(f.cache_hits)),
        *((("answered by", f.transport_line()),) if f.transport_line() else ()),
        *((f"failed: {reason}", str(n)) for reason, n in list(f.failure_reasons.items())[:5]),
        ("wall time", _duration(f.wall_seconds)),
        *((("not reached (the run stopped)", str(f.unfinished)),) if f.unfinished else ()),
        ("items/s (finished by workers)", f"{f.items_per_second:.2f}"),
        ("answers from", "prelabel simulator" if f.simulator else f"model {f.model or '?'}"),
    ]


def per_thousand_rows(f: RunFigures) -> list[tuple[str, str]]:
    """Dollars per 1,000 items the workers finished, split into uncached input, cached input
    and output (`prelabel.pricing.Bill`, as `prelabel status` shows it), and by transport when
    the run used the Batch API; none when the cost is unknown."""
    per_k = f.per_thousand
    if per_k is None:
        return []
    rows = [("$ per 1,000 items", money(per_k.total))]
    parts = [("", per_k)]
    if per_k.used_batch:
        parts = [(" (Batch API)", per_k.batch_part()), (" (realtime)", per_k.realtime_part())]
    for where, bill in parts:
        rows += [
            (f"  uncached input{where}", money(bill.input)),
            (f"  cached input{where}", money(bill.cached_input)),
            (f"  output{where}", money(bill.output)),
        ]
    return rows


def confidence_fact(f: RunFigures) -> list[tuple[str, str]]:
    """The report fact naming the run's confidence method (`--confidence`), when it had one."""
    method = f.confidence_method
    return [("confidence", method)] if method and method != "none" else []


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines: the first column left-aligned, the others right-aligned."""
    align = ["---"] + ["---:"] * (len(header) - 1)

    def cells(row: Sequence[str]) -> str:
        return " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row)

    return ["| " + cells(header) + " |", "| " + " | ".join(align) + " |"] + [
        "| " + cells(row) + " |" for row in rows
    ]


def html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    averages: int = 0,
    text_columns: Sequence[int] = (),
) -> str:
    """An HTML table; the last `averages` rows are styled as averages, `text_columns` as text
    (left-aligned)."""
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


def html_img(png: bytes, alt: str) -> str:
    """A chart embedded as a base64 data URI, so that the page needs no other file."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


__all__ = [
    "confidence_fact",
    "figure_rows",
    "html_img",
    "html_table",
    "interval",
    "md_table",
    "money",
    "pct",
    "ratio",
]
