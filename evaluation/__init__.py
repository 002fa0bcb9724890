"""Score predicted tags against gold: entity-level (CoNLL's number), token-level (the seed's),
and report them as rich tables, report.md and report.json.
"""

from .metrics import (
    ENTITY_LEVEL_LABEL,
    TOKEN_LEVEL_LABEL,
    EntityScores,
    Evaluation,
    LabelScores,
    RunFigures,
    SpanCounts,
    TokenScores,
    TypeScores,
    entity_scores,
    evaluate,
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

__all__ = [
    "ENTITY_LEVEL_LABEL",
    "TOKEN_LEVEL_LABEL",
    "EntityScores",
    "Evaluation",
    "LabelScores",
    "RunFigures",
    "SpanCounts",
    "TokenScores",
    "TypeScores",
    "entity_scores",
    "evaluate",
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
