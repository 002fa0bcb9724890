"""Score predicted tags against gold: entity-level (CoNLL's number) with bootstrap intervals,
token-level (the seed's, labelled as such), an error analysis, and reports: rich tables,
report.md, report.json and report.html (`evaluation.outputs.write_reports`; kept out of this
namespace so that importing the package does not import matplotlib).
"""

# The names below are imported on first use (PEP 562), not when the package is: its modules
# load seqeval, scikit-learn and numpy (seconds), and `prelabel --help` imports this package's
# command signatures only. Type checkers see ordinary imports.
from typing import TYPE_CHECKING, Any

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

_WHERE = {
    "CostQuality": "analysis",
    "Evaluation": "analysis",
    "Item": "analysis",
    "Losses": "analysis",
    "LossExample": "analysis",
    "evaluate": "analysis",
    "evaluate_items": "analysis",
    "EntityIntervals": "bootstrap",
    "Interval": "bootstrap",
    "PairedComparison": "bootstrap",
    "ScoreIntervals": "bootstrap",
    "ErrorAnalysis": "errors",
    "ItemDiff": "errors",
    "SpanError": "errors",
    "SpanRef": "errors",
    "ENTITY_LEVEL_LABEL": "metrics",
    "TOKEN_LEVEL_LABEL": "metrics",
    "EntityScores": "metrics",
    "LabelScores": "metrics",
    "RunFigures": "metrics",
    "SpanCounts": "metrics",
    "TokenScores": "metrics",
    "TypeScores": "metrics",
    "entity_scores": "metrics",
    "span_counts": "metrics",
    "spans": "metrics",
    "to_iob2": "metrics",
    "token_scores": "metrics",
    "read_report_json": "report",
    "render_tables": "report",
    "report_markdown": "report",
    "write_report_json": "report",
    "write_report_md": "report",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
