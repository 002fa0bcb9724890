"""What the provider's prompt cache is expected to serve of a run's requests, before the run.

OpenAI caches a request's prompt prefix once it is at least 1,024 tokens, and serves what
another recent request had in common with it, in 128-token steps (1,024, 1,152, ...). The
estimate follows that on each request's stable prefix: the response format's schema, then
every message before the items' user message (system prompt, fixed examples). A request
whose stable prefix, in whole parts, was seen before gets the largest step within that
common part cached; the first request of each distinct prefix pays in full. The figures are
estimates: the provider's cache is best-effort (its entries expire, and requests may reach
different machines), and the schema's count is prelabel's own (`count_schema_tokens`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workers.tokens import CACHE_MIN_TOKENS, CACHE_STEP_TOKENS, PER_REPLY, count_message_tokens


def cached_part(common_tokens: int) -> int:
    """The tokens served from the cache for a prefix of `common_tokens` seen before: the
    largest step of 128 from 1,024 within it (0 under 1,024)."""
    if common_tokens < CACHE_MIN_TOKENS:
        return 0
    steps = (common_tokens - CACHE_MIN_TOKENS) // CACHE_STEP_TOKENS
    return CACHE_MIN_TOKENS + steps * CACHE_STEP_TOKENS


class PrefixCache:
    """The stable prefixes of the requests seen so far, part by part."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._seen: set[tuple[str, ...]] = set()

    def cached(
        self,
        messages: Sequence[dict[str, str]],
        response_format: dict[str, Any] | None,
        schema_tokens: int,
    ) -> int:
        """The tokens of this request expected from the cache; remembers its prefix."""
        parts = (
            json.dumps(response_format, sort_keys=True) if response_format else "",
            *(f"{m['role']}\0{m['content']}" for m in messages[:-1]),
        )
        common = 0
        while common < len(parts) and parts[: common + 1] in self._seen:
            common += 1
        self._seen.update(parts[:n] for n in range(common + 1, len(parts) + 1))
        if common == 0:
            return 0
        before = messages[: common - 1]  # the messages within the common part
        message_tokens = count_message_tokens(before, self.model) - PER_REPLY if before else 0
        return cached_part(schema_tokens + max(message_tokens, 0))
