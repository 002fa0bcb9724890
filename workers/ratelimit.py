"""One token bucket per account, shared in Redis by every worker of a fleet.

Two sub-buckets, requests and tokens, each holding about one second of its per-minute cap and
refilled continuously by the Redis server's clock. A call is admitted only when both have room,
and then both are charged at once (acquire.lua). After the call, the caller settles reserved
against actual tokens and hands over the provider's rate-limit headers, which can only lower
the levels (settle.lua); a 429 pauses the whole fleet (pause.lua).

Within one process, callers queue for their turn (an asyncio lock): only the head of the queue
polls Redis, so a process with hundreds of calls waiting costs Redis one script call per wait,
not hundreds. Without caps, a process checks the fleet's pause every `PAUSE_POLL_SECONDS`
instead of before every call.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from redis.commands.core import AsyncScript

from prelabel.errors import BrokerError, ConfigError, ItemError
from prelabel.keys import BucketKeys
from prelabel.model import RunConfig
from prelabel.settings import Settings

LUA_DIR = Path(__file__).parent / "lua"

#: Seconds of each cap the bucket holds by default. The provider enforces its per-minute caps
#: at a finer grain, holding about one second of each; the fleet holds a little less, so that
#: calls admitted here and reaching the provider a few milliseconds apart (network, event
#: loops, a busy CPU) still find room there.
#: A smaller bucket costs no throughput while calls are waiting: the refill rate is the cap.
DEFAULT_BURST_SECONDS = 0.8

#: Without caps the bucket only relays the fleet's pauses (after a 429): a process then reads
#: the pause key at most this often, rather than once per call (its own 429s it knows at once).
PAUSE_POLL_SECONDS = 0.1

#: Sleeps are stretched by up to this fraction, so that waiters spread out instead of all
#: retrying in the same millisecond. It costs no throughput: the refill keeps accruing.
JITTER = 0.1


@dataclass(frozen=True)
class Caps:
    """An account's caps. `None` means no cap; `burst_seconds` of each cap is held at most."""

    rpm: int | None
    tpm: int | None
    burst_seconds: float = DEFAULT_BURST_SECONDS

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"--{name} is {value}: give a positive number, or leave it unset")
        if not 0 < self.burst_seconds <= 60:
            raise ConfigError(
                f"PRELABEL_BUCKET_SECONDS is {self.burst_seconds}: give seconds in (0, 60]"
            )

    @property
    def request_capacity(self) -> float:
        """Requests the bucket holds when full: `burst_seconds` of the cap (0 without a cap)."""
        return (self.rpm or 0) * self.burst_seconds / 60

    @property
    def token_capacity(self) -> float:
        """Tokens the bucket holds when full: `burst_seconds` of the cap (0 without a cap)."""
        return (self.tpm or 0) * self.burst_seconds / 60


def caps_for(settings: Settings, config: RunConfig) -> Caps:
    """The caps a run's calls go under: the run's own `--rpm/--tpm` first, each on its own,
    else the worker's `PRELABEL_CAPS` entry for the model (or its `"*"` entry)."""
    table = settings.caps.get(config.endpoint.model) or settings.caps.get("*")
    rpm = config.limits.rpm if config.limits.rpm is not None else (table.rpm if table else None)
    tpm = config.limits.tpm if config.limits.tpm is not None else (table.tpm if table else None)
    return Caps(rpm=rpm, tpm=tpm, burst_seconds=settings.bucket_seconds)


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


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float | None:
    """Seconds in an `x-ratelimit-reset-*` value (`20ms`, `1.5s`, `6m0s`, or bare seconds)."""
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in parts)


@dataclass(frozen=True)
class ProviderLimits:
    """What a response's `x-ratelimit-*` headers say about the account (None: not sent)."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None) -> ProviderLimits:
        """Parse the headers; a malformed value counts as absent."""
        if headers is None:
            return cls()

        def number(name: str) -> int | None:
            value = headers.get(f"x-ratelimit-{name}")
            try:
                return int(float(value)) if value is not None else None
            except ValueError:
                return None

        def duration(name: str) -> float | None:
            value = headers.get(f"x-ratelimit-{name}")
            return parse_duration(value) if value is not None else None

        return cls(
            limit_requests=number("limit-requests"),
            limit_tokens=number("limit-tokens"),
            remaining_requests=number("remaining-requests"),
            remaining_tokens=number("remaining-tokens"),
            reset_requests=duration("reset-requests"),
            reset_tokens=duration("reset-tokens"),
        )

    def deficits(self, caps: Caps) -> tuple[float | None, float | None]:
        """Requests and tokens the provider still has to refill, from `reset-*` at our caps.

        A continuously refilled bucket is full `reset` seconds from now, so it lacks
        `reset × cap / 60` units, however much it holds. `limit - remaining` bounds that from
        above, which keeps a provider whose `reset` means something else (a window's end) from
        stalling the fleet.
        """
        return (
            _deficit(self.reset_requests, caps.rpm, self.limit_requests, self.remaining_requests),
            _deficit(self.reset_tokens, caps.tpm, self.limit_tokens, self.remaining_tokens),
        )


def _deficit(
    reset: float | None, cap: int | None, limit: int | None, remaining: int | None
) -> float | None:
    if reset is None or cap is None:
        return None
    deficit = reset * cap / 60
    if limit is not None and remaining is not None:
        deficit = min(deficit, max(limit - remaining, 0))
    return deficit


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted call: how long it waited, the server time it was admitted at, and the
    bucket's running totals of requests and tokens charged just after its charge (None when an
    uncapped bucket admitted it without asking Redis). `settle` uses the last two to bring the
    provider's headers, which are as old as the call, up to date (settle.lua)."""

    waited: float
    server_us: int | None
    charged: tuple[int, int] | None = None


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
        self._settle = redis.register_script(lua_source("settle"))
        self._pause = redis.register_script(lua_source("pause"))
        # One poller per process at a time, first come first served (see the module docstring).
        self._turn = asyncio.Lock()
        self._uncapped = caps.rpm is None and caps.tpm is None
        # Monotonic time until which an uncapped bucket admits without reading the pause key.
        self._unpaused_until = float("-inf")

    def __repr__(self) -> str:
        return f"TokenBucket(account={self.keys.account!r}, caps={self.caps!r})"

    @property
    def _rates(self) -> list[int | float]:
        caps = self.caps
        return [caps.rpm or 0, caps.tpm or 0, caps.burst_seconds]

    async def acquire(self, tokens: int, requests: int = 1) -> Admission:
        """Wait until the call fits under both caps, and charge it.

        Raises ItemError when the call can never fit (it exceeds a per-minute cap). Without
        caps nothing is charged, but a fleet-wide pause (after a 429) is still honoured.
        """
        if self.caps.rpm is not None and requests > self.caps.rpm:
            raise ItemError(
                f"call needs {requests} requests at once, more than --rpm {self.caps.rpm}: "
                "raise --rpm or send fewer at once"
            )
        if self.caps.tpm is not None and tokens > self.caps.tpm:
            raise ItemError(
                f"call needs {tokens} tokens (prompt + n × max_tokens), more than the whole "
                f"--tpm {self.caps.tpm}: lower --max-tokens or --batch-size, or raise --tpm"
            )
        started = time.monotonic()
        if self._uncapped and started < self._unpaused_until:
            return Admission(0.0, None)
        args = [*self._rates, requests, tokens]
        keys = [self.keys.bucket, self.keys.pause]
        async with self._turn:
            if self._uncapped and time.monotonic() < self._unpaused_until:
                return Admission(time.monotonic() - started, None)  # another caller just asked
            while True:
                status, wait_ms, server_us, *charged = await self._run(self._acquire, keys, args)
                if status == 1:
                    if self._uncapped:
                        self._unpaused_until = time.monotonic() + PAUSE_POLL_SECONDS
                    return Admission(
                        time.monotonic() - started,
                        int(server_us),
                        (int(charged[0]), int(charged[1])) if charged else None,
                    )
                if status == -1:  # pragma: no cover - the checks above refuse these first
                    raise ItemError(f"call of {tokens} tokens can never fit under {self.caps}")
                await asyncio.sleep(wait_ms / 1000 * (1 + random.uniform(0, JITTER)))

    async def settle(
        self,
        reserved: int,
        actual: int,
        limits: ProviderLimits | None = None,
        admission: Admission | None = None,
    ) -> None:
        """Settle a call: refund `reserved - actual` tokens (or charge the extra as debt), and
        lower the levels to what the provider's headers say is left.

        `actual` is the caller's to choose, and must not be less than what the provider counted
        at admission (prompt + max_tokens), or the bucket would refund tokens it never got back.
        Give the call's `admission` with headers: they describe the provider when it admitted
        the call, and are aged to now from it (without it, they are taken as they are, which
        throws away one latency of refill: issue 21, settle.lua).
        """
        caps = self.caps
        limits = limits or ProviderLimits()
        deficit_req, deficit_tok = limits.deficits(caps)
        refunds = caps.tpm is not None and reserved != actual
        lowers_req = caps.rpm is not None and (
            limits.remaining_requests is not None or deficit_req is not None
        )
        lowers_tok = caps.tpm is not None and (
            limits.remaining_tokens is not None or deficit_tok is not None
        )
        if not (refunds or lowers_req or lowers_tok):
            return
        args = [
            *self._rates,
            reserved,
            actual,
            *(_opt(v) for v in (limits.remaining_requests, limits.remaining_tokens)),
            *(_opt(v) for v in (deficit_req, deficit_tok)),
            _opt(admission.server_us if admission else None),
            *(_opt(v) for v in (admission.charged if admission and admission.charged else ())),
        ]
        await self._run(self._settle, [self.keys.bucket], args)

    async def pause(
        self, seconds: float, *, run_counters: str | None = None, asked: float | None = None
    ) -> float:
        """Admit nothing fleet-wide for `seconds` (a 429's retry-after, capped by the caller);
        never shortens a pause.

        With `run_counters` (the calling run's counters key), the run is charged with how much
        this pause lengthened the account's, and told what the endpoint `asked` for; returns
        the seconds of pause the run has been charged in all (0 without it).
        """
        if seconds <= 0:
            return 0.0
        self._unpaused_until = float("-inf")
        keys = [self.keys.pause, *([run_counters] if run_counters else [])]
        asked_ms = (seconds if asked is None else asked) * 1000
        _, paused_ms = await self._run(self._pause, keys, [seconds * 1000, asked_ms])
        return int(paused_ms) / 1000

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


def _opt(value: float | None) -> float | str:
    return "" if value is None else value
