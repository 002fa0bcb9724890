"""Evaluate a run and report it: the `evaluate` and `compare` commands, and the report frame
(rich tables, report.md, report.json and report.html around the task type's sections;
`evaluation.outputs.write_reports` writes them all, kept out of this namespace so that
importing the package does not import matplotlib).

What is scored, and how, is the task type's (`task_types.Reporting.evaluate` and `.report`):
NER's evaluation is in `task_types.ner.evaluation`, its sections in `task_types.ner.report`.
"""

# The names below are imported on first use (PEP 562), not when the package is: the task
# type's sections load its scoring libraries (NER: seqeval, scikit-learn, numpy; seconds), and
# `prelabel --help` imports this package's command signatures only. Type checkers see
# ordinary imports.
from typing import TYPE_CHECKING

from prelabel.lazy import lazy_exports

if TYPE_CHECKING:
    from .report import (
        read_report_json,
        render_tables,
        report_markdown,
        write_report_json,
        write_report_md,
    )

__getattr__ = lazy_exports(
    __name__,
    {
        "report": (
            "read_report_json",
            "render_tables",
            "report_markdown",
            "write_report_json",
            "write_report_md",
        ),
    },
)

__all__ = [
    "read_report_json",
    "render_tables",
    "report_markdown",
    "write_report_json",
    "write_report_md",
]
