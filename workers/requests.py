"""What one labeling request of a run carries: its messages and its answer format (both
the task type's).

The workers and `prelabel estimate` both build requests here, so that an estimate counts
the very messages a run will send.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import task_types
from prelabel.model import Record, RunConfig
from workers.fewshot import ExampleSelector

#: Runs whose endpoint refused `json_schema` in this process: they use JSON mode from then on.
_JSON_MODE_RUNS: set[str] = set()
_SCHEMA_REFUSAL = re.compile(r"response_format|json_schema|structured output", re.IGNORECASE)


class RequestBuilder:
    """Messages (system, few-shot examples, records) and `response_format` for a run."""

    def __init__(self, config: RunConfig, selector: ExampleSelector | None = None) -> None:
        self.config = config
        self.task = task_types.get(config.task)
        self.selector = selector if config.few_shot else None

    def messages(self, batch: Sequence[Record]) -> list[dict[str, str]]:
        """The chat messages asking for `batch`'s labels."""
        examples = (
            self.selector.select([r.text for r in batch], self.config.few_shot)
            if self.selector is not None
            else []
        )
        return self.task.messages(batch, self.config, examples)

    def response_format(self, batch: Sequence[Record]) -> dict[str, Any] | None:
        """The strict schema for `batch`'s answers, or None for JSON mode."""
        choice = self.config.response_format
        if choice == "json_object" or (choice == "auto" and self.config.run_id in _JSON_MODE_RUNS):
            return None
        return self.task.response_format(batch, self.config)

    def fall_back(self, error: str) -> bool:
        """True (and JSON mode from now on) when `error` is the endpoint refusing the schema.

        Only with `auto`: a run that asked for `json_schema` explicitly fails instead. Call it
        only for a request that was sent with the schema, so that a retry cannot loop.
        """
        if self.config.response_format != "auto":
            return False
        if "(400)" not in error or not _SCHEMA_REFUSAL.search(error):
            return False
        _JSON_MODE_RUNS.add(self.config.run_id)
        return True
