"""Score predicted tags against gold: entity-level (CoNLL's number) with bootstrap intervals,
token-level (the seed's, labelled as such), an error analysis, and reports: rich tables,
report.md, report.json and report.html (`evaluation.outputs.write_reports`; kept out of this
namespace so that importing the package does not import matplotlib).
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
    from .errors import ErrorAnalysis, ItemDiff, SpanError, SpanRef
    from .metrics import (
        ENTITY_LEVEL_LABEL,
        TOKEN_LEVEL_LABEL,
        EntityScores,
        LabelScores,
        RunFigures,
        SpanCounts,
        TokenScores,
        TypeScores,
        entity_scores,
        span_counts,
        spans,
        to_iob2,
        token_scores,
    )
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
        "errors": (
            "ErrorAnalysis",
            "ItemDiff",
            "SpanError",
            "SpanRef",
        ),
        "metrics": (
            "ENTITY_LEVEL_LABEL",
            "TOKEN_LEVEL_LABEL",
            "EntityScores",
            "LabelScores",
            "RunFigures",
            "SpanCounts",
            "TokenScores",
            "TypeScores",
            "entity_scores",
            "span_counts",
            "spans",
            "to_iob2",
            "token_scores",
        ),
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
    "ENTITY_LEVEL_LABEL",
    "TOKEN_LEVEL_LABEL",
    "CostQuality",
    "EntityIntervals",
    "EntityScores",
    "ErrorAnalysis",
    "Evaluation",
    "Interval",
    "Item",
    "ItemDiff",
    "LabelScores",
    "LossExample",
    "Losses",
    "PairedComparison",
    "RunFigures",
    "ScoreIntervals",
    "SpanCounts",
    "SpanError",
    "SpanRef",
    "TokenScores",
    "TypeScores",
    "entity_scores",
    "evaluate",
    "evaluate_items",
    "read_report_json",
    "render_tables",
    "report_markdown",
    "span_counts",
    "spans",
    "to_iob2",
    "token_scores",
    "write_report_json",
    "write_report_md",
]
