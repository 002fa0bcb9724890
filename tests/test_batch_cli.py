"""The Batch API from the user's side: the transport flags and their one-line errors, the run
config they make, the shard size a batch run gets, the half price in estimates and figures,
and the run's batches in `status`, `--watch`'s lines, the exporter and `cancel`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from rich.console import Console

from prelabel.batches import BatchRecord
from prelabel.cli import _delivery, parse_deadline
from prelabel.counters import RunCounter
from prelabel.errors import ConfigError
from prelabel.figures import RunFigures
from prelabel.keys import RunKeys
from prelabel.model import Delivery, Endpoint, Limits, RunConfig, Spend
from prelabel.monitor import read_run, snapshot
from prelabel.options import DeliveryFlags, RetryChoice, TransportChoice
from prelabel.pricing import Price, counters_cost
from prelabel.status import one_line, render
from prelabel.store import RunStore
from producer.pipeline import RunOptions
from task_types.ner.model import NerRecord
from task_types.tables import figure_rows

PRELABEL = str(Path(sys.executable).parent / "prelabel")
SAMPLE = str(Path(__file__).resolve().parents[1] / "producer" / "samples" / "sample.conll")


def prelabel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRELABEL, *args],
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the flags and their errors -----------------------------------------------------------


#: Transport flags that are wrong together, and what the one-line error says.
WRONG = [
    (["--transport", "auto"], "--transport auto needs --deadline TIME"),
    (["--deadline", "07:00"], "--deadline is for the Batch API: pass --transport auto"),
    (["--enqueued-tokens", "5"], "--enqueued-tokens is for the Batch API: pass --transport batch"),
    (["--batch-retry", "realtime"], "--batch-retry is for the Batch API"),
    (["--transport", "batch", "--deadline", "07:00"], "--deadline is for --transport auto"),
    (["--transport", "auto", "--deadline", "tomorrow"], "--deadline 'tomorrow': give a"),
    (["--transport", "auto", "--deadline", "2026-12-01"], "give a date-time"),
    (["--transport", "auto", "--deadline", "2001-01-01T07:00"], "is already past"),
    (["--transport", "batch", "--deadline-margin", "5"], "pass --deadline"),
    (
        ["--transport", "auto", "--deadline", "2999-01-01T07:00", "--deadline-margin", "1e9"],
        "less --deadline-margin",
    ),
]


def flags_of(args: list[str]) -> DeliveryFlags:
    """The DeliveryFlags typer would make of `args`."""
    given = dict(zip(args[::2], args[1::2], strict=True))
    return DeliveryFlags(
        transport=TransportChoice(given.get("--transport", "realtime")),
        deadline=given.get("--deadline"),
        deadline_margin=float(given["--deadline-margin"]) if "--deadline-margin" in given else None,
        enqueued_tokens=int(given["--enqueued-tokens"]) if "--enqueued-tokens" in given else None,
        batch_retry=RetryChoice(given["--batch-retry"]) if "--batch-retry" in given else None,
    )


@pytest.mark.parametrize(("flags", "message"), WRONG)
def test_wrong_transport_flags_are_refused_with_what_to_do(flags: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _delivery(flags_of(flags))
    assert message in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    ("command", "case"), [("run", 0), ("run", 4), ("run", 7), ("estimate", 0), ("estimate", 5)]
)
def test_a_wrong_transport_flag_is_one_red_line_and_exit_2(command: str, case: int) -> None:
    flags, message = WRONG[case]
    # Checked before the dataset is read or Redis is asked: the dataset need not exist.
    proc = prelabel(command, "--dataset", "nowhere.jsonl", "--model", "gpt-4o-mini", *flags)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["--transport", "overnight"], "'--transport'"),
        (["--batch-retry", "never"], "'--batch-retry'"),
    ],
)
def test_a_transport_outside_the_choices_is_clicks_usage_error(
    flags: list[str], option: str
) -> None:
    proc = prelabel("run", "--dataset", "x.jsonl", "--model", "m", *flags)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "Error" in line]
    assert len(errors) == 1 and option in proc.stderr, proc.stderr


def test_help_shows_the_transport_panel_and_why_batch_shards_are_large() -> None:
    proc = prelabel("run", "--help")
    assert proc.returncode == 0
    out = " ".join(proc.stdout.split())
    assert "Transport" in out
    for flag in ("--transport", "--deadline", "--deadline-margin", "--enqueued-tokens"):
        assert flag in out
    assert "--batch-retry" in out
    assert "1000: a shard pass is one batch file" in out
    assert "50,000 requests and 200 MB" in out


# --- deadlines ----------------------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute).timestamp()  # naive: local time


def test_an_hh_mm_deadline_is_its_next_occurrence_in_local_time() -> None:
    evening = local(2026, 11, 30, 22, 15)
    assert parse_deadline("07:00", evening) == local(2026, 12, 1, 7)
    assert parse_deadline("23:30", evening) == local(2026, 11, 30, 23, 30)
    # The very minute it is now is past: tomorrow's.
    assert parse_deadline("22:15", evening) == local(2026, 12, 1, 22, 15)


def test_an_iso_deadline_is_local_time_unless_it_gives_an_offset() -> None:
    now = local(2026, 11, 30, 12)
    assert parse_deadline("2026-12-01T07:00", now) == local(2026, 12, 1, 7)
    assert parse_deadline("2026-12-01 07:00", now) == local(2026, 12, 1, 7)
    utc = datetime(2026, 12, 1, 6, 0, tzinfo=datetime.now().astimezone().tzinfo).timestamp()
    assert parse_deadline("2026-12-01T06:00" + _offset(), now) == utc
    assert parse_deadline("2026-12-01T07:00Z", now) == pytest.approx(
        datetime.fromisoformat("2026-12-01T07:00+00:00").timestamp()
    )
    with pytest.raises(ConfigError, match="already past"):
        parse_deadline("2026-11-30T11:59", now)
    with pytest.raises(ConfigError, match="HH:MM"):
        parse_deadline("7h", now)


def _offset() -> str:
    offset = datetime.now().astimezone().utcoffset() or timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def test_flags_make_the_runs_delivery() -> None:
    now = local(2026, 11, 30, 22)
    assert _delivery(DeliveryFlags()) == Delivery()
    batch = _delivery(
        DeliveryFlags(
            transport=TransportChoice.batch,
            enqueued_tokens=2_000_000,
            batch_retry=RetryChoice.realtime,
        )
    )
    assert batch == Delivery(transport="batch", enqueued_tokens=2_000_000, retry="realtime")
    auto = _delivery(
        DeliveryFlags(transport=TransportChoice.auto, deadline="07:00", deadline_margin=45), now
    )
    assert auto.transport == "auto"
    assert auto.deadline == local(2026, 12, 1, 7)
    assert auto.margin_seconds == 45 * 60
    assert auto.retry == "batch" and auto.enqueued_tokens is None
    default_margin = _delivery(DeliveryFlags(transport=TransportChoice.auto, deadline="07:00"), now)
    assert default_margin.margin_seconds == 3600


# --- the shard size -----------------------------------------------------------------------


def test_a_batch_run_cuts_shards_of_1000_items_unless_told() -> None:
    def options(transport: str, size: int | None = None) -> RunOptions:
        return RunOptions(
            model="m", base_url="u", shard_size=size, delivery=Delivery(transport=transport)
        )

    assert options("realtime").shard_items == 50
    assert options("batch").shard_items == 1000
    assert options("auto").shard_items == 1000
    assert options("batch", 200).shard_items == 200
    assert options("realtime", 7).shard_items == 7


def test_run_stores_the_delivery_and_the_batch_shard_size(
    redis_client: redis.Redis, redis_url: str, simulator_url: str
) -> None:
    # No worker: `--no-wait` returns once the run is written and enqueued.
    queue = f"prelabel-test-batch-cli-{os.getpid()}"
    env = {"REDIS_URL": redis_url, "PRELABEL_QUEUE": queue}
    common = ["--dataset", SAMPLE, "--model", "gpt-4o-mini", "--base-url", simulator_url]
    proc = prelabel(
        "run",
        *common,
        "--limit",
        "60",
        "--transport",
        "auto",
        "--deadline",
        "2999-01-01T07:00",
        "--deadline-margin",
        "30",
        "--enqueued-tokens",
        "90000",
        "--batch-retry",
        "realtime",
        "--no-wait",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "transport auto" in proc.stdout and "goes realtime" in proc.stdout
    run_id = proc.stdout.strip().splitlines()[-1]
    config = RunStore(redis_client).config(run_id)
    assert config.limits.shard_size == 1000 and config.shards == 1
    assert config.delivery == Delivery(
        transport="auto",
        deadline=datetime(2999, 1, 1, 7).timestamp(),
        margin_seconds=1800,
        enqueued_tokens=90000,
        retry="realtime",
    )
    proc = prelabel("run", *common, "--limit", "60", "--no-wait", env=env)
    assert proc.returncode == 0, proc.stderr
    realtime = RunStore(redis_client).config(proc.stdout.strip().splitlines()[-1])
    assert realtime.limits.shard_size == 50 and realtime.shards == 2
    assert realtime.delivery == Delivery()
    redis_client.delete(queue)


# --- prices -------------------------------------------------------------------------------


def test_batch_tokens_cost_half_the_list_price() -> None:
    price = Price(0.15, 0.60)
    # 1M prompt tokens of which 600k batched, 200k completion tokens of which 100k batched:
    # listed (400k × 0.15 + 100k × 0.60) = $0.12; batched (600k × 0.15 + 100k × 0.60) / 2
    # = $0.075; in all $0.195.
    assert price.cost(
        1_000_000, 200_000, batch_prompt=600_000, batch_completion=100_000
    ) == pytest.approx(0.195)
    assert price.cost(1_000_000, 200_000) == pytest.approx(0.27)
    assert price.batch_cost(1_000_000, 200_000) == pytest.approx(0.135)
    counters = {
        RunCounter.PROMPT_TOKENS: 1_000_000,
        RunCounter.COMPLETION_TOKENS: 200_000,
        RunCounter.BATCH_PROMPT_TOKENS: 600_000,
        RunCounter.BATCH_COMPLETION_TOKENS: 100_000,
    }
    assert counters_cost(price, counters) == pytest.approx(0.195)
    assert counters_cost(price, {}) == 0.0


def test_the_collected_cost_counts_batch_tokens_at_half() -> None:
    from collector.collect import run_cost

    config = RunConfig(
        run_id="r",
        endpoint=Endpoint(model="gpt-4o-mini", base_url="u"),
        spend=Spend(price_input=2.0, price_output=8.0),
    )
    counters = {"prompt_tokens": 3000, "completion_tokens": 1000, "batch_prompt_tokens": 2000}
    # (1000 × 2 + 1000 × 8 + 2000 × 2 / 2) / 1M
    assert run_cost(config, counters) == pytest.approx(0.012)


def test_the_report_says_which_transport_answered_how_much() -> None:
    plain = RunFigures(requests=10, prompt_tokens=1000, completion_tokens=100)
    assert plain.transport_line() == ""
    assert "answered by" not in dict(figure_rows(plain))
    mixed = RunFigures(
        requests=1030,
        prompt_tokens=350_000,
        completion_tokens=40_000,
        batches=2,
        batch_requests=1000,
        batch_prompt_tokens=340_000,
        batch_completion_tokens=39_000,
    )
    assert (mixed.realtime_requests, mixed.realtime_tokens) == (30, 11_000)
    assert dict(figure_rows(mixed))["answered by"] == (
        "Batch API 1,000 requests, 379,000 tokens (half price; 2 batches) · "
        "realtime 30 requests, 11,000 tokens"
    )
    again = RunFigures.model_validate_json(mixed.model_dump_json())
    assert again == mixed


def test_estimate_prices_a_batch_run_at_half_and_auto_between() -> None:
    from producer.estimate import Estimate, render_estimate

    est = Estimate(
        model="gpt-4o-mini",
        items=100,
        requests=100,
        prompt_tokens=1_000_000,
        completion_tokens=200_000,
        completion_bound=400_000,
        exact_prompt=True,
        price=Price(0.15, 0.60),
        batch_size=1,
        few_shot=0,
    )

    def text(e: Estimate) -> str:
        console = Console(record=True, width=300)
        console.print(render_estimate(e))
        return console.export_text()

    assert est.cost_usd == pytest.approx(0.27)
    assert "$0.2700" in text(est)
    batch = Estimate(**{**est.__dict__, "transport": "batch"})
    assert batch.cost_usd == pytest.approx(0.135)
    assert batch.cost_bound_usd == pytest.approx((150_000 + 240_000) / 2 / 1e6)
    shown = text(batch)
    assert "transport batch" in shown
    assert "price (estimated, Batch API: half the list price)" in shown and "$0.1350" in shown
    assert "0.075 / 0.3 (Batch API; list 0.15 / 0.6)" in shown
    auto = Estimate(**{**est.__dict__, "transport": "auto"})
    assert auto.cost_usd == pytest.approx(0.27) and auto.batch_cost_usd == pytest.approx(0.135)
    assert "$0.1350 to $0.2700" in text(auto)


def test_estimate_command_with_the_batch_transport() -> None:
    common = ["estimate", "--dataset", SAMPLE, "--model", "gpt-4o-mini", "--limit", "20"]
    realtime = prelabel(*common)
    batch = prelabel(*common, "--transport", "batch")
    assert realtime.returncode == 0 and batch.returncode == 0, batch.stderr

    def price(out: str) -> float:
        line = next(x for x in out.splitlines() if "price (estimated" in x)
        return float(line.split("$")[1].split()[0].rstrip("│"))

    assert price(batch.stdout) == pytest.approx(price(realtime.stdout) / 2, abs=1e-4)


# --- status, watch, exporter, cancel ------------------------------------------------------


def batch_run(client: redis.Redis, run_id: str, transport: str = "batch") -> None:
    config = RunConfig(
        run_id=run_id,
        total=3000,
        shards=3,
        created_at=time.time() - 600,
        endpoint=Endpoint(model="gpt-4o-mini", base_url="http://x/v1"),
        limits=Limits(shard_size=1000),
        spend=Spend(price_input=0.15, price_output=0.60),
        delivery=Delivery(transport=transport),  # type: ignore[arg-type]
    )
    records = [[NerRecord.from_tokens(f"s{s}-{i}", ["a"]) for i in range(1000)] for s in range(3)]
    RunStore(client).create(config, records)
    keys = RunKeys(run_id)
    batches = [
        BatchRecord(batch_id="batch_a", shard=0, key="k0", status="collected", requests=1000,
                    items=1000, completed=1000, created_at=1.0),
        BatchRecord(batch_id="batch_b", shard=1, key="k1", status="in_progress", requests=1000,
                    items=1000, created_at=2.0),
        BatchRecord(batch_id="batch_c", shard=2, key="k2", status="validating", requests=600,
                    items=600, created_at=3.0),
        BatchRecord(batch_id="batch_d", shard=2, key="k3", status="in_progress", requests=400,
                    items=400, created_at=4.0),
    ]  # fmt: skip
    client.hset(keys.batches, mapping={b.batch_id: b.model_dump_json() for b in batches})
    client.hset(
        keys.counters,
        mapping={
            RunCounter.LABELED: 1000,
            RunCounter.REQUESTS: 1010,
            RunCounter.PROMPT_TOKENS: 1_000_000,
            RunCounter.COMPLETION_TOKENS: 200_000,
            RunCounter.BATCHES: 4,
            RunCounter.BATCH_POLLS: 17,
            RunCounter.BATCH_REQUESTS: 1000,
            RunCounter.BATCH_PROMPT_TOKENS: 600_000,
            RunCounter.BATCH_COMPLETION_TOKENS: 100_000,
        },
    )


def test_status_shows_the_batches_by_state_with_their_items(redis_client: redis.Redis) -> None:
    batch_run(redis_client, "rb")
    snap = snapshot(read_run(redis_client, "rb", time.time()))
    assert [(b.state, b.batches, b.items) for b in snap.batches] == [
        ("validating", 1, 600),
        ("in_progress", 2, 1400),
        ("collected", 1, 1000),
    ]
    assert snap.cost_usd == pytest.approx(0.195)
    console = Console(record=True, width=250)
    console.print(render(snap))
    text = console.export_text()
    assert " ".join(text.split()).count("transport batch") == 1
    assert "validating 1 (600 items) · in_progress 2 (1,400 items) · collected 1 (1,000 items)" in (
        text
    )
    assert "Batch API 1,000 requests, 700,000 tokens (half price)" in text
    assert "realtime 10 requests, 500,000 tokens" in text
    assert "4 batches created, 17 polls" in text
    assert "$0.1950 so far" in text
    line = one_line(snap)
    assert "batches=validating:1/600,in_progress:2/1400,collected:1/1000" in line
    assert "batch_requests=1000" in line


def test_status_says_when_auto_went_realtime(redis_client: redis.Redis) -> None:
    batch_run(redis_client, "ra", transport="auto")
    redis_client.hset(RunKeys("ra").meta, "transport_now", "realtime")
    snap = snapshot(read_run(redis_client, "ra", time.time()))
    console = Console(record=True, width=250)
    console.print(render(snap))
    assert "realtime now" in console.export_text()
    assert "transport_now=realtime" in one_line(snap)


def test_a_realtime_run_shows_no_batch_rows(redis_client: redis.Redis) -> None:
    batch_run(redis_client, "rr", transport="realtime")
    redis_client.delete(RunKeys("rr").batches, RunKeys("rr").counters)
    snap = snapshot(read_run(redis_client, "rr", time.time()))
    console = Console(record=True, width=250)
    console.print(render(snap))
    text = console.export_text()
    assert "batches" not in text and "answered by" not in text
    assert "batches=" not in one_line(snap)


def test_the_exporter_has_batches_and_their_items_by_state(redis_client: redis.Redis) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from prelabel.exporter import registry_for

    batch_run(redis_client, "rb")
    batch_run(redis_client, "rr", transport="realtime")
    redis_client.delete(RunKeys("rr").batches, RunKeys("rr").counters)
    text = generate_latest(registry_for(redis_client)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def at(name: str, state: str, run: str = "rb") -> float:
        return samples[(name, (("run", run), ("state", state)))]

    assert at("prelabel_batches", "in_progress") == 2
    assert at("prelabel_batch_items", "in_progress") == 1400
    assert at("prelabel_batches", "validating") == 1
    assert at("prelabel_batch_items", "collected") == 1000
    assert at("prelabel_batches", "expired") == 0
    assert samples[("prelabel_batch_requests_total", (("run", "rb"),))] == 1000
    assert samples[("prelabel_batch_tokens_total", (("kind", "prompt"), ("run", "rb")))] == 600_000
    assert samples[("prelabel_batch_polls_total", (("run", "rb"),))] == 17
    assert samples[("prelabel_cost_usd", (("run", "rb"),))] == pytest.approx(0.195)
    assert not any(key[0] == "prelabel_batches" and ("run", "rr") in key[1] for key in samples)


def test_cancel_says_the_workers_cancel_the_runs_batches(
    redis_client: redis.Redis, redis_url: str
) -> None:
    batch_run(redis_client, "rc")
    proc = prelabel("cancel", "rc", env={"REDIS_URL": redis_url})
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "run rc: cancelled" in out
    assert "its 3 batches still in the Batch API (2,000 items) are cancelled by the workers'" in out
    batch_run(redis_client, "rq", transport="realtime")
    redis_client.delete(RunKeys("rq").batches)
    proc = prelabel("cancel", "rq", env={"REDIS_URL": redis_url})
    assert proc.returncode == 0 and "Batch API" not in proc.stdout


def test_prelabel_caps_give_the_enqueued_token_limit_a_run_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prelabel.settings import enqueued_token_limit, load_settings

    caps = '{"gpt-4o-mini": {"rpm": 500, "enqueued_tokens": 2000000}, "*": {"enqueued_tokens": 9}}'
    monkeypatch.setenv("PRELABEL_CAPS", caps)
    settings = load_settings()
    assert enqueued_token_limit(settings, "gpt-4o-mini") == 2_000_000
    assert enqueued_token_limit(settings, "gpt-4o-mini", own=5000) == 5000
    assert enqueued_token_limit(settings, "other") == 9
    monkeypatch.setenv("PRELABEL_CAPS", "{}")
    assert enqueued_token_limit(load_settings(), "other") is None
    monkeypatch.setenv("PRELABEL_CAPS", '{"gpt-4o-mini": {"enqueued_tokens": 0}}')
    with pytest.raises(ConfigError, match=r"PRELABEL_CAPS is invalid at gpt-4o-mini\.enqueued"):
        load_settings()


def test_the_reports_say_which_transport_answered_in_one_line(tmp_path: Path) -> None:
    from evaluation.outputs import write_reports
    from task_types.ner.evaluation import Item, evaluate_items

    items = [Item("a", ("Paris", "is"), ("B-LOC", "O"), ("B-LOC", "O"))]
    figures = RunFigures(
        items=1,
        labeled=1,
        requests=1,
        prompt_tokens=300,
        completion_tokens=20,
        batches=1,
        batch_requests=1,
        batch_prompt_tokens=300,
        batch_completion_tokens=20,
    )
    write_reports(evaluate_items(items, figures, resamples=50), tmp_path)
    line = "Batch API 1 request, 320 tokens (half price; 1 batch) · realtime 0 requests, 0 tokens"
    for name in ("report.md", "report.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert text.count("answered by") == 1, name
        assert line in text, name
    report = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert '"batch_prompt_tokens": 300' in report or '"batch_prompt_tokens":300' in report


def test_watch_prints_the_batches_in_its_log_lines(redis_client: redis.Redis) -> None:
    import io

    from prelabel.status import watch

    batch_run(redis_client, "rw")
    redis_client.hset(RunKeys("rw").meta, "status", "cancelled")  # finished: one line, then out
    out = io.StringIO()
    watch(redis_client, "rw", Console(file=out, width=400), interval=0.1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "status=cancelled" in lines[0]
    assert "batches=validating:1/600,in_progress:2/1400,collected:1/1000" in lines[0]
