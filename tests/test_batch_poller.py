"""The batch poller against real Redis and the simulator's Batch API, through the real
`openai` client: batches created as the batch transport creates them (lines named by
`prelabel.batches.custom_id`, a `BatchRecord` and a submission key written beside each), then
`poll_run` called directly, as the reconciler's thread calls it.

Batch phases last fractions of a second and the tests poll until a batch is final; no test
asserts how long anything took. The schedule (`next_poll_at`) is judged by the `now` a test
gives.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis

from prelabel.batches import BatchRecord, custom_id
from prelabel.counters import RunCounter
from prelabel.keys import RunKeys, batch_enqueued_key
from prelabel.model import Delivery, Endpoint, RunConfig
from prelabel.settings import Settings, load_settings
from prelabel.store import RunStore
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.limits import count_prompt_tokens
from simulator.server import RunningSimulator
from task_types.ner.model import NerRecord
from tests.test_simulator import GOLD, RECORDS, SYSTEM
from workers.batch_poller import (
    BATCH_TRIES,
    LONGEST_WAIT,
    POLLER_LOCK,
    BatchPoller,
    PollReport,
    poll_run,
    records,
    wait_after,
)
from workers.reconciler import ReconcilerThread

QUEUE = "prelabel-test-batch-poller"
MODEL = "gpt-4o-mini"
RUN = "bp-run"
#: Generous: a safety net against a hang, never a claim about speed.
DEADLINE = 60.0
TEXTS = [r.text for r in RECORDS]
BATCH = Delivery(transport="batch")


def _items(n: int, start: int = 0) -> list[NerRecord]:
    """`n` items whose texts the simulator's oracle knows (ids of their own)."""
    return [
        NerRecord.from_tokens(f"i{k}", TEXTS[k % len(TEXTS)].split(" "))
        for k in range(start, start + n)
    ]


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return load_settings(REDIS_URL=redis_url, queue=QUEUE, batch_poll_seconds=0.01)


def _run(
    client: redis.Redis,
    sim: RunningSimulator,
    shards: list[list[NerRecord]],
    delivery: Delivery = BATCH,
) -> RunConfig:
    config = RunConfig(
        run_id=RUN,
        endpoint=Endpoint(model=MODEL, base_url=sim.base_url),
        total=sum(map(len, shards)),
        shards=len(shards),
        created_at=time.time(),
        delivery=delivery,
    )
    RunStore(client).create(config, shards, queue=QUEUE)
    return config


def _api(sim: RunningSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="anything", max_retries=0, timeout=30)


def _line(shard: int, item: NerRecord, **params: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": item.text}]
    digest = hashlib.sha256(json.dumps([messages, params]).encode()).hexdigest()
    return {
        "custom_id": custom_id(RUN, f"{shard}.{digest[:12]}", [item.id]),
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": messages, "max_tokens": 512, **params},
    }


def _submit(
    client: redis.Redis, api: openai.OpenAI, shard: int, lines: list[dict[str, Any]]
) -> BatchRecord:
    """Submit `lines` as the batch transport does, and record the batch as it does."""
    keys = RunKeys(RUN)
    names = sorted(line["custom_id"] for line in lines)
    key = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    tokens = sum(count_prompt_tokens(line["body"]["messages"]) for line in lines)
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    client.hset(keys.batch_submits, f"{shard}:{key}", f"submitting:{time.time()}")
    endpoint = RunStore(client).config(RUN).endpoint
    client.incrby(batch_enqueued_key(endpoint.base_url, endpoint.model), tokens)
    uploaded = api.files.create(file=("batch.jsonl", data), purpose="batch")
    batch = api.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"prelabel_run": RUN, "prelabel_shard": str(shard), "prelabel_key": key},
    )
    record = BatchRecord(
        batch_id=batch.id,
        shard=shard,
        key=key,
        status=batch.status,
        requests=len(lines),
        items=len(lines),
        prompt_tokens=tokens,
        input_file_id=uploaded.id,
        created_at=batch.created_at,
    )
    client.hset(keys.batch_submits, f"{shard}:{key}", batch.id)
    client.hset(keys.batches, batch.id, record.model_dump_json())
    return record


def _record(client: redis.Redis, batch_id: str) -> BatchRecord:
    raw = client.hget(RunKeys(RUN).batches, batch_id)
    assert raw is not None
    return BatchRecord.model_validate_json(raw)


def _answers(client: redis.Redis) -> dict[str, dict[str, Any]]:
    raw = client.hgetall(RunKeys(RUN).batch_answers)
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def _counters(client: redis.Redis) -> dict[str, int]:
    return RunStore(client).counters(RUN)


def _queued_shards(client: redis.Redis) -> list[int]:
    return sorted(
        int(json.loads(raw)["headers"]["id"].rsplit(":", 1)[1])
        for raw in client.lrange(QUEUE, 0, -1)
    )


def _enqueued(client: redis.Redis, sim: RunningSimulator) -> int:
    return int(client.get(batch_enqueued_key(sim.base_url, MODEL)) or 0)


def _wait_final(api: openai.OpenAI, batch_id: str) -> None:
    """Until the API has finished the batch (the poller is not involved)."""
    deadline = time.monotonic() + DEADLINE
    while api.batches.retrieve(batch_id).status not in (
        "completed",
        "failed",
        "expired",
        "cancelled",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _poll_until_done(
    client: redis.Redis, api: openai.OpenAI, settings: Settings, batch_id: str
) -> list[PollReport]:
    """Poll passes until the record is final in prelabel's terms."""
    reports = []
    deadline = time.monotonic() + DEADLINE
    while _record(client, batch_id).status not in ("collected", "failed"):
        assert time.monotonic() < deadline, _record(client, batch_id)
        reports.append(poll_run(client, api, settings, RUN, now=time.time() + 10 * 3600))
        time.sleep(0.02)
    return reports


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0, batch_seconds=0.3), Oracle(RECORDS)) as running:
        yield running


# --- a completed batch --------------------------------------------------------------------


def test_a_completed_batch_is_stored_counted_once_and_its_shard_enqueued(
    redis_client: redis.Redis, sim: RunningSimulator, settings: Settings
) -> None:
    items = _items(4)
    _run(redis_client, sim, [items[:2], items[2:]])
    with _api(sim) as api:
        lines = [_line(0, item) for item in items[:2]]
        record = _submit(redis_client, api, 0, lines)
        assert _enqueued(redis_client, sim) == record.prompt_tokens > 0
        reports = _poll_until_done(redis_client, api, settings, record.batch_id)
        counters = _counters(redis_client)
        # Once collected, more passes change nothing.
        again = poll_run(redis_client, api, settings, RUN, now=time.time() + 7200)
    assert again == PollReport()
    assert _counters(redis_client) == counters
    assert sum(len(r.collected) for r in reports) == 1
    final = _record(redis_client, record.batch_id)
    assert (final.status, final.completed, final.failed, final.error) == ("collected", 2, 0, "")
    assert final.output_file_id is not None and final.next_poll_at == 0
    answers = _answers(redis_client)
    assert set(answers) == {line["custom_id"] for line in lines}
    prompt = completion = 0
    for line, item in zip(lines, items[:2], strict=True):
        answer = answers[line["custom_id"]]
        assert set(answer) == {
            "content",
            "prompt_tokens",
            "completion_tokens",
            "simulated",
            "finish_reason",
            "requests",
            "choices",
            "cached_tokens",
        }
        assert json.loads(answer["content"]) == GOLD[item.text]
        assert answer["simulated"] is True and answer["finish_reason"] == "stop"
        assert answer["requests"] == 1
        assert answer["prompt_tokens"] == count_prompt_tokens(line["body"]["messages"])
        prompt += answer["prompt_tokens"]
        completion += answer["completion_tokens"]
    assert counters[RunCounter.BATCH_REQUESTS] == counters[RunCounter.REQUESTS] == 2
    assert counters[RunCounter.BATCH_PROMPT_TOKENS] == counters[RunCounter.PROMPT_TOKENS]
    assert counters[RunCounter.PROMPT_TOKENS] == prompt == record.prompt_tokens
    assert counters[RunCounter.BATCH_COMPLETION_TOKENS] == completion > 0
    assert counters[RunCounter.COMPLETION_TOKENS] == completion
    assert counters[RunCounter.SIMULATED] == 2
    assert counters[RunCounter.BATCH_POLLS] == sum(len(r.polled) for r in reports) >= 1
    assert _enqueued(redis_client, sim) == 0  # released
    assert _queued_shards(redis_client) == [0]
    # Every line was answered: the submission stays (a later pass never submits it again).
    assert redis_client.hget(RunKeys(RUN).batch_submits, f"0:{record.key}") == (
        record.batch_id.encode()
    )


def test_two_pollers_at_once_collect_a_batch_once(
    redis_client: redis.Redis, sim: RunningSimulator, settings: Settings
) -> None:
    items = _items(3)
    _run(redis_client, sim, [items])
    with _api(sim) as api:
        record = _submit(redis_client, api, 0, [_line(0, item) for item in items])
        _wait_final(api, record.batch_id)
        start = threading.Barrier(2)
        reports: list[PollReport] = []

        def poller() -> None:
            with _api(sim) as own:
                start.wait()
                reports.append(poll_run(redis_client, own, settings, RUN))

        threads = [threading.Thread(target=poller) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(len(r.collected) for r in reports) == [0, 1]
    counters = _counters(redis_client)
    assert counters[RunCounter.BATCH_REQUESTS] == counters[RunCounter.REQUESTS] == 3
    assert counters[RunCounter.PROMPT_TOKENS] == record.prompt_tokens
    assert len(_answers(redis_client)) == 3
    assert _enqueued(redis_client, sim) == 0
    assert _queued_shards(redis_client) == [0]
    assert _record(redis_client, record.batch_id).status == "collected"


# --- the schedule ---------------------------------------------------------------------------


def test_a_batch_is_looked_at_with_a_doubling_wait(
    redis_client: redis.Redis, settings: Settings
) -> None:
    config = SimulatorConfig(port=0, batch_seconds=600)
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(1)
        _run(redis_client, sim, [items])
        record = _submit(redis_client, api, 0, [_line(0, items[0])])
        base = settings.batch_poll_seconds
        t0 = time.time()
        first = poll_run(redis_client, api, settings, RUN, now=t0)
        after_one = _record(redis_client, record.batch_id)
        retrieves = sim.stats.batch_retrieves
        early = poll_run(redis_client, api, settings, RUN, now=after_one.next_poll_at - base / 4)
        assert sim.stats.batch_retrieves == retrieves  # not due: not asked
        second = poll_run(redis_client, api, settings, RUN, now=after_one.next_poll_at)
        after_two = _record(redis_client, record.batch_id)
    assert first.polled == second.polled == [record.batch_id] and early.polled == []
    assert after_one.polls == 1 and after_one.next_poll_at == pytest.approx(t0 + base)
    assert after_one.status in ("validating", "in_progress")
    assert after_two.polls == 2
    assert after_two.next_poll_at == pytest.approx(after_one.next_poll_at + 2 * base)
    assert _counters(redis_client)[RunCounter.BATCH_POLLS] == 2
    assert _queued_shards(redis_client) == []
    assert Settings.model_fields["batch_poll_seconds"].default == 30
    default = load_settings(batch_poll_seconds=30)
    assert [wait_after(default, n) for n in (1, 2, 3, 5, 6, 100)] == [
        30,
        60,
        120,
        480,
        LONGEST_WAIT,
        LONGEST_WAIT,
    ]


# --- partial output and line failures -------------------------------------------------------


def test_an_expired_batch_stores_its_answered_lines_and_leaves_the_rest_for_a_new_batch(
    redis_client: redis.Redis, settings: Settings
) -> None:
    config = SimulatorConfig(
        port=0,
        batch_seconds=10,
        batch_validating_seconds=0,
        batch_finalizing_seconds=0,
        batch_expire_seconds=1.0,
    )
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(10)
        _run(redis_client, sim, [items])
        lines = [_line(0, item) for item in items]
        record = _submit(redis_client, api, 0, lines)
        _poll_until_done(redis_client, api, settings, record.batch_id)
    final = _record(redis_client, record.batch_id)
    # One second of a ten-second batch: the first two lines (line k of 10 is answered k/10
    # of the way), whenever the batch was read.
    assert (final.status, final.error, final.completed, final.failed) == (
        "collected",
        "expired",
        2,
        8,
    )
    answers = _answers(redis_client)
    assert sorted(answers) == sorted(line["custom_id"] for line in lines[:2])
    assert json.loads(answers[lines[0]["custom_id"]]["content"]) == GOLD[items[0].text]
    counters = _counters(redis_client)
    assert counters[RunCounter.BATCH_REQUESTS] == counters[RunCounter.REQUESTS] == 2
    # The shard's next pass puts the eight others into a new batch: this one is forgotten.
    assert redis_client.hget(RunKeys(RUN).batch_submits, f"0:{record.key}") is None
    assert _queued_shards(redis_client) == [0]
    assert _enqueued(redis_client, sim) == 0


def test_a_line_left_unanswered_in_batch_after_batch_fails_its_items_at_last(
    redis_client: redis.Redis, settings: Settings
) -> None:
    config = SimulatorConfig(
        port=0,
        batch_seconds=10,
        batch_validating_seconds=0,
        batch_finalizing_seconds=0,
        batch_expire_seconds=1.0,
    )
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(10)
        _run(redis_client, sim, [items])
        lines = [_line(0, item) for item in items]
        last = lines[-1]["custom_id"]  # answered at 9/10 of a batch that expires at 1/10
        for attempt in range(1, BATCH_TRIES + 1):
            record = _submit(redis_client, api, 0, lines)
            _poll_until_done(redis_client, api, settings, record.batch_id)
            stored = _answers(redis_client).get(last)
            assert (stored is None) == (attempt < BATCH_TRIES)
    assert stored is not None and stored["requests"] == 0
    assert stored["error"].startswith(
        f"the Batch API left it unanswered in {BATCH_TRIES} batches (last: batch_expired)"
    )


def test_line_failures_a_refused_line_is_stored_a_5xx_is_asked_again(
    redis_client: redis.Redis, settings: Settings
) -> None:
    config = SimulatorConfig(port=0, batch_seconds=0.3, batch_line_fail_rate=0.3)
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(21)
        _run(redis_client, sim, [items])
        lines = [_line(0, item) for item in items[:18]]
        refused = [_line(0, item, max_tokens=0) for item in items[18:]]
        record = _submit(redis_client, api, 0, [*lines, *refused])
        _poll_until_done(redis_client, api, settings, record.batch_id)
        errors = api.files.content(_record(redis_client, record.batch_id).error_file_id or "")
    error_lines = [json.loads(line) for line in errors.text.splitlines()]
    server_errors = {
        line["custom_id"] for line in error_lines if line["response"]["status_code"] == 500
    }
    refusals = {
        line["custom_id"]: line for line in error_lines if line["response"]["status_code"] == 400
    }
    answers = _answers(redis_client)
    final = _record(redis_client, record.batch_id)
    assert final.status == "collected" and final.error == ""
    assert 0 < len(server_errors) < 21  # seeded draws: some of each
    # A 400 is the request's own fault: its items fail with the endpoint's reason.
    assert refusals and set(refusals) <= {line["custom_id"] for line in refused}
    for name, line in refusals.items():
        message = line["response"]["body"]["error"]["message"]
        reason = f"the endpoint rejected the request (400): {message}"
        assert answers[name] == {"error": reason, "requests": 1}
    # A 5xx is not stored: the shard's next pass asks it again.
    assert not server_errors & set(answers)
    assert len(answers) == 21 - len(server_errors)
    for name, answer in answers.items():
        assert ("content" in answer) == (name not in refusals)
    counters = _counters(redis_client)
    assert counters[RunCounter.BATCH_REQUESTS] == counters[RunCounter.REQUESTS] == 21
    assert redis_client.hget(RunKeys(RUN).batch_submits, f"0:{record.key}") is None
    assert _queued_shards(redis_client) == [0]


# --- the enqueued-token limit ---------------------------------------------------------------


def test_a_batch_over_the_enqueued_token_limit_is_forgotten_and_resubmitted_not_failed(
    redis_client: redis.Redis, settings: Settings
) -> None:
    config = SimulatorConfig(port=0, batch_seconds=0.3, batch_enqueued_tokens=10)
    with serve_in_thread(config, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(2)
        _run(redis_client, sim, [items])
        record = _submit(redis_client, api, 0, [_line(0, item) for item in items])
        reports = _poll_until_done(redis_client, api, settings, record.batch_id)
        failed = _record(redis_client, record.batch_id)
        field = f"0:{record.key}"
        # Waiting: the submission still stands (a pass of the shard submits nothing yet).
        assert redis_client.hget(RunKeys(RUN).batch_submits, field) == record.batch_id.encode()
        assert _queued_shards(redis_client) == []
        early = poll_run(redis_client, api, settings, RUN, now=failed.next_poll_at - 0.001)
        due = poll_run(redis_client, api, settings, RUN, now=failed.next_poll_at)
        after = poll_run(redis_client, api, settings, RUN, now=failed.next_poll_at + 3600)
    assert sum(len(r.failed) for r in reports) == 1
    assert failed.status == "failed" and failed.error.startswith("token_limit_exceeded: ")
    assert failed.next_poll_at > 0
    assert _enqueued(redis_client, sim) == 0
    assert early.forgotten == [] and after == PollReport()
    assert due.forgotten == [record.batch_id] and due.enqueued == [0]
    assert redis_client.hget(RunKeys(RUN).batch_submits, field) is None
    kept = _record(redis_client, record.batch_id)
    assert (kept.status, kept.error, kept.next_poll_at) == ("failed", failed.error, 0)
    # Nothing stored: its items are neither answered nor failed, and nothing was spent.
    assert _answers(redis_client) == {}
    counters = _counters(redis_client)
    assert counters[RunCounter.REQUESTS] == counters.get(RunCounter.BATCH_REQUESTS, 0) == 0
    assert counters[RunCounter.FAILED] == 0
    assert _queued_shards(redis_client) == [0]


# --- batches that failed or were lost -------------------------------------------------------


def test_a_batch_whose_file_was_refused_fails_its_items_with_the_reason(
    redis_client: redis.Redis, sim: RunningSimulator, settings: Settings
) -> None:
    items = _items(3)
    _run(redis_client, sim, [items])
    lines = [_line(0, item) for item in items]
    lines[1] = {**lines[1], "method": "GET"}
    with _api(sim) as api:
        record = _submit(redis_client, api, 0, lines)
        reports = _poll_until_done(redis_client, api, settings, record.batch_id)
    final = _record(redis_client, record.batch_id)
    assert final.status == "failed" and final.next_poll_at == 0
    assert final.error.startswith("invalid_method: ")
    assert sum(len(r.failed) for r in reports) == 1
    answers = _answers(redis_client)
    assert set(answers) == {line["custom_id"] for line in lines}
    for answer in answers.values():
        assert answer["error"].startswith("the Batch API refused the batch (invalid_method: ")
    assert _queued_shards(redis_client) == [0]  # its next pass fails the items
    assert _enqueued(redis_client, sim) == 0
    assert _counters(redis_client)[RunCounter.REQUESTS] == 0


def test_a_batch_the_api_does_not_know_is_forgotten_and_its_shard_enqueued(
    redis_client: redis.Redis, sim: RunningSimulator, settings: Settings
) -> None:
    items = _items(1)
    _run(redis_client, sim, [items])
    with _api(sim) as api:
        record = _submit(redis_client, api, 0, [_line(0, items[0])])
        lost = record.model_copy(update={"batch_id": "batch_gone"})
        keys = RunKeys(RUN)
        redis_client.hdel(keys.batches, record.batch_id)
        redis_client.hset(keys.batches, lost.batch_id, lost.model_dump_json())
        redis_client.hset(keys.batch_submits, f"0:{record.key}", lost.batch_id)
        report = poll_run(redis_client, api, settings, RUN)
    assert report.failed == [lost.batch_id] and report.enqueued == [0]
    final = _record(redis_client, lost.batch_id)
    assert final.status == "failed" and final.error.startswith("not_found: ")
    assert redis_client.hget(keys.batch_submits, f"0:{record.key}") is None
    assert _answers(redis_client) == {}
    assert _enqueued(redis_client, sim) == 0


def test_a_finished_batch_whose_files_cannot_be_read_is_looked_at_again_later(
    redis_client: redis.Redis, sim: RunningSimulator, settings: Settings
) -> None:
    items = _items(1)
    _run(redis_client, sim, [items])
    with _api(sim) as api:
        record = _submit(redis_client, api, 0, [_line(0, items[0])])
        _wait_final(api, record.batch_id)
        output = api.batches.retrieve(record.batch_id).output_file_id
        assert output is not None
        api.files.delete(output)
        now = time.time()
        report = poll_run(redis_client, api, settings, RUN, now=now)
    assert report.polled == [record.batch_id] and report.collected == []
    seen = _record(redis_client, record.batch_id)
    assert (seen.status, seen.polls) == ("completed", 1)
    assert seen.next_poll_at == pytest.approx(now + settings.batch_poll_seconds)
    assert _answers(redis_client) == {}
    assert _counters(redis_client)[RunCounter.REQUESTS] == 0
    assert _enqueued(redis_client, sim) == record.prompt_tokens  # still held
    assert _queued_shards(redis_client) == []


# --- cancel and the deadline ----------------------------------------------------------------

_SLOW = SimulatorConfig(
    port=0,
    batch_seconds=60,
    batch_validating_seconds=0,
    batch_finalizing_seconds=0,
    batch_cancel_seconds=0.1,
)


def _started(api: openai.OpenAI, batch_id: str) -> None:
    """Until the batch has answered some of its lines."""
    deadline = time.monotonic() + DEADLINE
    while True:
        counts = api.batches.retrieve(batch_id).request_counts
        if counts is not None and counts.completed > 0:
            return
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_cancelled_run_cancels_its_batches_and_keeps_what_they_answered(
    redis_client: redis.Redis, settings: Settings
) -> None:
    with serve_in_thread(_SLOW, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(200)
        _run(redis_client, sim, [items])
        record = _submit(redis_client, api, 0, [_line(0, item) for item in items])
        _started(api, record.batch_id)
        RunStore(redis_client).set_status(RUN, "cancelled")
        first = poll_run(redis_client, api, settings, RUN)
        _poll_until_done(redis_client, api, settings, record.batch_id)
        assert api.batches.retrieve(record.batch_id).status == "cancelled"
    assert first.cancelled == [record.batch_id]
    final = _record(redis_client, record.batch_id)
    assert (final.status, final.error) == ("collected", "cancelled")
    assert 0 < final.completed < 200 and final.completed + final.failed == 200
    assert len(_answers(redis_client)) == final.completed
    assert _counters(redis_client)[RunCounter.BATCH_REQUESTS] == final.completed
    assert _enqueued(redis_client, sim) == 0
    assert _queued_shards(redis_client) == []  # a cancelled run's shards are not enqueued


def test_auto_at_its_deadline_cancels_turns_realtime_and_enqueues_what_is_left(
    redis_client: redis.Redis, settings: Settings
) -> None:
    deadline = time.time() + 3 * 3600
    delivery = Delivery(transport="auto", deadline=deadline, margin_seconds=3600)
    with serve_in_thread(_SLOW, Oracle(RECORDS)) as sim, _api(sim) as api:
        items = _items(200)
        _run(redis_client, sim, [items[:100], items[100:150], items[150:]], delivery)
        redis_client.sadd(RunKeys(RUN).done, 1)
        record = _submit(redis_client, api, 0, [_line(0, item) for item in items[:100]])
        _started(api, record.batch_id)
        before = poll_run(redis_client, api, settings, RUN, now=deadline - 3601)
        assert before.cancelled == [] and not before.switched
        assert redis_client.hget(RunKeys(RUN).meta, "transport_now") is None
        at = poll_run(redis_client, api, settings, RUN, now=deadline - 3600)
        assert redis_client.hget(RunKeys(RUN).meta, "transport_now") == b"realtime"
        # The shard with no batch goes realtime at once; shard 0 once its batch is collected.
        assert at.cancelled == [record.batch_id] and at.switched and at.enqueued == [2]
        assert _queued_shards(redis_client) == [2]
        reports = _poll_until_done(redis_client, api, settings, record.batch_id)
    assert not any(r.switched for r in reports)
    assert [n for r in reports for n in r.enqueued] == [0]
    assert _queued_shards(redis_client) == [0, 2]
    final = _record(redis_client, record.batch_id)
    assert (final.status, final.error) == ("collected", "cancelled")
    assert len(_answers(redis_client)) == final.completed > 0


# --- the fleet's pass -----------------------------------------------------------------------


def test_a_pass_polls_only_its_queues_runs_with_a_key_and_one_at_a_time(
    redis_client: redis.Redis,
    sim: RunningSimulator,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PRELABEL_OPENAI_API_KEY", raising=False)
    items = _items(1)
    _run(redis_client, sim, [items])
    with _api(sim) as api:
        record = _submit(redis_client, api, 0, [_line(0, items[0])])
    # A run whose endpoint needs a key the workers do not have is left alone.
    remote = RunConfig(
        run_id="bp-remote",
        endpoint=Endpoint(model=MODEL, base_url="https://api.openai.invalid/v1"),
        shards=1,
    )
    RunStore(redis_client).create(remote, [items], queue=QUEUE)
    redis_client.hset(
        RunKeys("bp-remote").batches,
        "batch_remote",
        record.model_copy(update={"batch_id": "batch_remote"}).model_dump_json(),
    )
    poller = BatchPoller(load_settings(REDIS_URL=settings.redis_url, queue=QUEUE))
    other = BatchPoller(load_settings(REDIS_URL=settings.redis_url, queue="another-fleet"))
    try:
        assert other.run_pass(redis_client) == {}
        redis_client.set(POLLER_LOCK, "someone else")
        assert poller.run_pass(redis_client) == {}
        redis_client.delete(POLLER_LOCK)
        done = poller.run_pass(redis_client)
    finally:
        poller.close()
        other.close()
    assert list(done) == [RUN] and done[RUN].polled == [record.batch_id]
    assert _record(redis_client, record.batch_id).polls == 1
    assert redis_client.get(POLLER_LOCK) is None


def test_the_reconciler_thread_collects_batches(
    redis_client: redis.Redis, sim: RunningSimulator, redis_url: str
) -> None:
    items = _items(2)
    _run(redis_client, sim, [items])
    with _api(sim) as api:
        record = _submit(redis_client, api, 0, [_line(0, item) for item in items])
    thread = ReconcilerThread(
        load_settings(
            REDIS_URL=redis_url, queue=QUEUE, reconcile_interval=0.05, batch_poll_seconds=0.01
        )
    )
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while _record(redis_client, record.batch_id).status != "collected":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        thread.stop()
        thread.join()
    assert len(_answers(redis_client)) == 2
    assert records(redis_client, RUN)[0].status == "collected"
