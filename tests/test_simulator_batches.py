"""The simulator's Files and Batch API, through the real `openai` client over HTTP.

Phases last fractions of a second and the tests poll; no test asserts how long anything
took. Partial output (expiry, cancel) is checked by its accounting, which holds whatever the
timing: every line is in exactly one file, and the counts say so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import Batch

from prelabel.errors import ConfigError
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.batches import EXPIRED_MESSAGE, FINAL, custom_id, custom_id_items
from simulator.limits import count_prompt_tokens
from simulator.server import RunningSimulator
from task_types.ner.model import CONLL_TYPES, NerRecord, Ontology
from tests.test_simulator import GOLD, RECORDS, SYSTEM

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
#: Generous: a safety net against a hang, never a claim about speed.
POLL_DEADLINE = 60.0


def _messages(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _line(cid: str, user: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": _messages(user), **body},
    }


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _client(sim: RunningSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="anything", max_retries=0, timeout=30)


def _submit(client: openai.OpenAI, data: bytes, **metadata: str) -> Batch:
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=metadata or None,
    )


def _wait(client: openai.OpenAI, batch_id: str, until: frozenset[str] = FINAL) -> Batch:
    deadline = time.monotonic() + POLL_DEADLINE
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.02)


def _lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def _stats(sim: RunningSimulator) -> dict[str, Any]:
    with urllib.request.urlopen(sim.base_url.removesuffix("/v1") + "/stats") as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def _many(n: int) -> list[dict[str, Any]]:
    texts = list(GOLD)
    return [_line(f"req-{i}", texts[i % len(texts)]) for i in range(n)]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(port=0, batch_seconds=0.3)
    with serve_in_thread(config, Oracle(RECORDS)) as running:
        yield running


# --- the custom_id convention -----------------------------------------------------------


def test_custom_id_round_trips_any_ids() -> None:
    ids = ["s000001", "a,b", "c:d", "50%", "é t"]
    made = custom_id("run:1", 7, ids)
    assert made.count(":") == 2
    assert custom_id_items(made) == ids
    assert custom_id_items(custom_id("run", "3.r1", ["x"])) == ["x"]


@pytest.mark.parametrize("other", ["request-1", "", "a:b", "a:b:", "a:b:c:d"])
def test_custom_id_of_another_form_names_no_items(other: str) -> None:
    assert custom_id_items(other) == []


# --- the lifecycle ----------------------------------------------------------------------


def test_batch_completes_and_answers_as_the_chat_endpoint(sim: RunningSimulator) -> None:
    texts = list(GOLD)
    numbered = "\n".join(f"{i}: {t}" for i, t in enumerate(texts, 1))
    lines = [_line(f"one-{i}", t) for i, t in enumerate(texts)]
    lines.append(_line("numbered", numbered))
    lines.append(_line("cut", texts[2], max_tokens=5))
    before = _stats(sim)
    with _client(sim) as client:
        created = _submit(client, _jsonl(lines), run="r1", shard="0")
        assert (created.object, created.status) == ("batch", "validating")
        assert created.id.startswith("batch_")
        assert created.model == MODEL
        assert created.metadata == {"run": "r1", "shard": "0"}
        assert created.expires_at == created.created_at + 24 * 3600
        done = _wait(client, created.id)
        output = _lines(client, done.output_file_id)
        realtime = {
            line["custom_id"]: client.chat.completions.create(**line["body"]) for line in lines
        }
        output_file = client.files.retrieve(done.output_file_id or "")
    assert done.status == "completed"
    assert done.error_file_id is None and done.errors is None
    assert done.request_counts is not None
    assert done.request_counts.model_dump() == {"total": 6, "completed": 6, "failed": 0}
    assert done.in_progress_at is not None and done.finalizing_at is not None
    assert done.completed_at is not None
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert output_file.purpose == "batch_output"
    assert [line["custom_id"] for line in output] == [line["custom_id"] for line in lines]
    usage = {"input": 0, "output": 0}
    for line in output:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"]
        body = response["body"]
        assert body["object"] == "chat.completion"
        expected = realtime[line["custom_id"]]
        assert body["choices"][0]["message"]["content"] == expected.choices[0].message.content
        assert body["choices"][0]["finish_reason"] == expected.choices[0].finish_reason
        assert expected.usage is not None
        assert body["usage"] == expected.usage.model_dump(exclude_none=True)
        usage["input"] += body["usage"]["prompt_tokens"]
        usage["output"] += body["usage"]["completion_tokens"]
    by_id = {line["custom_id"]: line["response"]["body"] for line in output}
    assert json.loads(by_id["one-0"]["choices"][0]["message"]["content"]) == GOLD[texts[0]]
    assert by_id["cut"]["choices"][0]["finish_reason"] == "length"
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (usage["input"], usage["output"])
    after = _stats(sim)
    assert after["files_uploaded"] - before["files_uploaded"] == 1
    assert after["batches_created"] - before["batches_created"] == 1
    assert after["batch_retrieves"] - before["batch_retrieves"] >= 1
    assert after["file_downloads"] - before["file_downloads"] == 1
    assert after["batch_lines"] - before["batch_lines"] == 6
    # The realtime requests were counted as such; the batch lines were not.
    assert after["requests"] - before["requests"] == 6


def test_files_upload_retrieve_download_delete(sim: RunningSimulator) -> None:
    data = b'{"not": "checked"}\nanything at all\n'
    with _client(sim) as client:
        uploaded = client.files.create(file=("mine.jsonl", data), purpose="batch")
        again = client.files.retrieve(uploaded.id)
        content = client.files.content(uploaded.id).read()
        listed = [f.id for f in client.files.list(purpose="batch")]
        deleted = client.files.delete(uploaded.id)
        with pytest.raises(openai.NotFoundError) as missing:
            client.files.retrieve(uploaded.id)
    assert uploaded.id.startswith("file-")
    assert (uploaded.object, uploaded.purpose, uploaded.filename) == ("file", "batch", "mine.jsonl")
    assert uploaded.bytes == len(data)
    assert uploaded.expires_at == uploaded.created_at + 30 * 24 * 3600
    assert again == uploaded
    assert content == data
    assert uploaded.id in listed
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    assert missing.value.status_code == 404


def test_list_is_newest_first_with_an_after_cursor(sim: RunningSimulator) -> None:
    with _client(sim) as client:
        made = [_submit(client, _jsonl(_many(1)), n=str(i)).id for i in range(5)]
        first = client.batches.list(limit=2)
        second = client.batches.list(limit=2, after=first.data[-1].id)
        everything = [b.id for b in client.batches.list(limit=2)]  # auto-paging
        with pytest.raises(openai.BadRequestError):
            client.batches.list(limit=0)
    newest = made[::-1]
    assert [b.id for b in first.data] == newest[:2]
    assert first.has_more is True
    assert [b.id for b in second.data] == newest[2:4]
    assert everything[:5] == newest
    assert len(everything) == len(set(everything))


def test_cancel_keeps_the_lines_answered_so_far() -> None:
    config = SimulatorConfig(
        port=0,
        batch_seconds=60,
        batch_validating_seconds=0,
        batch_finalizing_seconds=0,
        batch_cancel_seconds=0.1,
    )
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _client(sim) as client:
        created = _submit(client, _jsonl(_many(200)))
        started = _wait(client, created.id, until=frozenset({"in_progress"}))
        while started.request_counts is None or started.request_counts.completed == 0:
            started = _wait(client, created.id, until=frozenset({"in_progress"}))
        cancelling = client.batches.cancel(created.id)
        done = _wait(client, created.id)
        output = _lines(client, done.output_file_id)
        errors = _lines(client, done.error_file_id)
        with pytest.raises(openai.ConflictError):
            client.batches.cancel(created.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert done.status == "cancelled" and done.cancelled_at is not None
    counts = done.request_counts
    assert counts is not None
    assert 0 < counts.completed < counts.total == 200
    assert counts.completed + counts.failed == counts.total
    assert len(output) == counts.completed and len(errors) == counts.failed
    assert {line["custom_id"] for line in output + errors} == {f"req-{i}" for i in range(200)}
    for line in errors:
        assert line["response"] is None
        assert line["error"]["code"] == "batch_cancelled"


def test_expiry_keeps_the_lines_answered_in_time() -> None:
    config = SimulatorConfig(
        port=0,
        batch_seconds=100,
        batch_validating_seconds=0,
        batch_finalizing_seconds=0,
        batch_expire_seconds=1.0,
    )
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _client(sim) as client:
        created = _submit(client, _jsonl(_many(200)))
        done = _wait(client, created.id)
        output = _lines(client, done.output_file_id)
        errors = _lines(client, done.error_file_id)
    assert created.expires_at == created.created_at + 1
    assert done.status == "expired" and done.expired_at is not None
    assert done.completed_at is None and done.finalizing_at is None
    counts = done.request_counts
    assert counts is not None
    # One second of a 100-second run: line k of 200 is answered k/200 of the way, so lines
    # 0, 1 and 2, whenever the batch was read.
    assert (counts.total, counts.completed, counts.failed) == (200, 3, 197)
    assert [line["custom_id"] for line in output] == ["req-0", "req-1", "req-2"]
    assert len(errors) == 197
    for line in errors:
        assert line["response"] is None
        assert line["error"] == {"code": "batch_expired", "message": EXPIRED_MESSAGE}


def test_enqueued_token_limit_fails_a_batch_until_others_complete() -> None:
    lines = _many(4)
    tokens = sum(count_prompt_tokens(line["body"]["messages"]) for line in lines)
    config = SimulatorConfig(port=0, batch_seconds=0.5, batch_enqueued_tokens=tokens + 1)
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _client(sim) as client:
        first = _submit(client, _jsonl(lines))
        refused = _wait(client, _submit(client, _jsonl(lines)).id)
        other_model = [{**ln, "body": {**ln["body"], "model": "gpt-4o"}} for ln in lines]
        elsewhere = _submit(client, _jsonl(other_model))
        assert _wait(client, first.id).status == "completed"
        later = _wait(client, _submit(client, _jsonl(lines)).id)
        assert _wait(client, elsewhere.id).status == "completed"
    assert refused.status == "failed" and refused.failed_at is not None
    assert refused.errors is not None and refused.errors.object == "list"
    assert refused.errors.data is not None
    [error] = refused.errors.data
    assert error.model_dump() == {
        "code": "token_limit_exceeded",
        "message": f"Enqueued token limit reached for {MODEL} in organization "
        f"org-prelabel-simulator. Limit: {tokens + 1} enqueued tokens. Please try again once "
        "some in_progress batches have been completed.",
        "param": None,
        "line": None,
    }
    assert refused.output_file_id is None and refused.error_file_id is None
    assert later.status == "completed"


def test_validation_failures_name_each_line(sim: RunningSimulator) -> None:
    text = RECORDS[1].text
    no_messages = _line("d", text)
    del no_messages["body"]["messages"]
    lines = [
        json.dumps(_line("a", text)),
        "{not json",
        json.dumps(_line("a", text)),
        json.dumps({**_line("b", text), "url": "/v1/embeddings"}),
        json.dumps({**_line("c", text), "method": "GET"}),
        json.dumps(no_messages),
        json.dumps(_line("e", text) | {"body": {"model": "gpt-4o", "messages": _messages(text)}}),
    ]
    with _client(sim) as client:
        failed = _wait(client, _submit(client, "\n".join(lines).encode()).id)
        empty = _wait(client, _submit(client, b"\n\n").id)
    assert failed.status == "failed" and failed.failed_at is not None
    assert failed.in_progress_at is None
    assert failed.request_counts is not None and failed.request_counts.total == 0
    assert failed.errors is not None and failed.errors.data is not None
    found = [(e.code, e.line, e.param) for e in failed.errors.data]
    assert found == [
        ("invalid_json_line", 2, None),
        ("duplicate_custom_id", 3, "custom_id"),
        ("url_mismatch", 4, "url"),
        ("invalid_method", 5, "method"),
        ("missing_required_parameter", 6, "body.messages"),
        ("model_mismatch", 7, "body.model"),
    ]
    assert all(e.message for e in failed.errors.data)
    assert empty.errors is not None and empty.errors.data is not None
    assert [(e.code, e.line) for e in empty.errors.data] == [("empty_file", None)]


def test_failed_lines_go_to_the_error_file_with_their_status() -> None:
    config = SimulatorConfig(port=0, batch_seconds=0.2, batch_line_fail_rate=0.5, seed=4)
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _client(sim) as client:
        done = _wait(client, _submit(client, _jsonl(_many(40))).id)
        output = _lines(client, done.output_file_id)
        errors = _lines(client, done.error_file_id)
        # A parameter the model refuses gets the realtime endpoint's 400, line by line.
        refusing = [_line("r", RECORDS[1].text, max_tokens=5)]
        refusing[0]["body"]["model"] = "o4-mini"
        refused = _wait(client, _submit(client, _jsonl(refusing)).id)
        refused_lines = _lines(client, refused.error_file_id)
        assert _stats(sim)["faults"] == len(errors)
    counts = done.request_counts
    assert counts is not None
    assert 0 < counts.failed < 40
    assert (counts.total, counts.completed) == (40, 40 - counts.failed)
    assert (len(output), len(errors)) == (counts.completed, counts.failed)
    for line in errors:
        assert line["error"] is None
        assert line["response"]["status_code"] == 500
        assert line["response"]["body"]["error"]["type"] == "server_error"
    assert refused.status == "completed" and refused.output_file_id is None
    assert refused.request_counts is not None and refused.request_counts.failed == 1
    [line] = refused_lines
    assert line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["param"] == "max_tokens"


def test_line_failures_are_seeded() -> None:
    def failing(seed: int) -> list[str]:
        config = SimulatorConfig(port=0, batch_seconds=0.1, batch_line_fail_rate=0.3, seed=seed)
        with serve_in_thread(config, Oracle(RECORDS)) as sim, _client(sim) as client:
            done = _wait(client, _submit(client, _jsonl(_many(30))).id)
            return [line["custom_id"] for line in _lines(client, done.error_file_id)]

    assert failing(1) == failing(1)
    assert failing(1) != failing(2)


def test_custom_id_items_pick_the_gold_of_identical_sentences() -> None:
    first = NerRecord.from_tokens("a", ["CENTRAL", "DIVISION"], ["O", "O"])
    second = NerRecord.from_tokens("b", ["CENTRAL", "DIVISION"], ["B-MISC", "I-MISC"])
    oracle = Oracle([first, second], ontology=Ontology(labels=CONLL_TYPES))
    lines = [
        _line(custom_id("run", 0, ["b"]), first.text),
        _line(custom_id("run", 1, ["a"]), first.text),
        _line("plain", first.text),
    ]
    config = SimulatorConfig(port=0, batch_seconds=0.1)
    with serve_in_thread(config, oracle) as sim, _client(sim) as client:
        done = _wait(client, _submit(client, _jsonl(lines)).id)
        output = _lines(client, done.output_file_id)
    answers = [
        json.loads(line["response"]["body"]["choices"][0]["message"]["content"]) for line in output
    ]
    assert answers == [{"MISCELLANEOUS": ["CENTRAL DIVISION"]}, {}, {}]


def test_create_refuses_what_the_api_refuses(sim: RunningSimulator) -> None:
    with _client(sim) as client:
        with pytest.raises(openai.NotFoundError):
            client.batches.create(
                input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
            )
        tuning = client.files.create(file=("t.jsonl", b"{}\n"), purpose="fine-tune")
        with pytest.raises(openai.BadRequestError, match="purpose"):
            client.batches.create(
                input_file_id=tuning.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        batch_file = client.files.create(file=("b.jsonl", _jsonl(_many(1))), purpose="batch")
        with pytest.raises(openai.BadRequestError, match="endpoint"):
            client.batches.create(
                input_file_id=batch_file.id, endpoint="/v1/embeddings", completion_window="24h"
            )
        with pytest.raises(openai.BadRequestError, match="metadata"):
            client.batches.create(
                input_file_id=batch_file.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={str(i): "x" for i in range(17)},
            )
        with pytest.raises(openai.NotFoundError):
            client.batches.retrieve("batch_nope")
        with pytest.raises(openai.NotFoundError):
            client.files.content("file-nope")


def test_batch_routes_need_the_key_when_one_is_required() -> None:
    config = SimulatorConfig(port=0, require_key="sk-right-key-1234")
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _client(sim) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.files.create(file=("x.jsonl", b"{}"), purpose="batch")
        with pytest.raises(openai.AuthenticationError):
            wrong.batches.list()


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"batch_line_fail_rate": 1.5}, "--batch-line-fail-rate"),
        ({"batch_seconds": -1}, "--batch-seconds"),
        ({"batch_enqueued_tokens": 0}, "--batch-enqueued-tokens"),
        ({"batch_seconds": 1, "batch_validating_seconds": 0.95}, "--batch-validating-seconds"),
    ],
)
def test_config_rejects_bad_batch_values(kwargs: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        SimulatorConfig(**kwargs)


def test_prelabel_simulate_takes_the_batch_flags() -> None:
    flags = ["--batch-seconds", "30", "--batch-validating-seconds", "0"]
    flags += ["--batch-expire-seconds", "0.2", "--batch-enqueued-tokens", "1000000"]
    command = [sys.executable, "-m", "prelabel", "simulate", "--port", "0", *flags]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().split()[3]
        client = openai.OpenAI(base_url=base_url, api_key="anything", max_retries=0, timeout=30)
        with client:
            done = _wait(client, _submit(client, _jsonl(_many(3))).id)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert done.status == "expired"
    # Cut short 0.2 s into 30: only the first line, answered as the batch started, is done.
    assert done.request_counts is not None and done.request_counts.failed == 2
