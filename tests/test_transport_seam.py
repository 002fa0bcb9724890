"""The labeler through an in-process transport: canned completions, no HTTP, no bucket (the
way httpx's `MockTransport` drives a client). The labeler needs nothing but the `Transport`
seam: results are committed with what each call spent, a batch answer unusable in part (or
empty) is asked again in halves, and an endpoint that refuses the schema is asked again in
JSON mode, remembered per endpoint; a run that asked for the schema explicitly fails instead.
Real Redis holds the results.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from prelabel.errors import BudgetReached
from prelabel.keys import RunKeys
from prelabel.model import RunConfig, Usage
from prelabel.settings import load_settings
from prelabel.store import RunStore
from task_types.ner.model import NerRecord, NerResult
from workers.json_mode import SchemaRefusals
from workers.labeler import ShardLabeler
from workers.transports import (
    ChatRequest,
    Completion,
    ContextWindow,
    EmptyAnswer,
    SchemaRefused,
    Transport,
)

RUN = "seam-test-run"
BASE_URL = "https://llm.example/v1"
RECORDS = [
    NerRecord.from_tokens(f"s{n}", ["Peter", "Blackburn", "flew", "to", "Paris", f"day{n}", "."])
    for n in range(4)
]
MENTIONS = {"PERSON": ["Peter Blackburn"], "LOCATION": ["Paris"]}
REFUSAL = "the endpoint rejected the request (400): response_format json_schema is not supported"


class MockTransport:
    """A transport that answers each request with `handler(request)`, and keeps the requests."""

    def __init__(self, handler: Callable[[ChatRequest], Completion]) -> None:
        self.handler = handler
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        return self.handler(request)

    async def context_window(self) -> ContextWindow:
        return ContextWindow(128_000, "the mock")


def answer(request: ChatRequest, missing: tuple[str, ...] = ()) -> Completion:
    """Every item's mentions (a batch's lines for the items in `missing` left out)."""
    ids = request.item_ids
    if len(ids) == 1:
        content = json.dumps(MENTIONS)
    else:
        lines = {str(n): MENTIONS for n, i in enumerate(ids, 1) if i not in missing}
        content = json.dumps(lines)
    return Completion(content, prompt_tokens=10 * len(ids), completion_tokens=6, simulated=False)


def label(
    redis_url: str,
    transport: Transport,
    refusals: SchemaRefusals | None = None,
    run_id: str = RUN,
    **config: Any,
) -> dict[str, NerResult]:
    """Label RECORDS through `transport` as a worker does; the committed results by id."""

    async def main() -> dict[str, NerResult]:
        client = redis.asyncio.Redis.from_url(redis_url)
        cfg = RunConfig(run_id=run_id, model="gpt-4o-mini", base_url=BASE_URL, **config)
        store = RunStore(redis.Redis.from_url(redis_url))
        try:
            labeler = ShardLabeler(load_settings(), cfg, transport, client, store, refusals)
            await labeler.label(RECORDS)
            raw = await client.hgetall(RunKeys(run_id).results)
            return {k.decode(): NerResult.model_validate_json(v) for k, v in raw.items()}
        finally:
            await client.aclose()

    return asyncio.run(main())


def total(results: dict[str, NerResult]) -> Usage:
    return sum((r.usage for r in results.values()), Usage())


def test_results_are_committed_with_what_each_call_spent(
    redis_url: str, redis_client: redis.Redis
) -> None:
    transport = MockTransport(answer)
    results = label(redis_url, transport, batch_size=2)
    assert sorted(r.item_ids for r in transport.requests) == [("s0", "s1"), ("s2", "s3")]
    assert all(r.response_format is not None for r in transport.requests)  # auto: the schema
    assert sorted(results) == ["s0", "s1", "s2", "s3"]
    for result in results.values():
        assert result.status == "labeled"
        assert [(e.text, e.type) for e in result.entities] == [
            ("Peter Blackburn", "PER"),
            ("Paris", "LOC"),
        ]
    assert total(results) == Usage(prompt_tokens=40, completion_tokens=12, requests=2)


def test_the_cache_and_the_budget_wrap_any_transport(
    redis_url: str, redis_client: redis.Redis
) -> None:
    label(redis_url, MockTransport(answer), batch_size=2)
    again = MockTransport(answer)
    results = label(redis_url, again, run_id="seam-test-run-2", batch_size=2)
    assert again.requests == [] and {r.status for r in results.values()} == {"labeled"}
    assert int(redis_client.hget(RunKeys("seam-test-run-2").counters, "cache_hits") or 0) == 2

    broke = MockTransport(answer)
    with pytest.raises(BudgetReached):
        label(redis_url, broke, run_id="seam-test-run-3", budget_tokens=1, cache=False)
    assert broke.requests == []


def test_a_batch_answer_unusable_in_part_is_asked_again_in_halves(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Lines 2 and 3 of a batch of 4 are missing: s1 and s2 are asked again, one by one."""
    transport = MockTransport(lambda request: answer(request, missing=("s1", "s2")))
    results = label(redis_url, transport, batch_size=4)
    assert [r.item_ids for r in transport.requests] == [("s0", "s1", "s2", "s3"), ("s1",), ("s2",)]
    assert {r.status for r in results.values()} == {"labeled"}
    # Each item carries its share of the batch's call, and s1 and s2 their own calls too.
    assert total(results) == Usage(prompt_tokens=60, completion_tokens=18, requests=3)
    # The batch's one request is s0's (a share's remainder goes to the first items).
    assert [results[i].usage.requests for i in ("s0", "s1", "s2", "s3")] == [1, 1, 1, 0]


def test_an_empty_answer_to_a_batch_halves_it_down_to_single_items(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def handler(request: ChatRequest) -> Completion:
        if len(request.item_ids) > 1:
            raise EmptyAnswer("the model returned an empty answer", Usage(requests=1))
        return answer(request)

    transport = MockTransport(handler)
    results = label(redis_url, transport, batch_size=4)
    assert [len(r.item_ids) for r in transport.requests] == [4, 2, 1, 1, 2, 1, 1]
    assert {r.status for r in results.values()} == {"labeled"}
    assert total(results).requests == 7


def test_a_refused_schema_is_asked_again_in_json_mode_and_remembered_per_endpoint(
    redis_url: str, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: ChatRequest) -> Completion:
        if request.response_format is not None:
            raise SchemaRefused(REFUSAL, Usage(prompt_tokens=20, requests=1))
        return answer(request)

    caplog.set_level(logging.WARNING)
    refusals = SchemaRefusals()
    transport = MockTransport(handler)
    results = label(redis_url, transport, refusals, batch_size=2)
    assert {r.status for r in results.values()} == {"labeled"}
    refused = [r.item_ids for r in transport.requests if r.response_format is not None]
    json_mode = [r.item_ids for r in transport.requests if r.response_format is None]
    # Each batch is answered once in JSON mode; at most one refused attempt came before it.
    assert sorted(json_mode) == [("s0", "s1"), ("s2", "s3")]
    assert refused[0] == transport.requests[0].item_ids and len(set(refused)) == len(refused)
    # The refused calls were paid for: their items carry them.
    spent = Usage(prompt_tokens=40 + 20 * len(refused), completion_tokens=12)
    assert total(results) == spent.model_copy(update={"requests": 2 + len(refused)})
    said = [r for r in caplog.records if "refused json_schema" in r.getMessage()]
    assert len(said) == 1  # said once

    # Another run on the same endpoint, in the same process, sends no schema at all.
    again = MockTransport(handler)
    label(redis_url, again, refusals, run_id="seam-test-run-2", batch_size=2, cache=False)
    assert [r.response_format for r in again.requests] == [None, None]


def test_an_explicit_schema_that_is_refused_fails_the_items_with_the_reason(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def handler(request: ChatRequest) -> Completion:
        raise SchemaRefused(REFUSAL, Usage(requests=1))

    transport = MockTransport(handler)
    results = label(redis_url, transport, batch_size=2, response_format="json_schema")
    assert len(transport.requests) == 2  # never asked again in JSON mode
    assert {r.status for r in results.values()} == {"failed"}
    assert {r.error for r in results.values()} == {REFUSAL}
