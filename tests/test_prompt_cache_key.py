"""`prompt_cache_key`: one per run in every chat body (realtime and batch lines), dropped for
an endpoint that refuses it (remembered per endpoint, the refused call counted and sent again
without it), and never part of the answer cache's digest."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2 as httpx
import redis
import redis.asyncio
from openai import AsyncOpenAI

from prelabel.counters import RunCounter
from prelabel.model import RunConfig
from task_types.ner import NER
from task_types.ner.prompts import build_messages
from tests.test_answers import GOLD, RUN, counters, simulator, unlabeled
from workers.calls import GuardedCaller
from workers.ratelimit import Caps, TokenBucket
from workers.results import ResultSink
from workers.sampling import SamplingMemory
from workers.tokens import count_message_tokens
from workers.transports import ChatRequest, RealtimeTransport
from workers.transports.batch import batch_line
from workers.transports.chat import chat_body, prompt_cache_key


def _request(cfg: RunConfig, n: int = 0) -> ChatRequest:
    messages = build_messages(unlabeled(GOLD[n : n + 1]), NER.labels(cfg))
    return ChatRequest(
        messages, None, count_message_tokens(messages, cfg.endpoint.model), (GOLD[n].id,)
    )


def _calls(
    redis_url: str, base_url: str, memory: SamplingMemory, times: int
) -> list[dict[str, Any]]:
    """`times` realtime calls of one run through `memory`; the bodies the endpoint got."""
    bodies: list[dict[str, Any]] = []

    async def keep(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            bodies.append(json.loads(request.content))

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        http = httpx.AsyncClient(event_hooks={"request": [keep]})
        llm = AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, http_client=http)
        cfg = RunConfig(run_id=RUN, model="gpt-4o-mini", base_url=base_url, max_tokens=64)
        bucket = TokenBucket(client, "acct", Caps(None, None))
        transport = RealtimeTransport(llm, bucket, ResultSink(client, RUN), cfg, 2, memory=memory)
        try:
            for n in range(times):
                completion = await transport.complete(_request(cfg, n))
                assert completion.content
        finally:
            await llm.close()
            await client.aclose()

    asyncio.run(main())
    return bodies


def test_every_realtime_body_carries_the_runs_key(
    redis_url: str, redis_client: redis.Redis
) -> None:
    with simulator() as sim:
        bodies = _calls(redis_url, sim.base_url, SamplingMemory(), 3)
        assert sim.stats.prompt_cache_keys == 3
    assert [b["prompt_cache_key"] for b in bodies] == ["prelabel-" + RUN] * 3


def test_an_endpoint_refusing_the_key_gets_it_no_more(
    redis_url: str, redis_client: redis.Redis
) -> None:
    memory = SamplingMemory()
    with simulator(refuse_cache_key=True) as sim:
        bodies = _calls(redis_url, sim.base_url, memory, 3)
        assert sim.stats.prompt_cache_keys == 0
    # The first call was refused (400 naming the key) and sent again at once without it; the
    # later ones never carried it.
    assert ["prompt_cache_key" in b for b in bodies] == [True, False, False, False]
    assert counters(redis_client)[RunCounter.REQUESTS] == 4  # the refused one counts
    cfg = RunConfig(run_id=RUN, model="gpt-4o-mini", base_url=sim.base_url)
    assert not memory.takes_cache_key(cfg)
    assert not memory.takes_cache_key(cfg.model_copy(update={"run_id": "another-run"}))
    # Remembered per endpoint (URL and model): another model there still gets it.
    assert memory.takes_cache_key(RunConfig(run_id=RUN, model="gpt-4o", base_url=sim.base_url))


def test_batch_lines_carry_the_key_unless_the_endpoint_refused_it() -> None:
    cfg = RunConfig(run_id="run-7", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    request = _request(cfg)
    assert batch_line(cfg, "c", request)["body"]["prompt_cache_key"] == "prelabel-run-7"
    assert "prompt_cache_key" not in batch_line(cfg, "c", request, cache_key=False)["body"]
    assert (
        chat_body(cfg.endpoint, request, prompt_cache_key("run-7"))
        == batch_line(cfg, "c", request)["body"]
    )


def test_the_answer_caches_digest_leaves_the_key_out() -> None:
    """Two runs (two keys) asking the same thing share cached answers."""
    a = RunConfig(run_id="run-a", model="gpt-4o-mini", base_url="https://api.openai.com/v1")
    b = a.model_copy(update={"run_id": "run-b"})
    request = _request(a)
    assert _digest(a, request) == _digest(b, request)


def _digest(cfg: RunConfig, request: ChatRequest) -> str:
    caller = GuardedCaller.__new__(GuardedCaller)
    caller.config, caller._local = cfg, False
    return caller._digest(request)
