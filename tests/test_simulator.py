"""The LLM simulator: its oracle, its rate limits, and its HTTP API through the real client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpe_openai
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionMessageParam

import task_types
from prelabel.errors import ConfigError, DatasetError, ItemError
from prelabel.model import Label, LabelSet, RunConfig, Usage
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.limits import RateLimiter, TokenBucket, count_prompt_tokens, format_duration
from simulator.oracle import answer_text
from simulator.server import FINGERPRINT, MODELS, RunningSimulator
from task_types import Example
from task_types.classify.model import ClassifyRecord, ClassifyResult
from task_types.ner.bio import mention_spans
from task_types.ner.gold import gold_mentions
from task_types.ner.model import CONLL_TYPES, NerRecord, Ontology
from task_types.ner.parsing import parse_answer, parse_batch_answer

ROOT = Path(__file__).resolve().parents[1]
O200K = bpe_openai.get_encoding("o200k_base")
SYSTEM = "Label the named entities of the sentence. Answer with JSON only."


def _record(id: str, sentence: str, tags: str) -> NerRecord:
    return NerRecord.from_tokens(id, sentence.split(" "), tags.split(" "))


RECORDS = [
    _record(
        "eu",
        "EU rejects German call to boycott British lamb .",
        "B-ORG O B-MISC O O O B-MISC O O",
    ),
    _record("pb", "Peter Blackburn", "B-PER I-PER"),
    # A repeated mention, a three-token one, and an IOB1-style I- start.
    _record(
        "ny",
        "Germany beat Germany at the New York Stock Exchange , said Smith",
        "B-LOC O I-LOC O O B-ORG I-ORG I-ORG I-ORG O O B-PER",
    ),
    _record("none", "Nothing to see here .", "O O O O O"),
]
# The gold the tests expect, written out by hand from the tags above, in the compact wire
# format (ner-v3): only the types that have mentions, `{}` when none.
GOLD: dict[str, dict[str, list[str]]] = {
    RECORDS[0].text: {"MISCELLANEOUS": ["German", "British"], "ORGANIZATION": ["EU"]},
    RECORDS[1].text: {"PERSON": ["Peter Blackburn"]},
    RECORDS[2].text: {
        "LOCATION": ["Germany", "Germany"],
        "ORGANIZATION": ["New York Stock Exchange"],
        "PERSON": ["Smith"],
    },
    RECORDS[3].text: {},
}


def _messages(user: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _expected_prompt_tokens(user: str) -> int:
    """The documented count: o200k_base tokens of each message's text, plus 4 per message."""
    return len(O200K.encode(SYSTEM)) + 4 + len(O200K.encode(user)) + 4


def _batch(texts: list[str]) -> str:
    return "\n".join(f"{i}: {text}" for i, text in enumerate(texts, 1))


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0), Oracle(RECORDS)) as running:
        yield running


def _client(base_url: str, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="anything", max_retries=0, timeout=timeout)


def _ask(base_url: str, user: str) -> str:
    with _client(base_url) as client:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=_messages(user))
    content = reply.choices[0].message.content
    assert content is not None
    return content


# --- pure logic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER", "I-PER", "O"], [("PER", 0, 2)]),
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["I-LOC", "I-LOC", "O", "I-LOC"], [("LOC", 0, 2), ("LOC", 3, 4)]),
        (["B-ORG", "I-LOC"], [("ORG", 0, 1), ("LOC", 1, 2)]),
        (["O", "B-MISC", "I-MISC", "I-MISC"], [("MISC", 1, 4)]),
        (["B-X-Y", "I-X-Y"], [("X-Y", 0, 2)]),
    ],
)
def test_mention_spans(tags: list[str], spans: list[tuple[str, int, int]]) -> None:
    assert mention_spans(tags) == spans


@pytest.mark.parametrize("bad", ["PER", "E-PER", "B-", "S-LOC"])
def test_mention_spans_rejects_other_schemes(bad: str) -> None:
    with pytest.raises(ValueError, match="token 1"):
        mention_spans(["O", bad])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0001, "1ms"),
        (0.02, "20ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (2.433, "2.433s"),
        (59.9999, "1m0s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rpm_bucket_holds_one_second_and_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=120, tpm=None, clock=clock)
    assert [limiter.admit(10).admitted for _ in range(3)] == [True, True, False]
    refused = limiter.admit(10)
    assert refused.kind == "requests"
    assert refused.retry_after == pytest.approx(0.5)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["retry-after-ms"] == "500"
    assert refused.headers["x-ratelimit-limit-requests"] == "120"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1s"
    clock.now += 0.5
    assert limiter.admit(10).admitted
    assert not limiter.admit(10).admitted


def test_tiny_caps_still_fit_one_request() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=1, tpm=60, clock=clock)
    first = limiter.admit(500)  # far more than the one-second token bucket (1 token)
    assert first.admitted
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.now += 60  # the request bucket is full again; the token debt is not yet repaid
    refused = limiter.admit(500)
    assert (refused.admitted, refused.kind) == (False, "tokens")
    # 1 - 500 + 60 = -439 tokens in the bucket: 440 s until it holds its capacity of 1.
    assert refused.retry_after == pytest.approx(440.0)
    assert refused.headers["x-ratelimit-reset-tokens"] == "7m20s"
    clock.now += 440
    assert limiter.admit(500).admitted


def test_refused_requests_are_not_charged() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, tpm=6000, clock=clock)  # buckets of 1 request, 100 tokens
    assert limiter.admit(100).admitted
    for _ in range(5):
        assert not limiter.admit(100).admitted
    clock.now += 1.0
    assert limiter.admit(100).admitted


def test_openai_headers_report_the_minute_view_as_of_admission() -> None:
    # As the hosted API: limit 60,000, one call of 24 tokens -> remaining 59,976, reset 24ms.
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, tpm=60_000, clock=clock, style="openai")
    first = limiter.admit(24).headers
    assert first["x-ratelimit-limit-tokens"] == "60000"
    assert first["x-ratelimit-remaining-tokens"] == "59976"
    assert first["x-ratelimit-reset-tokens"] == "24ms"
    assert first["x-ratelimit-remaining-requests"] == "599"
    assert first["x-ratelimit-reset-requests"] == "100ms"
    clock.now += 0.01  # 10 tokens refilled since: the next answer says so, the first did not
    second = limiter.admit(100).headers
    assert second["x-ratelimit-remaining-tokens"] == str(60_000 - 114)
    assert second["x-ratelimit-reset-tokens"] == "114ms"


def test_no_caps_admit_everything_without_headers() -> None:
    limiter = RateLimiter(rpm=None, tpm=None)
    admissions = [limiter.admit(10**6) for _ in range(100)]
    assert all(a.admitted and a.headers == {} for a in admissions)


@given(
    st.integers(min_value=1, max_value=100_000),
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=5000)),
        max_size=60,
    ),
)
def test_token_bucket_never_admits_more_than_capacity_plus_refill(
    tpm: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=tpm, clock=clock)
    start, spent, largest = clock.now, 0, 0
    for dt, cost in steps:
        clock.now += dt
        if limiter.admit(cost).admitted:
            spent += cost
            largest = max(largest, cost)
    capacity = max(1.0, tpm / 60)
    bound = capacity + tpm / 60 * (clock.now - start) + max(0, largest - capacity)
    assert spent <= bound + 1e-6


def test_token_bucket_starts_full_and_caps_its_level() -> None:
    bucket = TokenBucket(rate=10, capacity=5)
    bucket.refill(1000.0)
    assert bucket.remaining() == 5
    assert bucket.wait(5) == 0
    bucket.take(5)
    assert bucket.wait(1) == pytest.approx(0.1)
    assert bucket.reset() == pytest.approx(0.5)


def test_prompt_tokens_are_o200k_plus_four_per_message() -> None:
    messages = _messages(RECORDS[0].text)
    assert count_prompt_tokens(messages) == _expected_prompt_tokens(RECORDS[0].text)
    parts = [{"role": "user", "content": [{"type": "text", "text": "EU rejects"}]}]
    assert count_prompt_tokens(parts) == len(O200K.encode("EU rejects")) + 4


# --- the oracle -------------------------------------------------------------------------


def test_oracle_answers_single_and_batched_prompts() -> None:
    oracle = Oracle(RECORDS)
    assert len(oracle) == len(RECORDS)
    for text, gold in GOLD.items():
        assert json.loads(oracle.answer(_messages(text))) == gold
    texts = [RECORDS[2].text, RECORDS[1].text, RECORDS[0].text]
    batch = json.loads(oracle.answer(_messages(_batch(texts))))
    assert batch == {str(i): GOLD[t] for i, t in enumerate(texts, 1)}
    # Types in the label set's order, the empty ones left out.
    assert list(batch["1"]) == ["LOCATION", "ORGANIZATION", "PERSON"]


def test_oracle_answers_compact_and_they_parse_back_to_the_gold_mentions() -> None:
    oracle = Oracle(RECORDS)
    for record in RECORDS:
        content = oracle.answer(_messages(record.text))
        answer = json.loads(content)
        assert all(answer.values())  # no type without mentions is listed
        parsed = parse_answer(content, oracle.ontology)
        assert list(parsed) == [t.name for t in oracle.ontology.labels]
        by_tag = oracle.ontology.by_tag()
        expected: dict[str, list[str]] = {t.name: [] for t in oracle.ontology.labels}
        for tag, mention in gold_mentions(record):
            expected[by_tag[tag].name].append(mention)
        assert parsed == expected
    batch = oracle.answer(_messages(_batch([r.text for r in RECORDS])))
    assert json.loads(batch)["4"] == {}
    assert parse_batch_answer(batch, 4, oracle.ontology)[3] == {
        t.name: [] for t in oracle.ontology.labels
    }


def test_oracle_counts_unknown_sentences_and_answers_them_empty() -> None:
    oracle = Oracle(RECORDS)
    reply = oracle.respond(_messages("An unknown sentence ."))
    assert json.loads(reply.content) == GOLD[RECORDS[3].text]
    assert reply.unknown == ["An unknown sentence ."]
    reply = oracle.respond(_messages(_batch([RECORDS[1].text, "Who knows ?"])))
    assert json.loads(reply.content)["2"] == GOLD[RECORDS[3].text]
    assert (reply.sentences, reply.unknown) == (2, ["Who knows ?"])


def test_oracle_uses_the_given_ontology_and_drops_types_it_lacks() -> None:
    ontology = Ontology(labels=CONLL_TYPES[:2])  # PERSON, ORGANIZATION
    answer = json.loads(Oracle(RECORDS, ontology=ontology).answer(_messages(RECORDS[2].text)))
    assert answer == {"PERSON": ["Smith"], "ORGANIZATION": ["New York Stock Exchange"]}


def test_oracle_skips_records_without_gold_and_keeps_the_first_copy() -> None:
    first = _record("a", "Paris is nice", "B-LOC O O")
    copy = _record("b", "Paris is nice", "B-PER O O")
    unlabeled = NerRecord.from_tokens("c", ["Rome"])
    oracle = Oracle([first, copy, unlabeled])
    assert len(oracle) == 1
    # The ontology comes from the kept gold only, so the copy's PER type is not in it.
    assert oracle.lookup("Paris is nice") == {"LOCATION": ["Paris"]}
    assert oracle.lookup("Rome") is None


@pytest.mark.parametrize(
    ("tags", "problem"), [(["B-PER"], "1 gold tags for 2 tokens"), (["B-PER", "X"], "'X'")]
)
def test_oracle_rejects_bad_gold(tags: list[str], problem: str) -> None:
    record = NerRecord.from_tokens("r7", ["Peter", "Blackburn"], tags)
    with pytest.raises(DatasetError, match=f"record r7: .*{problem}"):
        Oracle([record])


def test_oracle_needs_a_user_message() -> None:
    with pytest.raises(ValueError, match="no user message"):
        Oracle(RECORDS).answer([{"role": "system", "content": SYSTEM}])


MANY_TAGS = "B-PER O B-PER O B-LOC O B-ORG"


def _many_records(n: int) -> list[NerRecord]:
    return [
        _record(
            f"r{i}", f"Alice{i} met Bob{i} in Paris{i} for Acme{i}", "B-PER O B-PER O B-LOC O B-ORG"
        )
        for i in range(n)
    ]


def test_noise_is_deterministic_per_seed_and_changes_some_answers() -> None:
    records = _many_records(40)
    texts = [r.text for r in records]

    def answers(noise: float, seed: int) -> list[object]:
        oracle = Oracle(records, noise=noise, seed=seed)
        return [oracle.lookup(t) for t in texts]

    exact = answers(0.0, 0)
    noisy = answers(0.3, 1)
    assert noisy == answers(0.3, 1)
    assert noisy != exact
    assert noisy != answers(0.3, 2)
    assert sum(a != b for a, b in zip(noisy, exact, strict=True)) < len(texts)


def test_full_noise_drops_or_relabels_every_mention() -> None:
    records = _many_records(30)
    oracle = Oracle(records, noise=1.0, seed=3)
    gold = Oracle(records)
    dropped = relabeled = 0
    for record in records:
        noisy, exact = oracle.lookup(record.text), gold.lookup(record.text)
        assert noisy is not None and exact is not None
        for name, mentions in exact.items():
            for mention in mentions:
                assert mention not in noisy.get(name, [])
                moved = any(mention in ms for n, ms in noisy.items() if n != name)
                relabeled += moved
                dropped += not moved
    assert dropped > 0 and relabeled > 0


@pytest.mark.parametrize("noise", [-0.1, 1.5])
def test_oracle_noise_must_be_a_probability(noise: float) -> None:
    with pytest.raises(ConfigError, match="noise"):
        Oracle(RECORDS, noise=noise)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"rpm": 0}, "--rpm"),
        ({"tpm": -5}, "--tpm"),
        ({"fail_rate": 1.5}, "--fail-rate"),
        ({"malformed_rate": -0.1}, "--malformed-rate"),
        ({"noise": 2.0}, "--noise"),
        ({"latency_ms": -1}, "--latency-ms"),
        ({"port": 70000}, "--port"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        SimulatorConfig(**kwargs)


def test_config_repr_hides_the_key() -> None:
    assert "s3cret" not in repr(SimulatorConfig(require_key="s3cret"))


# --- over HTTP, with the real openai client ---------------------------------------------


def test_http_answers_equal_gold(sim: RunningSimulator) -> None:
    for text, gold in GOLD.items():
        assert json.loads(_ask(sim.base_url, text)) == gold
    texts = list(GOLD)
    batch = json.loads(_ask(sim.base_url, _batch(texts)))
    assert batch == {str(i): GOLD[t] for i, t in enumerate(texts, 1)}


def test_http_response_shape_usage_and_marks(sim: RunningSimulator) -> None:
    messages = _messages(RECORDS[2].text)
    with _client(sim.base_url) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="any-model-name",
            messages=messages,
            response_format={"type": "json_object"},
        )
    reply = raw.parse()
    assert raw.headers["x-prelabel-simulator"] == "1"
    assert "x-ratelimit-limit-requests" not in raw.headers  # no caps configured
    assert reply.object == "chat.completion"
    assert reply.model == "any-model-name"
    assert reply.system_fingerprint == FINGERPRINT
    assert reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content is not None
    assert reply.usage is not None
    expected_prompt = _expected_prompt_tokens(RECORDS[2].text)
    assert reply.usage.prompt_tokens == expected_prompt
    assert reply.usage.completion_tokens == len(O200K.encode(choice.message.content))
    assert reply.usage.total_tokens == expected_prompt + reply.usage.completion_tokens


def test_http_answer_longer_than_max_tokens_is_cut(sim: RunningSimulator) -> None:
    with _client(sim.base_url) as client:
        reply = client.chat.completions.create(
            model="m",
            messages=_messages(RECORDS[2].text),
            max_tokens=5,
        )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    content = reply.choices[0].message.content
    assert content is not None
    assert answer_text(GOLD[RECORDS[2].text]).startswith(content)


def test_http_models_lists_names(sim: RunningSimulator) -> None:
    with _client(sim.base_url) as client:
        raw = client.models.with_raw_response.list()
    assert raw.headers["x-prelabel-simulator"] == "1"
    assert [m.id for m in raw.parse()] == list(MODELS)


def test_http_bad_request(sim: RunningSimulator) -> None:
    with _client(sim.base_url) as client, pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[])


def test_http_stats_count_unknown_sentences() -> None:
    with serve_in_thread(SimulatorConfig(port=0), Oracle(RECORDS)) as running:
        _ask(running.base_url, RECORDS[0].text)
        _ask(running.base_url, _batch(["Never seen .", RECORDS[1].text, "Nor this ."]))
        stats_url = running.base_url.removesuffix("/v1") + "/stats"
        with urllib.request.urlopen(stats_url) as response:
            stats = json.load(response)
    assert stats["requests"] == 2
    assert stats["sentences"] == 4
    assert stats["unknown_sentences"] == 2
    assert stats["unknown_examples"] == ["Never seen .", "Nor this ."]
    assert stats["gold_sentences"] == len(RECORDS)
    assert (stats["rate_limited"], stats["faults"]) == (0, 0)


def test_http_rpm_cap_gives_openai_429() -> None:
    with serve_in_thread(SimulatorConfig(port=0, rpm=1), Oracle(RECORDS)) as running:
        with _client(running.base_url) as client:
            first = client.chat.completions.with_raw_response.create(
                model="m",
                messages=_messages(RECORDS[1].text),
            )
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(
                    model="m",
                    messages=_messages(RECORDS[1].text),
                )
        assert running.stats.rate_limited == 1
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    headers = error.response.headers
    assert headers["x-prelabel-simulator"] == "1"
    assert int(headers["retry-after"]) >= 1
    assert int(headers["retry-after-ms"]) > 0
    for name in ("limit", "remaining", "reset"):
        assert f"x-ratelimit-{name}-requests" in headers
    assert headers["x-ratelimit-limit-requests"] == "1"


def test_http_success_headers_can_be_dropped_from_200s_only() -> None:
    config = SimulatorConfig(port=0, rpm=1, header_style="openai", success_headers=False)
    with serve_in_thread(config, Oracle(RECORDS)) as running, _client(running.base_url) as client:
        ok = client.chat.completions.with_raw_response.create(
            model="m", messages=_messages(RECORDS[1].text)
        )
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="m", messages=_messages(RECORDS[1].text))
    assert not [name for name in ok.headers if name.startswith("x-ratelimit-")]
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_simulator_refuses_an_unknown_header_style() -> None:
    with pytest.raises(ConfigError, match="--header-style"):
        SimulatorConfig(header_style="minute")  # type: ignore[arg-type]


def test_http_tpm_cap_counts_max_tokens() -> None:
    config = SimulatorConfig(port=0, tpm=60)
    with serve_in_thread(config, Oracle(RECORDS)) as running, _client(running.base_url) as client:
        client.chat.completions.create(
            model="m",
            messages=_messages(RECORDS[1].text),
            max_tokens=100,
        )
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model="m",
                messages=_messages(RECORDS[1].text),
                max_tokens=100,
            )
    assert refused.value.code == "rate_limit_exceeded"
    assert refused.value.type == "tokens"
    assert refused.value.response.headers["x-ratelimit-limit-tokens"] == "60"


def test_http_quota_exhausted() -> None:
    config = SimulatorConfig(port=0, quota_exhausted=True)
    with (
        serve_in_thread(config, Oracle(RECORDS)) as running,
        _client(running.base_url) as client,
        pytest.raises(openai.RateLimitError) as refused,
    ):
        client.chat.completions.create(model="m", messages=_messages("x"))
    assert refused.value.code == "insufficient_quota"
    assert refused.value.type == "insufficient_quota"


def test_http_require_key() -> None:
    config = SimulatorConfig(port=0, require_key="sk-right-key-1234")
    with serve_in_thread(config, Oracle(RECORDS)) as running:
        with _client(running.base_url) as wrong, pytest.raises(openai.AuthenticationError) as e:
            wrong.chat.completions.create(model="m", messages=_messages("x"))
        with _client(running.base_url) as wrong, pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        with openai.OpenAI(
            base_url=running.base_url, api_key="sk-right-key-1234", max_retries=0
        ) as right:
            reply = right.chat.completions.create(model="m", messages=_messages(RECORDS[1].text))
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"
    assert json.loads(reply.choices[0].message.content or "") == GOLD[RECORDS[1].text]


def test_http_fail_rate_gives_server_errors() -> None:
    config = SimulatorConfig(port=0, fail_rate=1.0)
    with serve_in_thread(config, Oracle(RECORDS)) as running, _client(running.base_url) as client:
        statuses = set()
        for _ in range(5):
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(model="m", messages=_messages("x"))
            statuses.add(failed.value.status_code)
        assert running.stats.faults == 5
    assert statuses <= {500, 502, 503}


def test_http_malformed_rate_breaks_the_json() -> None:
    config = SimulatorConfig(port=0, malformed_rate=1.0, latency_ms=1.0)
    fenced = 0
    with serve_in_thread(config, Oracle(RECORDS)) as running:
        for _ in range(12):
            content = _ask(running.base_url, RECORDS[0].text)
            with pytest.raises(json.JSONDecodeError):
                json.loads(content)
            if "```json\n" in content:
                fenced += 1
                inner = content.split("```json\n", 1)[1].split("\n```", 1)[0]
                assert json.loads(inner) == GOLD[RECORDS[0].text]
    assert 0 < fenced < 12  # both kinds of breakage occur


def test_http_timeout_rate_hangs_past_the_client_timeout() -> None:
    config = SimulatorConfig(port=0, timeout_rate=1.0, hang_seconds=5.0)
    with (
        serve_in_thread(config, Oracle(RECORDS)) as running,
        _client(running.base_url, timeout=0.5) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(model="m", messages=_messages("x"))


def test_http_port_in_use_is_a_config_error(sim: RunningSimulator) -> None:
    port = int(sim.base_url.rsplit(":", 1)[1].split("/")[0])
    with (
        pytest.raises(ConfigError, match=f"{port}"),
        serve_in_thread(SimulatorConfig(port=port), Oracle(RECORDS)),
    ):
        pass


SERVE_SCRIPT = """
from task_types.ner.model import NerRecord
from simulator import Oracle, SimulatorConfig, serve
records = [NerRecord.from_tokens("pb", ["Peter", "Blackburn"], ["B-PER", "I-PER"])]
serve(SimulatorConfig(port=0), Oracle(records))
print("stopped", flush=True)
"""


def test_serve_announces_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        assert line.rstrip().endswith("/v1 (1 gold sentences)")
        base_url = line.split()[3]
        assert json.loads(_ask(base_url, "Peter Blackburn"))["PERSON"] == ["Peter Blackburn"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out.strip() == "stopped"


def test_item_ids_pick_the_gold_of_identical_sentences_that_disagree() -> None:
    first = NerRecord.from_tokens("a", ["CENTRAL", "DIVISION"], ["O", "O"])
    second = NerRecord.from_tokens("b", ["CENTRAL", "DIVISION"], ["B-MISC", "I-MISC"])
    other = NerRecord.from_tokens("c", ["Paris"], ["B-LOC"])
    oracle = Oracle([first, second, other], ontology=Ontology(labels=CONLL_TYPES))
    single = [{"role": "user", "content": first.text}]
    assert json.loads(oracle.answer(single)) == {}
    assert json.loads(oracle.answer(single, ["b"]))["MISCELLANEOUS"] == ["CENTRAL DIVISION"]
    assert json.loads(oracle.answer(single, ["a"])) == {}
    batch = [{"role": "user", "content": f"1: {other.text}\n2: {first.text}"}]
    answer = json.loads(oracle.answer(batch, ["c", "b"]))
    assert answer["1"]["LOCATION"] == ["Paris"]
    assert answer["2"]["MISCELLANEOUS"] == ["CENTRAL DIVISION"]
    # An id whose text is not the line's text never lends its answer to another line.
    swapped = json.loads(oracle.answer(batch, ["b", "c"]))
    assert swapped["1"]["LOCATION"] == ["Paris"]
    assert swapped["2"] == {}


# --- classification ------------------------------------------------------------------------

AG_LABELS = LabelSet(
    labels=tuple(Label(name=n, tag=n) for n in ("World", "Sports", "Business", "Sci/Tech"))
)
#: AG News items are a title and a description joined with a line break.
NEWS = [
    ClassifyRecord(
        id=f"ag{i}",
        text=f"{title}\n{description}" if description else title,
        gold=(tag,),
    )
    for i, (title, description, tag) in enumerate(
        [
            (
                "Fears for T N pension after talks",
                "Unions say they are 'disappointed'.",
                "Business",
            ),
            ("Phelps wins again", "The swimmer takes a sixth gold.", "Sports"),
            ("New chip is faster", "Intel says its next chip doubles speed.", "Sci/Tech"),
            ("Talks in Gaza", "Leaders meet for a second day.", "World"),
            ("Single line text", "", "Sports"),
        ]
    )
]
EMOTION_LABELS = LabelSet(
    labels=tuple(Label(name=n, tag=n) for n in ("anger", "joy", "love", "sadness", "neutral"))
)
FEELINGS = [
    ClassifyRecord(id="g1", text="I love this so much, best day ever", gold=("joy", "love")),
    ClassifyRecord(id="g2", text="Why would you do that?\nSo annoying.", gold=("anger",)),
    ClassifyRecord(id="g3", text="ok", gold=()),
    ClassifyRecord(id="g4", text="The bus is late", gold=("neutral",)),
]


def _classified(
    base_url: str, task: str, labels: LabelSet, records: list[ClassifyRecord]
) -> list[tuple[str, ...] | str]:
    """Ask the simulator about `records` as a run would (the task type's messages and schema,
    through the real client), and read the answer back into tags (or a failure's reason)."""
    labeling = task_types.get(task)
    config = RunConfig(run_id="sim", model="m", base_url=base_url, task=task, labels=labels)
    examples = [Example("A held-out example", {labels.labels[0].name: ()})]
    messages: Any = labeling.messages(records, config, examples)
    with _client(base_url) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            response_format=labeling.response_format(records, config),  # type: ignore[arg-type]
        )
    content = reply.choices[0].message.content
    assert content is not None
    out: list[tuple[str, ...] | str] = []
    for record, answer in zip(records, labeling.parse(content, len(records), config), strict=True):
        assert not isinstance(answer, ItemError), answer
        result = labeling.predict(record, answer, config, Usage())
        if isinstance(result, str):
            out.append(result)
        else:
            assert isinstance(result, ClassifyResult)
            out.append(result.labels)
    return out


def test_the_oracle_answers_classification_from_gold_single_and_batched() -> None:
    unknown = ClassifyRecord(id="u", text="Not in the gold\nat all")
    with serve_in_thread(SimulatorConfig(port=0), Oracle(NEWS, AG_LABELS, task="classify")) as sim:
        for record in NEWS:
            assert _classified(sim.base_url, "classify", AG_LABELS, [record]) == [record.gold]
        batch = _classified(sim.base_url, "classify", AG_LABELS, [*NEWS, unknown])
        # A text the oracle does not know gets the first label.
        assert batch == [r.gold for r in NEWS] + [("World",)]
        assert _classified(sim.base_url, "classify", AG_LABELS, [unknown]) == [("World",)]


def test_the_oracle_answers_multi_label_classification_from_gold() -> None:
    with serve_in_thread(
        SimulatorConfig(port=0), Oracle(FEELINGS, EMOTION_LABELS, task="classify-multi")
    ) as sim:
        for record in FEELINGS:
            assert _classified(sim.base_url, "classify-multi", EMOTION_LABELS, [record]) == [
                record.gold
            ]
        unknown = ClassifyRecord(id="u", text="never seen")
        batch = _classified(sim.base_url, "classify-multi", EMOTION_LABELS, [*FEELINGS, unknown])
        assert batch == [("joy", "love"), ("anger",), (), ("neutral",), ()]


def test_the_oracle_answers_label_names_for_the_datasets_tags() -> None:
    renamed = LabelSet(labels=(Label(name="Politics", tag="World"), *AG_LABELS.labels[1:]))
    oracle = Oracle(NEWS, renamed, task="classify")
    assert oracle.lookup(NEWS[3].text) == {"label": "Politics"}
    # Known by its one-line form: a batch sends the title and description on one line.
    assert oracle.lookup(NEWS[0].text.replace("\n", " ")) == {"label": "Business"}
    inferred = Oracle(FEELINGS, task="classify-multi")  # no label set: the gold's tags, sorted
    assert [t.name for t in inferred.ontology.labels] == ["anger", "joy", "love", "neutral"]
    assert inferred.empty() == {"labels": []}


def _many_news(n: int) -> list[ClassifyRecord]:
    tags = [t.tag for t in AG_LABELS.labels]
    return [
        ClassifyRecord(id=f"m{i}", text=f"Headline {i}\nBody {i}", gold=(tags[i % 4],))
        for i in range(n)
    ]


def test_classification_noise_is_seeded_and_changes_about_its_share() -> None:
    records = _many_news(400)

    def answers(noise: float, seed: int) -> list[object]:
        oracle = Oracle(records, AG_LABELS, noise=noise, seed=seed, task="classify")
        return [oracle.lookup(r.text) for r in records]

    exact = answers(0.0, 0)
    assert exact == [{"label": r.gold[0]} for r in records if r.gold]
    noisy = answers(0.25, 1)
    assert noisy == answers(0.25, 1) and noisy != answers(0.25, 2)
    changed = sum(a != b for a, b in zip(noisy, exact, strict=True))
    assert 60 < changed < 140  # 100 expected
    wrong = answers(1.0, 3)
    assert all(a != b for a, b in zip(wrong, exact, strict=True))


def test_full_noise_drops_or_swaps_every_gold_label_of_a_multi_label_text() -> None:
    records = [
        ClassifyRecord(id=f"f{i}", text=f"feeling {i}", gold=("joy", "love")) for i in range(60)
    ]
    oracle = Oracle(records, EMOTION_LABELS, noise=1.0, seed=5, task="classify-multi")
    sizes = []
    for record in records:
        answer = oracle.lookup(record.text)
        assert answer is not None
        assert not {"joy", "love"} & set(answer["labels"])
        sizes.append(len(answer["labels"]))
    assert 0 in sizes and max(sizes) > 0  # some dropped, some swapped


def test_noisy_batched_answers_match_single_ones() -> None:
    """A text gets the same (noisy) answer alone and in a batch, line breaks and all."""
    with serve_in_thread(
        SimulatorConfig(port=0), Oracle(NEWS, AG_LABELS, noise=0.5, seed=9, task="classify")
    ) as sim:
        alone = [_classified(sim.base_url, "classify", AG_LABELS, [r])[0] for r in NEWS]
        together = _classified(sim.base_url, "classify", AG_LABELS, NEWS)
    assert alone == together
    assert alone != [r.gold for r in NEWS]
