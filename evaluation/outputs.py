"""Write every report of an evaluation into a folder: report.json, report.md, the two charts
and report.html (which embeds the same chart bytes).
"""

from __future__ import annotations

from pathlib import Path

from prelabel.files import write_atomic

from .analysis import Evaluation
from .charts import confusion_chart, f1_chart
from .html import report_html
from .report import write_report_json, write_report_md
from .tables import CONFUSION_PNG, F1_PNG

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` as write_atomic does (beside, then renamed over; mode 0644 at umask 022)."""
    write_atomic(path, data)


def write_reports(ev: Evaluation, out_dir: Path) -> tuple[Path, ...]:
    """Write report.json, report.md, f1_by_type.png, confusion.png and report.html."""
    json_path, md_path, html_path = (
        out_dir / REPORT_JSON,
        out_dir / REPORT_MD,
        out_dir / REPORT_HTML,
    )
    f1_path, confusion_path = out_dir / F1_PNG, out_dir / CONFUSION_PNG
    write_report_json(ev, json_path)
    f1_png, confusion_png = f1_chart(ev), confusion_chart(ev)
    write_bytes_atomic(f1_path, f1_png)
    write_bytes_atomic(confusion_path, confusion_png)
    write_report_md(ev, md_path, images=True)
    write_atomic(html_path, report_html(ev, f1_png, confusion_png))
    return (json_path, md_path, html_path, f1_path, confusion_path)


__all__ = ["REPORT_HTML", "REPORT_JSON", "REPORT_MD", "write_bytes_atomic", "write_reports"]
