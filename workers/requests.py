"""What one labeling request of a run carries: its messages and its answer format (both
the task type's).

The workers and `prelabel estimate` both build requests here, so that an estimate counts
the very messages a run will send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import task_types
from prelabel.model import Record, RunConfig
from workers.fewshot import ExampleSelector
from workers.json_mode import SchemaRefusals


class RequestBuilder:
    """Messages (system, few-shot examples, records) and `response_format` for a run."""

    def __init__(
        self,
        config: RunConfig,
        selector: ExampleSelector | None = None,
        refusals: SchemaRefusals | None = None,
    ) -> None:
        self.config = config
        self.task = task_types.get(config.labeling.task)
        self.selector = selector if config.labeling.few_shot else None
        self.refusals = refusals if refusals is not None else SchemaRefusals()

    def messages(self, batch: Sequence[Record]) -> list[dict[str, str]]:
        """The chat messages asking for `batch`'s labels."""
        examples = (
            self.selector.select([r.text for r in batch], self.config.labeling.few_shot)
            if self.selector is not None
            else []
        )
        return self.task.messages(batch, self.config, examples)

    def response_format(self, batch: Sequence[Record]) -> dict[str, Any] | None:
        """The strict schema for `batch`'s answers, or None for JSON mode."""
        choice = self.config.endpoint.response_format
        if choice == "json_object" or (choice == "auto" and self.refusals.refused(self.config)):
            return None
        return self.task.response_format(batch, self.config)
