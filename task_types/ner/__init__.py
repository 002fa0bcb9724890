"""Named-entity recognition: the first task type.

`labeling.py` holds what the producer, workers and simulator use; `reporting.py` what the
collector and the evaluation use.
"""

from task_types.ner.labeling import NerLabeling
from task_types.ner.reporting import NerReporting
from task_types.registry import register


class Ner(NerLabeling, NerReporting):
    """NER as a task type."""

    name = "ner"


NER = register(Ner())

__all__ = ["NER", "Ner"]
