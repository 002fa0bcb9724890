"""Requests/min and tokens/min caps, enforced the way OpenAI enforces them.

Each cap is a token bucket that holds one second of the cap (`cap / 60`, at least one
request) and refills continuously on the monotonic clock. A request is admitted when every
bucket holds its cost, or is full when its cost is larger than the bucket (so that one
request always fits; the bucket then goes into debt). Both buckets are checked before either
is charged. A rejected request (HTTP 429) is not charged: OpenAI does count failed requests
against the caps, but not charging keeps the simulator's arithmetic easy to predict.

A request's cost is 1 request and `prompt tokens + max_tokens` tokens (`max_completion_tokens`
when given, else 16 when neither is). Prompt tokens are counted exactly with o200k_base over
each message's text, plus 4 tokens of overhead per message (`count_prompt_tokens`).

Every answer, admitted or refused, carries `x-ratelimit-*` headers describing the buckets at
admission (after charging the request, if admitted), as the hosted API's do: they are one
latency old when the client reads them. `x-ratelimit-limit-*` report the per-minute caps and
`x-ratelimit-reset-*` how long the bucket takes to refill completely. `x-ratelimit-remaining-*`
is read one of two ways (`HeaderStyle`):

- `bucket`: what the one-second bucket holds;
- `openai`: the per-minute view the hosted API reports, `limit - what is still to refill`
  (e.g. limit 160000, remaining 159976, reset 9ms after one call of 24 tokens).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import bpe_openai

from simulator.oracle import message_text
from workers.tokens import schema_text

#: Tokens added per message on top of its text (role and delimiters), as OpenAI's cookbook does.
MESSAGE_OVERHEAD = 4
#: The admission cost in completion tokens of a request that sets no `max_tokens`.
DEFAULT_MAX_TOKENS = 16

Kind = Literal["requests", "tokens"]
#: How `x-ratelimit-remaining-*` is reported (see the module docstring).
HeaderStyle = Literal["bucket", "openai"]
HEADER_STYLES: tuple[HeaderStyle, ...] = ("bucket", "openai")


@lru_cache(maxsize=1)
def encoding() -> bpe_openai.Encoding:
    """The o200k_base encoding, loaded once."""
    return bpe_openai.get_encoding("o200k_base")


@lru_cache(maxsize=8192)
def count_tokens(text: str) -> int:
    """The o200k_base token count of `text` (special-token strings count as plain text)."""
    return len(encoding().encode_ordinary(text))


def count_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None = None
) -> int:
    """Prompt tokens of a chat request: each message's text in o200k_base, plus 4 each, plus
    the response format's JSON schema as OpenAI bills it (its compact JSON, as
    `workers.tokens.count_schema_tokens` estimates it; 0 for JSON mode)."""
    schema = schema_text(response_format)
    tokens = 0 if schema is None else count_tokens(schema)
    return tokens + sum(count_tokens(message_text(m)) + MESSAGE_OVERHEAD for m in messages)


def format_duration(seconds: float) -> str:
    """A duration as OpenAI's headers write it (Go style): `0s`, `20ms`, `1.5s`, `6m0s`."""
    if seconds <= 0:
        return "0s"
    millis = math.ceil(seconds * 1000 - 1e-9)
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") + "s" if frac else f"{whole}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


@dataclass(slots=True)
class TokenBucket:
    """A bucket of `capacity` units refilled at `rate` units per second; starts full."""

    rate: float
    capacity: float
    level: float = field(init=False)
    updated: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.level = self.capacity

    def refill(self, now: float) -> None:
        """Add what the time since the last refill earned, up to the capacity."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, cost: float) -> float:
        """Seconds until `cost` can be taken (0 when it can now); call `refill` first."""
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, cost: float) -> None:
        """Charge `cost`; the level may go below zero for a request larger than the bucket."""
        self.level -= cost

    def remaining(self) -> int:
        """Whole units available now."""
        return max(0, math.floor(self.level))

    def reset(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.level) / self.rate)

    def deficit(self) -> float:
        """Units still to refill before the bucket is full (more than its capacity in debt)."""
        return max(0.0, self.capacity - self.level)


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of `RateLimiter.admit`: the headers to send, and why it was refused."""

    admitted: bool
    headers: dict[str, str]
    kind: Kind | None = None
    retry_after: float = 0.0
    limit: int = 0
    requested: int = 0


class RateLimiter:
    """The RPM and TPM caps of one simulated account (None: no cap)."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        clock: Callable[[], float] = time.monotonic,
        style: HeaderStyle = "bucket",
    ) -> None:
        self._clock = clock
        self._style = style
        self._caps: dict[Kind, int] = {}
        self._buckets: dict[Kind, TokenBucket] = {}
        now = clock()
        caps: tuple[tuple[Kind, int | None], ...] = (("requests", rpm), ("tokens", tpm))
        for kind, cap in caps:
            if cap is None:
                continue
            bucket = TokenBucket(rate=cap / 60.0, capacity=max(1.0, cap / 60.0))
            bucket.updated = now
            self._caps[kind] = cap
            self._buckets[kind] = bucket

    def admit(self, tokens: int) -> Admission:
        """Charge one request of `tokens` tokens if every cap has room, else refuse it."""
        if not self._buckets:
            return Admission(admitted=True, headers={})
        now = self._clock()
        costs: dict[Kind, int] = {"requests": 1, "tokens": tokens}
        refused: Kind | None = None
        wait = 0.0
        for kind, bucket in self._buckets.items():
            bucket.refill(now)
            need = bucket.wait(costs[kind])
            if need > wait:
                refused, wait = kind, need
        if refused is None:
            for kind, bucket in self._buckets.items():
                bucket.take(costs[kind])
            return Admission(admitted=True, headers=self._headers())
        headers = self._headers()
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return Admission(
            admitted=False,
            headers=headers,
            kind=refused,
            retry_after=wait,
            limit=self._caps[refused],
            requested=costs[refused],
        )

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for kind, bucket in self._buckets.items():
            headers[f"x-ratelimit-limit-{kind}"] = str(self._caps[kind])
            if self._style == "openai":
                remaining = max(0, math.floor(self._caps[kind] - bucket.deficit()))
            else:
                remaining = bucket.remaining()
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(bucket.reset())
        return headers
