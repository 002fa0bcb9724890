"""The simulator's prompt cache: the arithmetic against hand-computed values, and the usage
it reports through the real `openai` client (realtime and Batch API lines)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import bpe_openai
import openai
import pytest

from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.prompt_cache import PromptCache, request_tokens
from simulator.server import RunningSimulator
from tests.test_simulator import RECORDS, SYSTEM
from tests.test_simulator_batches import _jsonl, _line, _lines, _submit, _wait

O200K = bpe_openai.get_encoding("o200k_base")
#: A system prompt of well over 1,024 tokens ("word " is one o200k token each).
LONG_SYSTEM = SYSTEM + " Context:" + " word" * 1200


def tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


# --- the arithmetic ---------------------------------------------------------------------


def test_a_prefix_below_1024_tokens_is_never_cached() -> None:
    cache = PromptCache()
    assert cache.cached(tokens(1023), 0.0) == 0
    assert cache.cached(tokens(1023), 1.0) == 0


def test_an_identical_request_of_1100_tokens_gets_1024() -> None:
    cache = PromptCache()
    assert cache.cached(tokens(1100), 0.0) == 0  # the first one is a miss
    assert cache.cached(tokens(1100), 1.0) == 1024


def test_the_cached_part_grows_in_steps_of_128() -> None:
    cache = PromptCache()
    cache.cached(tokens(1300), 0.0)
    assert cache.cached(tokens(1300), 1.0) == 1280
    assert cache.cached(tokens(1300) + tokens(500, 10_000), 2.0) == 1280


def test_a_difference_at_token_1200_keeps_the_1152_before_it() -> None:
    cache = PromptCache()
    cache.cached(tokens(1400), 0.0)
    other = tokens(1400)
    other[1199] = 99_999  # token 1,200
    assert cache.cached(other, 1.0) == 1152


def test_a_difference_early_on_caches_nothing() -> None:
    cache = PromptCache()
    cache.cached(tokens(2000), 0.0)
    assert cache.cached([7, *tokens(1999, 1)], 1.0) == 0


def test_a_prefix_expires_ttl_after_it_was_last_seen() -> None:
    cache = PromptCache(ttl=600.0)
    cache.cached(tokens(1100), 0.0)
    assert cache.cached(tokens(1100), 600.0) == 1024  # seen again: fresh until 1,200
    assert cache.cached(tokens(1100), 1200.0) == 1024
    assert cache.cached(tokens(1100), 1800.1) == 0  # expired
    assert cache.cached(tokens(1100), 1801.0) == 1024  # remembered again by the miss


def test_request_tokens_put_the_schema_first_then_role_and_content() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    schema_part = O200K.encode_ordinary(json.dumps(schema, separators=(",", ":")))
    messages_part = (
        O200K.encode_ordinary("system")
        + O200K.encode_ordinary("Be brief.")
        + O200K.encode_ordinary("user")
        + O200K.encode_ordinary("Hi")
    )
    assert request_tokens(messages, response_format) == schema_part + messages_part
    assert request_tokens(messages, {"type": "json_object"}) == messages_part


# --- through the real client ------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0, batch_seconds=0.3), Oracle(RECORDS)) as running:
        yield running


def _client(sim: RunningSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="anything", max_retries=0, timeout=30)


def _stats(sim: RunningSimulator) -> dict[str, Any]:
    with urllib.request.urlopen(sim.base_url.removesuffix("/v1") + "/stats") as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def _expected_cached() -> int:
    """What a request (LONG_SYSTEM, a user text) gets after another such: the shared prefix
    (the system message and the user role), down to a 128-token step."""
    shared = len(request_tokens([{"role": "system", "content": LONG_SYSTEM}], None))
    shared += 1  # the "user" role token
    return shared // 128 * 128


def test_realtime_usage_reports_cached_tokens_as_the_api_does(sim: RunningSimulator) -> None:
    model = "gpt-4.1-mini"  # a model of its own: the cache is per model
    before = _stats(sim)
    cached: list[int] = []
    with _client(sim) as client:
        for record in RECORDS[:3]:
            reply = client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": LONG_SYSTEM},
                    {"role": "user", "content": record.text},
                ],
                prompt_cache_key="prelabel-test",
            )
            assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
            got = reply.usage.prompt_tokens_details.cached_tokens
            assert got is not None and got <= reply.usage.prompt_tokens
            cached.append(got)
    assert cached[0] == 0
    assert cached[1] == cached[2] == _expected_cached() >= 1024
    after = _stats(sim)
    assert after["cached_tokens"] - before["cached_tokens"] == sum(cached)
    assert after["prompt_cache_keys"] - before["prompt_cache_keys"] == 3


def test_a_short_prompt_reports_zero_cached_tokens(sim: RunningSimulator) -> None:
    with _client(sim) as client:
        for _ in range(2):
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "x"}],
            )
            assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
            assert reply.usage.prompt_tokens_details.cached_tokens == 0


def test_batch_lines_report_cached_tokens_too(sim: RunningSimulator) -> None:
    lines = [_line(f"req-{i}", r.text, prompt_cache_key="k") for i, r in enumerate(RECORDS)]
    for line in lines:
        line["body"]["model"] = "gpt-4.1"
        line["body"]["messages"][0]["content"] = LONG_SYSTEM
    with _client(sim) as client:
        batch = _wait(client, _submit(client, _jsonl(lines)).id)
        assert batch.status == "completed"
        output = _lines(client, batch.output_file_id)
    cached = {
        o["custom_id"]: o["response"]["body"]["usage"]["prompt_tokens_details"]["cached_tokens"]
        for o in output
    }
    assert sorted(cached.values())[0] == 0  # the first line answered
    assert sorted(cached.values())[1:] == [_expected_cached()] * (len(RECORDS) - 1)


def test_a_simulator_refusing_prompt_cache_key_answers_400_naming_it() -> None:
    config = SimulatorConfig(port=0, refuse_cache_key=True)
    with serve_in_thread(config, Oracle(RECORDS)) as running, _client(running) as client:
        messages: Any = [{"role": "user", "content": RECORDS[0].text}]
        with pytest.raises(openai.BadRequestError, match="prompt_cache_key"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, prompt_cache_key="k"
            )
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert reply.choices[0].message.content


def test_bill_schema_counts_the_schema_in_prompt_tokens_as_count_schema_tokens_does() -> None:
    from simulator.limits import count_prompt_tokens
    from workers.tokens import count_schema_tokens

    properties = {f"field_{i}": {"type": "string", "description": "word " * 60} for i in range(20)}
    schema = {"type": "object", "properties": properties}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    messages: Any = [{"role": "user", "content": RECORDS[0].text}]
    schema_tokens = count_schema_tokens(response_format, "gpt-4o-mini")
    assert schema_tokens >= 1024
    config = SimulatorConfig(port=0, bill_schema=True)
    with serve_in_thread(config, Oracle(RECORDS)) as running, _client(running) as client:
        usages = [
            client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, response_format=response_format
            ).usage
            for _ in range(2)
        ]
    assert usages[0] is not None and usages[1] is not None
    assert usages[0].prompt_tokens == count_prompt_tokens(messages) + schema_tokens
    assert usages[1].prompt_tokens_details is not None
    # The schema comes first: its whole 128-token steps (and any step the message fills).
    cached = usages[1].prompt_tokens_details.cached_tokens
    assert cached is not None and cached % 128 == 0
    assert schema_tokens // 128 * 128 <= cached <= usages[1].prompt_tokens
