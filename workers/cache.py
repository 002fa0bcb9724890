"""A content-addressed cache of answers, so a rerun, a resume or a duplicate never pays twice.

The key hashes everything that shapes an answer: the endpoint, the model, the messages,
the sampling parameters and the request headers prelabel adds. Only answers that parsed
into a usable result are stored; failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis.asyncio as aioredis

from prelabel.keys import cache_key


def request_digest(
    base_url: str,
    model: str,
    messages: list[dict[str, str]],
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> str:
    """A stable hash of a chat request."""
    payload = json.dumps(
        [base_url.rstrip("/"), model, messages, params, headers or {}],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """Answers by request digest, in Redis, with a time to live."""

    def __init__(self, client: aioredis.Redis, ttl: int, enabled: bool = True) -> None:
        self.redis = client
        self.ttl = ttl
        self.enabled = enabled

    async def get(self, digest: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        raw = await self.redis.get(cache_key(digest))
        return None if raw is None else dict(json.loads(raw))

    async def put(self, digest: str, answer: dict[str, Any]) -> None:
        if self.enabled:
            await self.redis.set(cache_key(digest), json.dumps(answer), ex=self.ttl)
