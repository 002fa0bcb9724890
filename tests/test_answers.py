"""What a real model and a strict API expose, in one process: answers cut off at max_tokens,
bodies that are not chat completions, usage that cannot be true, reasoning models' parameters,
the context window a local server serves, a prompt example copied as an answer, and usage
that adds up. The real `openai` client over HTTP to the simulator and real Redis; a mock
transport only for answers the simulator never gives (impossible usage, a model's exact text).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx  # the HTTP client the openai package is built on
import pytest
import redis
import redis.asyncio
from openai import AsyncOpenAI

from prelabel.errors import CallFailed
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.settings import load_settings
from prelabel.store import RunStore
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.server import BROKEN_BODIES, RunningSimulator
from task_types.ner import NER
from task_types.ner.labeling import COPIED
from task_types.ner.model import CONLL, NerRecord, NerResult
from task_types.ner.prompts import build_messages
from workers.labeler import ShardLabeler
from workers.ratelimit import Caps, TokenBucket
from workers.results import ResultSink
from workers.tokens import count_message_tokens, count_tokens
from workers.transports import ChatRequest, Completion, RealtimeTransport
from workers.transports.window import DEFAULT_CONTEXT_TOKENS, context_window

RUN = "answers-test-run"
LOCAL = "http://127.0.0.1:9/v1"
GOLD = [
    NerRecord.from_tokens(
        f"s{n}",
        ["Peter", "Blackburn", "flew", "from", "Tokyo", "to", "Paris", f"on-day-{n}", "."],
        ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-LOC", "O", "O"],
    )
    for n in range(8)
]


def unlabeled(records: list[NerRecord]) -> list[NerRecord]:
    return [NerRecord.from_tokens(r.id, r.tokens) for r in records]


@contextmanager
def simulator(**options: Any) -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0, **options), Oracle(GOLD)) as running:
        yield running


def counters(client: redis.Redis) -> dict[str, int]:
    raw: dict[bytes, bytes] = client.hgetall(RunKeys(RUN).counters)  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def call(
    redis_url: str,
    base_url: str,
    *,
    model: str = "gpt-4o-mini",
    http: httpx.AsyncClient | None = None,
    **config: Any,
) -> Completion:
    """One realtime transport call for GOLD[0], as a worker makes it."""

    async def main() -> Completion:
        client = redis.asyncio.Redis.from_url(redis_url)
        llm = AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, http_client=http)
        cfg = RunConfig(run_id=RUN, model=model, base_url=base_url, max_tokens=64, **config)
        caller = RealtimeTransport(
            llm, TokenBucket(client, "acct", Caps(None, None)), ResultSink(client, RUN), cfg, 2
        )
        messages = build_messages(unlabeled(GOLD[:1]), NER.labels(cfg))
        try:
            return await caller.complete(
                ChatRequest(messages, None, count_message_tokens(messages, model), (GOLD[0].id,))
            )
        finally:
            await llm.close()
            await client.aclose()

    return asyncio.run(main())


def label(
    redis_url: str,
    base_url: str,
    records: list[NerRecord],
    *,
    http: httpx.AsyncClient | None = None,
    env: dict[str, str] | None = None,
    **config: Any,
) -> dict[str, NerResult]:
    """Label `records` with a ShardLabeler, as a worker does; the committed results by id."""

    async def main() -> dict[str, NerResult]:
        client = redis.asyncio.Redis.from_url(redis_url)
        llm = AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, http_client=http)
        cfg = RunConfig(run_id=RUN, model="gpt-4o-mini", base_url=base_url, **config)
        store = RunStore(redis.Redis.from_url(redis_url))
        settings = load_settings(**(env or {}))
        try:
            transport = RealtimeTransport.for_run(llm, client, settings, cfg)
            labeler = ShardLabeler(settings, cfg, transport, client, store)
            await labeler.label(records)
            raw = await client.hgetall(RunKeys(RUN).results)
            return {k.decode(): NerResult.model_validate_json(v) for k, v in raw.items()}
        finally:
            await llm.close()
            await client.aclose()

    return asyncio.run(main())


def completion_body(content: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        **extra,
    }


def endpoint(answer: Callable[[dict[str, Any]], dict[str, Any]]) -> httpx.AsyncClient:
    """An endpoint answering each chat request (its JSON body) with `answer(body)`."""
    return httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(200, json=answer(json.loads(request.content)))
        )
    )


# --- 200s that are not chat completions (issue 14.9) -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("choices-number", "choices that are a number"),
        ("message-string", "a message that is a string"),
        ("usage-string", "usage that is a string"),
        ("no-choices", "an object without choices"),
    ],
)
def test_a_body_that_is_not_a_chat_completion_fails_its_item_once(
    redis_url: str, redis_client: redis.Redis, kind: str, problem: str
) -> None:
    assert kind in BROKEN_BODIES
    with simulator(broken_bodies=(kind,)) as sim, pytest.raises(CallFailed) as caught:
        call(redis_url, sim.base_url)
    assert problem in caught.value.message and "not a chat completion" in caught.value.message
    assert sim.stats.requests == 1  # not retried: paid once
    assert counters(redis_client)["requests"] == 1
    assert caught.value.spent.requests == 1


# --- usage the endpoint cannot have spent (issue 14.14) -----------------------------------------


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -450000, "completion_tokens": -5},
        {"prompt_tokens": 10**12, "completion_tokens": 10**9},
        {"prompt_tokens": "lots", "completion_tokens": 2.5},
    ],
    ids=["negative", "absurd", "not-integers"],
)
def test_impossible_usage_is_replaced_by_the_estimate(
    redis_url: str, redis_client: redis.Redis, usage: dict[str, Any]
) -> None:
    content = json.dumps({"PERSON": ["Peter Blackburn"]})
    http = endpoint(lambda _: completion_body(content, usage=usage))
    messages = build_messages(unlabeled(GOLD[:1]), CONLL)
    estimate = count_message_tokens(messages, "gpt-4o-mini")
    completion = call(redis_url, LOCAL, http=http)
    assert completion.content == content
    assert completion.prompt_tokens == estimate
    assert 0 <= completion.completion_tokens <= 64  # never more than max_tokens
    figures = counters(redis_client)
    assert figures["prompt_tokens"] == estimate and 0 <= figures.get("completion_tokens", 0) <= 64


# --- reasoning models (strict APIs) -------------------------------------------------------------


def test_the_simulator_refuses_what_reasoning_models_refuse() -> None:
    with simulator() as sim:
        url = sim.base_url + "/chat/completions"
        messages = [{"role": "user", "content": GOLD[0].text}]

        def status(body: dict[str, Any]) -> tuple[int, str]:
            r = httpx.post(url, json={"messages": messages, **body})
            return r.status_code, (r.json().get("error") or {}).get("param") or ""

        assert status({"model": "o4-mini", "max_tokens": 10}) == (400, "max_tokens")
        assert status({"model": "gpt-5-mini", "temperature": 0.0}) == (400, "temperature")
        assert status({"model": "gpt-4o-mini", "reasoning_effort": "low"}) == (
            400,
            "reasoning_effort",
        )
        assert status({"model": "o4-mini", "max_completion_tokens": 10})[0] == 200
        assert status({"model": "gpt-5-mini", "reasoning_effort": "minimal"})[0] == 200


@pytest.mark.parametrize("model", ["o4-mini", "gpt-5-mini", "o3-2025-04-16"])
def test_reasoning_models_get_max_completion_tokens_and_no_temperature(
    redis_url: str, redis_client: redis.Redis, model: str
) -> None:
    with simulator() as sim:
        completion = call(redis_url, sim.base_url, model=model, reasoning_effort="low")
        assert json.loads(completion.content)["PERSON"] == ["Peter Blackburn"]
        assert sim.stats.requests == 1


def test_other_models_get_no_reasoning_effort(redis_url: str, redis_client: redis.Redis) -> None:
    with simulator() as sim:
        completion = call(redis_url, sim.base_url, reasoning_effort="high")
    assert json.loads(completion.content)["LOCATION"] == ["Tokyo", "Paris"]


# --- retries leave a line in the log (issue 13.6) -----------------------------------------------


def test_a_retried_call_says_so_in_the_log(
    redis_url: str, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="workers.transports.realtime")
    with simulator(fail_rate=1.0) as sim, pytest.raises(CallFailed, match="failed 2 times"):
        call(redis_url, sim.base_url)
    lines = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(lines) == 1 and "HTTP 5" in lines[0] and "attempt 1 of 2" in lines[0]
    assert sim.stats.requests == 2


# --- an answer cut off at max_tokens (issue 13.1) -----------------------------------------------


def test_an_answer_cut_off_at_max_tokens_says_so(redis_url: str, redis_client: redis.Redis) -> None:
    with simulator() as sim:
        results = label(redis_url, sim.base_url, unlabeled(GOLD[:1]), max_tokens=8)
    error = results[GOLD[0].id].error or ""
    assert "cut off at max_tokens (8)" in error and "--max-tokens" in error
    assert "not JSON" not in error


def test_a_looping_model_is_bounded_by_the_schema(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The schema caps each type's list at a power of two above the sentence's tokens."""
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return completion_body(json.dumps({"LOCATION": ["Tokyo"] * 16}))

    results = label(redis_url, LOCAL, unlabeled(GOLD[:1]), http=endpoint(answer))
    schema = seen[0]["response_format"]["json_schema"]["schema"]
    assert {p["maxItems"] for p in schema["properties"].values()} == {16}  # 9 tokens
    result = results[GOLD[0].id]
    assert result.status == "labeled" and [e.text for e in result.entities] == ["Tokyo"]
    assert {u.reason for u in result.unaligned} == {
        "repeated more often than the sentence holds it"
    }


# --- the prompt's worked example copied as an answer (issue 13.3) -------------------------------


def test_an_answer_that_copies_the_worked_example_is_flagged(
    redis_url: str, redis_client: redis.Redis
) -> None:
    copy = {"PERSON": ["Smith"], "LOCATION": ["Paris", "Berlin", "Paris"]}
    partial = {"PERSON": ["Peter Blackburn", "Smith"], "LOCATION": ["Tokyo", "Berlin"]}
    answers = {GOLD[0].text: copy, GOLD[1].text: partial}

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return completion_body(json.dumps(answers[body["messages"][-1]["content"]]))

    results = label(redis_url, LOCAL, unlabeled(GOLD[:2]), http=endpoint(answer))
    copied = results[GOLD[0].id]
    assert copied.status == "failed" and "worked example" in (copied.error or "")
    flagged = results[GOLD[1].id]
    assert flagged.status == "labeled"
    assert [(u.mention, u.reason) for u in flagged.unaligned] == [
        ("Smith", COPIED),
        ("Berlin", COPIED),
    ]


# --- the context window a local server serves (issue 13.7) --------------------------------------


def test_the_context_window_is_learnt_from_the_server(redis_url: str) -> None:
    async def window(base_url: str, model: str, **env: str) -> tuple[int, str]:
        async with AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as llm:
            found = await context_window(llm, base_url, model, load_settings(**env).context_tokens)
            return found.tokens, found.source

    with simulator(context_tokens=3000) as sim:
        # vLLM's /v1/models max_model_len for a model it lists; llama.cpp's /props otherwise.
        assert asyncio.run(window(sim.base_url, "gpt-4o-mini")) == (
            3000,
            "the server (/v1/models max_model_len)",
        )
        assert asyncio.run(window(sim.base_url, "gemma-3-270m.gguf"))[1] == (
            "the server (/props n_ctx)"
        )
        told = asyncio.run(window(sim.base_url, "gpt-4.1", context_tokens="9000"))
        assert told == (9000, "PRELABEL_CONTEXT_TOKENS")
    with simulator() as sim:
        assert asyncio.run(window(sim.base_url, "gpt-4o"))[0] == DEFAULT_CONTEXT_TOKENS


def test_an_item_too_long_for_the_servers_context_fails_before_it_is_sent(
    redis_url: str, redis_client: redis.Redis
) -> None:
    long = NerRecord.from_tokens("long", ["word"] * 2000)
    huge = NerRecord.from_tokens("huge", ["a" * 2_000_000])  # too long for the token counter too
    with simulator(context_tokens=2048) as sim:
        results = label(redis_url, sim.base_url, [*unlabeled(GOLD[:1]), long, huge])
        assert sim.stats.requests == 1  # only the short sentence was sent
    assert results[GOLD[0].id].status == "labeled"
    for item in ("long", "huge"):
        assert results[item].status == "failed"
        assert results[item].error is not None
        assert results[item].error.startswith("too long for the model's context")
        assert "of the server (/v1/models max_model_len)" in results[item].error


def test_a_text_too_long_for_the_encoder_counts_as_at_least_its_bytes() -> None:
    assert count_tokens("a" * 2_000_000, "gpt-4o-mini") >= 2_000_000
    assert count_tokens("ab " * 200_000, "some-local-model") >= 600_000


# --- per-item usage adds up to the run's (issue 13.4, 14.14) ------------------------------------


@pytest.mark.parametrize("options", [{"fail_rate": 0.3, "seed": 3}, {}], ids=["retries", "plain"])
def test_items_usage_adds_up_to_the_runs_in_a_batch_run(
    redis_url: str, redis_client: redis.Redis, options: dict[str, Any]
) -> None:
    """Batches of 4 with answers cut off at max_tokens split down to single sentences; with
    5xx faults, calls are retried. Every request the endpoint received is in an item's usage."""
    with simulator(**options) as sim:
        results = label(
            redis_url,
            sim.base_url,
            unlabeled(GOLD),
            batch_size=4,
            max_tokens=30,
            env={"max_attempts": "8"},
        )
        served = (sim.stats.requests, sim.stats.prompt_tokens, sim.stats.completion_tokens)
    assert len(results) == len(GOLD)
    figures = counters(redis_client)
    summed = tuple(
        sum(getattr(r.usage, field) for r in results.values())
        for field in ("requests", "prompt_tokens", "completion_tokens")
    )
    assert summed == (figures["requests"], figures["prompt_tokens"], figures["completion_tokens"])
    assert summed == served
    assert figures["requests"] > 2  # the batches were split (and retried): not the easy case


# --- a mistyped --model (issue 13.8) ------------------------------------------------------------


def test_a_model_the_endpoint_does_not_list_is_warned_about() -> None:
    from producer.runs import check_endpoint

    with simulator() as sim:
        assert check_endpoint(load_settings(), sim.base_url, "gpt-4o-mini") is None
        warning = check_endpoint(load_settings(), sim.base_url, "gpt-4o-mnii")
    assert warning is not None
    assert "'gpt-4o-mnii' is not among the models" in warning and "check --model" in warning
    assert "gpt-4o-mini" in warning  # what it does list
