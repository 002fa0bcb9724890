"""Text classification: one label per text (`classify`) or a set of labels (`classify-multi`,
`prelabel run --task classify --multi-label`), the second task type.

`labeling.py` holds what the producer, workers and simulator use; `reporting.py` what the
collector and the evaluation use; `model.py` the shapes both share.
"""

from task_types.classify.labeling import ClassifyLabeling
from task_types.classify.reporting import ClassifyReporting
from task_types.registry import register


class Classify(ClassifyLabeling, ClassifyReporting):
    """Classification as a task type, single- or multi-label."""

    def __init__(self, *, multi_label: bool) -> None:
        self.multi_label = multi_label
        self.name = "classify-multi" if multi_label else "classify"


CLASSIFY = register(Classify(multi_label=False))
CLASSIFY_MULTI = register(Classify(multi_label=True))

__all__ = ["CLASSIFY", "CLASSIFY_MULTI", "Classify"]
