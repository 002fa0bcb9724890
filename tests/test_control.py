"""Run control on real parts: --no-wait and collect, cancel, budgets, the answer cache,
and Redis data that expires once a run is collected."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prelabel.store import RunStore

pytestmark = pytest.mark.slow


def prelabel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def answered(simulator_url: str) -> int:
    with urllib.request.urlopen(simulator_url.removesuffix("/v1") + "/stats") as resp:
        stats = json.load(resp)
    return int(stats["requests"] - stats["faults"] - stats["rate_limited"])


def start(env: dict[str, str], gold: Path, url: str, *extra: str) -> str:
    proc = prelabel(
        "run", "--dataset", str(gold), "--model", "m", "--base-url", url, "--no-wait", *extra,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def wait_status(env: dict[str, str], run_id: str, want: set[str]) -> str:
    store = RunStore(redis.Redis.from_url(env["REDIS_URL"]))
    for _ in range(600):
        status, _ = store.status(run_id)
        if status in want:
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {status}")


def test_no_wait_then_collect_and_the_data_expires(
    fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    run_id = start(fleet_env, gold_path, simulator_url, "--limit", "40", "--shard-size", "10")
    wait_status(fleet_env, run_id, {"completed"})
    out = tmp_path / "collected"
    proc = prelabel("collect", run_id, "--out", str(out), env=fleet_env)
    assert proc.returncode == 0, proc.stderr
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 40
    client = redis.Redis.from_url(fleet_env["REDIS_URL"])
    keys = list(client.scan_iter(f"prelabel:run:{run_id}*"))
    assert keys
    ttls = [client.ttl(k) for k in keys]
    assert all(0 < t <= 7 * 24 * 3600 for t in ttls), dict(zip(keys, ttls, strict=True))


@pytest.fixture(scope="module")
def slow_simulator_url(fleet_env: dict[str, str], gold_path: Path) -> Iterator[str]:
    """A simulator that takes a second per answer, so that runs are caught in work."""
    from prelabel import launch

    port = launch.free_port()
    sim = launch.start_simulator(port, gold_path, extra=["--latency-ms", "1000"], env=fleet_env)
    yield f"http://127.0.0.1:{port}/v1"
    launch.stop([sim])


# Needs the shared CoNLL-2003 split: it runs more items than the 94-sentence sample holds.
@pytest.mark.usefixtures("conll_test_path")
def test_collecting_a_run_in_work_needs_partial(
    fleet_env: dict[str, str], slow_simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    # 1,500 items at a second each keep the fleet busy for far longer than three CLI calls.
    run_id = start(fleet_env, gold_path, slow_simulator_url, "--limit", "1500")
    proc = prelabel("collect", run_id, "--out", str(tmp_path / "o"), env=fleet_env)
    assert proc.returncode == 2
    assert "--partial" in proc.stderr
    proc = prelabel("collect", run_id, "--partial", "--out", str(tmp_path / "p"), env=fleet_env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 1500
    assert any(r["status"] == "failed" and "not labeled" in r["error"] for r in rows)
    assert prelabel("cancel", run_id, env=fleet_env).returncode == 0


# Needs the shared CoNLL-2003 split: it runs more items than the 94-sentence sample holds.
@pytest.mark.usefixtures("conll_test_path")
def test_cancel_stops_a_run_and_resume_finishes_it(
    fleet_env: dict[str, str], slow_simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    url = slow_simulator_url
    run_id = start(fleet_env, gold_path, url, "--limit", "300", "--shard-size", "10", "--no-cache")
    time.sleep(1.0)
    proc = prelabel("cancel", run_id, env=fleet_env)
    assert proc.returncode == 0, proc.stderr
    time.sleep(1.5)  # calls in flight land
    store = RunStore(redis.Redis.from_url(fleet_env["REDIS_URL"]))
    counters = store.counters(run_id)
    done_at_cancel = counters["labeled"] + counters["failed"]
    assert done_at_cancel < 300
    time.sleep(1.0)
    counters = store.counters(run_id)
    assert counters["labeled"] + counters["failed"] == done_at_cancel  # nothing new
    assert store.status(run_id)[0] == "cancelled"
    proc = prelabel("resume", run_id, env=fleet_env)
    assert proc.returncode == 0, proc.stderr
    wait_status(fleet_env, run_id, {"completed"})
    assert store.counters(run_id)["labeled"] == 300


# Needs the shared CoNLL-2003 split: it runs more items than the 94-sentence sample holds.
@pytest.mark.usefixtures("conll_test_path")
def test_a_token_budget_stops_the_run_and_keeps_what_was_done(
    fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    run_id = start(
        fleet_env, gold_path, simulator_url, "--limit", "100", "--max-tokens", "64",
        "--budget-tokens", "8000", "--no-cache",
    )  # fmt: skip
    assert wait_status(fleet_env, run_id, {"stopped", "completed"}) == "stopped"
    store = RunStore(redis.Redis.from_url(fleet_env["REDIS_URL"]))
    _, error = store.status(run_id)
    assert "budget" in (error or "")
    time.sleep(0.5)
    counters = store.counters(run_id)
    spent = counters["prompt_tokens"] + counters["completion_tokens"]
    assert spent <= 8000
    assert 0 < counters["labeled"] < 100
    out = tmp_path / "partial"
    proc = prelabel("collect", run_id, "--out", str(out), env=fleet_env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 100
    assert sum(r["status"] == "labeled" for r in rows) == counters["labeled"]


def test_a_rerun_is_answered_from_the_cache_and_no_cache_pays_again(
    fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    args = ("--limit", "25", "--shard-size", "25")
    first = start(fleet_env, gold_path, simulator_url, *args)
    wait_status(fleet_env, first, {"completed"})
    before = answered(simulator_url)
    second = start(fleet_env, gold_path, simulator_url, *args)
    wait_status(fleet_env, second, {"completed"})
    assert answered(simulator_url) == before  # not one call paid twice
    store = RunStore(redis.Redis.from_url(fleet_env["REDIS_URL"]))
    assert store.counters(second)["cache_hits"] == 25
    # The cached answers were the simulator's: the rerun's report must still say so.
    assert store.counters(second)["simulated"] == 25
    assert store.counters(second)["labeled"] == 25
    third = start(fleet_env, gold_path, simulator_url, *args, "--no-cache")
    wait_status(fleet_env, third, {"completed"})
    assert answered(simulator_url) == before + 25
