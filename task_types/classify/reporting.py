"""Classification's reporting half: its predictions.jsonl row, evaluation, report sections,
exports and Kili job (`task_types.Reporting`) (helper C)."""

from __future__ import annotations


class ClassifyReporting:
    """TODO(helper C)."""

    name: str
    multi_label: bool
