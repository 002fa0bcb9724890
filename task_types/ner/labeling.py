"""NER's labeling half: records, the label set, messages, parsing and predictions."""

from __future__ import annotations

from prelabel.model import PROMPT_VERSION


class NerLabeling:
    name = "ner"
    prompt_version = PROMPT_VERSION
