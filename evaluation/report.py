"""Show an Evaluation: rich tables for the terminal, report.md for a terminal or a PR, and
report.json for programs. All three carry the same numbers and the same labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from prelabel.errors import ConfigError
from prelabel.files import write_atomic

from .metrics import Evaluation, LabelScores, RunFigures, TypeScores

ENTITY_TITLE = "Entity-level (seqeval, strict IOB2)"
TOKEN_TITLE = "Token-level (seed's method, includes O — reads higher than entity-level F1)"
FIGURES_TITLE = "Run figures"

_SCORE_HEADER = ("type", "P %", "R %", "F1 %", "support")
# Entity rows also show predicted and correct counts, so P and R can be checked by hand.
_ENTITY_HEADER = (*_SCORE_HEADER, "predicted", "tp")


def _pct(x: float) -> str:
    # Percentages, because published CoNLL figures (e.g. 94.6) are quoted that way.
    return f"{100 * x:.2f}"


def entity_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Rows of the entity-level table: each type, then the micro and macro averages."""

    def row(name: str, s: TypeScores) -> tuple[str, ...]:
        scores = (_pct(s.precision), _pct(s.recall), _pct(s.f1))
        return (name, *scores, str(s.support), str(s.predicted), str(s.tp))

    rows = [row(t, s) for t, s in ev.entity.per_type.items()]
    rows.append(row("micro avg", ev.entity.micro))
    rows.append(row("macro avg", ev.entity.macro))
    return rows


def token_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    """Rows of the token-level table: each type (B-/I- merged) and O, then weighted averages."""

    def row(name: str, s: LabelScores) -> tuple[str, ...]:
        return (name, _pct(s.precision), _pct(s.recall), _pct(s.f1), str(s.support))

    rows = [row(t, s) for t, s in ev.token.per_type.items()]
    rows.append(row("weighted avg (B-/I-/O tags)", ev.token.weighted))
    rows.append(row("weighted avg (types + O)", ev.token.weighted_by_type))
    return rows


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02.0f}s"
    if minutes:
        return f"{minutes}m{secs:04.1f}s"
    return f"{secs:.1f}s"


def figure_rows(f: RunFigures) -> list[tuple[str, str]]:
    """The run's figures as (name, value) rows, in the order the report shows them."""
    return [
        ("items", str(f.items)),
        ("labeled", str(f.labeled)),
        ("failed", str(f.failed)),
        ("requests", str(f.requests)),
        ("prompt tokens", str(f.prompt_tokens)),
        ("completion tokens", str(f.completion_tokens)),
        ("429s", str(f.rate_limited)),
        ("retries", str(f.retries)),
        ("unaligned mentions", str(f.unaligned_mentions)),
        ("wall time", _duration(f.wall_seconds)),
        ("items/s", f"{f.items_per_second:.2f}"),
        ("answers from", "prelabel simulator" if f.simulator else f"model {f.model}"),
    ]


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


def render_tables(ev: Evaluation) -> list[Table]:
    """The entity-level table, the token-level table (labelled as such) and the run figures."""
    entity = _score_table(
        ENTITY_TITLE,
        f"{ev.evaluated_items} items; {ev.entity.label}",
        _ENTITY_HEADER,
        entity_rows(ev),
        averages=2,
    )
    token = _score_table(
        TOKEN_TITLE,
        f"{ev.evaluated_tokens} tokens; {ev.token.label}",
        _SCORE_HEADER,
        token_rows(ev),
        averages=2,
    )
    figures = Table(title=FIGURES_TITLE, title_justify="left", show_header=False)
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    for name, value in figure_rows(ev.figures):
        figures.add_row(name, value)
    return [entity, token, figures]


def _md_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def report_markdown(ev: Evaluation) -> str:
    """report.md's text: what was run, both score tables with their labels, the run figures."""
    f = ev.figures
    answered = "the prelabel simulator (not a real model)" if f.simulator else f"model `{f.model}`"
    lines = [
        "# prelabel evaluation",
        "",
        f"- model: `{f.model or 'unknown'}`",
        f"- prompt version: `{f.prompt_version or 'unknown'}`",
        f"- dataset: `{f.dataset or 'unknown'}`, split: `{f.split or 'unknown'}`",
        f"- answers from: {answered}",
        f"- evaluated: {ev.evaluated_items} items ({ev.evaluated_tokens} tokens); "
        f"failed items, not scored: {f.failed}",
        "",
        f"**Entity-level micro F1: {_pct(ev.entity.micro.f1)}** "
        f"(P {_pct(ev.entity.micro.precision)}, R {_pct(ev.entity.micro.recall)})",
        "",
        f"## {ENTITY_TITLE}",
        "",
        f"_{ev.entity.label}_",
        "",
        *_md_table(_ENTITY_HEADER, entity_rows(ev)),
        "",
        f"## {TOKEN_TITLE}",
        "",
        f"_{ev.token.label}_",
        "",
        *_md_table(_SCORE_HEADER, token_rows(ev)),
        "",
        f"## {FIGURES_TITLE}",
        "",
        *_md_table(("figure", "value"), figure_rows(f)),
        "",
    ]
    return "\n".join(lines)


def write_report_md(ev: Evaluation, path: Path) -> None:
    """Write report.md (Markdown tables, readable in a terminal and in a PR)."""
    write_atomic(path, report_markdown(ev))


def write_report_json(ev: Evaluation, path: Path) -> None:
    """Write report.json: `Evaluation.model_dump(mode="json")`, labels included."""
    write_atomic(path, json.dumps(ev.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")


def read_report_json(path: Path) -> Evaluation:
    """Read a report.json written by `write_report_json` back into an Evaluation."""
    try:
        return Evaluation.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read report {path}: {exc.strerror}") from exc
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path} is not a prelabel report.json ({first})") from exc
