"""What the provider bills: cached input at its price, the Batch API at half of each part, a
run's `Bill` and its dollars per 1,000 items, as status, the exporter, the report and the
estimate show them (hand-computed figures), and cached tokens read from every answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest
import redis
from rich.console import Console

from prelabel.counters import RunCounter
from prelabel.errors import ConfigError
from prelabel.exporter import families
from prelabel.figures import RunFigures
from prelabel.keys import RunKeys
from prelabel.model import RunConfig, Usage
from prelabel.monitor import RunView, Sample, snapshot
from prelabel.pricing import BUILTIN, Bill, Price, Tokens, load_prices, run_price, stored_price
from prelabel.status import per_thousand_rows, render
from prelabel.store import RunStore
from producer.cache_estimate import PrefixCache, cached_part
from producer.estimate import estimate_requests, render_estimate
from task_types.ner import NER
from task_types.ner.prompts import build_messages
from task_types.tables import per_thousand_rows as report_rows
from tests.test_estimate import CONLL, config, records
from tests.test_llm import RECORD, RUN, Fleet, answering, counters, with_fleet
from workers.budget import micro_usd
from workers.requests import RequestBuilder
from workers.tokens import PER_REPLY, count_message_tokens, count_schema_tokens
from workers.transports import ChatRequest, Completion
from workers.transports.chat import read_answer

MINI = BUILTIN["gpt-4o-mini"]  # $0.15 in, $0.60 out, $0.075 cached in, per million

# --- prices and bills ---------------------------------------------------------------------


def test_cached_prompt_tokens_cost_the_cached_price_and_batched_ones_half() -> None:
    price = Price(2.0, 8.0, 0.5)
    # 1M prompt tokens, 400k of them cached; 100k completion; nothing batched.
    assert price.cost(1_000_000, 100_000, cached=400_000) == pytest.approx(
        0.6 * 2.0 + 0.4 * 0.5 + 0.1 * 8.0
    )
    # Of those, 500k prompt (200k cached) and 50k completion went through the Batch API.
    realtime = 0.3 * 2.0 + 0.2 * 0.5 + 0.05 * 8.0
    batched = 0.5 * (0.3 * 2.0 + 0.2 * 0.5 + 0.05 * 8.0)
    cost = price.cost(
        1_000_000,
        100_000,
        cached=400_000,
        batch_prompt=500_000,
        batch_completion=50_000,
        batch_cached=200_000,
    )
    assert cost == pytest.approx(realtime + batched) == pytest.approx(1.65)
    assert price.batch_cost(1_000_000, 0, cached=1_000_000) == pytest.approx(0.25)
    # No cached-input price: cached tokens cost the input price.
    assert Price(2.0, 8.0).cost(1_000_000, 0, cached=1_000_000) == pytest.approx(2.0)
    assert Price(0.15, 0.60).cost(1_000_000, 1_000_000) == pytest.approx(0.75)


def test_the_builtin_table_has_the_cached_input_column() -> None:
    assert BUILTIN["gpt-4o-mini"] == Price(0.15, 0.60, 0.075)
    assert BUILTIN["gpt-5"].cached_input == 0.125
    assert BUILTIN["gpt-4.1-nano"].cached_input == 0.025
    assert BUILTIN["o4-mini"].cached_input == 0.275
    assert BUILTIN["gpt-4"].cached_input is None and BUILTIN["gpt-4"].cached == 30.0


def test_a_bill_splits_parts_and_transports_and_scales_per_thousand_items() -> None:
    tokens = Tokens(
        prompt=3000, completion=600, cached=2048, batch_prompt=1000, batch_completion=200
    )
    bill = Bill.of(MINI, tokens)
    # Realtime: 2000 prompt of which 2048 - 0 cached is clamped to 2000; batch: 1000 uncached.
    assert bill.input == pytest.approx(0.0)
    assert bill.cached_input == pytest.approx(2000 * 0.075 / 1e6)
    assert bill.output == pytest.approx(400 * 0.60 / 1e6)
    assert bill.batch_input == pytest.approx(0.5 * 1000 * 0.15 / 1e6)
    assert bill.batch_cached_input == 0.0
    assert bill.batch_output == pytest.approx(0.5 * 200 * 0.60 / 1e6)
    assert bill.total == pytest.approx((150 + 240 + 75 + 60) / 1e6)
    assert bill.used_batch and bill.batch_usd == pytest.approx(135 / 1e6)
    per_k = bill.per_thousand(4)
    assert per_k is not None and per_k.total == pytest.approx(bill.total * 250)
    assert per_k.batch_part().total == pytest.approx(135 / 1e6 * 250)
    assert per_k.realtime_part().total == pytest.approx(390 / 1e6 * 250)
    assert bill.per_thousand(0) is None
    counted = Bill.of_counters(
        MINI,
        {
            RunCounter.PROMPT_TOKENS: 3000,
            RunCounter.COMPLETION_TOKENS: 600,
            RunCounter.CACHED_PROMPT_TOKENS: 2048,
            RunCounter.BATCH_PROMPT_TOKENS: 1000,
            RunCounter.BATCH_COMPLETION_TOKENS: 200,
        },
    )
    assert counted == bill


def test_the_budget_settles_cached_tokens_at_the_cached_price() -> None:
    cfg = RunConfig.model_validate(
        {
            "run_id": "b",
            "model": "gpt-4o-mini",
            "base_url": "http://e/v1",
            "price_input": 0.15,
            "price_output": 0.60,
            "price_cached_input": 0.075,
        }
    )
    assert stored_price(cfg) == MINI and run_price(cfg) == MINI
    # 2000 prompt (1280 cached) + 100 completion: 720×0.15 + 1280×0.075 + 100×0.6 = 264 µ$.
    assert micro_usd(cfg, 2000, 100, cached=1280) == 264
    assert micro_usd(cfg, 2000, 100) == 360
    assert micro_usd(cfg, 2000, 100, 0.5, 1280) == 132


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_price_file_may_give_a_cached_input_price(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"prices{suffix}"
    if suffix == ".json":
        data = {
            "models": {
                "m": {"input": 1, "output": 2, "cached_input": 0.25},
                "n": {"input": 1, "output": 2},
            }
        }
        path.write_text(json.dumps(data))
    else:
        path.write_text(
            "[models.m]\ninput = 1\noutput = 2\ncached_input = 0.25\n"
            "[models.n]\ninput = 1\noutput = 2\n"
        )
    prices = load_prices(path)
    assert prices["m"] == Price(1.0, 2.0, 0.25)
    assert prices["n"] == Price(1.0, 2.0, None)


@pytest.mark.parametrize(
    "text",
    [
        "[models.x]\ninput = 1\noutput = 1\ncached_input = -1\n",
        '[models.x]\ninput = 1\noutput = 1\ncached_input = "0.5"\n',
        "[models.x]\ninput = 1\noutput = 1\ncached = 0.5\n",
    ],
)
def test_a_bad_cached_input_price_is_one_actionable_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_prices(path)
    message = str(caught.value)
    assert "\n" not in message and "PRELABEL_PRICES" in message
    assert "optionally cached_input" in message and "numbers >= 0" in message


# --- reading cached tokens ----------------------------------------------------------------


def answer_body(usage: object) -> dict[str, object]:
    return {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}], "usage": usage}


@pytest.mark.parametrize(
    ("details", "cached"),
    [
        ({"cached_tokens": 1152}, 1152),
        (None, 0),  # no prompt_tokens_details at all
        ({}, 0),
        ({"cached_tokens": "1152"}, 0),
        ({"cached_tokens": True}, 0),
        ({"cached_tokens": 1.5}, 0),
        ({"cached_tokens": -5}, 0),
        ({"cached_tokens": 99_999}, 2000),  # more than the prompt: clamped
        ("details", 0),
    ],
)
def test_cached_tokens_are_read_type_checked_and_clamped(details: object, cached: int) -> None:
    usage: dict[str, object] = {"prompt_tokens": 2000, "completion_tokens": 10}
    if details is not None:
        usage["prompt_tokens_details"] = details
    answer = read_answer(answer_body(usage))
    assert answer.problem == "" and answer.content == "{}"
    assert answer.cached_tokens == cached


def test_cached_tokens_without_a_prompt_count_are_zero() -> None:
    answer = read_answer(answer_body({"prompt_tokens_details": {"cached_tokens": 1024}}))
    assert answer.prompt_tokens is None and answer.cached_tokens == 0
    assert read_answer(answer_body(None)).cached_tokens == 0


# --- status, exporter, report -------------------------------------------------------------


def run_view(counters: dict[str, int], **over: object) -> RunView:
    cfg = RunConfig.model_validate(
        {
            "run_id": "rc",
            "model": "gpt-4o-mini",
            "base_url": "http://e/v1",
            "price_input": 0.15,
            "price_output": 0.60,
            "price_cached_input": 0.075,
            "total": 10,
            "created_at": 1000.0,
            **over,
        }
    )
    return RunView(cfg, "running", None, Sample(at=1100.0, counters=counters))


BATCHED = {
    RunCounter.LABELED: 4,
    RunCounter.FAILED: 1,
    RunCounter.REQUESTS: 4,
    RunCounter.PROMPT_TOKENS: 3000,
    RunCounter.CACHED_PROMPT_TOKENS: 1024,
    RunCounter.COMPLETION_TOKENS: 600,
    RunCounter.BATCH_REQUESTS: 2,
    RunCounter.BATCH_PROMPT_TOKENS: 1000,
    RunCounter.BATCH_CACHED_PROMPT_TOKENS: 0,
    RunCounter.BATCH_COMPLETION_TOKENS: 200,
}


def test_status_shows_dollars_per_thousand_items_split_and_by_transport() -> None:
    snap = snapshot(run_view(BATCHED))
    assert snap.bill == Bill.of_counters(MINI, BATCHED)
    # Realtime: 976 uncached × 0.15 + 1024 cached × 0.075 + 400 × 0.60 = 463.2 µ$; Batch API:
    # half of 1000 × 0.15 + 200 × 0.60 = 135 µ$.
    assert snap.cost_usd == pytest.approx(598.2 / 1e6)
    rows = dict(per_thousand_rows(snap))
    # For 5 items done (labeled + failed): × 200 per 1,000 items.
    assert rows["$ per 1,000 items"] == (
        "$0.1196: uncached input $0.0443 · cached input $0.0154 · output $0.0600"
    )
    assert rows["  Batch API"] == (
        "$0.0270: uncached input $0.0150 · cached input $0.0000 · output $0.0120"
    )
    assert rows["  realtime"] == (
        "$0.0926: uncached input $0.0293 · cached input $0.0154 · output $0.0480"
    )
    console = Console(width=200, record=True)
    console.print(render(snap))
    text = console.export_text()
    assert "$ per 1,000 items" in text and "prompt 3,000 (cached 1,024)" in text
    realtime_only = snapshot(run_view({k: v for k, v in BATCHED.items() if "batch" not in k}))
    assert [name for name, _ in per_thousand_rows(realtime_only)] == ["$ per 1,000 items"]
    assert per_thousand_rows(snapshot(run_view({}))) == []  # no item done yet
    assert per_thousand_rows(snapshot(run_view(BATCHED, model="x", price_input=None))) == []


def test_the_exporter_shows_cached_tokens_and_the_cost_split() -> None:
    snap = snapshot(run_view(BATCHED))
    found = {f.name: f for f in families([snap])}
    cached = {
        s.labels["transport"]: s.value for s in found["prelabel_cached_prompt_tokens"].samples
    }
    assert cached == {"realtime": 1024, "batch": 0}
    split = {
        (s.labels["part"], s.labels["transport"]): s.value
        for s in found["prelabel_cost_split_usd"].samples
    }
    assert split[("cached_input", "realtime")] == pytest.approx(1024 * 0.075 / 1e6)
    assert split[("uncached_input", "batch")] == pytest.approx(75 / 1e6)
    total = found["prelabel_run_usd_per_1k_items_total"].samples[0].value
    assert total == pytest.approx(598.2 / 1e6 * 200)
    assert found["prelabel_cost_usd"].samples[0].value == pytest.approx(598.2 / 1e6)


def test_the_report_shows_dollars_per_thousand_items_from_the_same_bill() -> None:
    bill = Bill.of_counters(MINI, BATCHED)
    figures = RunFigures(labeled=4, failed=1, cost_usd=bill.total, bill=bill)
    rows = dict(report_rows(figures))
    assert rows["$ per 1,000 items"] == "$0.1196"
    assert rows["  cached input (realtime)"] == "$0.0154"
    assert rows["  uncached input (Batch API)"] == "$0.0150"
    again = RunFigures.model_validate_json(figures.model_dump_json())
    assert again.bill == bill and dict(report_rows(again)) == rows
    assert report_rows(RunFigures(labeled=3)) == []


# --- the estimate -------------------------------------------------------------------------


def estimate_config(**over: object) -> RunConfig:
    prices = {"price_input": 0.15, "price_output": 0.60, "price_cached_input": 0.075}
    return config(**prices, **over)


def test_cache_steps_are_128_tokens_from_1024() -> None:
    assert [cached_part(n) for n in (0, 1023, 1024, 1151, 1152, 1500)] == [
        0,
        0,
        1024,
        1024,
        1152,
        1408,
    ]


def test_the_estimate_counts_schemas_and_the_cache_of_a_stable_prefix() -> None:
    # Batches of 10 in one shard: two requests with the same schema and (long) system prompt;
    # the first pays in full, the second has that common prefix cached in 128-token steps.
    template = "Label with care. " * 300 + "{types}\n{format}"
    cfg = estimate_config(batch_size=10, system_template=template)
    recs = records(20)
    est = estimate_requests(recs, cfg)
    builder = RequestBuilder(cfg)
    schema = count_schema_tokens(builder.response_format(recs[:10]), "gpt-4o-mini")
    system = build_messages(recs[:10], CONLL, template=template)[0]
    prefix = schema + count_message_tokens([system], "gpt-4o-mini") - PER_REPLY
    assert prefix >= 1024
    assert est.requests == 2 and est.schema_tokens == 2 * schema
    assert est.cached_tokens == cached_part(prefix) == 1024 + (prefix - 1024) // 128 * 128
    realtime = est.bill()
    batch = est.bill(batch=True)
    assert realtime is not None and batch is not None
    uncached = est.prompt_tokens - est.cached_tokens
    assert realtime.input == pytest.approx(uncached * 0.15 / 1e6)
    assert realtime.cached_input == pytest.approx(est.cached_tokens * 0.075 / 1e6)
    assert est.cost_usd == pytest.approx(realtime.total)
    assert batch.total == pytest.approx(realtime.total / 2)
    table = Console(width=220, record=True)
    table.print(render_estimate(est))
    text = table.export_text()
    assert "schema (estimated" in text and "expected from the prompt cache" in text
    per_k = realtime.per_thousand(20)
    assert per_k is not None and f"${per_k.total:,.4f}" in text
    assert "$ per 1,000 items, Batch API" in text
    # One item per request: a short schema and prefix, nothing cached.
    assert estimate_requests(records(5), estimate_config()).cached_tokens == 0


def test_a_prefix_is_cached_only_once_seen() -> None:
    cache = PrefixCache("gpt-4o-mini")
    system = {"role": "system", "content": "word " * 1500}
    first = [system, {"role": "user", "content": "a"}]
    assert cache.cached(first, None, 0) == 0
    again = [system, {"role": "user", "content": "b"}]
    assert cache.cached(again, None, 0) == cached_part(
        count_message_tokens([system], "gpt-4o-mini") - PER_REPLY
    )
    other = [{"role": "system", "content": "other " * 1500}, {"role": "user", "content": "a"}]
    assert cache.cached(other, None, 0) == 0


# --- through the real path ----------------------------------------------------------------


def test_a_realtime_answers_cached_tokens_reach_the_counters_and_status(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """An endpoint that says 1,280 of 2,000 prompt tokens were cached: the run's counters
    hold them, and `prelabel status` bills them at the cached price."""
    cfg = RunConfig.model_validate(
        {
            "run_id": RUN,
            "model": "gpt-4o-mini",
            "base_url": "http://127.0.0.1:9/v1",
            "price_input": 0.15,
            "price_output": 0.60,
            "price_cached_input": 0.075,
            "total": 1,
            "shards": 1,
            "created_at": 1000.0,
        }
    )
    RunStore(redis_client).create(cfg, [[RECORD]])
    content = json.dumps({"PER": ["Peter Blackburn"], "LOC": ["Paris"]})
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 1280},
    }
    body = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}], "usage": usage}

    async def call(fleet: Fleet) -> Completion:
        caller = fleet.caller()
        messages = build_messages([RECORD], NER.labels(caller.config))
        return await caller.complete(ChatRequest(messages, None, 2000, (RECORD.id,)))

    completion = with_fleet(
        redis_url,
        cfg.endpoint.base_url,
        call,
        http_client=answering(httpx.Response(200, json=body)),
    )
    assert (completion.prompt_tokens, completion.cached_tokens) == (2000, 1280)
    spent = counters(redis_client)
    assert spent[RunCounter.PROMPT_TOKENS] == 2000
    assert spent[RunCounter.CACHED_PROMPT_TOKENS] == 1280
    assert RunCounter.BATCH_CACHED_PROMPT_TOKENS not in spent
    redis_client.hincrby(RunKeys(RUN).counters, RunCounter.LABELED, 1)
    shown = subprocess.run(
        [sys.executable, "-m", "prelabel", "status", RUN],
        env={**os.environ, "REDIS_URL": redis_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    # 720 × 0.15 + 1280 × 0.075 + 50 × 0.60 = 234 µ$ for one item: $0.234 per 1,000.
    assert "prompt 2,000 (cached 1,280)" in shown.stdout
    assert "$0.2340: uncached input $0.1080 · cached input $0.0960 · output $0.0300" in shown.stdout
    assert "$0.0002 so far" in shown.stdout


def test_a_batch_output_lines_cached_tokens_are_counted_as_batched() -> None:
    """A Batch API output line holds the same body: its cached tokens count in both the
    run's cached counters, batched, and travel with the stored answer."""
    from collections import Counter

    from workers.batch_poller import _line_answer

    usage = {
        "prompt_tokens": 1500,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 1152},
    }
    line = {"custom_id": "x", "response": {"status_code": 200, "body": answer_body(usage)}}
    spent: Counter[str] = Counter()
    stored = _line_answer(line, 100, spent)
    assert stored is not None
    assert Completion.from_json(json.loads(stored)).cached_tokens == 1152
    assert spent[RunCounter.CACHED_PROMPT_TOKENS] == spent[RunCounter.BATCH_CACHED_PROMPT_TOKENS]
    assert spent[RunCounter.BATCH_CACHED_PROMPT_TOKENS] == 1152
    assert spent[RunCounter.BATCH_PROMPT_TOKENS] == 1500
    bill = Bill.of_counters(MINI, spent)
    assert bill.realtime_usd == 0.0
    assert bill.batch_cached_input == pytest.approx(0.5 * 1152 * 0.075 / 1e6)
    assert bill.batch_input == pytest.approx(0.5 * 348 * 0.15 / 1e6)


# --- an item's usage ----------------------------------------------------------------------


def test_a_batched_calls_usage_is_shared_out_with_its_cached_tokens() -> None:
    from workers.labeler import _shares

    spent = Usage(prompt_tokens=1300, completion_tokens=50, requests=1, cached_tokens=1024)
    shares = _shares(spent, 3)
    assert [s.cached_tokens for s in shares] == [342, 341, 341]
    assert sum(shares, Usage()) == spent
    assert Usage(prompt_tokens=1, cached_tokens=1) + Usage(requests=2) == Usage(
        prompt_tokens=1, requests=2, cached_tokens=1
    )


# --- the default batch size ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("gpt-4o-mini", 10),
        ("gpt-4o-mini-2024-07-18", 10),  # a dated snapshot
        ("openai/gpt-5-mini", 10),  # a gateway's name
        ("o4-mini", 10),
        ("/models/gemma-3-270m-q4_k_m.gguf", 1),  # a local model
        ("llama3", 1),
    ],
)
def test_openais_models_batch_10_items_and_any_other_one(model: str, size: int) -> None:
    from prelabel.defaults import default_batch_size

    assert default_batch_size(model) == size
