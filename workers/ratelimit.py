"""One token bucket per account, shared in Redis by every worker of a fleet.

Two sub-buckets, requests and tokens, each holding about one second of its per-minute cap and
refilled continuously by the Redis server's clock. A call is admitted only when both have room,
and then both are charged at once (acquire.lua). After the call, the caller settles reserved
against actual tokens (reconcile.lua); a 429 pauses the whole fleet (pause.lua); the provider's
`x-ratelimit-remaining-*` headers can only lower the levels (resync.lua).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from redis.commands.core import AsyncScript

from prelabel.errors import BrokerError, ConfigError, ItemError
from prelabel.keys import BucketKeys

LUA_DIR = Path(__file__).parent / "lua"

#: Sleeps are stretched by up to this fraction, so that waiters spread out instead of all
#: retrying in the same millisecond.
JITTER = 0.1


@dataclass(frozen=True)
class Caps:
    """An account's caps. `None` means no cap; `burst_seconds` of each cap is held at most."""

    rpm: int | None
    tpm: int | None
    burst_seconds: float = 1.0
    #: The largest single call the caller allows (e.g. the configured max context). The token
    #: bucket holds at least this much, so one big call fits even at a small TPM.
    max_call_tokens: int = 16_384

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"--{name} is {value}: give a positive number, or leave it unset")
        if self.burst_seconds <= 0:
            raise ConfigError(f"burst_seconds is {self.burst_seconds}: give a positive number")
        if self.max_call_tokens <= 0:
            raise ConfigError(f"max_call_tokens is {self.max_call_tokens}: give a positive number")

    @property
    def request_capacity(self) -> float:
        """Requests the bucket can hold: `burst_seconds` of the cap, at least 1."""
        return max((self.rpm or 0) * self.burst_seconds / 60, 1.0)

    @property
    def token_capacity(self) -> float:
        """Tokens the bucket can hold: `burst_seconds` of the cap, at least `max_call_tokens`."""
        return max((self.tpm or 0) * self.burst_seconds / 60, float(self.max_call_tokens))


def account_id(base_url: str, model: str, api_key: str | None) -> str:
    """The bucket's name for one account: a digest of endpoint and model, then a key fingerprint.

    Only a digest of the key is kept (12 hex characters), so the key never reaches Redis while
    two keys on one endpoint still get two buckets.
    """
    endpoint = base_url.rstrip("/")
    where = hashlib.sha256(f"{endpoint}\n{model}".encode()).hexdigest()[:16]
    return f"{where}-{key_fingerprint(api_key)}"


def key_fingerprint(api_key: str | None) -> str:
    """The first 12 hex characters of the key's sha256, or `nokey`."""
    if api_key is None:
        return "nokey"
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


@cache
def lua_source(name: str) -> str:
    """The text of `workers/lua/<name>.lua`."""
    return (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")


class TokenBucket:
    """The shared requests + tokens bucket of one account, in Redis."""

    def __init__(self, redis: redis.asyncio.Redis, account: str, caps: Caps) -> None:
        self.caps = caps
        self.keys = BucketKeys(account)
        # register_script keeps the sha and reloads the script if Redis forgot it (NOSCRIPT).
        self._acquire = redis.register_script(lua_source("acquire"))
        self._reconcile = redis.register_script(lua_source("reconcile"))
        self._pause = redis.register_script(lua_source("pause"))
        self._resync = redis.register_script(lua_source("resync"))

    def __repr__(self) -> str:
        return f"TokenBucket(account={self.keys.account!r}, caps={self.caps!r})"

    @property
    def _limits(self) -> tuple[int, int, float, int]:
        caps = self.caps
        return caps.rpm or 0, caps.tpm or 0, caps.burst_seconds, caps.max_call_tokens

    async def acquire(self, tokens: int, requests: int = 1) -> float:
        """Wait until the call fits under both caps, charge it, and return the seconds waited.

        Raises ItemError when the call can never fit. Without caps nothing is charged, but a
        fleet-wide pause (after a 429) is still honoured.
        """
        rpm, tpm, burst, max_call = self._limits
        args = [rpm, tpm, burst, requests, tokens, max_call]
        keys = [self.keys.bucket, self.keys.pause]
        started = time.monotonic()
        while True:
            status, wait_ms = await self._run(self._acquire, keys, args)
            if status == 1:
                return time.monotonic() - started
            if status == -1:
                raise ItemError(self._never_fits(tokens, requests))
            await asyncio.sleep(wait_ms / 1000 * (1 + random.uniform(0, JITTER)))

    async def reconcile(self, reserved: int, actual: int) -> None:
        """Settle a call: refund `reserved - actual` tokens, or charge the extra as debt.

        `actual` is the caller's to choose, and must not be less than what the provider counted
        at admission (prompt + max_tokens), or the bucket would refund tokens it never got back.
        """
        rpm, tpm, burst, max_call = self._limits
        if not tpm or reserved == actual:
            return
        await self._run(
            self._reconcile, [self.keys.bucket], [reserved, actual, tpm, burst, max_call, rpm]
        )

    async def pause(self, seconds: float) -> None:
        """Admit nothing fleet-wide for `seconds` (a 429's retry-after); never shortens a pause."""
        if seconds <= 0:
            return
        await self._run(self._pause, [self.keys.pause], [seconds * 1000])

    async def resync(self, remaining_requests: int | None, remaining_tokens: int | None) -> None:
        """Lower the levels to the provider's `x-ratelimit-remaining-*`; never raises them."""
        rpm, tpm, burst, max_call = self._limits
        lowers_requests = remaining_requests is not None and rpm > 0
        lowers_tokens = remaining_tokens is not None and tpm > 0
        if not (lowers_requests or lowers_tokens):
            return
        args = [
            rpm,
            tpm,
            burst,
            max_call,
            "" if remaining_requests is None else remaining_requests,
            "" if remaining_tokens is None else remaining_tokens,
        ]
        await self._run(self._resync, [self.keys.bucket], args)

    def _never_fits(self, tokens: int, requests: int) -> str:
        caps = self.caps
        if caps.tpm is not None and tokens > caps.token_capacity:
            return (
                f"call needs {tokens} tokens, more than the bucket can ever hold "
                f"(capacity {caps.token_capacity:g}): raise --tpm or lower max_tokens"
            )
        return (
            f"call needs {requests} requests, more than the bucket can ever hold "
            f"(capacity {caps.request_capacity:g}): raise --rpm or send fewer at once"
        )

    async def _run(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[int | float | str]
    ) -> Any:
        # One place where Redis failures become prelabel's BrokerError.
        try:
            return await script(keys=list(keys), args=list(args))
        except redis.RedisError as exc:
            raise BrokerError(
                f"rate-limit bucket {self.keys.bucket}: Redis failed ({exc}); "
                "check that Redis is up and REDIS_URL points to it"
            ) from None
