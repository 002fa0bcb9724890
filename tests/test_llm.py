"""The realtime transport through the real `openai` client against the simulator over HTTP,
with the shared bucket on real Redis: 429s pause the fleet, refusals stop the run, 5xx retry,
headers resync.
A mock transport stands in only for answers the simulator never gives (403, 404, too large)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2 as httpx  # the HTTP client the openai package is built on
import pytest
import redis
import redis.asyncio
from openai import AsyncOpenAI

from prelabel.errors import ItemError, RunStopped
from prelabel.keys import BucketKeys, RunKeys
from prelabel.model import RunConfig
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.server import RunningSimulator
from task_types.ner import NER
from task_types.ner.model import NerRecord
from task_types.ner.prompts import build_messages
from workers.ratelimit import Admission, Caps, ProviderLimits, TokenBucket
from workers.results import ResultSink
from workers.tokens import count_message_tokens
from workers.transports import ChatRequest, Completion, RealtimeTransport

T = TypeVar("T")
RUN = "llm-test-run"
ACCOUNT = "llm-test-account"
MAX_TOKENS = 64
RECORD = NerRecord.from_tokens("s1", ["Peter", "Blackburn", "flew", "to", "Paris", "."])
GOLD = [
    NerRecord.from_tokens(
        "s1",
        ["Peter", "Blackburn", "flew", "to", "Paris", "."],
        ["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
    )
]


@contextmanager
def simulator(**options: Any) -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0, **options), Oracle(GOLD)) as running:
        yield running


class SpyBucket(TokenBucket):
    """The real bucket, remembering what each call settled."""

    settled: list[tuple[int, int, ProviderLimits | None]]
    acquired: list[int]

    async def acquire(self, tokens: int, requests: int = 1) -> Admission:
        self.acquired.append(tokens)
        return await super().acquire(tokens, requests)

    async def settle(
        self,
        reserved: int,
        actual: int,
        limits: ProviderLimits | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.settled.append((reserved, actual, limits))
        await super().settle(reserved, actual, limits, admission)


@dataclass
class Fleet:
    """Callers of one run on one account, as the workers of a fleet would hold them."""

    redis: redis.asyncio.Redis
    client: AsyncOpenAI
    caps: Caps
    sink: ResultSink
    config: RunConfig

    def caller(self, max_attempts: int = 3) -> RealtimeTransport:
        bucket = SpyBucket(self.redis, ACCOUNT, self.caps)
        bucket.settled, bucket.acquired = [], []
        return RealtimeTransport(self.client, bucket, self.sink, self.config, max_attempts)


def with_fleet(
    redis_url: str,
    base_url: str,
    body: Callable[[Fleet], Awaitable[T]],
    *,
    caps: Caps | None = None,
    api_key: str = "sk-test",
    http_client: httpx.AsyncClient | None = None,
) -> T:
    async def main() -> T:
        client = redis.asyncio.Redis.from_url(redis_url)
        llm = AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=10, http_client=http_client
        )
        config = RunConfig(run_id=RUN, model="gpt-4o-mini", base_url=base_url, max_tokens=64)
        fleet = Fleet(client, llm, caps or Caps(None, None), ResultSink(client, RUN), config)
        try:
            return await body(fleet)
        finally:
            await llm.close()
            await client.aclose()

    return asyncio.run(main())


async def ask(caller: RealtimeTransport) -> Completion:
    messages = build_messages([RECORD], NER.labels(caller.config))
    prompt_tokens = count_message_tokens(messages, caller.config.endpoint.model)
    return await caller.complete(ChatRequest(messages, None, prompt_tokens, (RECORD.id,)))


def counters(client: redis.Redis) -> dict[str, int]:
    raw: dict[bytes, bytes] = client.hgetall(RunKeys(RUN).counters)  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def test_a_429_pauses_every_caller_of_the_account(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # One request per second at the provider; the fleet's bucket knows no cap at all.
    async def body(fleet: Fleet) -> tuple[float, float]:
        first, unlucky, other = fleet.caller(), fleet.caller(max_attempts=1), fleet.caller(1)
        await ask(first)  # empties the provider's one-second bucket
        with pytest.raises(ItemError, match="still rate limited after 1 attempts"):
            await ask(unlucky)  # a 429: the whole account pauses for its retry-after
        paused_for = (int(redis_client.get(BucketKeys(ACCOUNT).pause) or 0) - now_us()) / 1e6
        started = time.monotonic()
        await ask(other)  # never saw the 429, waits it out, and is not refused: one attempt
        return paused_for, time.monotonic() - started

    def now_us() -> int:
        seconds, micros = redis_client.time()
        return int(seconds) * 1_000_000 + int(micros)

    with simulator(rpm=60) as sim:
        paused_for, waited = with_fleet(redis_url, sim.base_url, body)
        assert sim.stats.rate_limited == 1
        assert sim.stats.requests == 3
    assert 0.5 < paused_for <= 1.0
    assert waited >= paused_for - 0.05
    # The 429 is a request in the run's figures, and counted apart.
    figures = counters(redis_client)
    assert (figures["requests"], figures["rate_limited"], figures["simulated"]) == (3, 1, 2)
    # The wait in the bucket is counted for `prelabel status` (milliseconds).
    assert figures["bucket_wait_ms"] >= (paused_for - 0.05) * 1000


def test_insufficient_quota_stops_the_run(redis_url: str, redis_client: redis.Redis) -> None:
    with (
        simulator(quota_exhausted=True) as sim,
        pytest.raises(RunStopped, match=r"no quota left \(insufficient_quota\).*add credit"),
    ):
        with_fleet(redis_url, sim.base_url, lambda fleet: ask(fleet.caller()))
    assert sim.stats.requests == 1  # not retried
    figures = counters(redis_client)
    assert (figures["requests"], figures["rate_limited"], figures.get("retries", 0)) == (1, 1, 0)
    assert not redis_client.exists(BucketKeys(ACCOUNT).pause)  # no pause: waiting cannot help


def test_a_rejected_key_stops_the_run(redis_url: str, redis_client: redis.Redis) -> None:
    with (
        simulator(require_key="sk-right") as sim,
        pytest.raises(RunStopped, match=r"rejected the API key \(401\).*OPENAI_API_KEY"),
    ):
        with_fleet(redis_url, sim.base_url, lambda f: ask(f.caller()), api_key="sk-wrong")
    assert sim.stats.requests == 1


def mock_endpoint(status: int, message: str, code: str | None = None) -> httpx.AsyncClient:
    """An endpoint answering every call with one error (for answers the simulator never gives)."""
    body = {"error": {"message": message, "type": "x", "param": None, "code": code}}
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(status, json=body))
    )


@pytest.mark.parametrize(
    ("status", "message", "raises", "needle"),
    [
        (403, "Project does not have access", RunStopped, r"refused access \(403\)"),
        (404, "The model does not exist", RunStopped, r"not served at .* \(404\).*--model"),
        (
            429,
            "Request too large for gpt-4o-mini on tokens per min (TPM): Limit 100, Requested 500.",
            ItemError,
            r"larger than the account's per-minute cap: Request too large",
        ),
        (400, "Invalid 'messages'", ItemError, r"rejected the request \(400\): Invalid"),
    ],
)
def test_refusals_that_waiting_cannot_heal(
    redis_url: str,
    redis_client: redis.Redis,
    status: int,
    message: str,
    raises: type[Exception],
    needle: str,
) -> None:
    http = mock_endpoint(status, message, "rate_limit_exceeded" if status == 429 else None)
    with pytest.raises(raises, match=needle):
        with_fleet(redis_url, "http://127.0.0.1:9/v1", lambda f: ask(f.caller()), http_client=http)
    assert counters(redis_client)["requests"] == 1  # one attempt, no retry


def answering(response: httpx.Response) -> httpx.AsyncClient:
    """An endpoint answering every call with `response`."""
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: response))


def test_a_body_that_is_not_json_fails_the_item(redis_url: str, redis_client: redis.Redis) -> None:
    page = httpx.Response(200, text="<html>Gateway login</html>")
    with pytest.raises(ItemError, match=r"HTTP 200 with a body that is not JSON.*--base-url"):
        with_fleet(
            redis_url,
            "http://127.0.0.1:9/v1",
            lambda f: ask(f.caller()),
            http_client=answering(page),
        )
    assert counters(redis_client)["requests"] == 1  # it was sent, and counts


def test_an_answer_without_usage_is_counted_at_the_estimate(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A server that leaves out `usage` (some OpenAI-compatible ones do): the prompt counts
    as estimated, the completion as nothing, and the answer is still read."""
    content = json.dumps({"PER": ["Peter Blackburn"], "ORG": [], "LOC": ["Paris"], "MISC": []})
    bare = httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    async def body(fleet: Fleet) -> tuple[Completion, int]:
        caller = fleet.caller()
        messages = build_messages([RECORD], NER.labels(caller.config))
        estimate = count_message_tokens(messages, caller.config.endpoint.model)
        return await caller.complete(ChatRequest(messages, None, estimate, (RECORD.id,))), estimate

    completion, estimate = with_fleet(
        redis_url, "http://127.0.0.1:9/v1", body, http_client=answering(bare)
    )
    assert (completion.content, completion.prompt_tokens) == (content, estimate)
    assert completion.completion_tokens == 0
    assert counters(redis_client)["prompt_tokens"] == estimate


def first_failure_seed(fail_rate: float) -> int:
    """A seed whose first request is a 5xx and second is not (the simulator draws three numbers
    per admitted request from one RNG, the first deciding a failure, then picks the status)."""
    for seed in range(1000):
        rng = random.Random(seed)
        first, _, _ = rng.random(), rng.random(), rng.random()
        if first < fail_rate:
            rng.choice((500, 502, 503))
            if rng.random() >= fail_rate:
                return seed
    raise AssertionError("no such seed")


def test_server_errors_are_retried_through_the_bucket_then_succeed(
    redis_url: str, redis_client: redis.Redis
) -> None:
    seed = first_failure_seed(0.5)

    async def body(fleet: Fleet) -> SpyBucket:
        caller = fleet.caller()
        await ask(caller)
        assert isinstance(caller.bucket, SpyBucket)
        return caller.bucket

    with simulator(fail_rate=0.5, seed=seed) as sim:
        bucket = with_fleet(redis_url, sim.base_url, body, caps=Caps(6_000, None))
        assert (sim.stats.requests, sim.stats.faults) == (2, 1)
    # Both attempts went through the bucket; only the answered one was settled, the failed
    # one keeps its reservation (the provider counted it).
    assert len(bucket.acquired) == 2
    assert len(bucket.settled) == 1
    figures = counters(redis_client)
    assert (figures["requests"], figures["retries"]) == (2, 1)


def test_server_errors_that_persist_fail_the_item(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with simulator(fail_rate=1.0) as sim, pytest.raises(ItemError, match="failed 2 times: HTTP 5"):
        with_fleet(redis_url, sim.base_url, lambda f: ask(f.caller(max_attempts=2)))
    assert sim.stats.requests == 2


def test_settle_charges_what_the_provider_counted_at_admission(
    redis_url: str, redis_client: redis.Redis
) -> None:
    async def body(fleet: Fleet) -> tuple[int, list[tuple[int, int, ProviderLimits | None]]]:
        caller = fleet.caller()
        completion = await ask(caller)
        assert isinstance(caller.bucket, SpyBucket)
        return completion.prompt_tokens, caller.bucket.settled

    with simulator(tpm=600_000) as sim:
        used_prompt, settled = with_fleet(redis_url, sim.base_url, body, caps=Caps(None, 600_000))
        counted = sim.stats.prompt_tokens
    messages = build_messages([RECORD], NER.labels(RunConfig(run_id="x", model="m", base_url="b")))
    estimate = count_message_tokens(messages, "gpt-4o-mini")
    [(reserved, actual, limits)] = settled
    assert reserved == estimate + MAX_TOKENS
    # Settled to the provider's own count of the prompt plus max_tokens (not the completion's
    # few tokens: the provider charged max_tokens at admission and gives nothing back).
    assert used_prompt == counted
    assert actual == counted + MAX_TOKENS
    assert limits is not None and limits.limit_tokens == 600_000


def test_headers_resync_the_bucket_to_traffic_from_outside_the_fleet(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # 600 rpm at the provider and in the bucket (one second held: 10 requests). Something
    # outside the fleet spends 7 of the provider's 10; the fleet's next answer says so.
    async def body(fleet: Fleet) -> None:
        for _ in range(7):
            await fleet.client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=1
            )
        await ask(fleet.caller())

    caps = Caps(600, None, 1.0)
    with simulator(rpm=600) as sim:
        with_fleet(redis_url, sim.base_url, body, caps=caps)
        assert sim.stats.rate_limited == 0
    level = float(redis_client.hget(BucketKeys(ACCOUNT).bucket, "req") or "nan")
    # Without the headers the bucket would hold 9; the provider had 2 left (plus its refill).
    assert level <= 3.5


def test_a_call_larger_than_the_token_cap_fails_before_any_request(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with simulator() as sim, pytest.raises(ItemError, match=r"more than the whole --tpm 100"):
        with_fleet(redis_url, sim.base_url, lambda f: ask(f.caller()), caps=Caps(None, 100))
    assert sim.stats.requests == 0


def test_an_empty_answer_to_a_batch_splits_it(redis_url: str, redis_client: redis.Redis) -> None:
    """A model that refuses a batch (empty content) gets its halves, down to one sentence."""
    from prelabel.settings import load_settings
    from prelabel.store import RunStore
    from workers.labeler import ShardLabeler

    sizes: list[int] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        batched = body["response_format"]["json_schema"]["name"] == "ner_batch_answer"
        sizes.append(2 if batched else 1)
        answer = None if batched else json.dumps({"PER": [], "ORG": [], "LOC": [], "MISC": []})
        message = {"role": "assistant", "content": answer, "refusal": "no" if batched else None}
        return httpx.Response(
            200,
            json={
                "id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )  # fmt: skip

    records = [NerRecord.from_tokens(f"s{n}", ["a", "b"]) for n in range(2)]

    async def main() -> list[str]:
        client = redis.asyncio.Redis.from_url(redis_url)
        http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
        llm = AsyncOpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0, http_client=http
        )
        config = RunConfig(
            run_id=RUN, model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", batch_size=2
        )
        store = RunStore(redis.Redis.from_url(redis_url))
        try:
            settings = load_settings()
            transport = RealtimeTransport.for_run(llm, client, settings, config)
            labeler = ShardLabeler(settings, config, transport, client, store)
            assert await labeler.label(records) == 2
            return [r.decode() for r in await client.hvals(RunKeys(RUN).results)]
        finally:
            await llm.close()
            await client.aclose()

    results = [json.loads(r) for r in asyncio.run(main())]
    assert sizes == [2, 1, 1]
    assert [r["status"] for r in results] == ["labeled", "labeled"]


def test_the_producer_needs_no_key_but_a_wrong_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prelabel.errors import EndpointError
    from prelabel.settings import load_settings
    from producer.runs import check_endpoint

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with simulator(require_key="sk-right") as sim:
        check_endpoint(load_settings(), sim.base_url)  # the workers hold the key
        check_endpoint(load_settings(OPENAI_API_KEY="sk-right"), sim.base_url)
        with pytest.raises(EndpointError, match="rejected the API key"):
            check_endpoint(load_settings(OPENAI_API_KEY="sk-wrong"), sim.base_url)
