"""`prelabel run` rides out a Redis restart under it, as the workers do, then completes and
collects the run. A redis-server of the test's own (AOF on, a free port), never the shared
one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from prelabel import launch
from tests.test_chaos import Fleet, synthesize

pytestmark = pytest.mark.slow

PRELABEL = str(Path(sys.executable).parent / "prelabel")
ITEMS = 200


def test_the_follower_rides_out_a_redis_restart_then_collects(
    gold_path: Path, tmp_path: Path
) -> None:
    port = launch.free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = launch.start_redis(port, data)
    url = f"redis://127.0.0.1:{port}/0"
    fleet = Fleet(url, synthesize(gold_path, tmp_path / "gold.conll", ITEMS), tmp_path)
    out = tmp_path / "out"
    follower: subprocess.Popen[str] | None = None
    try:
        fleet.start()
        # 600 requests/min over 200 items: about 20 s of work, so the restart lands mid-run.
        follower = subprocess.Popen(
            [
                PRELABEL, "run", "--dataset", str(fleet.gold), "--model", "gpt-4o-mini",
                "--base-url", fleet.sim_url, "--rpm", "600", "--shard-size", "20",
                "--out", str(out),
            ],
            env=fleet.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert follower.stdout is not None
        run_id = follower.stdout.readline().split()[1].rstrip(":")
        fleet.wait_until(lambda: fleet.done(run_id) >= 20, "the run under way")
        assert follower.poll() is None
        server.send_signal(signal.SIGTERM)  # a restart: AOF flushed on shutdown
        server.wait(20)
        time.sleep(3.0)  # a few seconds of connection refused
        assert follower.poll() is None, follower.stderr.read() if follower.stderr else ""
        server = launch.start_redis(port, data)
        stdout, stderr = follower.communicate(timeout=300)
        assert follower.returncode == 0, stderr + stdout
        # The follower's client retries a dropped connection for about ten seconds
        # (`connections.riding_out_restarts`), so a 3 s restart may pass unnoticed; a longer
        # outage gets one line saying what it waits for (producer/progress.py).
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == ITEMS and len({r["id"] for r in rows}) == ITEMS
        assert all(r["status"] == "labeled" for r in rows)
        assert redis.Redis(port=port).hget(f"prelabel:run:{run_id}", "status") == b"completed"
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
        fleet.stop()
        server.send_signal(signal.SIGKILL)
        server.wait(10)
