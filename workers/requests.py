"""What one labeling request of a run carries: its messages and its answer format.

The workers and `prelabel estimate` both build requests here, so that an estimate counts
the very messages a run will send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prelabel.model import Record, RunConfig
from workers.fewshot import ExampleSelector
from workers.json_mode import SchemaRefusals
from workers.prompts import build_messages, response_format


def mention_bound(batch: Sequence[Record]) -> int:
    """The most mentions of one type a sentence of `batch` can hold (one per token), rounded
    up to a power of two so that a run sends a handful of distinct schemas (providers
    compile each schema once, and the first request with a new one waits for that)."""
    longest = max((len(r.tokens) for r in batch), default=1)
    return 1 << max(2, (longest - 1).bit_length())


class RequestBuilder:
    """Messages (system, few-shot examples, records) and `response_format` for a run."""

    def __init__(
        self,
        config: RunConfig,
        selector: ExampleSelector | None = None,
        refusals: SchemaRefusals | None = None,
    ) -> None:
        self.config = config
        self.selector = selector if config.few_shot else None
        self.refusals = refusals if refusals is not None else SchemaRefusals()

    def messages(self, batch: Sequence[Record]) -> list[dict[str, str]]:
        """The chat messages asking for `batch`'s labels."""
        examples = (
            self.selector.select([r.text for r in batch], self.config.few_shot)
            if self.selector is not None
            else []
        )
        return build_messages(
            batch, self.config.ontology, examples=examples, template=self.config.system_template
        )

    def response_format(self, batch: Sequence[Record]) -> dict[str, Any] | None:
        """The strict schema for `batch`'s answers, or None for JSON mode."""
        choice = self.config.response_format
        if choice == "json_object" or (choice == "auto" and self.refusals.refused(self.config)):
            return None
        return response_format(self.config.ontology, len(batch), mention_bound(batch))
