"""Evaluate a run and report it: the scores with bootstrap intervals, what was lost before
scoring (failed items by kind), cost against quality, and reports: rich tables, report.md,
report.json and report.html (`evaluation.outputs.write_reports`; kept out of this namespace so
that importing the package does not import matplotlib).

What is scored, and how, is the task type's: NER's scores (entity-level, CoNLL's number, and
token-level, the seed's) and its error analysis are in `task_types.ner.scores` and
`task_types.ner.errors`.
"""

# The names below are imported on first use (PEP 562), not when the package is: its modules
# load seqeval, scikit-learn and numpy (seconds), and `prelabel --help` imports this package's
# command signatures only. Type checkers see ordinary imports.
from typing import TYPE_CHECKING

from prelabel.lazy import lazy_exports

if TYPE_CHECKING:
    from .analysis import (
        CostQuality,
        Evaluation,
        Item,
        Losses,
        LossExample,
        evaluate,
        evaluate_items,
    )
    from .bootstrap import EntityIntervals, Interval, PairedComparison, ScoreIntervals
    from .figures import RunFigures
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
        "analysis": (
            "CostQuality",
            "Evaluation",
            "Item",
            "Losses",
            "LossExample",
            "evaluate",
            "evaluate_items",
        ),
        "bootstrap": (
            "EntityIntervals",
            "Interval",
            "PairedComparison",
            "ScoreIntervals",
        ),
        "figures": ("RunFigures",),
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
    "CostQuality",
    "EntityIntervals",
    "Evaluation",
    "Interval",
    "Item",
    "LossExample",
    "Losses",
    "PairedComparison",
    "RunFigures",
    "ScoreIntervals",
    "evaluate",
    "evaluate_items",
    "read_report_json",
    "render_tables",
    "report_markdown",
    "write_report_json",
    "write_report_md",
]
