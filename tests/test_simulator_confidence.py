"""What the simulator gives `--confidence`: `n` seeded samples, made-up token
log-probabilities in the API's shape, and verification questions answered from gold."""

from __future__ import annotations

import io
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionTokenLogprob

from prelabel.model import ITEM_IDS_HEADER, Endpoint, Label, LabelSet
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.logprobs import HIGH, JITTER, LOW, marks, pieces, token_logprobs
from simulator.oracle import answer_text
from simulator.server import RunningSimulator
from task_types import verification
from task_types.classify.model import ClassifyRecord
from task_types.ner.model import CONLL_TYPES, NerRecord, Ontology
from task_types.verification import Proposal
from workers.transports.base import ChatRequest
from workers.transports.chat import chat_body, read_answer

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "Label the named entities of the sentence. Answer with JSON only."
RECORDS = [
    NerRecord.from_tokens(
        "eu",
        ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    ),
    NerRecord.from_tokens(
        "zh",
        ["Meet", "me", "in", "Zürich", "or", "東京", "."],
        ["O", "O", "O", "B-LOC", "O", "B-LOC", "O"],
    ),
    NerRecord.from_tokens("pb", ["Peter", "Blackburn"], ["B-PER", "I-PER"]),
]
NAMES = LabelSet(labels=tuple(Label(name=n, tag=n) for n in ("World", "Sports", "Business")))
NEWS = [
    ClassifyRecord(id=f"n{i}", text=f"Headline number {i} of the day", gold=(tag,))
    for i, tag in enumerate(["World", "Sports", "Business"] * 4)
]
#: The label names a run asks NER with (the oracle maps them to CoNLL tags).
ONTOLOGY = Ontology(labels=CONLL_TYPES)


def _client(sim: RunningSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0), Oracle(RECORDS)) as running:
        yield running


def _ask(sim: RunningSimulator, text: str, **params: Any) -> ChatCompletion:
    with _client(sim) as client:
        return client.chat.completions.create(
            model=params.pop("model", "gpt-4o-mini"),
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            **params,
        )


def _tokens(completion: ChatCompletion, index: int = 0) -> list[ChatCompletionTokenLogprob]:
    logprobs = completion.choices[index].logprobs
    assert logprobs is not None and logprobs.content is not None
    return logprobs.content


def _probability(tokens: Sequence[ChatCompletionTokenLogprob], content: str, part: str) -> float:
    """The product of the probabilities of the tokens overlapping `part` (quoted) in
    `content`, as `--confidence logprobs` reads a value."""
    start = content.index(json.dumps(part, ensure_ascii=False))
    end = start + len(json.dumps(part, ensure_ascii=False))
    p, at = 1.0, 0
    for token in tokens:
        if at < end and start < at + len(token.token):
            p *= math.exp(token.logprob)
        at += len(token.token)
    return p


# --- the API's shape -------------------------------------------------------------------


def test_logprobs_come_in_the_apis_shape_and_spell_the_content(sim: RunningSimulator) -> None:
    reply = _ask(sim, RECORDS[1].text, logprobs=True, top_logprobs=5)
    content = reply.choices[0].message.content
    assert content is not None
    tokens = _tokens(reply)
    assert "".join(t.token for t in tokens) == content
    assert "東京" in content and "Zürich" in content
    for token in tokens:
        assert token.bytes == list(token.token.encode("utf-8"))
        assert len(token.top_logprobs) == 5
        assert len({alt.token for alt in token.top_logprobs}) == 5
        assert token.token in [alt.token for alt in token.top_logprobs]
        assert [a.logprob for a in token.top_logprobs] == sorted(
            (a.logprob for a in token.top_logprobs), reverse=True
        )
        # Noise 0: every token is one a sure model would choose.
        assert token.logprob > math.log(HIGH - JITTER - 1e-9)
    assert reply.choices[0].logprobs is not None
    assert reply.choices[0].logprobs.refusal is None


def test_top_logprobs_gives_as_many_alternatives_as_asked(sim: RunningSimulator) -> None:
    assert all(not t.top_logprobs for t in _tokens(_ask(sim, RECORDS[0].text, logprobs=True)))
    for top in (0, 1, 20):
        tokens = _tokens(_ask(sim, RECORDS[0].text, logprobs=True, top_logprobs=top))
        assert {len(t.top_logprobs) for t in tokens} == {top}
    assert _ask(sim, RECORDS[0].text).choices[0].logprobs is None


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 0}, "n"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_values_openai_refuses_get_a_400(
    sim: RunningSimulator, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(sim, RECORDS[0].text, **params)
    assert caught.value.param == param


def test_reasoning_models_refuse_logprobs(sim: RunningSimulator) -> None:
    with pytest.raises(openai.BadRequestError, match="'logprobs' is not supported") as caught:
        _ask(sim, RECORDS[0].text, model="o4-mini", logprobs=True)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "logprobs"
    assert _ask(sim, RECORDS[0].text, model="gpt-5-chat-latest", logprobs=True).choices


# --- the made-up probabilities -----------------------------------------------------------


@given(st.text())
def test_pieces_spell_any_text_and_each_decodes_cleanly(text: str) -> None:
    parts = list(pieces(text))
    assert "".join(t for _, t in parts) == text
    assert [at for at, _ in parts] == [sum(len(t) for _, t in parts[:i]) for i in range(len(parts))]


@pytest.mark.parametrize(
    ("answer", "gold", "doubtful"),
    [
        ({"label": "Sports"}, {"label": "Sports"}, []),
        ({"label": "World"}, {"label": "Sports"}, ['"World"']),
        # Dropped: the `]` that closed PER's list early.
        ({"LOC": ["Paris"], "PER": []}, {"LOC": ["Paris"], "PER": ["Smith"]}, ["]"]),
        # Relabeled: the mention where it does not belong, and the list it left.
        ({"LOC": ["Smith"], "PER": []}, {"LOC": [], "PER": ["Smith"]}, ['"Smith"', "]"]),
        # A repeated gold value is right as often as gold holds it.
        ({"LOC": ["A", "A"]}, {"LOC": ["A"]}, ['"A"']),
        ({"1": {"labels": ["x"]}, "2": {"labels": []}}, {"1": {"labels": ["x"]}}, []),
        # Compact answers (ner-v3) leave out the types without mentions: a dropped type's
        # mentions make the `}` that closed the object early doubtful...
        ({"LOC": ["Paris"]}, {"LOC": ["Paris"], "PER": ["Smith"]}, ["}"]),
        ({}, {"PER": ["Smith"]}, ["}"]),
        # ...a mention under a type gold lacks is doubtful, and so is the `}`.
        ({"LOC": ["Smith"]}, {"PER": ["Smith"]}, ['"Smith"', "}"]),
        ({"1": {}, "2": {"LOC": ["A"]}}, {"1": {"PER": ["B"]}, "2": {"LOC": ["A"]}}, ["}"]),
        ({"1": {}, "2": {}}, {"1": {}}, []),
    ],
)
def test_marks_spell_json_and_find_what_noise_changed(
    answer: Any, gold: Any, doubtful: list[str]
) -> None:
    text, spans = marks(answer, gold)
    assert text == answer_text(answer)
    assert [text[s:e] for s, e in spans] == doubtful


def test_a_relabeled_mention_is_doubtful_and_the_rest_sure() -> None:
    content = answer_text({"LOC": ["Smith", "Paris"], "PER": []})
    tokens = token_logprobs(content, marks(*_relabeled())[1], 3, seed=0)
    p = {t["token"]: math.exp(t["logprob"]) for t in tokens}
    assert p["Smith"] == pytest.approx(LOW, abs=JITTER)
    assert p["Paris"] == pytest.approx(HIGH, abs=JITTER)
    assert token_logprobs(content, [], 3, seed=0) == token_logprobs(content, [], 3, seed=0)
    assert token_logprobs(content, [], 3, seed=0) != token_logprobs(content, [], 3, seed=1)


def _relabeled() -> tuple[Any, Any]:
    return {"LOC": ["Smith", "Paris"], "PER": []}, {"LOC": ["Paris"], "PER": ["Smith"]}


def test_noise_makes_the_values_it_corrupted_unlikely() -> None:
    oracle = Oracle(NEWS, NAMES, noise=0.5, seed=3, task="classify")
    config = SimulatorConfig(port=0)
    wrong = right = 0
    with serve_in_thread(config, oracle) as running:
        for record in NEWS:
            reply = _ask(running, record.text, logprobs=True, top_logprobs=2)
            content = reply.choices[0].message.content
            assert content is not None
            label = json.loads(content)["label"]
            p = _probability(_tokens(reply), content, label)
            if label == record.gold[0]:
                right += 1
                assert p > (HIGH - JITTER) ** 3
            else:
                wrong += 1
                assert p < LOW + JITTER
    assert wrong and right  # both kinds were seen


# --- n, seed, and servers that give neither -------------------------------------------


def test_n_gives_as_many_draws_each_seeded_by_the_request() -> None:
    oracle = Oracle(NEWS, NAMES, noise=0.5, seed=1, task="classify")
    text = NEWS[0].text
    with serve_in_thread(SimulatorConfig(port=0), oracle) as running:
        one = _ask(running, text)
        many = _ask(running, text, n=12, temperature=0, logprobs=True)
        again = _ask(running, text, n=12, temperature=0, logprobs=True)
        seeded = _ask(running, text, n=12, seed=7)
        assert (running.stats.requests, running.stats.choices) == (4, 37)
        assert running.stats.sentences == 4  # a text is one sentence whatever `n`
    contents = [c.message.content for c in many.choices]
    assert [c.index for c in many.choices] == list(range(12))
    assert contents[0] == one.choices[0].message.content  # the first is the plain answer
    assert len(set(contents)) > 1  # independent draws of the noise
    assert [c.message.content for c in again.choices] == contents
    assert [c.message.content for c in seeded.choices] != contents
    assert all(c.logprobs is not None for c in many.choices)
    assert many.usage is not None and one.usage is not None
    assert many.usage.completion_tokens == sum(
        len(_tokens(many, i)) for i in range(12)
    )  # every choice's tokens count
    assert many.usage.prompt_tokens == one.usage.prompt_tokens


def test_without_noise_every_sample_agrees(sim: RunningSimulator) -> None:
    reply = _ask(sim, RECORDS[0].text, n=4)
    assert len({c.message.content for c in reply.choices}) == 1
    assert reply.usage is not None and reply.usage.completion_tokens == 4 * len(
        list(pieces(reply.choices[0].message.content or ""))
    )


def test_the_tpm_cap_charges_n_answers_of_max_tokens() -> None:
    # The bucket holds a second of a 60000 TPM cap: 1000 tokens. Two requests of a prompt
    # and 300 tokens fit; one asking for 5 x 300 empties it, and the next must wait.
    config = SimulatorConfig(port=0, tpm=60_000)
    with serve_in_thread(config, Oracle(RECORDS)) as running:
        for _ in range(2):
            _ask(running, RECORDS[0].text, max_tokens=300)
    with serve_in_thread(config, Oracle(RECORDS)) as running:
        assert len(_ask(running, RECORDS[0].text, n=5, max_tokens=300).choices) == 5
        with pytest.raises(openai.RateLimitError, match="Requested"):
            _ask(running, RECORDS[0].text, max_tokens=300)


def test_ignore_n_and_no_logprobs_play_servers_without_them() -> None:
    config = SimulatorConfig(port=0, ignore_n=True, no_logprobs=True)
    with serve_in_thread(config, Oracle(RECORDS)) as running:
        reply = _ask(running, RECORDS[0].text, n=5, logprobs=True, top_logprobs=3)
    assert len(reply.choices) == 1
    assert reply.choices[0].logprobs is None


# --- verification ---------------------------------------------------------------------


def _verify(
    sim: RunningSimulator,
    text: str,
    proposals: Sequence[Proposal],
    labels: LabelSet,
    item_id: str | None = None,
    **params: Any,
) -> ChatCompletion:
    messages: Any = verification.messages(
        text, proposals, labels, asks_missing=True, noun="entities"
    )
    headers = {ITEM_IDS_HEADER: json.dumps([item_id])} if item_id else None
    with _client(sim) as client:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            response_format=verification.response_format(  # type: ignore[arg-type]
                len(proposals), asks_missing=True
            ),
            extra_headers=headers,
            **params,
        )


PROPOSED = (
    Proposal("ORGANIZATION", "EU"),  # right
    Proposal("PERSON", "German"),  # wrong: gold says MISCELLANEOUS
)


def test_verification_answers_from_gold(sim: RunningSimulator) -> None:
    reply = _verify(sim, RECORDS[0].text, PROPOSED, ONTOLOGY, "eu", logprobs=True, top_logprobs=2)
    content = reply.choices[0].message.content
    assert content is not None
    verdicts = verification.read_answer(content, 2, asks_missing=True)
    # "British" (MISCELLANEOUS) and "German" as MISCELLANEOUS are not proposed.
    assert verdicts == verification.Verdicts((True, False), missing=True)
    for token in _tokens(reply):
        if token.token.strip(' "') in ("yes", "no"):
            assert math.exp(token.logprob) > HIGH - JITTER - 1e-9
            other = "no" if "yes" in token.token else "yes"
            assert other in token.top_logprobs[1].token
    everything = (*PROPOSED[:1], Proposal("MISCELLANEOUS", "German"))
    everything += (Proposal("MISCELLANEOUS", "British"),)
    content = _verify(sim, RECORDS[0].text, everything, ONTOLOGY).choices[0].message.content
    assert content is not None
    assert verification.read_answer(content, 3, asks_missing=True) == verification.Verdicts(
        (True, True, True), missing=False
    )


def test_noise_flips_verdicts_and_makes_them_unlikely() -> None:
    with serve_in_thread(SimulatorConfig(port=0), Oracle(RECORDS, noise=1.0)) as running:
        reply = _verify(running, RECORDS[0].text, PROPOSED, ONTOLOGY, logprobs=True, top_logprobs=2)
        assert (running.stats.verifications, running.stats.sentences) == (1, 0)
    content = reply.choices[0].message.content
    assert content is not None
    verdicts = verification.read_answer(content, 2, asks_missing=True)
    assert verdicts == verification.Verdicts((False, True), missing=False)
    words = [t for t in _tokens(reply) if t.token.strip(' "') in ("yes", "no")]
    assert len(words) == 3
    for token in words:
        assert math.exp(token.logprob) < LOW + JITTER
        # The word it nearly said is the likelier one.
        assert token.top_logprobs[0].token != token.token


def test_verification_of_classification_labels() -> None:
    labels = LabelSet(labels=tuple(Label(name=n.title(), tag=n) for n in ("joy", "love", "anger")))
    records = [ClassifyRecord(id="g", text="best day  ever", gold=("joy", "love"))]
    oracle = Oracle(records, labels, task="classify-multi")
    with serve_in_thread(SimulatorConfig(port=0), oracle) as running:
        # Known by its text whitespace aside, without an item id.
        reply = _verify(running, "best day ever", [Proposal("Joy"), Proposal("Anger")], labels)
    content = reply.choices[0].message.content
    assert content is not None
    assert verification.read_answer(content, 2, asks_missing=True) == verification.Verdicts(
        (True, False), missing=True
    )


# --- the Batch API --------------------------------------------------------------------


def test_batch_lines_get_samples_and_logprobs() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": RECORDS[2].text}],
        "n": 2,
        "logprobs": True,
        "top_logprobs": 1,
    }
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": body}
    config = SimulatorConfig(port=0, batch_seconds=0.2)
    with serve_in_thread(config, Oracle(RECORDS)) as running, _client(running) as client:
        uploaded = client.files.create(
            file=("in.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.05)
            batch = client.batches.retrieve(batch.id)
        assert batch.output_file_id is not None
        output = json.loads(client.files.content(batch.output_file_id).text)
    completion = ChatCompletion.model_validate(output["response"]["body"])
    assert len(completion.choices) == 2
    for i, choice in enumerate(completion.choices):
        assert "Peter Blackburn" in (choice.message.content or "")
        assert "".join(t.token for t in _tokens(completion, i)) == choice.message.content


def test_prelabel_simulate_takes_the_confidence_flags() -> None:
    command = [sys.executable, "-m", "prelabel", "simulate", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--ignore-n", "--no-logprobs"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().split()[3]
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=30) as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Anything"}],
                n=3,
                logprobs=True,
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert len(reply.choices) == 1
    assert reply.choices[0].logprobs is None


def test_what_prelabel_sends_it_reads_back_with_every_choice(sim: RunningSimulator) -> None:
    """The seam with the workers: `chat_body` asks, `read_answer` reads every choice's
    content and token log-probabilities."""
    endpoint = Endpoint(model="gpt-4o-mini", base_url=sim.base_url)
    request = ChatRequest(
        messages=[{"role": "user", "content": RECORDS[2].text}],
        response_format=None,
        prompt_tokens=10,
        item_ids=("pb",),
        logprobs=3,
        n=2,
        temperature=1.0,
        seed=5,
    )
    body = chat_body(endpoint, request)
    with _client(sim) as client:
        raw = client.post(
            "/chat/completions",
            body=body,
            cast_to=httpx.Response,
            options={"headers": request.item_headers()},
        )
    answer = read_answer(raw.json())
    assert len(answer.choices) == 2
    for choice in answer.choices:
        assert json.loads(choice.content)["PERSON"] == ["Peter Blackburn"]
        assert choice.logprobs is not None
        assert "".join(t.token for t in choice.logprobs) == choice.content
        assert all(len(t.top) == 3 for t in choice.logprobs)
