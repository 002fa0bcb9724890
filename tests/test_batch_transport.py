"""The Batch API transport through real Redis and the simulator's Files and Batch API, over
HTTP with the real `openai` client: a shard pass puts its requests in one batch file (the
realtime request bodies, line for line) and leaves its items uncommitted; once the answers
are stored (here the test plays the poller's part), the next pass commits every item;
submitting is idempotent, survives a worker killed between creating the batch and recording
it, and keeps within the fleet's enqueued-token limit.

The simulator's batches take fractions of a second and the tests poll; no test asserts how
long anything took.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
import redis.asyncio as aioredis
from openai import AsyncOpenAI

from prelabel.batches import FINAL, BatchRecord
from prelabel.counters import RunCounter
from prelabel.keys import RunKeys, batch_enqueued_key
from prelabel.model import ConfidenceConfig, Delivery, Endpoint, Limits, RunConfig
from prelabel.settings import load_settings
from prelabel.store import RunStore
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.server import RunningSimulator
from task_types import verification
from task_types.ner.model import NerRecord, NerResult
from tests.test_simulator import GOLD, RECORDS
from workers.batch_poller import poll_run
from workers.context import WorkerContext
from workers.labeler import ShardLabeler
from workers.shard import label_shard
from workers.transports import BatchTransport, RealtimeTransport
from workers.transports.batch import DIE_AFTER_CREATE, SUBMITTING, EnqueuedTokens, SubmitFailed

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
#: Generous: a safety net against a hang, never a claim about speed.
POLL_DEADLINE = 60.0
TYPES = {"PERSON": "PER", "LOCATION": "LOC", "ORGANIZATION": "ORG", "MISCELLANEOUS": "MISC"}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0, batch_seconds=0.3), Oracle(RECORDS)) as running:
        yield running


@pytest.fixture
def env(redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> str:
    """The workers' environment: the test database, and a queue of the test's own."""
    queue = f"prelabel-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PRELABEL_QUEUE", queue)
    monkeypatch.delenv(DIE_AFTER_CREATE, raising=False)
    return queue


@pytest.fixture
def context(env: str) -> Iterator[WorkerContext]:
    made = WorkerContext(load_settings())
    yield made
    made.close()


def config(sim: RunningSimulator, shards: int = 1, run_id: str = "", **delivery: Any) -> RunConfig:
    return RunConfig(
        run_id=run_id or f"bt-{uuid.uuid4().hex[:8]}",
        total=len(RECORDS),
        shards=shards,
        created_at=time.time(),
        endpoint=Endpoint(model=MODEL, base_url=sim.base_url, cache=False),
        limits=Limits(batch_size=2, shard_size=len(RECORDS) // shards),
        delivery=Delivery(**{"transport": "batch", **delivery}),
    )


def create(client: redis.Redis, cfg: RunConfig) -> RunConfig:
    size = len(RECORDS) // cfg.shards
    RunStore(client).create(cfg, [RECORDS[i : i + size] for i in range(0, len(RECORDS), size)])
    return cfg


def records(client: redis.Redis, cfg: RunConfig) -> dict[str, BatchRecord]:
    raw = client.hgetall(RunKeys(cfg.run_id).batches)
    return {k.decode(): BatchRecord.model_validate_json(v) for k, v in raw.items()}


def sync_client(sim: RunningSimulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="anything", max_retries=0, timeout=30)


def batches_of(sim: RunningSimulator, run_id: str) -> list[str]:
    """The ids of the simulator's batches whose metadata names `run_id`."""
    with sync_client(sim) as client:
        return [
            b.id
            for b in client.batches.list(limit=100)
            if (b.metadata or {}).get("prelabel_run") == run_id
        ]


def input_lines(sim: RunningSimulator, batch_id: str) -> list[dict[str, Any]]:
    with sync_client(sim) as client:
        batch = client.batches.retrieve(batch_id)
        text = client.files.content(batch.input_file_id).text
    return [json.loads(line) for line in text.splitlines()]


def collect(sim: RunningSimulator, client: redis.Redis, run_id: str, batch_id: str) -> list[Any]:
    """Wait for the batch, then let the poller collect it (`workers.batch_poller.poll_run`);
    returns the output lines."""
    deadline = time.monotonic() + POLL_DEADLINE
    with sync_client(sim) as api:
        while (batch := api.batches.retrieve(batch_id)).status not in FINAL:
            assert time.monotonic() < deadline, f"batch still {batch.status}"
            time.sleep(0.02)
        assert batch.status == "completed" and batch.output_file_id
        lines = [json.loads(x) for x in api.files.content(batch.output_file_id).text.splitlines()]
    with sync_client(sim) as api:
        poll_run(client, api, load_settings(), run_id, now=time.time() + 1e6)
    return lines


def results(client: redis.Redis, run_id: str) -> dict[str, NerResult]:
    raw = client.hgetall(RunKeys(run_id).results)
    return {k.decode(): NerResult.model_validate_json(v) for k, v in raw.items()}


def mentions(result: NerResult) -> list[tuple[str, str]]:
    return sorted((e.text, e.type) for e in result.entities)


def gold(record: NerRecord) -> list[tuple[str, str]]:
    return sorted(
        (text, TYPES[kind]) for kind, texts in GOLD[record.text].items() for text in texts
    )


def counters(client: redis.Redis, run_id: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(RunKeys(run_id).counters).items()}


def test_a_pass_submits_one_file_of_the_realtime_requests_and_commits_nothing(
    sim: RunningSimulator, redis_url: str, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim))
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    keys = RunKeys(cfg.run_id)
    assert redis_client.hlen(keys.results) == 0  # Deferred: neither labeled nor failed
    assert not redis_client.sismember(keys.done, "0")
    assert redis_client.hget(keys.attempts, "0") == b"0"  # a pass that waits did not die
    made = records(redis_client, cfg)
    assert list(made) == batches_of(sim, cfg.run_id)
    (record,) = made.values()
    assert (record.shard, record.requests, record.items) == (0, 2, 4)
    submits = redis_client.hgetall(keys.batch_submits)
    assert submits == {f"0:{record.key}".encode(): record.batch_id.encode()}
    assert counters(redis_client, cfg.run_id)[RunCounter.BATCHES] == 1
    enqueued = redis_client.get(batch_enqueued_key(sim.base_url, MODEL))
    assert int(enqueued or 0) == record.prompt_tokens > 0
    lines = input_lines(sim, record.batch_id)
    assert [(line["method"], line["url"]) for line in lines] == [
        ("POST", "/v1/chat/completions")
    ] * 2
    assert all(line["custom_id"].startswith(f"{cfg.run_id}:0.") for line in lines)
    assert sorted(json.dumps(line["body"], sort_keys=True) for line in lines) == sorted(
        json.dumps(body, sort_keys=True) for body in realtime_bodies(redis_url, cfg)
    )


def realtime_bodies(redis_url: str, batch_cfg: RunConfig) -> list[dict[str, Any]]:
    """The bodies the realtime transport posts for the same shard (another run, no cache)."""
    cfg = batch_cfg.model_copy(
        update={"run_id": batch_cfg.run_id + "-rt", "delivery": Delivery(transport="realtime")}
    )
    bodies: list[dict[str, Any]] = []

    async def keep(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            bodies.append(json.loads(request.content))

    async def main() -> None:
        http = httpx.AsyncClient(event_hooks={"request": [keep]})
        client = AsyncOpenAI(
            base_url=cfg.endpoint.base_url, api_key="x", max_retries=0, http_client=http
        )
        aio = aioredis.Redis.from_url(redis_url)
        settings = load_settings()
        try:
            transport = RealtimeTransport.for_run(client, aio, settings, cfg)
            store = RunStore(redis.Redis.from_url(redis_url))
            await ShardLabeler(settings, cfg, transport, aio, store).label(RECORDS)
        finally:
            await client.close()
            await aio.aclose()

    asyncio.run(main())
    assert len(bodies) == 2
    # Each run has its own prompt_cache_key: the batch run's, had it gone realtime.
    assert {body["prompt_cache_key"] for body in bodies} == {"prelabel-" + cfg.run_id}
    return [body | {"prompt_cache_key": "prelabel-" + batch_cfg.run_id} for body in bodies]


def test_the_next_pass_commits_every_item_from_the_stored_answers(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim))
    context.run(label_shard(context, cfg.run_id, 0))
    (record,) = records(redis_client, cfg).values()
    output = collect(sim, redis_client, cfg.run_id, record.batch_id)
    before = counters(redis_client, cfg.run_id)
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    done = results(redis_client, cfg.run_id)
    assert sorted(done) == sorted(r.id for r in RECORDS)
    for r in RECORDS:
        assert done[r.id].status == "labeled"
        assert mentions(done[r.id]) == gold(r)
    keys = RunKeys(cfg.run_id)
    assert redis_client.sismember(keys.done, "0")
    assert RunStore(redis_client).status(cfg.run_id)[0] == "completed"
    assert redis_client.hlen(keys.batch_answers) == 0  # the shard's answers are forgotten
    # The items' usage is the batch's; the run's spend counters are the poller's to move.
    used = [line["response"]["body"]["usage"] for line in output]
    assert sum(r.usage.prompt_tokens for r in done.values()) == sum(
        u["prompt_tokens"] for u in used
    )
    assert sum(r.usage.completion_tokens for r in done.values()) == sum(
        u["completion_tokens"] for u in used
    )
    assert sum(r.usage.requests for r in done.values()) == len(output)
    after = counters(redis_client, cfg.run_id)
    for name in (RunCounter.REQUESTS, RunCounter.PROMPT_TOKENS, RunCounter.COMPLETION_TOKENS):
        assert after.get(name, 0) == before.get(name, 0)
    assert after[RunCounter.LABELED] == len(RECORDS)
    assert batches_of(sim, cfg.run_id) == [record.batch_id]


def test_submitting_the_same_pass_twice_creates_one_batch(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim))
    for _ in range(3):
        assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    assert len(records(redis_client, cfg)) == 1
    assert len(batches_of(sim, cfg.run_id)) == 1
    assert counters(redis_client, cfg.run_id)[RunCounter.BATCHES] == 1
    (record,) = records(redis_client, cfg).values()
    enqueued = redis_client.get(batch_enqueued_key(sim.base_url, MODEL))
    assert int(enqueued or 0) == record.prompt_tokens  # held once


async def _pass(context: WorkerContext, cfg: RunConfig) -> BatchTransport:
    """One pass of shard 0 through a BatchTransport, without submitting."""
    transport = await context.transport_for(cfg, "sk-local", 0)
    assert isinstance(transport, BatchTransport)
    labeler = ShardLabeler(context.settings, cfg, transport, context.redis, context.store)
    assert await labeler.label(RECORDS) == 0
    return transport


def test_a_submitting_mark_left_by_a_crash_is_recovered_by_listing(
    sim: RunningSimulator,
    redis_client: redis.Redis,
    context: WorkerContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = create(redis_client, config(sim))

    async def crash(*args: Any) -> None:
        raise SystemExit("the worker died before recording the batch")

    transport = context.run(_pass(context, cfg))
    with monkeypatch.context() as patch:
        patch.setattr(BatchTransport, "_record", crash)
        with pytest.raises(SystemExit):
            context.run(transport.submit())
    (mark,) = redis_client.hvals(RunKeys(cfg.run_id).batch_submits)
    assert mark.startswith(SUBMITTING.encode())
    assert records(redis_client, cfg) == {}
    (created,) = batches_of(sim, cfg.run_id)
    again = context.run(_pass(context, cfg))
    submitted = context.run(again.submit())
    assert (submitted.how, submitted.batch_id) == ("adopted", created)
    assert batches_of(sim, cfg.run_id) == [created]
    assert list(records(redis_client, cfg)) == [created]
    assert counters(redis_client, cfg.run_id)[RunCounter.BATCHES] == 1
    enqueued = redis_client.get(batch_enqueued_key(sim.base_url, MODEL))
    assert int(enqueued or 0) == submitted.prompt_tokens  # the dead worker's hold, once


_DIE = """
import sys
from prelabel.settings import load_settings
from workers.context import WorkerContext
from workers.shard import label_shard

context = WorkerContext(load_settings())
context.run(label_shard(context, sys.argv[1], 0))
print("survived")
"""


def test_a_worker_killed_after_creating_the_batch_never_pays_twice(
    sim: RunningSimulator, redis_url: str, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim))
    env = {**os.environ, "REDIS_URL": redis_url, DIE_AFTER_CREATE: "1"}
    died = subprocess.run(
        [sys.executable, "-c", _DIE, cfg.run_id],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert died.returncode == 137, died.stderr
    assert "survived" not in died.stdout
    (mark,) = redis_client.hvals(RunKeys(cfg.run_id).batch_submits)
    assert mark.startswith(SUBMITTING.encode())
    (created,) = batches_of(sim, cfg.run_id)
    # Its lease runs out (the reconciler drops it then, and enqueues the shard again).
    keys = RunKeys(cfg.run_id)
    redis_client.delete(keys.leases, keys.holders)
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    assert batches_of(sim, cfg.run_id) == [created]
    assert list(records(redis_client, cfg)) == [created]
    assert redis_client.hvals(RunKeys(cfg.run_id).batch_submits) == [created.encode()]
    collect(sim, redis_client, cfg.run_id, created)
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    assert len(results(redis_client, cfg.run_id)) == len(RECORDS)


def test_the_enqueued_token_limit_holds_a_submit_back_until_tokens_are_released(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext, env: str
) -> None:
    # What each shard's file weighs, measured by a run without a limit.
    probe = create(redis_client, config(sim, shards=2))
    for shard in (0, 1):
        context.run(label_shard(context, probe.run_id, shard))
    weights = {r.shard: r.prompt_tokens for r in records(redis_client, probe).values()}
    EnqueuedTokens(redis_client, sim.base_url, MODEL).release(sum(weights.values()))
    assert redis_client.get(batch_enqueued_key(sim.base_url, MODEL)) is None

    cfg = create(redis_client, config(sim, shards=2, enqueued_tokens=sum(weights.values()) - 1))
    context.run(label_shard(context, cfg.run_id, 0))
    assert [r.shard for r in records(redis_client, cfg).values()] == [0]
    queued = redis_client.llen(env)
    context.run(label_shard(context, cfg.run_id, 1))  # would pass the limit: refused
    assert [r.shard for r in records(redis_client, cfg).values()] == [0]
    assert redis_client.hget(RunKeys(cfg.run_id).batch_submits, "1") is None
    assert redis_client.hlen(RunKeys(cfg.run_id).batch_submits) == 1
    assert redis_client.llen(env) == queued + 1  # its task is enqueued again, for later
    assert len(batches_of(sim, cfg.run_id)) == 1
    held = int(redis_client.get(batch_enqueued_key(sim.base_url, MODEL)) or 0)
    assert held == weights[0]

    EnqueuedTokens(redis_client, sim.base_url, MODEL).release(weights[0])  # the poller, at final
    context.run(label_shard(context, cfg.run_id, 1))
    assert sorted(r.shard for r in records(redis_client, cfg).values()) == [0, 1]
    assert len(batches_of(sim, cfg.run_id)) == 2
    assert int(redis_client.get(batch_enqueued_key(sim.base_url, MODEL)) or 0) == weights[1]


def test_a_run_switched_to_realtime_asks_what_has_no_answer_realtime(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim, transport="auto"))
    redis_client.hset(RunKeys(cfg.run_id).meta, "transport_now", "realtime")
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    assert records(redis_client, cfg) == {}
    assert batches_of(sim, cfg.run_id) == []
    done = results(redis_client, cfg.run_id)
    assert all(mentions(done[r.id]) == gold(r) for r in RECORDS)
    assert counters(redis_client, cfg.run_id)[RunCounter.REQUESTS] == 2  # realtime's own count


def _drop_second_item(client: redis.Redis, run_id: str, cid: str) -> None:
    """Make a stored two-item answer unusable for its second item (as a model that left a
    line out would)."""
    key = RunKeys(run_id).batch_answers
    stored = json.loads(client.hget(key, cid) or b"{}")
    content = json.loads(stored["content"])
    del content["2"]
    client.hset(key, cid, json.dumps({**stored, "content": json.dumps(content)}))


def test_what_an_answer_leaves_goes_in_halves_into_the_next_batch(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim))
    context.run(label_shard(context, cfg.run_id, 0))
    (first,) = records(redis_client, cfg).values()
    output = collect(sim, redis_client, cfg.run_id, first.batch_id)
    pair = next(line["custom_id"] for line in output if line["custom_id"].endswith(",pb"))
    _drop_second_item(redis_client, cfg.run_id, pair)
    # The second pass commits three items; the one left is asked alone, in a new batch.
    assert context.run(label_shard(context, cfg.run_id, 0)) == 3
    assert sorted(results(redis_client, cfg.run_id)) == ["eu", "none", "ny"]
    made = records(redis_client, cfg)
    assert len(made) == 2
    (second,) = (r for r in made.values() if r.batch_id != first.batch_id)
    assert (second.requests, second.items) == (1, 1)
    (line,) = input_lines(sim, second.batch_id)
    assert line["custom_id"].endswith(":pb")
    # The third pass replays the first answer and labels the half from the second batch.
    collect(sim, redis_client, cfg.run_id, second.batch_id)
    assert context.run(label_shard(context, cfg.run_id, 0)) == 1
    done = results(redis_client, cfg.run_id)
    assert all(mentions(done[r.id]) == gold(r) for r in RECORDS)
    assert RunStore(redis_client).status(cfg.run_id)[0] == "completed"
    assert counters(redis_client, cfg.run_id)[RunCounter.BATCHES] == 2
    # pb's usage: its share of the pair's answer (whose one request went to eu, the first
    # item), and all of its own answer.
    assert (done["eu"].usage.requests, done["pb"].usage.requests) == (1, 1)
    assert redis_client.hlen(RunKeys(cfg.run_id).batch_answers) == 0


def test_with_retry_realtime_what_a_collected_batch_left_is_asked_realtime(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim, retry="realtime"))
    context.run(label_shard(context, cfg.run_id, 0))
    (first,) = records(redis_client, cfg).values()
    output = collect(sim, redis_client, cfg.run_id, first.batch_id)
    pair = next(line["custom_id"] for line in output if line["custom_id"].endswith(",pb"))
    _drop_second_item(redis_client, cfg.run_id, pair)
    assert records(redis_client, cfg)[first.batch_id].status == "collected"
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    assert list(records(redis_client, cfg)) == [first.batch_id]
    spent = counters(redis_client, cfg.run_id)
    # The batch's lines, counted by the poller, and pb's one realtime request.
    assert spent[RunCounter.REQUESTS] == spent[RunCounter.BATCH_REQUESTS] + 1 == len(output) + 1
    done = results(redis_client, cfg.run_id)
    assert all(mentions(done[r.id]) == gold(r) for r in RECORDS)


def test_a_line_stored_as_an_error_fails_its_items_with_the_reason(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, config(sim))
    context.run(label_shard(context, cfg.run_id, 0))
    (record,) = records(redis_client, cfg).values()
    output = collect(sim, redis_client, cfg.run_id, record.batch_id)
    pair = next(line["custom_id"] for line in output if line["custom_id"].endswith(",pb"))
    # As the poller stores a line the API never ran, under no retry policy.
    answer = {
        "error": "the batch line was not run (batch_expired): not run before the window expired",
        "requests": 0,
    }
    redis_client.hset(RunKeys(cfg.run_id).batch_answers, pair, json.dumps(answer))
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    done = results(redis_client, cfg.run_id)
    assert [done[i].status for i in ("eu", "pb", "ny", "none")] == [
        "failed",
        "failed",
        "labeled",
        "labeled",
    ]
    assert done["pb"].error == "the batch line was not run (batch_expired): " + (
        "not run before the window expired"
    )
    assert done["pb"].usage.requests == 0


def test_a_submit_the_api_failed_gives_its_tokens_back_and_is_tried_again(
    sim: RunningSimulator,
    redis_client: redis.Redis,
    context: WorkerContext,
    env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = create(redis_client, config(sim))

    async def down(*args: Any) -> None:
        raise SubmitFailed("could not submit shard 0's batch: connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(BatchTransport, "_create", down)
        assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    (mark,) = redis_client.hvals(RunKeys(cfg.run_id).batch_submits)
    assert mark.startswith(SUBMITTING.encode()) and mark.endswith(b":released")
    assert redis_client.get(batch_enqueued_key(sim.base_url, MODEL)) is None
    assert redis_client.llen(env) == 1  # tried again later
    assert batches_of(sim, cfg.run_id) == []
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0  # nothing to adopt: submits
    (record,) = records(redis_client, cfg).values()
    assert batches_of(sim, cfg.run_id) == [record.batch_id]
    held = redis_client.get(batch_enqueued_key(sim.base_url, MODEL))
    assert int(held or 0) == record.prompt_tokens


def test_the_reconciler_leaves_a_shard_waiting_on_its_batch(
    sim: RunningSimulator, redis_url: str, redis_client: redis.Redis, env: str
) -> None:
    from workers.reconciler import reconcile

    cfg = config(sim, shards=2)
    size = len(RECORDS) // 2
    RunStore(redis_client).create(cfg, [RECORDS[:size], RECORDS[size:]], queue=env)
    waiting = BatchRecord(
        batch_id="batch_x", shard=1, key="k", status="in_progress", requests=1, items=2
    )
    redis_client.hset(RunKeys(cfg.run_id).batches, "batch_x", waiting.model_dump_json())
    settings = load_settings(REDIS_URL=redis_url, queue=env)
    suspects: set[tuple[str, int]] = set()
    assert reconcile(redis_client, settings, suspects) == []
    assert reconcile(redis_client, settings, suspects) == [(cfg.run_id, 0)]  # lost: shard 0
    final = waiting.model_copy(update={"status": "completed"})
    redis_client.hset(RunKeys(cfg.run_id).batches, "batch_x", final.model_dump_json())
    assert reconcile(redis_client, settings, suspects) == []
    assert reconcile(redis_client, settings, suspects) == [(cfg.run_id, 1)]  # judged again


def _until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + POLL_DEADLINE
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


@pytest.mark.slow
def test_a_batch_run_through_real_workers(sim: RunningSimulator, fleet_env: dict[str, str]) -> None:
    """Two `celery worker` processes label a two-shard batch run; the test plays the poller
    (store the answers, enqueue the shard first in line)."""
    from prelabel.queue import enqueue

    client = redis.Redis.from_url(fleet_env["REDIS_URL"])
    settings = load_settings(redis_url=fleet_env["REDIS_URL"], queue=fleet_env["PRELABEL_QUEUE"])
    cfg = config(sim, shards=2)
    size = len(RECORDS) // 2
    RunStore(client).create(cfg, [RECORDS[:size], RECORDS[size:]], queue=settings.queue)
    enqueue(settings, cfg.run_id, range(2))
    made = _until(lambda: len(records(client, cfg)) == 2 and records(client, cfg), "no batches")
    # The poller puts a shard back once its batch is done, long after the pass that submitted
    # it let go of the shard's lease; a copy enqueued while the lease is held leaves it.
    _until(lambda: client.zcard(RunKeys(cfg.run_id).leases) == 0, "the passes kept their leases")
    # One poll once both batches are done: a poll that found one still running would put it
    # off by the poller's backoff, counted from the far future the helper polls at.
    with sync_client(sim) as api:
        _until(
            lambda: all(api.batches.retrieve(b).status in FINAL for b in made), "batches not done"
        )
    collect(sim, client, cfg.run_id, next(iter(made)))
    for record in made.values():
        collected = record.model_copy(update={"status": "collected"})
        client.hset(RunKeys(cfg.run_id).batches, record.batch_id, collected.model_dump_json())
        enqueue(settings, cfg.run_id, [record.shard], first=True)
    store = RunStore(client)
    _until(lambda: store.status(cfg.run_id)[0] == "completed", "the run did not complete")
    done = results(client, cfg.run_id)
    assert all(mentions(done[r.id]) == gold(r) for r in RECORDS)
    assert sorted(batches_of(sim, cfg.run_id)) == sorted(made)
    assert store.counters(cfg.run_id)[RunCounter.BATCHES] == 2
    client.close()


# --- confidence through the Batch API -------------------------------------------------------
# A verification waits for its item's answer, goes in the next pass's batch file and is
# answered in the pass after; consistency's `n` samples ride on the same batch line.


def test_verifications_go_in_the_batch_after_their_items_answers(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    base = config(sim)
    cfg = create(
        redis_client, base.model_copy(update={"confidence": ConfidenceConfig(method="verify")})
    )
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    (first,) = records(redis_client, cfg).values()
    collect(sim, redis_client, cfg.run_id, first.batch_id)
    # The answers are back: each labeled item's verification is deferred to a second batch.
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    (second,) = (r for r in records(redis_client, cfg).values() if r.batch_id != first.batch_id)
    lines = input_lines(sim, second.batch_id)
    assert len(lines) == len(RECORDS)
    assert all(
        verification.is_verification(line["body"]["messages"], line["body"]) for line in lines
    )
    assert all(line["body"]["max_tokens"] < 100 for line in lines)
    collect(sim, redis_client, cfg.run_id, second.batch_id)
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    done = results(redis_client, cfg.run_id)
    assert all(r.status == "labeled" and r.confidence is not None for r in done.values())
    # Each item: its share of its batch line, and its own verification.
    assert sum(r.usage.requests for r in done.values()) == len(RECORDS) // 2 + len(RECORDS)


def test_consistency_samples_ride_on_one_batch_line(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    base = config(sim)
    cfg = create(
        redis_client,
        base.model_copy(update={"confidence": ConfidenceConfig.parse("consistency:3")}),
    )
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    (first,) = records(redis_client, cfg).values()
    lines = input_lines(sim, first.batch_id)
    assert {line["body"]["n"] for line in lines} == {3}
    collect(sim, redis_client, cfg.run_id, first.batch_id)
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    done = results(redis_client, cfg.run_id)
    assert all(r.confidence == 1.0 for r in done.values())  # a noise-free simulator agrees
