"""Show a task type's evaluation: rich tables for the terminal, report.md for a terminal or a
PR, and report.json for programs. The frame (title, simulator banner, facts) is written here,
the sections are the task type's (`task_types.Report`); report.html is in `html.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import task_types
from prelabel.errors import ConfigError
from prelabel.files import write_atomic
from prelabel.model import DEFAULT_TASK

if TYPE_CHECKING:
    from rich.table import Table

    from task_types import Evaluated


def render_tables(ev: Evaluated) -> list[Table]:
    """The terminal tables of the evaluation's task type."""
    return task_types.get(ev.task).report.tables(ev)


def report_markdown(ev: Evaluated, *, images: bool = False) -> str:
    """report.md's text. With `images`, it links the charts written beside it."""
    report = task_types.get(ev.task).report
    lines = ["# prelabel evaluation", ""]
    if ev.figures.simulator:
        lines += [
            "> **Answers came from the prelabel simulator**, which replays gold labels: these "
            "numbers test the plumbing, not a model.",
            "",
        ]
    facts = report.facts(ev)
    lines += [f"- {name}: `{value}`" for name, value in facts[:4]]
    lines += [f"- {name}: {value}" for name, value in facts[4:]]
    lines += report.markdown(ev, images=images)
    return "\n".join(lines)


def write_report_md(ev: Evaluated, path: Path, *, images: bool = False) -> None:
    """Write report.md (Markdown tables, readable in a terminal and in a PR)."""
    write_atomic(path, report_markdown(ev, images=images))


def report_json(ev: Evaluated) -> str:
    """report.json's text: the evaluation's `model_dump(mode="json")`, labels included."""
    return json.dumps(ev.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def write_report_json(ev: Evaluated, path: Path) -> None:
    """Write report.json (see `report_json`)."""
    write_atomic(path, report_json(ev))


def read_report_json(path: Path, task: str = DEFAULT_TASK) -> Evaluated:
    """Read a report.json written by `write_report_json` for a run of `task` back into its
    evaluation model."""
    model = task_types.get(task).evaluation_model
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read report {path}: {exc.strerror}") from exc
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path} is not a prelabel report.json ({first})") from exc


__all__ = [
    "read_report_json",
    "render_tables",
    "report_json",
    "report_markdown",
    "write_report_json",
    "write_report_md",
]
