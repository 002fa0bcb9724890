"""The shared token bucket: each Lua script against real Redis, then TokenBucket, then a fleet
of processes hammering one bucket."""

from __future__ import annotations

import asyncio
import bisect
import multiprocessing
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prelabel.errors import BrokerError, ConfigError, ItemError
from prelabel.keys import BucketKeys
from prelabel.model import RunConfig
from prelabel.settings import load_settings
from simulator.limits import RateLimiter
from workers.ratelimit import (
    Admission,
    Caps,
    ProviderLimits,
    TokenBucket,
    account_id,
    caps_for,
    key_fingerprint,
    lua_source,
    parse_duration,
)

KEYS = BucketKeys("test-account")
HOUR_US = 3_600 * 1_000_000
T = TypeVar("T")


def server_now(client: redis.Redis) -> int:
    """The Redis server's clock in µs: the only clock the scripts use."""
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def freeze(client: redis.Redis, req: float, tok: float) -> None:
    """Set both levels with `ts` an hour ahead, so the next script call refills nothing."""
    client.hset(
        KEYS.bucket,
        mapping={"req": repr(req), "tok": repr(tok), "ts": server_now(client) + HOUR_US},
    )


def levels(client: redis.Redis) -> tuple[float, float]:
    req, tok = client.hmget(KEYS.bucket, ["req", "tok"])
    return float(req or "nan"), float(tok or "nan")


def at(admission: Admission) -> int:
    """The server time of an admission that asked Redis (a capped bucket's always do)."""
    assert admission.server_us is not None
    return admission.server_us


def stored_int(value: Any) -> int:
    """An integer Redis stored (as bytes); fails the test when the key or field is missing."""
    assert value is not None
    return int(value)


@pytest.fixture
def scripts(redis_client: redis.Redis) -> dict[str, Any]:
    names = ("acquire", "settle", "pause")
    return {name: redis_client.register_script(lua_source(name)) for name in names}


def acquire(
    scripts: dict[str, Any], rpm: int, tpm: int, cost_req: int, cost_tok: int, burst: float = 1.0
) -> tuple[int, int]:
    status, wait_ms, *_ = scripts["acquire"](
        keys=[KEYS.bucket, KEYS.pause], args=[rpm, tpm, burst, cost_req, cost_tok]
    )
    return int(status), int(wait_ms)


def settle(
    scripts: dict[str, Any],
    reserved: int,
    actual: int,
    remaining: tuple[float | str, float | str] = ("", ""),
    deficit: tuple[float | str, float | str] = ("", ""),
    rpm: int = 600,
    tpm: int = 60_000,
) -> None:
    scripts["settle"](
        keys=[KEYS.bucket], args=[rpm, tpm, 1.0, reserved, actual, *remaining, *deficit]
    )


# --- acquire.lua ------------------------------------------------------------------------------
# rpm 600 -> capacity 10 requests, 10/s; tpm 60,000 -> capacity 1,000 tokens, 1,000/s.
ACQUIRE_CASES = [
    # (rpm, tpm, req, tok, cost_req, cost_tok) -> (status, wait_ms, req after, tok after)
    pytest.param(600, 60_000, 5, 500, 1, 100, (1, 0, 4, 400), id="both-have-room"),
    pytest.param(600, 60_000, 1, 100, 1, 100, (1, 0, 0, 0), id="exact-fit"),
    pytest.param(600, 60_000, 0.5, 500, 1, 100, (0, 50, 0.5, 500), id="requests-short"),
    pytest.param(600, 60_000, 5, 50, 1, 100, (0, 50, 5, 50), id="tokens-short"),
    pytest.param(600, 60_000, 0, 0, 1, 300, (0, 300, 0, 0), id="both-short-max-wait"),
    pytest.param(600, 60_000, 5, -200, 1, 100, (0, 300, 5, -200), id="token-debt"),
    pytest.param(600, 60_000, 0.99999, 500, 1, 1, (0, 1, 0.99999, 500), id="wait-at-least-1ms"),
    pytest.param(0, 60_000, 0, 500, 1, 100, (1, 0, 0, 400), id="no-request-cap"),
    pytest.param(600, 0, 5, 0, 1, 10**9, (1, 0, 4, 0), id="no-token-cap"),
    # A call larger than the bucket waits for a full bucket, then leaves it in debt.
    pytest.param(600, 60_000, 5, 1000, 1, 1500, (1, 0, 4, -500), id="oversize-when-full"),
    pytest.param(600, 60_000, 5, 900, 1, 1500, (0, 100, 5, 900), id="oversize-waits-for-full"),
    pytest.param(30, 0, 0.5, 0, 1, 1, (1, 0, -0.5, 0), id="request-bigger-than-bucket"),
]


@pytest.mark.parametrize(
    ("rpm", "tpm", "req", "tok", "cost_req", "cost_tok", "expected"), ACQUIRE_CASES
)
def test_acquire_admits_both_or_neither(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    rpm: int,
    tpm: int,
    req: float,
    tok: float,
    cost_req: int,
    cost_tok: int,
    expected: tuple[int, int, float, float],
) -> None:
    freeze(redis_client, req, tok)
    status, wait_ms = acquire(scripts, rpm, tpm, cost_req, cost_tok)
    req_after, tok_after = levels(redis_client)
    assert (status, wait_ms) == expected[:2]
    assert req_after == pytest.approx(expected[2])
    assert tok_after == pytest.approx(expected[3])


NEVER_FITS_CASES = [
    # (rpm, tpm, cost_req, cost_tok) -> status on a full bucket
    pytest.param(600, 0, 601, 1, -1, id="more-requests-than-rpm"),
    pytest.param(600, 0, 600, 1, 1, id="requests-equal-rpm"),
    pytest.param(0, 6_000, 1, 6_001, -1, id="more-tokens-than-tpm"),
    pytest.param(0, 6_000, 1, 6_000, 1, id="tokens-equal-tpm"),
    pytest.param(0, 0, 10**6, 10**9, 1, id="no-caps-anything-fits"),
]


@pytest.mark.parametrize(("rpm", "tpm", "cost_req", "cost_tok", "status"), NEVER_FITS_CASES)
def test_acquire_refuses_for_good_only_a_cost_above_the_minute_cap(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    rpm: int,
    tpm: int,
    cost_req: int,
    cost_tok: int,
    status: int,
) -> None:
    assert acquire(scripts, rpm, tpm, cost_req, cost_tok)[0] == status


def test_missing_bucket_starts_full_with_one_burst_of_capacity(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    # burst 2 s of 600 rpm: capacity 20 requests, so 20 at once and not a 21st.
    assert [acquire(scripts, 600, 0, 1, 1, burst=2.0)[0] for _ in range(21)] == [1] * 20 + [0]
    assert 0 < redis_client.pttl(KEYS.bucket) <= 3_600_000


def test_no_caps_touch_no_bucket(redis_client: redis.Redis, scripts: dict[str, Any]) -> None:
    assert acquire(scripts, 0, 0, 1, 10**6) == (1, 0)
    assert not redis_client.exists(KEYS.bucket)


def test_refill_follows_the_server_clock(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    start = server_now(redis_client) - 500_000
    redis_client.hset(KEYS.bucket, mapping={"req": "0", "tok": "0", "ts": start})
    before = server_now(redis_client)
    assert acquire(scripts, 600, 60_000, 1, 100) == (1, 0)
    after = server_now(redis_client)
    req, tok = levels(redis_client)
    # Half a second at 10 req/s and 1,000 tok/s, measured by the server between before and after.
    assert (before - start) * 10 / 1e6 - 1 <= req <= (after - start) * 10 / 1e6 - 1
    assert (before - start) * 1000 / 1e6 - 100 <= tok <= (after - start) * 1000 / 1e6 - 100
    assert before <= stored_int(redis_client.hget(KEYS.bucket, "ts")) <= after


def test_refill_stops_at_capacity(redis_client: redis.Redis, scripts: dict[str, Any]) -> None:
    redis_client.hset(
        KEYS.bucket,
        mapping={"req": "-50", "tok": "-5000", "ts": server_now(redis_client) - HOUR_US},
    )
    assert acquire(scripts, 600, 60_000, 1, 100) == (1, 0)
    assert levels(redis_client) == pytest.approx((9, 900))


def test_pause_key_holds_back_every_call(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    freeze(redis_client, 10, 1000)
    before = server_now(redis_client)
    until = before + 5_000_000
    redis_client.set(KEYS.pause, until)
    status, wait_ms = acquire(scripts, 600, 60_000, 1, 100)
    after = server_now(redis_client)
    assert status == 0
    assert (until - after) / 1000 <= wait_ms <= (until - before) / 1000 + 1
    assert levels(redis_client) == (10, 1000)
    assert acquire(scripts, 0, 0, 1, 1)[0] == 0  # even without caps


def test_pause_in_the_past_is_ignored(redis_client: redis.Redis, scripts: dict[str, Any]) -> None:
    redis_client.set(KEYS.pause, server_now(redis_client) - 1)
    assert acquire(scripts, 600, 60_000, 1, 100) == (1, 0)


def test_never_fits_wins_over_pause(redis_client: redis.Redis, scripts: dict[str, Any]) -> None:
    redis_client.set(KEYS.pause, server_now(redis_client) + HOUR_US)
    assert acquire(scripts, 600, 0, 601, 1)[0] == -1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    req=st.floats(-20, 10),
    tok=st.floats(-3000, 1000),
    cost_req=st.integers(1, 12),
    cost_tok=st.integers(0, 3000),
)
def test_acquire_arithmetic_holds_for_any_levels_and_costs(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    req: float,
    tok: float,
    cost_req: int,
    cost_tok: int,
) -> None:
    # Capacities 10 and 1,000, rates 10/s and 1,000/s, refill frozen.
    freeze(redis_client, req, tok)
    status, wait_ms = acquire(scripts, 600, 60_000, cost_req, cost_tok)
    after = levels(redis_client)
    fits = req >= min(cost_req, 10) and tok >= min(cost_tok, 1000)
    if fits:
        # Admitted: both charged in full, even past zero.
        assert status == 1
        assert after == pytest.approx((req - cost_req, tok - cost_tok))
    else:
        # Refused: nothing charged, and the wait covers the larger shortfall, to the ms.
        assert status == 0
        assert after == pytest.approx((req, tok))
        shortfall = max((min(cost_req, 10) - req) / 10, (min(cost_tok, 1000) - tok) / 1000)
        # (Rounded to the µs first: 0.058 * 1000 is 58.000000000000007 in binary floats.)
        assert round(shortfall * 1000, 6) <= wait_ms <= max(shortfall * 1000 + 1, 1)


# --- pause.lua --------------------------------------------------------------------------------
def test_pause_never_shortens_a_longer_pause(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    pause = scripts["pause"]
    before = server_now(redis_client)
    first = int(pause(keys=[KEYS.pause], args=[5_000])[0])
    assert before + 5_000_000 <= first <= server_now(redis_client) + 5_000_000
    assert int(pause(keys=[KEYS.pause], args=[1_000])[0]) == first
    assert stored_int(redis_client.get(KEYS.pause)) == first
    longer = int(pause(keys=[KEYS.pause], args=[10_000])[0])
    assert longer > first
    assert stored_int(redis_client.get(KEYS.pause)) == longer
    assert 5_000 < redis_client.pttl(KEYS.pause) <= 10_000


# --- settle.lua -------------------------------------------------------------------------------
RECONCILE_CASES = [
    # (token level, reserved, actual) -> token level after; capacity 1,000
    pytest.param(500, 300, 100, 700, id="refund"),
    pytest.param(900, 300, 0, 1000, id="refund-capped-at-capacity"),
    pytest.param(50, 100, 300, -150, id="extra-usage-becomes-debt"),
    pytest.param(-100, 100, 100, -100, id="no-difference"),
]


@pytest.mark.parametrize(("tok", "reserved", "actual", "expected"), RECONCILE_CASES)
def test_settle_applies_reserved_minus_actual(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    tok: float,
    reserved: int,
    actual: int,
    expected: float,
) -> None:
    freeze(redis_client, 3, tok)
    settle(scripts, reserved, actual)
    assert levels(redis_client) == pytest.approx((3, expected))


def test_settle_refills_before_charging_debt(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    # A bucket idle for an hour is full; extra usage comes off the full level, not off nothing.
    redis_client.hset(
        KEYS.bucket, mapping={"req": "0", "tok": "0", "ts": server_now(redis_client) - HOUR_US}
    )
    settle(scripts, 100, 400)
    assert levels(redis_client) == pytest.approx((10, 700))


RESYNC_CASES = [
    # (req, tok, remaining (req, tok), deficit (req, tok)) -> (req, tok); capacities 10, 1,000
    pytest.param(8, 800, (3, 200), ("", ""), (3, 200), id="remaining-lowers-both"),
    pytest.param(2, 100, (5, 900), ("", ""), (2, 100), id="remaining-never-raises"),
    pytest.param(8, 800, (9_000, 50_000), ("", ""), (8, 800), id="minute-remaining-says-nothing"),
    pytest.param(8, 800, ("", 0), ("", ""), (8, 0), id="absent-header-leaves-level"),
    pytest.param(8, 800, (0, ""), ("", ""), (0, 800), id="zero-remaining-empties"),
    pytest.param(8, 800, ("", ""), (4, 500), (6, 500), id="deficit-lowers-both"),
    pytest.param(8, 800, ("", ""), (1, 100), (8, 800), id="smaller-deficit-says-nothing"),
    pytest.param(8, 800, ("", ""), (15, 1500), (-5, -500), id="deficit-beyond-capacity-is-debt"),
    pytest.param(8, 800, (7, 9_000), (4, 100), (6, 800), id="lowest-bound-wins"),
]


@pytest.mark.parametrize(("req", "tok", "remaining", "deficit", "expected"), RESYNC_CASES)
def test_settle_headers_only_lower(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    req: float,
    tok: float,
    remaining: tuple[float | str, float | str],
    deficit: tuple[float | str, float | str],
    expected: tuple[float, float],
) -> None:
    freeze(redis_client, req, tok)
    settle(scripts, 100, 100, remaining, deficit)
    assert levels(redis_client) == pytest.approx(expected)


# --- headers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("20ms", 0.02),
        ("1.5s", 1.5),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("2", 2.0),
        ("0.25", 0.25),
        ("abc", None),
        ("5x", None),
        ("1s junk", None),
        ("", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_provider_limits_from_headers() -> None:
    limits = ProviderLimits.from_headers(
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-requests": "7",
            "x-ratelimit-remaining-tokens": "oops",
            "x-ratelimit-reset-requests": "300ms",
            "x-ratelimit-reset-tokens": "1s",
        }
    )
    assert limits == ProviderLimits(600, 60_000, 7, None, 0.3, 1.0)
    assert ProviderLimits.from_headers(None) == ProviderLimits()
    assert ProviderLimits.from_headers({}) == ProviderLimits()


DEFICIT_CASES = [
    # (limits, caps) -> (requests deficit, tokens deficit)
    pytest.param(ProviderLimits(reset_requests=0.3, reset_tokens=0.5), (3, 500), id="reset-x-rate"),
    pytest.param(
        ProviderLimits(600, 60_000, 599, 59_984, 0.3, 360.0),
        (1, 16),
        id="capped-by-limit-minus-rem",
    ),
    pytest.param(ProviderLimits(remaining_requests=3), (None, None), id="no-reset-no-deficit"),
]


@pytest.mark.parametrize(("limits", "expected"), DEFICIT_CASES)
def test_deficits_from_reset_headers(
    limits: ProviderLimits, expected: tuple[float | None, float | None]
) -> None:
    assert limits.deficits(Caps(600, 60_000)) == pytest.approx(expected)
    assert limits.deficits(Caps(None, None)) == (None, None)


# --- Caps, caps_for and account_id ------------------------------------------------------------
CAPS_CASES = [
    # caps -> (request capacity, token capacity)
    pytest.param(Caps(600, 60_000, 1.0), (10, 1_000), id="one-second"),
    pytest.param(Caps(600, 60_000, 3.0), (30, 3_000), id="three-seconds"),
    pytest.param(Caps(600, 60_000), (8, 800), id="default-0.8-seconds"),
    pytest.param(Caps(None, None), (0, 0), id="no-caps"),
]


@pytest.mark.parametrize(("caps", "expected"), CAPS_CASES)
def test_caps_capacities(caps: Caps, expected: tuple[float, float]) -> None:
    assert (caps.request_capacity, caps.token_capacity) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rpm": 0, "tpm": None},
        {"rpm": None, "tpm": -5},
        {"rpm": 10, "tpm": 10, "burst_seconds": 0},
        {"rpm": 10, "tpm": 10, "burst_seconds": 61},
    ],
)
def test_caps_reject_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Caps(**kwargs)


CAPS_FOR_CASES = [
    # (run's rpm, tpm, model) -> caps; the table: gpt-4o-mini 500/200k, "*" 100/-
    pytest.param(None, None, "gpt-4o-mini", (500, 200_000), id="from-the-table"),
    pytest.param(50, None, "gpt-4o-mini", (50, 200_000), id="flag-overrides-one-cap"),
    pytest.param(50, 1_000, "gpt-4o-mini", (50, 1_000), id="flags-override-both"),
    pytest.param(None, None, "llama3", (100, None), id="star-entry"),
]


@pytest.mark.parametrize(("rpm", "tpm", "model", "expected"), CAPS_FOR_CASES)
def test_caps_for_run_flags_over_the_settings_table(
    monkeypatch: pytest.MonkeyPatch,
    rpm: int | None,
    tpm: int | None,
    model: str,
    expected: tuple[int | None, int | None],
) -> None:
    monkeypatch.setenv(
        "PRELABEL_CAPS", '{"gpt-4o-mini": {"rpm": 500, "tpm": 200000}, "*": {"rpm": 100}}'
    )
    monkeypatch.setenv("PRELABEL_BUCKET_SECONDS", "0.5")
    config = RunConfig(run_id="r", model=model, base_url="http://x/v1", rpm=rpm, tpm=tpm)
    caps = caps_for(load_settings(), config)
    assert (caps.rpm, caps.tpm, caps.burst_seconds) == (*expected, 0.5)


def test_caps_for_without_a_table_is_uncapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRELABEL_CAPS", raising=False)
    config = RunConfig(run_id="r", model="gpt-4o", base_url="http://x/v1")
    assert (caps_for(load_settings(), config).rpm, caps_for(load_settings(), config).tpm) == (
        None,
        None,
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('{"gpt-4o": {"rpm": 500', "PRELABEL_CAPS is not valid JSON"),
        ('{"gpt-4o": {"rpm": 0}}', "PRELABEL_CAPS is invalid at gpt-4o.rpm"),
        ('{"gpt-4o": {"rqm": 5}}', "PRELABEL_CAPS is invalid at gpt-4o.rqm"),
    ],
)
def test_a_bad_caps_table_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, needle: str
) -> None:
    monkeypatch.setenv("PRELABEL_CAPS", value)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_settings()


def test_account_id_separates_accounts_and_hides_the_key() -> None:
    key = "sk-secret-1234567890"
    base = account_id("https://api.openai.com/v1", "gpt-4o-mini", key)
    assert key not in base and "secret" not in base
    assert account_id("https://api.openai.com/v1/", "gpt-4o-mini", key) == base
    assert account_id("https://api.openai.com/v1", "gpt-4o", key) != base
    assert account_id("http://127.0.0.1:8000/v1", "gpt-4o-mini", key) != base
    assert account_id("https://api.openai.com/v1", "gpt-4o-mini", key + "x") != base
    assert account_id("https://api.openai.com/v1", "gpt-4o-mini", None).endswith("-nokey")


@given(st.text(min_size=1), st.text(min_size=1))
def test_key_fingerprint_is_short_stable_and_distinguishes_keys(a: str, b: str) -> None:
    assert key_fingerprint(a) == key_fingerprint(a)
    assert len(key_fingerprint(a)) == 12
    assert (key_fingerprint(a) == key_fingerprint(b)) == (a == b)


# --- TokenBucket ------------------------------------------------------------------------------
def run_with_bucket(url: str, caps: Caps, body: Callable[[TokenBucket], Awaitable[T]]) -> T:
    async def main() -> T:
        client = redis.asyncio.Redis.from_url(url)
        try:
            return await body(TokenBucket(client, KEYS.account, caps))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_bucket_acquire_waits_until_refilled(redis_url: str, redis_client: redis.Redis) -> None:
    # 600 rpm, one second held: ten calls at once, the eleventh after one request's refill.
    async def body(bucket: TokenBucket) -> list[int]:
        return [at(await bucket.acquire(10)) for _ in range(11)]

    admitted = run_with_bucket(redis_url, Caps(600, 60_000, 1.0), body)
    assert admitted == sorted(admitted)
    assert admitted[9] - admitted[0] < 100_000
    assert admitted[10] - admitted[0] >= 100_000


def test_bucket_queues_a_process_waiters_first_come_first_served(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # 1,200 rpm, 0.05 s held: one request at a time, every 50 ms, in the order asked.
    async def body(bucket: TokenBucket) -> list[int]:
        order: list[int] = []

        async def one(i: int) -> None:
            await bucket.acquire(1)
            order.append(i)

        await asyncio.gather(*(one(i) for i in range(6)))
        return order

    assert run_with_bucket(redis_url, Caps(1_200, None, 0.05), body) == list(range(6))


def test_bucket_refuses_a_call_above_the_minute_cap(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with pytest.raises(ItemError, match=r"needs 60001 tokens.*--tpm 60000.*--max-tokens"):
        run_with_bucket(redis_url, Caps(None, 60_000), lambda b: b.acquire(60_001))
    with pytest.raises(ItemError, match=r"needs 31 requests.*--rpm 30"):
        run_with_bucket(redis_url, Caps(30, None), lambda b: b.acquire(1, requests=31))


def test_bucket_admits_a_call_larger_than_its_second(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # 6,000 tpm holds 100 tokens; a 500-token call goes through and leaves 400 of debt.
    run_with_bucket(redis_url, Caps(None, 6_000, 1.0), lambda b: b.acquire(500))
    assert levels(redis_client)[1] == pytest.approx(-400, abs=5)


def test_bucket_pause_holds_back_acquire_fleet_wide(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # Even without caps, a 429 elsewhere in the fleet holds this caller back.
    async def body(bucket: TokenBucket) -> tuple[int, int]:
        await bucket.pause(0.2)
        until = stored_int(redis_client.get(KEYS.pause))
        await bucket.pause(0.05)  # a shorter pause leaves the longer one alone
        assert stored_int(redis_client.get(KEYS.pause)) == until
        return until, at(await bucket.acquire(10**6))

    paused_until, admitted = run_with_bucket(redis_url, Caps(None, None), body)
    assert admitted >= paused_until


def test_uncapped_callers_at_once_read_the_pause_once(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Without caps, a process reads the fleet's pause once per poll interval, however many of
    its calls ask at the same moment (they queue for the script, then find it read)."""
    calls: list[int] = []

    async def body(bucket: TokenBucket) -> list[Admission]:
        run = bucket._run

        async def counted(*args: Any) -> Any:
            calls.append(1)
            return await run(*args)

        bucket._run = counted  # type: ignore[method-assign]
        return await asyncio.gather(*(bucket.acquire(10) for _ in range(20)))

    admissions = run_with_bucket(redis_url, Caps(None, None), body)
    assert len(admissions) == 20
    assert len(calls) == 1


def test_bucket_settle_reconciles_and_resyncs(redis_url: str, redis_client: redis.Redis) -> None:
    caps = Caps(600, 60_000, 1.0)

    freeze(redis_client, 5, 400)
    run_with_bucket(redis_url, caps, lambda b: b.settle(reserved=300, actual=500))
    assert levels(redis_client) == pytest.approx((5, 200))

    freeze(redis_client, 5, 400)
    limits = ProviderLimits(remaining_requests=2, reset_tokens=0.9)  # 900 tokens to refill
    run_with_bucket(redis_url, caps, lambda b: b.settle(300, 300, limits))
    assert levels(redis_client) == pytest.approx((2, 100))


def test_bucket_without_caps_settles_nothing(redis_url: str, redis_client: redis.Redis) -> None:
    limits = ProviderLimits(remaining_requests=0, remaining_tokens=0, reset_tokens=5.0)
    run_with_bucket(redis_url, Caps(None, None), lambda b: b.settle(100, 900, limits))
    run_with_bucket(redis_url, Caps(600, None), lambda b: b.settle(100, 900))
    assert not redis_client.exists(KEYS.bucket)


# --- Headers as old as the call (issue 21) ----------------------------------------------------
class Replay:
    """A fleet's real bucket (the scripts, through TokenBucket) and a provider (the simulator's
    limiter, sending headers as the hosted API does) replaying calls on one virtual clock.

    The bucket is frozen between steps (`ts` an hour ahead, so no script refills it) and this
    class refills it itself, so no wall-clock time leaks in. The one real interval left is the
    few ms between reading the server clock and settle.lua running: it ages a header by a few
    ms more, which only loosens the bound the header gives (never lowers the level).
    """

    TPM = 60_000  # 1,000 tokens/s: the fleet holds 800 (0.8 s), the provider 1,000 (1 s)
    RATE = TPM / 60

    def __init__(self, url: str, client: redis.Redis, headers: bool = True) -> None:
        self.url, self.client, self.headers = url, client, headers
        self.caps = Caps(None, self.TPM)
        self.now = 0.0
        self.provider = RateLimiter(None, self.TPM, clock=lambda: self.now, style="openai")
        freeze(client, 0, self.caps.token_capacity)

    def level(self) -> float:
        return levels(self.client)[1]

    def advance(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass for both the fleet and the provider."""
        self.now += seconds
        freeze(self.client, 0, min(self.level() + seconds * self.RATE, self.caps.token_capacity))

    def outside(self, tokens: int) -> None:
        """Another client of the same key spends `tokens` at the provider."""
        assert self.provider.admit(tokens).admitted

    def call(self, tokens: int) -> tuple[Admission, dict[str, str], float]:
        """Admit a call at the fleet, then at the provider (which must not refuse it)."""
        admission = run_with_bucket(self.url, self.caps, lambda b: b.acquire(tokens))
        freeze(self.client, 0, self.level())
        answer = self.provider.admit(tokens)
        assert answer.admitted, "the provider refused a call the fleet admitted (a 429)"
        return admission, answer.headers, self.now

    def answer(self, call: tuple[Admission, dict[str, str], float], tokens: int) -> None:
        """The call's answer arrives now with the headers of its admission: settle it."""
        admission, headers, sent = call
        age_us = round((self.now - sent) * 1e6)
        aged = Admission(admission.waited, server_now(self.client) - age_us, admission.charged)
        limits = ProviderLimits.from_headers(headers if self.headers else None)
        run_with_bucket(self.url, self.caps, lambda b: b.settle(tokens, tokens, limits, aged))
        freeze(self.client, 0, self.level())

    def run(self, calls: int, tokens: int, latency: float) -> float:
        """One caller making `calls` calls in turn; the virtual seconds they took."""
        for _ in range(calls):
            self.advance(max(tokens - self.level(), 0) / self.RATE)
            call = self.call(tokens)
            self.advance(latency)
            self.answer(call, tokens)
        return self.now


def test_acquire_keeps_running_totals_that_settle_refunds_move(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    marks = [
        scripts["acquire"](keys=[KEYS.bucket, KEYS.pause], args=[600, 60_000, 1.0, 1, cost])[3:]
        for cost in (100, 250)
    ]
    assert marks == [[1, 100], [2, 350]]
    settle(scripts, 250, 200)  # 50 refunded: the provider never charged them
    assert [stored_int(v) for v in redis_client.hmget(KEYS.bucket, ["creq", "ctok"])] == [2, 300]
    refused = scripts["acquire"](keys=[KEYS.bucket, KEYS.pause], args=[600, 60_000, 1.0, 1, 10**4])
    assert refused[0] == 0 and len(refused) == 3  # nothing charged, no totals


def test_headers_as_old_as_the_call_cost_no_throughput(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # Issue 21: calls of 762 tokens (prompt 250 + max_tokens 512), 300 ms latency, one fleet
    # alone on the key. Each header says the provider lacked ~762 tokens at admission; its
    # answer comes 300 tokens of refill later. Taken as it is, it cut the level back by those
    # 300 tokens on every answer: ten calls took 9.5 s instead of 7.1 s.
    alone = Replay(redis_url, redis_client, headers=False).run(10, 762, latency=0.3)
    redis_client.flushdb()
    with_headers = Replay(redis_url, redis_client).run(10, 762, latency=0.3)
    # The first answer leaves 38 + 300 tokens: the second call waits 0.424 s, every later one
    # 0.762 s from the call before it, and the last answer comes 0.3 s after its call.
    assert alone == pytest.approx(0.3 + 0.424 + 8 * 0.762 + 0.3)
    assert with_headers == pytest.approx(alone)


def test_outside_traffic_is_taken_off_once_not_once_per_call_in_flight(
    redis_url: str, redis_client: redis.Redis
) -> None:
    replay = Replay(redis_url, redis_client)
    a = replay.call(200)  # t=0: fleet 600, provider 800
    replay.outside(300)  # another client of the key: provider 500
    replay.advance(0.1)
    b = replay.call(200)  # fleet 700 -> 500, provider 600 -> 400
    replay.advance(0.05)
    c = replay.call(200)  # fleet 550 -> 350, provider 450 -> 250
    replay.advance(0.15)
    replay.answer(a, 200)  # its header predates the outside call: nothing to correct
    assert replay.level() == pytest.approx(500)
    replay.advance(0.1)
    # b's header (deficit 600 at t=0.1), aged 0.3 s and plus c's 200: the provider lacks 500
    # now, so the fleet (800 held) has at most 300. Old code took the header as it was (200).
    replay.answer(b, 200)
    assert 300 - 1 <= replay.level() <= 300 + 100  # + up to 100 ms of wall clock while settling
    lowered = replay.level()
    replay.advance(0.05)
    # c saw the same outside call: it is not taken off a second time (old code: down to 50).
    replay.answer(c, 200)
    assert replay.level() == pytest.approx(lowered + 50, abs=1)


def test_bucket_turns_redis_failures_into_broker_error() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    with pytest.raises(BrokerError, match="rate-limit bucket"):
        run_with_bucket("redis://127.0.0.1:1/0", Caps(600, None), lambda b: b.acquire(1))


# --- a fleet of processes on one bucket -------------------------------------------------------
FLEET_RPM = 600  # 10 requests/s
FLEET_TPM = 30_000  # 500 tokens/s: with calls of 1..100 tokens, both caps bind in turn
FLEET_CAPS = Caps(FLEET_RPM, FLEET_TPM, 1.0)
FLEET_PROCESSES = 4
FLEET_TASKS = 25
FLEET_SECONDS = 3.0


def _fleet_process(url: str, seed: int, start: float, stop: float, out: Any) -> None:
    """One worker process: many tasks acquiring until `stop`; sends back (server µs, tokens)."""
    rng = random.Random(seed)

    async def main() -> list[tuple[int, int]]:
        client = redis.asyncio.Redis.from_url(url)
        bucket = TokenBucket(client, KEYS.account, FLEET_CAPS)
        admitted: list[tuple[int, int]] = []

        async def task() -> None:
            while time.time() < stop:
                tokens = rng.randint(1, 100)
                try:
                    # Waiters still queued at `stop` are abandoned, not admitted one by one.
                    got = await asyncio.wait_for(bucket.acquire(tokens), stop - time.time())
                except TimeoutError:
                    break
                admitted.append((at(got), tokens))

        await asyncio.sleep(max(start - time.time(), 0))
        await asyncio.gather(*(task() for _ in range(FLEET_TASKS)))
        await client.aclose()
        return admitted

    out.put(asyncio.run(main()))


def window_max(times: list[float], weights: list[int], width: float) -> int:
    """The largest total weight admitted in any window [t, t + width] starting at an admission."""
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)
    return max(
        prefix[bisect.bisect_right(times, t + width)] - prefix[i] for i, t in enumerate(times)
    )


@pytest.fixture
def fleet_admissions(
    redis_url: str, redis_client: redis.Redis
) -> Iterator[list[tuple[float, int]]]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 0.5  # every process is up before the first acquire
    stop = start + FLEET_SECONDS
    procs = [
        ctx.Process(target=_fleet_process, args=(redis_url, seed, start, stop, out))
        for seed in range(FLEET_PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        admitted = sorted(a for _ in procs for a in out.get(timeout=60))
        first = admitted[0][0]
        yield [((us - first) / 1e6, tokens) for us, tokens in admitted]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def test_fleet_never_exceeds_capacity_plus_refill(
    fleet_admissions: list[tuple[float, int]],
) -> None:
    # Admission times are the Redis server's, so no client lag blurs the windows.
    times = [t for t, _ in fleet_admissions]
    tokens = [n for _, n in fleet_admissions]
    req_cap, tok_cap = FLEET_CAPS.request_capacity, FLEET_CAPS.token_capacity
    req_rate, tok_rate = FLEET_RPM / 60, FLEET_TPM / 60
    for width in (0.1, 0.25, 0.5, 1.0, 2.0, FLEET_SECONDS):
        assert window_max(times, [1] * len(times), width) <= req_cap + req_rate * width, width
        assert window_max(times, tokens, width) <= tok_cap + tok_rate * width, width
    # Not starved either: 100 eager callers keep one of the two caps busy all along.
    span = times[-1]
    used = max(len(times) / (req_cap + req_rate * span), sum(tokens) / (tok_cap + tok_rate * span))
    assert used >= 0.9
