"""`prelabel resume RUN --failed`: a run's failed items are labeled again, on real workers and
the simulator: same run, same output folder, nothing else asked again, idempotent."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prelabel.store import RunStore
from tests.test_control import prelabel, start, wait_status

pytestmark = pytest.mark.slow

ITEMS = 40


@pytest.fixture(scope="module")
def garbling_simulator_url(fleet_env: dict[str, str], gold_path: Path) -> Iterator[str]:
    """A simulator whose answers are garbage one time in three: those items fail."""
    from prelabel import launch

    port = launch.free_port()
    extra = ["--malformed-rate", "0.35", "--seed", "5"]
    sim = launch.start_simulator(port, gold_path, extra=extra, env=fleet_env)
    yield f"http://127.0.0.1:{port}/v1"
    launch.stop([sim])


def requests_served(url: str) -> int:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats") as resp:
        return int(json.load(resp)["requests"])


def collected(out: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == ITEMS
    return {str(r["id"]): r for r in rows}


def test_failed_items_are_labeled_again_in_the_same_run_and_folder(
    fleet_env: dict[str, str], garbling_simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    url = garbling_simulator_url
    run_id = start(fleet_env, gold_path, url, "--limit", str(ITEMS), "--shard-size", "10")
    wait_status(fleet_env, run_id, {"completed"})
    out = tmp_path / "run"
    assert prelabel("collect", run_id, "--out", str(out), env=fleet_env).returncode == 0
    rows = collected(out)
    failed = {i for i, r in rows.items() if r["status"] == "failed"}
    assert failed, "the simulator garbled no answer: nothing to retry"

    for _ in range(8):  # each round, about a third of what is left fails again
        served = requests_served(url)
        proc = prelabel("resume", run_id, "--failed", env=fleet_env)
        assert proc.returncode == 0, proc.stderr
        assert f"{len(failed)} failed items to label again" in proc.stdout
        wait_status(fleet_env, run_id, {"completed"})
        # Only the failed items were asked again, each once (batch size 1).
        assert requests_served(url) - served == len(failed)
        assert prelabel("collect", run_id, "--out", str(out), env=fleet_env).returncode == 0
        again = collected(out)
        # Labeled items kept their results; the counters agree with the folder.
        assert all(again[i] == r for i, r in rows.items() if i not in failed)
        rows = again
        failed = {i for i, r in rows.items() if r["status"] == "failed"}
        counters = RunStore(redis.Redis.from_url(fleet_env["REDIS_URL"])).counters(run_id)
        assert (counters["labeled"], counters["failed"]) == (ITEMS - len(failed), len(failed))
        if not failed:
            break
    assert not failed

    # Idempotent: with nothing failed, nothing changes and nothing is asked.
    served = requests_served(url)
    proc = prelabel("resume", run_id, "--failed", env=fleet_env)
    assert proc.returncode == 0, proc.stderr
    assert "no failed items" in proc.stdout
    assert RunStore(redis.Redis.from_url(fleet_env["REDIS_URL"])).status(run_id)[0] == "completed"
    assert requests_served(url) == served


def test_a_running_run_is_not_retried(
    fleet_env: dict[str, str], simulator_url: str, redis_client: redis.Redis
) -> None:
    from prelabel.errors import RunError
    from prelabel.model import RunConfig
    from prelabel.settings import load_settings
    from producer.control import retry_failed
    from task_types.ner.model import NerRecord

    store = RunStore(redis_client)
    config = RunConfig(run_id="retry-running", model="m", base_url=simulator_url, shards=1)
    store.create(config, [[NerRecord.from_tokens("i0", ["Paris"])]])
    with pytest.raises(RunError, match="still running"):
        retry_failed(load_settings(REDIS_URL=fleet_env["REDIS_URL"]), store, "retry-running")
