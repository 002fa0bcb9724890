"""Write every report of an evaluation into a folder: report.json, the task type's charts,
report.md and report.html (which embeds the same chart bytes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import task_types
from prelabel.extras import MissingExtra, require
from prelabel.files import write_atomic
from task_types import Evaluated

from .html import report_html
from .report import write_report_json, write_report_md

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` as write_atomic does (beside, then renamed over; mode 0644 at umask 022)."""
    write_atomic(path, data)


def _pngs(ev: Evaluated) -> dict[str, bytes]:
    """The task type's charts as PNG bytes, by file name; none (and a warning) without the
    `plots` extra, so that a run's reports are written all the same."""
    try:
        require("matplotlib", "plots")
    except MissingExtra as exc:
        log.warning("%s; the reports are written without charts", exc)
        return {}
    from .charts import chart_png  # imports matplotlib

    charts = task_types.get(ev.task).report.charts(ev)
    return {name: chart_png(chart) for name, chart in charts.items()}


def write_reports(ev: Evaluated, out_dir: Path) -> tuple[Path, ...]:
    """Write report.json, the charts (NER: f1_by_type.png, confusion.png), report.md and
    report.html; returns the reports' paths, then the charts'."""
    json_path, md_path, html_path = (
        out_dir / REPORT_JSON,
        out_dir / REPORT_MD,
        out_dir / REPORT_HTML,
    )
    write_report_json(ev, json_path)
    pngs = _pngs(ev)
    for name, png in pngs.items():
        write_bytes_atomic(out_dir / name, png)
    write_report_md(ev, md_path, images=bool(pngs))
    write_atomic(html_path, report_html(ev, pngs))
    return (json_path, md_path, html_path, *(out_dir / name for name in pngs))


__all__ = ["REPORT_HTML", "REPORT_JSON", "REPORT_MD", "write_bytes_atomic", "write_reports"]
