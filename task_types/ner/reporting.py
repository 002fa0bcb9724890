"""NER's reporting half: scores, report tables, exports and the Kili job."""

from __future__ import annotations


class NerReporting:
    name = "ner"
