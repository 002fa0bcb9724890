"""The three confidence methods through the labeler and an in-process transport (no HTTP):
what each asks of the endpoint, and the confidence and scores each commits."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from typing import Any

import pytest
import redis
import redis.asyncio

from prelabel.errors import BudgetReached, RunStopped
from prelabel.keys import RunKeys
from prelabel.model import ConfidenceConfig, Label, LabelSet, RunConfig, Usage
from prelabel.settings import load_settings
from prelabel.store import RunStore
from task_types import verification
from task_types.classify.model import ClassifyRecord, ClassifyResult
from task_types.ner.model import NerRecord, NerResult
from tests.test_transport_seam import BASE_URL, RECORDS, MockTransport
from workers.labeler import ShardLabeler
from workers.measure import VERIFY_BASE_TOKENS, VERIFY_TOKENS_PER_PROPOSAL, refuses_n
from workers.sampling import SamplingMemory
from workers.transports import CallFailed, ChatRequest, Completion
from workers.transports.base import Choice, TokenLogprob

RUN = "confidence-seam"
MENTIONS = {"PERSON": ["Peter Blackburn"], "LOCATION": ["Paris"]}


def label(
    redis_url: str,
    transport: MockTransport,
    confidence: ConfidenceConfig,
    *,
    records: list[NerRecord] = RECORDS,
    sampling: SamplingMemory | None = None,
    run_id: str = RUN,
    model: str = "gpt-4o-mini",
    **config: Any,
) -> dict[str, NerResult]:
    async def main() -> dict[str, NerResult]:
        client = redis.asyncio.Redis.from_url(redis_url)
        cfg = RunConfig(
            run_id=run_id,
            model=model,
            base_url=BASE_URL,
            confidence=confidence,
            cache=False,
            **config,
        )
        store = RunStore(redis.Redis.from_url(redis_url))
        try:
            labeler = ShardLabeler(
                load_settings(), cfg, transport, client, store, sampling=sampling
            )
            await labeler.label(records)
            raw = await client.hgetall(RunKeys(run_id).results)
            return {k.decode(): NerResult.model_validate_json(v) for k, v in raw.items()}
        finally:
            await client.aclose()

    return asyncio.run(main())


def tokens_of(pieces: list[tuple[str, float]]) -> tuple[TokenLogprob, ...]:
    return tuple(TokenLogprob(text, math.log(p)) for text, p in pieces)


#: The answer `{"PERSON": ["Peter Blackburn"], "LOCATION": ["Paris"]}` in tokens.
PIECES = [
    ('{"PERSON": ["', 0.99),
    ("Peter", 0.9),
    (" Blackburn", 0.8),
    ('"], "LOCATION": ["', 0.95),
    ("Paris", 0.5),
    ('"]}', 0.99),
]


def with_logprobs(request: ChatRequest) -> Completion:
    content = "".join(text for text, _ in PIECES)
    assert json.loads(content) == MENTIONS
    return Completion(
        content, 10, 6, False, "stop", choices=(Choice(content, "stop", tokens_of(PIECES)),)
    )


def test_logprobs_are_asked_and_make_each_mentions_and_the_items_confidence(
    redis_url: str, redis_client: redis.Redis
) -> None:
    transport = MockTransport(with_logprobs)
    results = label(redis_url, transport, ConfidenceConfig(method="logprobs"), batch_size=1)
    assert all(r.logprobs == 0 and r.n == 1 for r in transport.requests)
    result = results["s0"]
    peter = 0.99 * 0.9 * 0.8 * 0.95  # the tokens overlapping '"Peter Blackburn"'
    paris = 0.95 * 0.5 * 0.99
    assert [(s.label, s.text, s.start, s.end) for s in result.scores] == [
        ("PER", "Peter Blackburn", 0, 15),
        ("LOC", "Paris", 24, 29),
    ]
    assert [s.confidence for s in result.scores] == pytest.approx([peter, paris])
    assert result.confidence == pytest.approx(paris)


def test_an_endpoint_without_logprobs_stops_the_run_with_one_line(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def plain(request: ChatRequest) -> Completion:
        return Completion(json.dumps(MENTIONS), 10, 6, False, "stop")

    with pytest.raises(RunStopped) as stopped:
        label(redis_url, MockTransport(plain), ConfidenceConfig(method="logprobs"))
    assert stopped.value.message == (
        f"{BASE_URL} returned no log-probabilities for model gpt-4o-mini: use --confidence "
        "consistency:5 or verify"
    )


#: Five samples: Paris in four, "Peter Blackburn" in three, a stray "flew" in one.
SAMPLES = [
    {"PERSON": ["Peter Blackburn"], "LOCATION": ["Paris"]},
    {"PERSON": ["Peter Blackburn"], "LOCATION": ["Paris"]},
    {"PERSON": ["Peter Blackburn"], "LOCATION": []},
    {"PERSON": [], "LOCATION": ["Paris"], "ORGANIZATION": ["flew"]},
    {"PERSON": [], "LOCATION": ["Paris"]},
]


def sampled(request: ChatRequest) -> Completion:
    """`n` samples, or the sample of the request's seed when it asks one."""
    chosen = [SAMPLES[request.seed]] if request.seed is not None else SAMPLES[: request.n]
    choices = tuple(Choice(json.dumps(s), "stop") for s in chosen)
    return Completion(choices[0].content, 10, 6 * len(choices), False, "stop", choices=choices)


def one_choice(request: ChatRequest) -> Completion:
    """An endpoint that ignores n, like llama.cpp: one choice, the seed's (0 without one)."""
    content = json.dumps(SAMPLES[request.seed or 0])
    return Completion(content, 10, 6, False, "stop")


def test_consistency_asks_n_samples_at_their_temperature_and_votes(
    redis_url: str, redis_client: redis.Redis
) -> None:
    transport = MockTransport(sampled)
    method = ConfidenceConfig.parse("consistency:5", temperature=0.7)
    results = label(redis_url, transport, method, records=RECORDS[:1])
    (request,) = transport.requests
    assert (request.n, request.temperature, request.seed) == (5, 0.7, None)
    result = results["s0"]
    assert [(e.type, e.text) for e in result.entities] == [
        ("PER", "Peter Blackburn"),
        ("LOC", "Paris"),
    ]
    assert [(s.label, s.confidence) for s in result.scores] == [("PER", 0.6), ("LOC", 0.8)]
    # The least sure call: Peter Blackburn, in 3 of 5 (max(0.6, 0.4)).
    assert result.confidence == pytest.approx(0.6)
    assert result.usage.requests == 1 and result.usage.completion_tokens == 30


def test_an_endpoint_that_ignores_n_gets_n_seeded_calls_and_is_remembered(
    redis_url: str, redis_client: redis.Redis
) -> None:
    memory = SamplingMemory()
    first = MockTransport(one_choice)
    results = label(
        redis_url,
        first,
        ConfidenceConfig.parse("consistency:5"),
        records=RECORDS[:1],
        sampling=memory,
    )
    # The n=5 call answered one choice (sample 0): samples 1..4 as calls with their seed.
    assert [(r.n, r.seed) for r in first.requests] == [(5, None), (1, 1), (1, 2), (1, 3), (1, 4)]
    result = results["s0"]
    assert result.confidence == pytest.approx(0.6)
    assert result.usage.requests == 5 and result.usage.prompt_tokens == 50
    again = MockTransport(one_choice)
    label(
        redis_url,
        again,
        ConfidenceConfig.parse("consistency:5"),
        records=RECORDS[:1],
        sampling=memory,
        run_id=RUN + "-2",
    )
    assert [(r.n, r.seed) for r in again.requests] == [(1, i) for i in range(5)]


def test_an_endpoint_that_refuses_that_many_n_gets_n_seeded_calls(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """llama.cpp takes `n` up to its slots and answers a 400 above (seen with -np 2)."""

    def capped(request: ChatRequest) -> Completion:
        if request.n > 2:
            raise CallFailed(
                "the endpoint rejected the request (400): Field 'n': Value must be between "
                "1 <= value <= 2, but got 5",
                Usage(requests=1),
            )
        return one_choice(request)

    transport = MockTransport(capped)
    results = label(
        redis_url, transport, ConfidenceConfig.parse("consistency:5"), records=RECORDS[:1]
    )
    assert [(r.n, r.seed) for r in transport.requests] == [(5, None)] + [(1, i) for i in range(5)]
    result = results["s0"]
    assert result.status == "labeled" and result.confidence == pytest.approx(0.6)
    assert result.usage.requests == 6  # the refused call counts: the endpoint received it
    assert refuses_n("the endpoint rejected the request (400): Invalid 'n': above maximum")
    assert not refuses_n("the endpoint rejected the request (400): 'model' is not served")


def test_the_budget_holds_n_answers_of_max_tokens(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # What the budget reserves for the prompt is prelabel's estimate of it: read it.
    probe = MockTransport(sampled)
    label(redis_url, probe, ConfidenceConfig(), records=RECORDS[:1], run_id=RUN + "-probe")
    prompt = probe.requests[0].prompt_tokens
    # Room for one answer of 100 tokens, not for five.
    budget = prompt + 3 * 100
    plain = MockTransport(sampled)
    label(
        redis_url,
        plain,
        ConfidenceConfig(),
        records=RECORDS[:1],
        run_id=RUN + "-one",
        max_tokens=100,
        budget_tokens=budget,
    )
    assert len(plain.requests) == 1
    five = MockTransport(sampled)
    with pytest.raises(BudgetReached):
        label(
            redis_url,
            five,
            ConfidenceConfig.parse("consistency:5"),
            records=RECORDS[:1],
            run_id=RUN + "-five",
            max_tokens=100,
            budget_tokens=budget,
        )
    assert five.requests == []


def verifying(rejected: set[str]) -> Any:
    """Answers labeling requests with MENTIONS, and verifications with "no" for the
    proposals whose text is in `rejected` (with log-probabilities)."""

    def handler(request: ChatRequest) -> Completion:
        if not verification.is_verification(
            request.messages, {"response_format": request.response_format}
        ):
            ids = request.item_ids
            lines = {str(n): MENTIONS for n in range(1, len(ids) + 1)}
            content = json.dumps(MENTIONS if len(ids) == 1 else lines)
            return Completion(content, 10, 6, False, "stop")
        question = verification.read_question(request.messages)
        right = tuple(p.text not in rejected for p in question.proposals)
        content = verification.answer(verification.Verdicts(right, False))
        pieces: list[TokenLogprob] = []
        at = 0
        for key, word in [(str(n), "yes" if r else "no") for n, r in enumerate(right, 1)] + [
            ("missing", "no")
        ]:
            start = content.index(f'"{key}":"', at) + len(f'"{key}":"')
            pieces.append(TokenLogprob(content[at:start], 0.0))
            other = "no" if word == "yes" else "yes"
            pieces.append(
                TokenLogprob(word, math.log(0.9), ((word, math.log(0.9)), (other, math.log(0.1))))
            )
            at = start + len(word)
        pieces.append(TokenLogprob(content[at:], 0.0))
        given = tuple(pieces) if request.logprobs is not None else None  # only when asked
        return Completion(content, 40, 5, False, "stop", choices=(Choice(content, "stop", given),))

    return handler


def test_verify_asks_one_short_question_per_item_and_may_drop_what_it_rejects(
    redis_url: str, redis_client: redis.Redis
) -> None:
    transport = MockTransport(verifying({"Paris"}))
    method = ConfidenceConfig(method="verify", drop_rejected=True)
    results = label(redis_url, transport, method, records=RECORDS[:2], batch_size=2)
    questions = [r for r in transport.requests if r.max_tokens is not None]
    assert len(transport.requests) == 3 and len(questions) == 2
    assert all(
        q.max_tokens == VERIFY_BASE_TOKENS + VERIFY_TOKENS_PER_PROPOSAL * 2 and q.logprobs == 5
        for q in questions
    )
    for result in results.values():
        assert [(e.type, e.text) for e in result.entities] == [("PER", "Peter Blackburn")]
        assert [(s.label, s.text, s.kept, s.start) for s in result.scores] == [
            ("PER", "Peter Blackburn", True, 0),
            ("LOC", "Paris", False, 24),
        ]
        assert [s.confidence for s in result.scores] == pytest.approx([0.9, 0.1])
        assert result.confidence == pytest.approx(0.1)
    # Each item: its share of the batch's call (one request for the first) and its question.
    assert sum(r.usage.requests for r in results.values()) == 3
    kept = label(
        redis_url,
        MockTransport(verifying({"Paris"})),
        ConfidenceConfig(method="verify"),
        records=RECORDS[:1],
        run_id=RUN + "-kept",
    )["s0"]
    assert [e.text for e in kept.entities] == ["Peter Blackburn", "Paris"]
    assert [s.kept for s in kept.scores] == [True, True]


def test_a_reasoning_models_verification_asks_no_logprobs_and_keeps_room_to_think(
    redis_url: str, redis_client: redis.Redis
) -> None:
    transport = MockTransport(verifying(set()))
    result = label(
        redis_url,
        transport,
        ConfidenceConfig(method="verify"),
        records=RECORDS[:1],
        model="o4-mini",
    )["s0"]
    (question,) = [
        r
        for r in transport.requests
        if r.response_format and "prelabel_verification" in json.dumps(r.response_format)
    ]
    assert (question.logprobs, question.max_tokens) == (None, None)
    # No log-probabilities read: yes is 1.0.
    assert [s.confidence for s in result.scores] == [1.0, 1.0] and result.confidence == 1.0


def test_a_verification_that_cannot_be_read_leaves_the_item_labeled_unmeasured(
    redis_url: str, redis_client: redis.Redis
) -> None:
    def garbled(request: ChatRequest) -> Completion:
        if request.max_tokens is None:
            return Completion(json.dumps(MENTIONS), 10, 6, False, "stop")
        return Completion("I think so", 40, 3, False, "stop")

    result = label(
        redis_url, MockTransport(garbled), ConfidenceConfig(method="verify"), records=RECORDS[:1]
    )["s0"]
    assert result.status == "labeled" and result.confidence is None and result.scores == ()
    assert result.usage.requests == 2


# --- classification ---------------------------------------------------------------------------

NEWS = LabelSet(labels=tuple(Label(name=n, tag=n) for n in ("World", "Sports", "Business")))
TEXTS = [
    ClassifyRecord(id="c1", text="Phelps wins again", gold=("Sports",)),
    ClassifyRecord(id="c2", text="Talks resume in Geneva", gold=("World",)),
]


def classify(
    redis_url: str, transport: MockTransport, confidence: ConfidenceConfig, task: str, **more: Any
) -> dict[str, ClassifyResult]:
    async def main() -> dict[str, ClassifyResult]:
        client = redis.asyncio.Redis.from_url(redis_url)
        cfg = RunConfig(
            run_id=RUN + "-" + task,
            model="gpt-4o-mini",
            base_url=BASE_URL,
            task=task,
            labels=NEWS,
            prompt_version="classify-v1",
            confidence=confidence,
            cache=False,
            **more,
        )
        store = RunStore(redis.Redis.from_url(redis_url))
        try:
            await ShardLabeler(load_settings(), cfg, transport, client, store).label(TEXTS)
            raw = await client.hgetall(RunKeys(cfg.run_id).results)
            return {k.decode(): ClassifyResult.model_validate_json(v) for k, v in raw.items()}
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_logprobs_measure_each_text_of_a_batch_on_its_own_line(
    redis_url: str, redis_client: redis.Redis
) -> None:
    pieces = [
        ('{"1": {"label": "', 1.0),
        ("Sports", 0.9),
        ('"}, "2": {"label": "', 0.98),
        ("World", 0.6),
        ('"}}', 1.0),
    ]

    def answer(request: ChatRequest) -> Completion:
        content = "".join(t for t, _ in pieces)
        return Completion(
            content, 10, 9, False, "stop", choices=(Choice(content, "stop", tokens_of(pieces)),)
        )

    results = classify(
        redis_url,
        MockTransport(answer),
        ConfidenceConfig(method="logprobs"),
        "classify",
        batch_size=2,
    )
    assert results["c1"].labels == ("Sports",) and results["c2"].labels == ("World",)
    # Sports: '{"1": {"label": "' 1.0 x Sports 0.9 x '"}, "2"...' 0.98 (its closing quote).
    assert [(s.label, s.confidence) for s in results["c1"].scores] == [
        ("Sports", pytest.approx(0.9 * 0.98))
    ]
    assert results["c1"].confidence == pytest.approx(0.9 * 0.98)
    assert results["c2"].confidence == pytest.approx(0.98 * 0.6)


def test_multi_label_consistency_keeps_the_labels_most_samples_give(
    redis_url: str, redis_client: redis.Redis
) -> None:
    samples = [["Sports", "Business"], ["Sports"], ["Sports", "Business"], ["World"]]

    def answer(request: ChatRequest) -> Completion:
        choices = tuple(Choice(json.dumps({"labels": s}), "stop") for s in samples[: request.n])
        return Completion(choices[0].content, 10, 20, False, "stop", choices=choices)

    results = classify(
        redis_url, MockTransport(answer), ConfidenceConfig.parse("consistency:4"), "classify-multi"
    )
    result = results["c1"]
    # Sports in 3 of 4 (kept); Business in 2 of 4 (not more than half); World in 1.
    assert result.labels == ("Sports",)
    assert [(s.label, s.confidence) for s in result.scores] == [("Sports", 0.75)]
    assert result.confidence == pytest.approx(0.5)


def test_single_label_verification_asks_nothing_missing_and_cannot_drop_the_only_label(
    redis_url: str, redis_client: redis.Redis
) -> None:
    asked: list[verification.Question] = []

    def answer(request: ChatRequest) -> Completion:
        if request.max_tokens is None:
            return Completion(json.dumps({"label": "Sports"}), 10, 5, False, "stop")
        asked.append(verification.read_question(request.messages))
        return Completion(json.dumps({"1": "no"}), 30, 4, False, "stop")

    method = ConfidenceConfig(method="verify", drop_rejected=True)
    results = classify(redis_url, MockTransport(answer), method, "classify")
    assert [q.asks_missing for q in asked] == [False, False]
    assert [q.proposals for q in asked] == [(verification.Proposal("Sports"),)] * 2
    for result in results.values():
        assert result.labels == ("Sports",)
        assert [(s.label, s.confidence, s.kept) for s in result.scores] == [("Sports", 0.0, True)]
        assert result.confidence == 0.0


class RecordingBudget:
    """A budget that records what each call reserves and settles."""

    def __init__(self) -> None:
        self.reserved: list[tuple[int, int]] = []
        self.settled: list[tuple[int, int, int, int]] = []

    async def reserve(self, prompt_tokens: int, max_tokens: int) -> None:
        self.reserved.append((prompt_tokens, max_tokens))

    async def settle(
        self, prompt: int, most: int, used_prompt: int, used_completion: int, used_cached: int = 0
    ) -> None:
        self.settled.append((prompt, most, used_prompt, used_completion))


def test_the_budget_reserves_n_answers_of_the_requests_own_max_tokens(redis_url: str) -> None:
    from workers.cache import ResponseCache
    from workers.calls import GuardedCaller
    from workers.results import ResultSink

    async def main() -> RecordingBudget:
        client = redis.asyncio.Redis.from_url(redis_url)
        cfg = RunConfig(run_id=RUN, model="gpt-4o-mini", base_url=BASE_URL, max_tokens=300)
        budget = RecordingBudget()
        caller = GuardedCaller(
            MockTransport(sampled),
            ResponseCache(client, 60, enabled=False),
            budget,  # type: ignore[arg-type]
            ResultSink(client, RUN),
            cfg,
        )
        ask = ChatRequest([{"role": "user", "content": "x"}], None, 50, ("s0",))
        await caller.complete(ask)
        await caller.complete(dataclasses.replace(ask, n=3))
        await caller.complete(dataclasses.replace(ask, max_tokens=20))
        await caller.complete(dataclasses.replace(ask, n=2, max_tokens=20))
        await client.aclose()
        return budget

    budget = asyncio.run(main())
    assert budget.reserved == [(50, 300), (50, 900), (50, 20), (50, 40)]
    assert [s[1] for s in budget.settled] == [300, 900, 20, 40]
