"""A run's figures (prelabel.monitor), the live view, and the Prometheus exporter scraped
while real workers label a real run."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from rich.console import Console

from prelabel import launch
from prelabel.errors import RunError
from prelabel.exporter import RunCollector
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.monitor import (
    RunView,
    Sample,
    Window,
    eta_seconds,
    failure_reasons,
    rates,
    read_run,
    read_runs,
    snapshot,
)
from prelabel.status import one_line, render
from prelabel.store import RunStore
from task_types.ner import NER
from task_types.ner.model import NerRecord, NerResult


def config(**over: object) -> RunConfig:
    base: dict[str, object] = {
        "run_id": "r1",
        "model": "gpt-x",
        "base_url": "http://e/v1",
        "rpm": 600,
        "tpm": 100_000,
        "max_tokens": 100,
        "total": 1000,
        "created_at": 1000.0,
    }
    return RunConfig.model_validate({**base, **over})


def counters(**values: int) -> dict[str, int]:
    return dict(values)


# --- pure maths ---------------------------------------------------------------------------


def test_rates_between_two_samples() -> None:
    older = Sample(1000.0, counters(labeled=10, failed=0, requests=10, prompt_tokens=1000))
    newer = Sample(
        1030.0,
        counters(
            labeled=100,
            failed=10,
            requests=120,
            prompt_tokens=12_000,
            completion_tokens=3_000,
            rate_limited=6,
            bucket_wait_ms=55_000,
        ),
    )
    r = rates(older, newer, max_tokens=100)
    assert r is not None
    assert r.seconds == 30
    assert r.items_per_s == pytest.approx(100 / 30)
    assert r.requests_per_min == pytest.approx(110 * 2)
    assert r.tokens_per_min == pytest.approx((11_000 + 3_000) * 2)
    # What the provider charges against TPM: prompt + max_tokens for each call.
    assert r.charged_tokens_per_min == pytest.approx((11_000 + 110 * 100) * 2)
    assert r.rate_limited_per_min == pytest.approx(12)
    assert r.wait_per_request_s == pytest.approx(55 / 110)
    assert r.cost_per_min is None  # no price table


def test_rates_need_time_to_pass_and_read_absent_counters_as_zero() -> None:
    s = Sample(5.0, counters(labeled=3))
    assert rates(s, s, max_tokens=1) is None
    assert rates(Sample(6.0), s, max_tokens=1) is None
    r = rates(Sample(0.0), s, max_tokens=1)
    assert r is not None
    assert r.wait_per_request_s == 0.0
    assert r.requests_per_min == 0.0


@pytest.mark.parametrize(
    ("remaining", "speed", "expected"),
    [(0, None, 0.0), (0, 5.0, 0.0), (100, 4.0, 25.0), (100, 0.0, None), (100, None, None)],
)
def test_eta(remaining: int, speed: float | None, expected: float | None) -> None:
    assert eta_seconds(remaining, speed) == expected


def test_one_shot_snapshot_averages_since_creation() -> None:
    view = RunView(
        config(),
        "running",
        None,
        Sample(1100.0, counters(labeled=180, failed=20, requests=200, prompt_tokens=20_000)),
    )
    snap = snapshot(view)
    assert snap.done == 200 and snap.remaining == 800
    assert snap.rates is not None
    assert snap.rates.items_per_s == pytest.approx(2.0)
    assert snap.eta_s == pytest.approx(400.0)
    assert snap.rpm_used == pytest.approx(120 / 600)
    assert snap.tpm_used == pytest.approx((12_000 + 120 * 100) / 100_000)
    assert not snap.finished


def test_stopped_run_averages_until_it_stopped_and_has_no_eta() -> None:
    sample = Sample(9999.0, counters(labeled=500))
    snap = snapshot(RunView(config(), "failed", "no quota", sample, updated_at=1100.0))
    assert snap.finished
    assert snap.rates is not None and snap.rates.items_per_s == pytest.approx(5.0)
    assert snap.eta_s is None  # items remain, but nothing will do them
    done = snapshot(RunView(config(total=500), "running", None, sample))
    assert done.finished and done.eta_s == 0.0


def test_window_gives_the_oldest_sample_within_its_span() -> None:
    w = Window(seconds=10)
    assert w.add(Sample(0.0, counters(labeled=0))) is None
    assert w.add(Sample(4.0, counters(labeled=4))) == Sample(0.0, counters(labeled=0))
    assert w.add(Sample(8.0, counters(labeled=8))) == Sample(0.0, counters(labeled=0))
    # At 12 s the 0 s sample is out of the window.
    assert w.add(Sample(12.0, counters(labeled=12))) == Sample(4.0, counters(labeled=4))
    # Counters that go back (a run recreated under the same id) start the window again.
    assert w.add(Sample(13.0, counters(labeled=1))) is None


def test_cost_comes_from_the_price_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sample = Sample(1060.0, counters(prompt_tokens=600_000, completion_tokens=100_000))
    # Built in: gpt-4o-mini at $0.15 / $0.60 per million tokens, dated snapshots included.
    builtin = snapshot(RunView(config(model="gpt-4o-mini-2024-07-18"), "running", None, sample))
    assert builtin.cost_usd == pytest.approx(0.6 * 0.15 + 0.1 * 0.60)
    assert builtin.rates is not None
    assert builtin.rates.cost_per_min == pytest.approx(builtin.cost_usd)  # one minute in
    # A price file adds models.
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."gpt-x"]\ninput = 1.0\noutput = 4.0\n')
    assert snapshot(RunView(config(), "running", None, sample)).cost_usd is None
    monkeypatch.setenv("PRELABEL_PRICES", str(prices))
    snap = snapshot(RunView(config(), "running", None, sample))
    assert snap.cost_usd == pytest.approx(1.0)
    assert snap.rates is not None and snap.rates.cost_per_min == pytest.approx(1.0)
    unpriced = snapshot(RunView(config(model="other"), "running", None, sample))
    assert unpriced.cost_usd is None and unpriced.rates is not None
    assert unpriced.rates.cost_per_min is None


def test_render_shows_every_figure() -> None:
    sample = Sample(
        1060.0, counters(labeled=90, failed=10, requests=100, rate_limited=3, bucket_wait_ms=2500)
    )
    snap = snapshot(RunView(config(), "running", None, sample))
    console = Console(record=True, width=140)
    console.print(render(snap, [("the model returned an empty answer", 10)]))
    text = console.export_text()
    for needle in (
        "100 / 1,000",
        "failed 10",
        "1.67 items/s",
        "vs cap 600",
        "vs cap 100,000",
        "cost",
        "n/a",
        "429s",
        "bucket wait",
        "0.03 s per call",
        "ETA",
        "9m 00s",
        "the model returned an empty answer",
    ):
        assert needle in text, needle
    assert "done=100/1000" in one_line(snap)


def test_exporter_families_carry_the_snapshot_figures() -> None:
    views = [
        RunView(config(), "running", None, Sample(1060.0, counters(labeled=50, requests=60))),
        RunView(config(run_id="r2", rpm=None), "completed", None, Sample(1060.0)),
    ]

    class Fixed(RunCollector):
        def snapshots(self):  # type: ignore[no-untyped-def]
            return [snapshot(v) for v in views]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(None))  # type: ignore[arg-type]
    samples = scrape_registry(registry)
    assert samples[("prelabel_items_total", (("outcome", "labeled"), ("run", "r1")))] == 50
    assert samples[("prelabel_requests_total", (("run", "r1"),))] == 60
    assert samples[("prelabel_run_cap_rpm", (("run", "r1"),))] == 600
    assert ("prelabel_run_cap_rpm", (("run", "r2"),)) not in samples
    assert samples[("prelabel_run_items_per_second", (("run", "r1"),))] == pytest.approx(50 / 60)
    status = ("prelabel_run_status", (("prelabel_run_status", "completed"), ("run", "r2")))
    assert samples[status] == 1
    assert samples[("prelabel_exporter_up", ())] == 1


def scrape_registry(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    from prometheus_client import generate_latest

    return parse(generate_latest(registry).decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- Redis reads --------------------------------------------------------------------------


def test_reads_runs_and_failure_reasons_from_redis(redis_client: redis.Redis) -> None:
    store = RunStore(redis_client)
    records = [NerRecord.from_tokens(f"i{n}", ["a", "b"]) for n in range(7)]
    store.create(config(run_id="rr", total=7, shards=1), [records])
    keys = RunKeys("rr")
    # Grouped by kind, not by the whole text: the answer snippets differ from item to item.
    reasons = [
        'answer is not JSON: {"LOC": ["Tokyo", "Tokyo", "Tok',
        "answer is not JSON: I think the entities are",
        "line 3: answer is not JSON: sure",
        "endpoint failed 6 times: HTTP 500",
        "the model returned an empty answer",
    ]
    for n, reason in enumerate(reasons):
        result = NerResult(id=f"i{n}", status="failed", error=reason)
        redis_client.hset(keys.results, f"i{n}", result.model_dump_json())
    redis_client.hset(keys.results, "i6", NerResult(id="i6", status="labeled").model_dump_json())
    redis_client.hset(keys.counters, mapping={"failed": 5, "labeled": 1})
    assert failure_reasons(redis_client, "rr") == [
        ("answer is not JSON", 3),
        ("endpoint failed 6 times", 1),
        ("the model returned an empty answer", 1),
    ]
    view = read_run(redis_client, "rr", now=2000.0)
    assert view.status == "running" and view.sample.done == 6
    # A run listed in the index whose data expired is skipped, not an error.
    assert [v.config.run_id for v in read_runs(redis_client, ["gone", "rr"], 1.0)] == ["rr"]
    with pytest.raises(RunError, match="prelabel runs"):
        read_run(redis_client, "gone", now=1.0)


def test_the_exporter_counts_the_shards_being_labeled(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """KEDA keeps a pod per shard in progress from `prelabel_shards_labeling` (keda.yaml):
    it follows the leases workers hold, per run and over every run, and drops to 0 when they
    are released."""
    import asyncio

    import redis.asyncio as aioredis

    from prelabel.exporter import SHARDS_LABELING, registry_for
    from workers.lease import shard_lease

    client = redis_client
    store = RunStore(client)
    for run_id in ("ra", "rb"):
        records = [[NerRecord.from_tokens(f"{run_id}{n}", ["a"])] for n in range(3)]
        store.create(config(run_id=run_id, total=3, shards=3), records)

    def scraped() -> dict[tuple[str, tuple], float]:
        return scrape_registry(registry_for(client))

    async def hold(leases: list[tuple[str, int]]) -> dict[tuple[str, tuple], float]:
        async with (
            aioredis.Redis.from_url(redis_url) as aclient,
            contextlib.AsyncExitStack() as stack,
        ):
            for run_id, shard in leases:
                await stack.enter_async_context(shard_lease(aclient, run_id, shard, 60))
            return scraped()

    held = asyncio.run(hold([("ra", 0), ("ra", 2), ("rb", 1)]))
    assert held[("prelabel_run_shards_labeling", (("run", "ra"),))] == 2
    assert held[("prelabel_run_shards_labeling", (("run", "rb"),))] == 1
    assert held[(SHARDS_LABELING, ())] == 3
    released = scraped()
    assert released[(SHARDS_LABELING, ())] == 0
    assert released[("prelabel_run_shards_labeling", (("run", "ra"),))] == 0


def test_caps_the_workers_apply_stand_in_for_caps_the_run_did_not_give(
    redis_client: redis.Redis,
) -> None:
    store = RunStore(redis_client)
    records = [NerRecord.from_tokens("i0", ["a"])]
    store.create(config(run_id="rc", rpm=None, tpm=500, total=1, shards=1), [records])
    assert snapshot(read_run(redis_client, "rc", now=2000.0)).rpm_cap is None
    # A worker starting a shard writes the caps it resolved (here from PRELABEL_CAPS).
    redis_client.hset(RunKeys("rc").meta, "caps", json.dumps({"rpm": 120, "tpm": 900}))
    snap = snapshot(read_run(redis_client, "rc", now=2000.0))
    assert (snap.rpm_cap, snap.tpm_cap) == (120, 500)  # the run's own --tpm comes first


def test_status_and_the_exporter_show_the_counters_the_runs_task_type_declares(
    redis_client: redis.Redis,
) -> None:
    from prelabel.exporter import registry_for

    store = RunStore(redis_client)
    records = [NerRecord.from_tokens("i0", ["a"])]
    store.create(config(run_id="ru", total=1, shards=1), [records], counters=NER.counters)
    store.create(config(run_id="rn", total=1, shards=1), [records])  # a task without any
    redis_client.hset(RunKeys("ru").counters, "unaligned", 1234)
    console = Console(record=True, width=200)
    console.print(render(snapshot(read_run(redis_client, "ru", now=2000.0))))
    console.print(render(snapshot(read_run(redis_client, "rn", now=2000.0))))
    text = console.export_text()
    assert text.count("failed 0 · unaligned mentions 1,234 ") == 1
    assert text.count("mentions") == 1
    samples = scrape_registry(registry_for(redis_client))
    assert samples[("prelabel_unaligned_mentions_total", (("run", "ru"),))] == 1234
    assert ("prelabel_unaligned_mentions_total", (("run", "rn"),)) not in samples


def test_status_costs_a_run_at_its_stored_price_as_run_json_does(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from collector import collect

    store = RunStore(redis_client)
    records = [NerRecord.from_tokens("i0", ["a"])]
    # Priced at creation at $1 / $4 per million tokens, and stored with the run.
    cfg = config(
        run_id="rp", model="gpt-4o-mini", price_input=1.0, price_output=4.0, total=1, shards=1
    )
    store.create(cfg, [records])
    redis_client.hset(
        RunKeys("rp").counters, mapping={"prompt_tokens": 600_000, "completion_tokens": 100_000}
    )
    # By the time somebody looks, the price table says otherwise.
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."gpt-4o-mini"]\ninput = 10.0\noutput = 40.0\n')
    monkeypatch.setenv("PRELABEL_PRICES", str(prices))
    snap = snapshot(read_run(redis_client, "rp", now=2000.0))
    collected = collect(store, "rp", tmp_path / "out", wall_seconds=1.0)
    run_json = RunConfig.model_validate_json((tmp_path / "out" / "run.json").read_text())
    assert (run_json.spend.price_input, run_json.spend.price_output) == (1.0, 4.0)
    assert snap.cost_usd == pytest.approx(0.6 * 1.0 + 0.1 * 4.0)
    assert collected.evaluation.figures.cost_usd == pytest.approx(snap.cost_usd)
    # A run created without a known price is costed at the table's, by both alike.
    store.create(config(run_id="rq", model="gpt-4o-mini", total=1, shards=1), [records])
    redis_client.hset(RunKeys("rq").counters, mapping={"prompt_tokens": 100_000})
    unpriced = snapshot(read_run(redis_client, "rq", now=2000.0))
    assert unpriced.cost_usd == pytest.approx(0.1 * 10.0)
    again = collect(store, "rq", tmp_path / "out-q", wall_seconds=1.0)
    assert again.evaluation.figures.cost_usd == pytest.approx(unpriced.cost_usd)


# --- the exporter and the live view during a real run ------------------------------------


@pytest.fixture
def exporter(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = launch.free_port()
    env = {**os.environ, "REDIS_URL": redis_url}
    with open(tmp_path / "metrics.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prelabel", "metrics", "--port", str(port), "--window", "5"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        launch.stop([proc])
    assert proc.returncode == 0  # SIGTERM stops it cleanly


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse(response.read().decode())


@pytest.mark.slow
def test_exporter_and_watch_follow_a_real_run(
    fleet_env: dict[str, str],
    simulator_url: str,
    gold_path: Path,
    redis_url: str,
    exporter: str,
    tmp_path: Path,
) -> None:
    n = 80
    # The RPM cap makes the run last several seconds, whatever the machine's speed.
    started = subprocess.run(
        [
            *(sys.executable, "-m", "prelabel", "run", "--dataset", str(gold_path)),
            *("--model", "m", "--limit", str(n), "--base-url", simulator_url),
            *("--rpm", "600", "--shard-size", "10", "--no-wait"),
        ],
        env=fleet_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip().splitlines()[-1]
    watch = subprocess.Popen(
        [sys.executable, "-m", "prelabel", "status", run_id, "--watch", "--interval", "0.3"],
        env=fleet_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = (("run", run_id),)
    labeled_key = ("prelabel_items_total", (("outcome", "labeled"), ("run", run_id)))
    failed_key = ("prelabel_items_total", (("outcome", "failed"), ("run", run_id)))
    scrapes: list[dict[tuple[str, tuple], float]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        metrics = scrape(exporter)
        if labeled_key in metrics:
            scrapes.append(metrics)
            if metrics[labeled_key] + metrics[failed_key] >= n:
                break
        time.sleep(0.25)
    else:
        pytest.fail("the run did not finish")

    done = [s[labeled_key] + s[failed_key] for s in scrapes]
    assert done == sorted(done), "a counter went down between scrapes"
    during = [s for s in scrapes if 0 < s[labeled_key] + s[failed_key] < n]
    assert during, "no scrape saw the run in progress"
    assert any(s.get(("prelabel_run_items_per_second", run), 0) > 0 for s in during)
    assert any(("prelabel_run_eta_seconds", run) in s for s in during)
    assert all(s[("prelabel_run_items", run)] == n for s in scrapes)
    assert all(s[("prelabel_run_cap_rpm", run)] == 600 for s in scrapes)

    # The last scrape agrees with Redis.
    final = scrape(exporter)
    store = RunStore(redis.Redis.from_url(redis_url))
    c = store.counters(run_id)
    assert final[labeled_key] == c["labeled"] == n
    assert final[("prelabel_requests_total", run)] == c["requests"]
    assert (
        final[("prelabel_tokens_total", (("kind", "prompt"), ("run", run_id)))]
        == (c["prompt_tokens"])
    )
    assert final[("prelabel_run_remaining_items", run)] == 0

    # --watch ends by itself once the run is done; piped, it prints one line per redraw.
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) >= 2
    assert f"done={n}/{n}" in lines[-1]

    shown = subprocess.run(
        [sys.executable, "-m", "prelabel", "status", run_id],
        env={**fleet_env, "COLUMNS": "140"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{n} / {n} (100.0%)" in shown.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "prelabel", "runs"],
        env={**fleet_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run_id in listed.stdout


def test_status_of_an_unknown_run_is_one_red_line(redis_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prelabel", "status", "no-such-run"],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "no-such-run" in proc.stderr and "prelabel runs" in proc.stderr
    assert "Traceback" not in proc.stderr
