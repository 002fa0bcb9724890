"""OpenAI's automatic prompt caching, as the simulator models it.

OpenAI serves from its cache the longest prefix of a request's tokens that it saw in a
request of the same model within the last 5 to 10 minutes, provided that prefix holds at
least 1,024 tokens; the cached part grows in steps of 128 tokens (1,024, 1,152, 1,280, ...).
The answer reports it as `usage.prompt_tokens_details.cached_tokens` (part of
`prompt_tokens`). The simulator keeps one `PromptCache` per model, with a ten-minute memory.

A request's token sequence (`request_tokens`) is what the cache compares: the response
format's JSON schema first (its compact JSON, as `workers.tokens.count_schema_tokens` counts
it), then each message's role and content, in o200k_base. A `prompt_cache_key` routes
requests to a cache machine upstream but changes nothing here: a single simulator is one
machine.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from simulator.limits import encoding
from simulator.oracle import message_text
from workers.tokens import CACHE_MIN_TOKENS, CACHE_STEP_TOKENS, schema_text

#: The shortest prefix served from the cache, and the steps in which the cached part grows
#: (`workers.tokens`, which prelabel's estimate follows too).
MIN_TOKENS = CACHE_MIN_TOKENS
STEP = CACHE_STEP_TOKENS
#: Seconds a prefix stays cached after it was last seen.
TTL = 600.0


def request_tokens(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None
) -> list[int]:
    """The tokens the cache compares: the schema's compact JSON, then each message's role and
    content (o200k_base)."""
    tokens: list[int] = []
    schema = schema_text(response_format)
    if schema is not None:
        tokens += _encode(schema)
    for message in messages:
        tokens += _encode(str(message.get("role", "")))
        tokens += _encode(message_text(message))
    return tokens


@lru_cache(maxsize=4096)
def _encode(text: str) -> tuple[int, ...]:
    # A run's system prompt, schema and examples recur in every request: encoded once.
    return tuple(encoding().encode_ordinary(text))


class PromptCache:
    """The prefixes of recent requests, at every step boundary from `min_tokens` on.

    Each boundary's prefix is remembered by its hash with the time it was last seen; a
    lookup walks the boundaries in order while their prefixes are remembered and fresh.
    """

    def __init__(self, min_tokens: int = MIN_TOKENS, step: int = STEP, ttl: float = TTL) -> None:
        if min_tokens < 1 or step < 1 or ttl <= 0:
            raise ValueError("min_tokens and step must be positive, and ttl more than 0")
        self.min_tokens = min_tokens
        self.step = step
        self.ttl = ttl
        self._seen: dict[bytes, float] = {}
        self._pruned = 0.0

    def cached(self, tokens: Sequence[int], now: float) -> int:
        """How many of `tokens` are served from the cache at time `now` (seconds); then the
        request's prefixes are remembered as seen at `now`."""
        self._prune(now)
        prefixes = self._prefixes(tokens)
        hit = 0
        for boundary, key in prefixes:
            seen = self._seen.get(key)
            if seen is None or now - seen > self.ttl:
                break
            hit = boundary
        for _, key in prefixes:
            self._seen[key] = now
        return hit

    def _prefixes(self, tokens: Sequence[int]) -> list[tuple[int, bytes]]:
        """Each step boundary (`min_tokens`, `min_tokens + step`, ...) up to the request's
        length, with the hash of the prefix that long."""
        digest = hashlib.blake2b(digest_size=16)
        done = 0
        found: list[tuple[int, bytes]] = []
        for boundary in range(self.min_tokens, len(tokens) + 1, self.step):
            digest.update(array("Q", tokens[done:boundary]).tobytes())
            done = boundary
            found.append((boundary, digest.copy().digest()))
        return found

    def _prune(self, now: float) -> None:
        """Forget expired prefixes, at most once per `ttl`."""
        if now - self._pruned < self.ttl:
            return
        self._pruned = now
        self._seen = {k: t for k, t in self._seen.items() if now - t <= self.ttl}


__all__ = ["MIN_TOKENS", "STEP", "TTL", "PromptCache", "request_tokens"]
