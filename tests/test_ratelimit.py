"""The shared token bucket: each Lua script against real Redis, then TokenBucket, then a fleet
of processes hammering one bucket."""

from __future__ import annotations

import asyncio
import bisect
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st

from prelabel.errors import BrokerError, ConfigError, ItemError
from prelabel.keys import BucketKeys
from workers.ratelimit import Caps, TokenBucket, account_id, key_fingerprint, lua_source

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


def stored_int(value: Any) -> int:
    """An integer Redis stored (as bytes); fails the test when the key or field is missing."""
    assert value is not None
    return int(value)


@pytest.fixture
def scripts(redis_client: redis.Redis) -> dict[str, Any]:
    names = ("acquire", "reconcile", "pause", "resync")
    return {name: redis_client.register_script(lua_source(name)) for name in names}


def acquire(
    scripts: dict[str, Any],
    rpm: int,
    tpm: int,
    cost_req: int,
    cost_tok: int,
    max_call: int = 100,
    burst: float = 1.0,
) -> tuple[int, int]:
    status, wait_ms = scripts["acquire"](
        keys=[KEYS.bucket, KEYS.pause], args=[rpm, tpm, burst, cost_req, cost_tok, max_call]
    )
    return int(status), int(wait_ms)


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
    # (rpm, tpm, max_call, cost_req, cost_tok) -> status on a full bucket
    pytest.param(600, 0, 100, 11, 1, -1, id="more-requests-than-capacity"),
    pytest.param(600, 0, 100, 10, 1, 1, id="requests-equal-capacity"),
    pytest.param(30, 0, 100, 1, 1, 1, id="request-capacity-floor-is-1"),
    pytest.param(30, 0, 100, 2, 1, -1, id="above-request-floor"),
    pytest.param(0, 6_000, 200, 1, 201, -1, id="more-tokens-than-max-call"),
    pytest.param(0, 6_000, 200, 1, 200, 1, id="max-call-lifts-token-capacity"),
    pytest.param(0, 600_000, 200, 1, 10_000, 1, id="tpm-capacity-above-max-call"),
    pytest.param(0, 600_000, 200, 1, 10_001, -1, id="above-tpm-capacity"),
    pytest.param(0, 0, 1, 10**6, 10**9, 1, id="no-caps-anything-fits"),
]


@pytest.mark.parametrize(
    ("rpm", "tpm", "max_call", "cost_req", "cost_tok", "status"), NEVER_FITS_CASES
)
def test_acquire_refuses_for_good_a_cost_that_never_fits(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    rpm: int,
    tpm: int,
    max_call: int,
    cost_req: int,
    cost_tok: int,
    status: int,
) -> None:
    assert acquire(scripts, rpm, tpm, cost_req, cost_tok, max_call)[0] == status


def test_missing_bucket_starts_full_with_one_burst_of_capacity(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    # burst 2 s of 600 rpm: capacity 20 requests.
    assert acquire(scripts, 600, 0, 20, 1, burst=2.0)[0] == 1
    assert redis_client.hget(KEYS.bucket, "req") is not None
    assert 0 < redis_client.pttl(KEYS.bucket) <= 3_600_000


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


def test_pause_in_the_past_is_ignored(redis_client: redis.Redis, scripts: dict[str, Any]) -> None:
    redis_client.set(KEYS.pause, server_now(redis_client) - 1)
    assert acquire(scripts, 600, 60_000, 1, 100) == (1, 0)


def test_never_fits_wins_over_pause(redis_client: redis.Redis, scripts: dict[str, Any]) -> None:
    redis_client.set(KEYS.pause, server_now(redis_client) + HOUR_US)
    assert acquire(scripts, 600, 0, 11, 1)[0] == -1


# --- pause.lua --------------------------------------------------------------------------------
def test_pause_never_shortens_a_longer_pause(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    pause = scripts["pause"]
    before = server_now(redis_client)
    first = int(pause(keys=[KEYS.pause], args=[5_000]))
    assert before + 5_000_000 <= first <= server_now(redis_client) + 5_000_000
    assert int(pause(keys=[KEYS.pause], args=[1_000])) == first
    assert stored_int(redis_client.get(KEYS.pause)) == first
    longer = int(pause(keys=[KEYS.pause], args=[10_000]))
    assert longer > first
    assert stored_int(redis_client.get(KEYS.pause)) == longer
    assert 5_000 < redis_client.pttl(KEYS.pause) <= 10_000


# --- reconcile.lua ----------------------------------------------------------------------------
RECONCILE_CASES = [
    # (token level, reserved, actual) -> token level after; capacity 1,000
    pytest.param(500, 300, 100, 700, id="refund"),
    pytest.param(900, 300, 0, 1000, id="refund-capped-at-capacity"),
    pytest.param(50, 100, 300, -150, id="extra-usage-becomes-debt"),
    pytest.param(-100, 100, 100, -100, id="no-difference"),
]


@pytest.mark.parametrize(("tok", "reserved", "actual", "expected"), RECONCILE_CASES)
def test_reconcile_applies_reserved_minus_actual(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    tok: float,
    reserved: int,
    actual: int,
    expected: float,
) -> None:
    freeze(redis_client, 3, tok)
    scripts["reconcile"](keys=[KEYS.bucket], args=[reserved, actual, 60_000, 1.0, 100, 600])
    assert levels(redis_client) == pytest.approx((3, expected))


def test_reconcile_refills_before_charging_debt(
    redis_client: redis.Redis, scripts: dict[str, Any]
) -> None:
    # A bucket idle for an hour is full; extra usage comes off the full level, not off nothing.
    redis_client.hset(
        KEYS.bucket, mapping={"req": "0", "tok": "0", "ts": server_now(redis_client) - HOUR_US}
    )
    scripts["reconcile"](keys=[KEYS.bucket], args=[100, 400, 60_000, 1.0, 100, 600])
    assert levels(redis_client) == pytest.approx((10, 700))


# --- resync.lua -------------------------------------------------------------------------------
RESYNC_CASES = [
    # (req, tok, remaining requests, remaining tokens) -> (req, tok) after; capacities 10, 1,000
    pytest.param(8, 800, 3, 200, (3, 200), id="lowers-both"),
    pytest.param(2, 100, 5, 900, (2, 100), id="never-raises"),
    pytest.param(8, 800, 9_000, 50_000, (8, 800), id="at-or-above-capacity-says-nothing"),
    pytest.param(8, 800, "", 0, (8, 0), id="absent-header-leaves-level"),
    pytest.param(8, 800, 0, "", (0, 800), id="zero-remaining-empties"),
]


@pytest.mark.parametrize(("req", "tok", "rem_req", "rem_tok", "expected"), RESYNC_CASES)
def test_resync_only_lowers(
    redis_client: redis.Redis,
    scripts: dict[str, Any],
    req: float,
    tok: float,
    rem_req: int | str,
    rem_tok: int | str,
    expected: tuple[float, float],
) -> None:
    freeze(redis_client, req, tok)
    scripts["resync"](keys=[KEYS.bucket], args=[600, 60_000, 1.0, 100, rem_req, rem_tok])
    assert levels(redis_client) == pytest.approx(expected)


# --- Caps and account_id ----------------------------------------------------------------------
CAPS_CASES = [
    # caps -> (request capacity, token capacity)
    pytest.param(Caps(600, 60_000, max_call_tokens=100), (10, 1_000), id="one-second"),
    pytest.param(Caps(600, 60_000, 3.0, 100), (30, 3_000), id="three-seconds"),
    pytest.param(Caps(30, 6_000, max_call_tokens=4_096), (1, 4_096), id="floors"),
    pytest.param(Caps(None, None), (1, 16_384), id="no-caps"),
]


@pytest.mark.parametrize(("caps", "expected"), CAPS_CASES)
def test_caps_capacities(caps: Caps, expected: tuple[float, float]) -> None:
    assert (caps.request_capacity, caps.token_capacity) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rpm": 0, "tpm": None},
        {"rpm": None, "tpm": -5},
        {"rpm": 10, "tpm": 10, "burst_seconds": 0},
        {"rpm": 10, "tpm": 10, "max_call_tokens": 0},
    ],
)
def test_caps_reject_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Caps(**kwargs)


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
    # 600 rpm: ten calls at once, the eleventh only after the server refilled one request.
    async def body(bucket: TokenBucket) -> list[float]:
        return [await bucket.acquire(10) for _ in range(11)]

    before = server_now(redis_client)
    waits = run_with_bucket(redis_url, Caps(600, 60_000, max_call_tokens=100), body)
    assert len(waits) == 11
    # The eleventh admission (the last write of ts) came at least one request's refill, 100 ms of
    # server time, after the bucket was created full.
    assert stored_int(redis_client.hget(KEYS.bucket, "ts")) - before >= 100_000


def test_bucket_refuses_a_call_that_never_fits(redis_url: str, redis_client: redis.Redis) -> None:
    with pytest.raises(ItemError, match=r"needs 5000 tokens.*capacity 1000\).*--tpm"):
        run_with_bucket(
            redis_url, Caps(None, 60_000, max_call_tokens=100), lambda b: b.acquire(5_000)
        )
    with pytest.raises(ItemError, match=r"needs 3 requests.*capacity 1\).*--rpm"):
        run_with_bucket(redis_url, Caps(30, None), lambda b: b.acquire(1, requests=3))


def test_bucket_pause_holds_back_acquire_fleet_wide(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # Even without caps, a 429 elsewhere in the fleet holds this caller back.
    async def body(bucket: TokenBucket) -> int:
        await bucket.pause(0.2)
        until = stored_int(redis_client.get(KEYS.pause))
        await bucket.pause(0.05)  # a shorter pause leaves the longer one alone
        assert stored_int(redis_client.get(KEYS.pause)) == until
        await bucket.acquire(10**6)
        return until

    paused_until = run_with_bucket(redis_url, Caps(None, None), body)
    # The admission's server time is written to ts: it came after the pause ended.
    assert stored_int(redis_client.hget(KEYS.bucket, "ts")) >= paused_until


def test_bucket_reconcile_and_resync(redis_url: str, redis_client: redis.Redis) -> None:
    caps = Caps(600, 60_000, max_call_tokens=100)

    async def reconcile(bucket: TokenBucket) -> None:
        await bucket.reconcile(reserved=300, actual=500)

    freeze(redis_client, 5, 400)
    run_with_bucket(redis_url, caps, reconcile)
    assert levels(redis_client) == pytest.approx((5, 200))

    async def resync(bucket: TokenBucket) -> None:
        await bucket.resync(remaining_requests=2, remaining_tokens=None)

    freeze(redis_client, 5, 400)
    run_with_bucket(redis_url, caps, resync)
    assert levels(redis_client) == pytest.approx((2, 400))


def test_bucket_without_token_cap_skips_reconcile(
    redis_url: str, redis_client: redis.Redis
) -> None:
    run_with_bucket(redis_url, Caps(600, None), lambda b: b.reconcile(100, 900))
    run_with_bucket(redis_url, Caps(600, None), lambda b: b.resync(None, 0))
    assert not redis_client.exists(KEYS.bucket)


def test_bucket_turns_redis_failures_into_broker_error() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    with pytest.raises(BrokerError, match="rate-limit bucket"):
        run_with_bucket("redis://127.0.0.1:1/0", Caps(600, None), lambda b: b.acquire(1))


# --- a fleet of processes on one bucket -------------------------------------------------------
FLEET_RPM = 600  # 10 requests/s, capacity 10 with one second of burst
FLEET_RATE = FLEET_RPM / 60
FLEET_CAPACITY = 10
FLEET_PROCESSES = 4
FLEET_TASKS = 25
FLEET_SECONDS = 3.0


def _fleet_process(url: str, start: float, stop: float, out: Any) -> None:
    """One worker process: many tasks acquiring until `stop`; sends back admission times."""

    async def main() -> list[float]:
        client = redis.asyncio.Redis.from_url(url)
        bucket = TokenBucket(client, KEYS.account, Caps(FLEET_RPM, None))
        admitted: list[float] = []

        async def task() -> None:
            while time.time() < stop:
                try:
                    # Waiters still queued at `stop` are abandoned, not admitted one by one.
                    await asyncio.wait_for(bucket.acquire(1), timeout=stop - time.time())
                except TimeoutError:
                    break
                now = time.time()
                if now < stop:
                    admitted.append(now)

        await asyncio.sleep(max(start - time.time(), 0))
        await asyncio.gather(*(task() for _ in range(FLEET_TASKS)))
        await client.aclose()
        return admitted

    out.put(asyncio.run(main()))


def sliding_window_max(times: list[float], width: float) -> int:
    """The most admissions in any window [t, t + width] (windows starting at an admission)."""
    return max(bisect.bisect_right(times, t + width) - i for i, t in enumerate(times))


@pytest.fixture
def fleet_admissions(redis_url: str, redis_client: redis.Redis) -> Iterator[list[float]]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 0.5  # every process is up before the first acquire
    stop = start + FLEET_SECONDS
    procs = [
        ctx.Process(target=_fleet_process, args=(redis_url, start, stop, out))
        for _ in range(FLEET_PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        times = sorted(t for _ in procs for t in out.get(timeout=60))
        yield [t - start for t in times]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def test_fleet_never_exceeds_the_shared_bucket(fleet_admissions: list[float]) -> None:
    times = fleet_admissions
    assert all(0 <= t < FLEET_SECONDS for t in times)
    assert len(times) <= FLEET_CAPACITY + FLEET_RATE * FLEET_SECONDS + 1
    for width in (0.5, 1.0, 2.0):
        assert sliding_window_max(times, width) <= FLEET_CAPACITY + FLEET_RATE * width + 1, width
    # Not starved either: 100 eager callers keep the bucket busy.
    assert len(times) >= 0.8 * FLEET_RATE * FLEET_SECONDS
