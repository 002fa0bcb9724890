"""A batch run's budget is reserved at submission (issue 17): the whole file, at the batch
price, before the upload; the poller replaces the reservation by what the lines used, in the
step that collects the batch (once, however many pollers), or gives it back when the batch
fails; a submission not made gives it back; the stored answers' use moves nothing.

Real Redis, the simulator's Files and Batch API over HTTP with the real `openai` client.
Prices are 2.0 and 8.0 USD per million prompt and completion tokens, so at the batch price
(half) a prompt token costs 1 µ$ and a completion token 4 µ$: the µ$ below are exact.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from prelabel.batches import FINAL
from prelabel.counters import RunCounter
from prelabel.errors import BudgetReached
from prelabel.keys import RunKeys, batch_enqueued_key
from prelabel.model import Delivery, RunConfig, Spend
from prelabel.settings import load_settings
from prelabel.store import RunStore
from simulator import Oracle, SimulatorConfig, serve_in_thread
from simulator.server import RunningSimulator
from tests.test_batch_transport import (
    MODEL,
    POLL_DEADLINE,
    batches_of,
    collect,
    config,
    create,
    records,
    sync_client,
)
from tests.test_simulator import RECORDS
from workers.batch_poller import PollReport, poll_run
from workers.context import WorkerContext
from workers.shard import label_shard
from workers.transports import BatchTransport
from workers.transports.batch import DIE_AFTER_CREATE, EnqueuedTokens, SubmitFailed

#: The endpoint's max_tokens (the Endpoint default): each line reserves that many.
MAX_TOKENS = 512
PRICES = {"price_input": 2.0, "price_output": 8.0}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve_in_thread(SimulatorConfig(port=0, batch_seconds=0.3), Oracle(RECORDS)) as running:
        yield running


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningSimulator]:
    """A simulator whose own enqueued-token limit (10 tokens) fails every batch with
    token_limit_exceeded (outliving the test's worker context, whose client it serves)."""
    simulated = SimulatorConfig(port=0, batch_seconds=0.3, batch_enqueued_tokens=10)
    with serve_in_thread(simulated, Oracle(RECORDS)) as running:
        yield running


@pytest.fixture
def env(redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> str:
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


def budgeted(sim: RunningSimulator, enqueued_tokens: int | None = None, **spend: Any) -> RunConfig:
    cfg = config(sim, enqueued_tokens=enqueued_tokens)
    assert cfg.endpoint.max_tokens == MAX_TOKENS
    return cfg.model_copy(update={"spend": Spend(**PRICES, **spend)})


def budget(client: redis.Redis, run_id: str) -> tuple[int, int]:
    """The run's budget hash: (tokens, µ$) reserved or spent."""
    raw = client.hgetall(RunKeys(run_id).budget)
    return int(raw.get(b"tokens", 0)), int(raw.get(b"musd", 0))


def test_a_file_over_the_budget_stops_the_run_and_creates_no_batch(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    # Two lines reserve at least 2 × 512 tokens: more than the budget, though one realtime
    # call (its prompt + 512) would have been admitted.
    cfg = create(redis_client, budgeted(sim, budget_tokens=1000))
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    assert RunStore(redis_client).status(cfg.run_id) == ("stopped", BudgetReached().message)
    assert batches_of(sim, cfg.run_id) == []
    assert records(redis_client, cfg) == {}
    assert redis_client.hlen(RunKeys(cfg.run_id).batch_submits) == 0
    assert budget(redis_client, cfg.run_id) == (0, 0)
    assert redis_client.get(batch_enqueued_key(sim.base_url, MODEL)) is None


def test_the_file_is_reserved_at_submission_and_settled_at_half_price_when_collected(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, budgeted(sim, budget_usd=1.0))
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    (record,) = records(redis_client, cfg).values()
    prompt = record.prompt_tokens
    assert record.requests == 2 and prompt > 0
    # prompt + 2 × 512 tokens; µ$ = (prompt × 2.0 + 1024 × 8.0) × 0.5 = prompt + 4096.
    assert (record.reserved_tokens, record.reserved_musd) == (prompt + 1024, prompt + 4096)
    assert budget(redis_client, cfg.run_id) == (prompt + 1024, prompt + 4096)

    output = collect(sim, redis_client, cfg.run_id, record.batch_id)
    used_prompt = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in output)
    used_completion = sum(line["response"]["body"]["usage"]["completion_tokens"] for line in output)
    assert used_prompt > 0 and used_completion > 0
    # µ$ = (used_prompt × 2.0 + used_completion × 8.0) × 0.5.
    settled = (used_prompt + used_completion, used_prompt + 4 * used_completion)
    assert budget(redis_client, cfg.run_id) == settled

    # The stored answers' use (the next pass) moves nothing; nor does another poll pass.
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    assert RunStore(redis_client).status(cfg.run_id)[0] == "completed"
    assert budget(redis_client, cfg.run_id) == settled
    with sync_client(sim) as api:
        again = poll_run(redis_client, api, load_settings(), cfg.run_id, now=time.time() + 1e6)
    assert again == PollReport()
    assert budget(redis_client, cfg.run_id) == settled


def test_two_pollers_at_once_settle_a_batch_once(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(redis_client, budgeted(sim, budget_usd=1.0))
    context.run(label_shard(context, cfg.run_id, 0))
    (record,) = records(redis_client, cfg).values()
    settings = load_settings()
    with sync_client(sim) as api:
        deadline = time.monotonic() + POLL_DEADLINE
        while api.batches.retrieve(record.batch_id).status not in FINAL:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        output_file = api.batches.retrieve(record.batch_id).output_file_id or ""
        output = [json.loads(x) for x in api.files.content(output_file).text.splitlines()]
    start = threading.Barrier(2)
    reports: list[PollReport] = []

    def poller() -> None:
        with sync_client(sim) as own:
            start.wait()
            reports.append(poll_run(redis_client, own, settings, cfg.run_id, now=time.time() + 1e6))

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r.collected) for r in reports) == [0, 1]
    used = [line["response"]["body"]["usage"] for line in output]
    used_prompt = sum(u["prompt_tokens"] for u in used)
    used_completion = sum(u["completion_tokens"] for u in used)
    assert budget(redis_client, cfg.run_id) == (
        used_prompt + used_completion,
        used_prompt + 4 * used_completion,
    )


def test_a_submission_the_api_failed_gives_its_reservation_back(
    sim: RunningSimulator,
    redis_client: redis.Redis,
    context: WorkerContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = create(redis_client, budgeted(sim, budget_usd=1.0))

    async def down(*args: Any) -> None:
        raise SubmitFailed("could not submit shard 0's batch: connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(BatchTransport, "_create", down)
        assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    assert batches_of(sim, cfg.run_id) == []
    assert budget(redis_client, cfg.run_id) == (0, 0)
    assert RunStore(redis_client).status(cfg.run_id)[0] == "running"
    # The next pass submits, and holds the file again (once).
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    (record,) = records(redis_client, cfg).values()
    assert record.reserved_tokens == record.prompt_tokens + 1024
    assert budget(redis_client, cfg.run_id) == (record.reserved_tokens, record.reserved_musd)
    collect(sim, redis_client, cfg.run_id, record.batch_id)  # gives the enqueued tokens back


def test_a_submission_the_enqueued_token_limit_refused_gives_its_reservation_back(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    limit = 10**7
    cfg = create(redis_client, budgeted(sim, enqueued_tokens=limit, budget_usd=1.0))
    others = EnqueuedTokens(redis_client, sim.base_url, MODEL)
    others.hold(limit, None, force=True)  # the fleet's other batches fill the limit
    try:
        assert context.run(label_shard(context, cfg.run_id, 0)) == 0
        assert batches_of(sim, cfg.run_id) == []
        assert budget(redis_client, cfg.run_id) == (0, 0)
        assert RunStore(redis_client).status(cfg.run_id)[0] == "running"
    finally:
        others.release(limit)


def test_a_batch_that_failed_gives_its_reservation_back(
    limited: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    sim = limited
    with sync_client(sim) as api:
        cfg = create(redis_client, budgeted(sim, budget_usd=1.0))
        assert context.run(label_shard(context, cfg.run_id, 0)) == 0
        (record,) = records(redis_client, cfg).values()
        assert budget(redis_client, cfg.run_id) == (record.reserved_tokens, record.reserved_musd)
        assert record.reserved_tokens > 0
        deadline = time.monotonic() + POLL_DEADLINE
        later = time.time()
        while records(redis_client, cfg)[record.batch_id].status not in ("collected", "failed"):
            assert time.monotonic() < deadline
            later += 3600  # past any wait the poller set (the API's clock is not involved)
            poll_run(redis_client, api, load_settings(), cfg.run_id, now=later)
            time.sleep(0.02)
    failed = records(redis_client, cfg)[record.batch_id]
    assert failed.status == "failed" and failed.error.startswith("token_limit_exceeded")
    assert budget(redis_client, cfg.run_id) == (0, 0)


def test_a_batch_adopted_after_a_failed_submit_holds_its_reservation_again(
    sim: RunningSimulator,
    redis_client: redis.Redis,
    context: WorkerContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The API took the batch, then the answer was lost (a timeout): the reservation was
    # given back with the error; the next pass adopts the batch and holds it again, once.
    cfg = create(redis_client, budgeted(sim, budget_usd=1.0))
    create_batch = BatchTransport._create

    async def lost_answer(self: BatchTransport, data: bytes, key: str) -> Any:
        await create_batch(self, data, key)
        raise SubmitFailed("could not submit shard 0's batch: read timed out")

    with monkeypatch.context() as patch:
        patch.setattr(BatchTransport, "_create", lost_answer)
        assert context.run(label_shard(context, cfg.run_id, 0)) == 0
    assert budget(redis_client, cfg.run_id) == (0, 0)
    assert records(redis_client, cfg) == {}
    assert context.run(label_shard(context, cfg.run_id, 0)) == 0  # adopts it
    (record,) = records(redis_client, cfg).values()
    assert batches_of(sim, cfg.run_id) == [record.batch_id]
    assert (record.reserved_tokens, record.reserved_musd) == (
        record.prompt_tokens + 1024,
        record.prompt_tokens + 4096,
    )
    assert budget(redis_client, cfg.run_id) == (record.reserved_tokens, record.reserved_musd)
    collect(sim, redis_client, cfg.run_id, record.batch_id)  # gives the enqueued tokens back


def test_the_realtime_fallback_is_budgeted_at_the_list_price(
    sim: RunningSimulator, redis_client: redis.Redis, context: WorkerContext
) -> None:
    cfg = create(
        redis_client,
        budgeted(sim, budget_usd=1.0).model_copy(update={"delivery": Delivery(transport="auto")}),
    )
    redis_client.hset(RunKeys(cfg.run_id).meta, "transport_now", "realtime")
    assert context.run(label_shard(context, cfg.run_id, 0)) == len(RECORDS)
    assert batches_of(sim, cfg.run_id) == []
    spent = RunStore(redis_client).counters(cfg.run_id)
    prompt, completion = spent[RunCounter.PROMPT_TOKENS], spent[RunCounter.COMPLETION_TOKENS]
    assert spent[RunCounter.REQUESTS] == 2 and prompt > 0 and completion > 0
    # µ$ = prompt × 2.0 + completion × 8.0: the realtime price, no discount.
    assert budget(redis_client, cfg.run_id) == (prompt + completion, 2 * prompt + 8 * completion)
