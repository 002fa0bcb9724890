"""Task types: what a run labels, and everything about it that the core does not know.

A task type (`TaskType`) owns how dataset rows become records and gold, its label set, the
messages and response format for K items, parsing an answer, turning an answer into a
prediction, what its predictions count, its scores and report tables, its exports and Kili
job, and the simulator's gold answer. The core (records, results, the run's configuration,
the labeler loop, commit, counters, collection, the report, export and upload frames, the
estimate, the simulator server) asks for a run's task type by name and goes through it.

NER (`task_types.ner`) is the first one. "Adding a task type" in the README walks through it.
"""

from task_types.base import (
    Answer,
    Compared,
    Evaluated,
    Example,
    HtmlSections,
    ItemsFormat,
    KiliJob,
    Labeling,
    LabelingDefaults,
    PredictionRow,
    PromptTemplate,
    Report,
    Reporting,
    RowFields,
    SkipItem,
    Source,
    TaskType,
)
from task_types.registry import get, names, register

__all__ = [
    "Answer",
    "Compared",
    "Evaluated",
    "Example",
    "HtmlSections",
    "ItemsFormat",
    "KiliJob",
    "Labeling",
    "LabelingDefaults",
    "PredictionRow",
    "PromptTemplate",
    "Report",
    "Reporting",
    "RowFields",
    "SkipItem",
    "Source",
    "TaskType",
    "get",
    "names",
    "register",
]
