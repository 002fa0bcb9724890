"""`prelabel flower` on real parts: a Flower process and a `celery worker` process on Redis."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prelabel import launch

pytestmark = pytest.mark.slow

USER, PASSWORD = "watcher", "flower-test-pw-7f3a"


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def flower(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A worker and `prelabel flower` with basic auth, on a queue of their own."""
    queue = f"prelabel-flower-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_url, "PRELABEL_QUEUE": queue}
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    logs = tmp_path_factory.mktemp("flower")
    node = f"{queue}@flowertest"
    worker = launch.start_worker(concurrency=1, env=env, log=logs / "worker.log", hostname=node)
    port = launch.free_port()
    flower_log = logs / "flower.log"
    with open(flower_log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prelabel", "flower", "--port", str(port)],
            env={**env, "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{base}/healthcheck")[0] == 200, "Flower to answer")
        yield {"base": base, "node": node, "log": flower_log}
    finally:
        launch.stop([proc, worker])


def test_api_needs_the_basic_auth(flower: dict[str, Any]) -> None:
    status, _ = get(f"{flower['base']}/api/workers")
    assert status == 401
    status, _ = get(f"{flower['base']}/api/workers", auth=(USER, "wrong"))
    assert status == 401


def test_api_workers_lists_the_running_worker(flower: dict[str, Any]) -> None:
    url = f"{flower['base']}/api/workers?refresh=1"

    def listed() -> dict[str, Any] | None:
        status, body = get(url, auth=(USER, PASSWORD))
        workers = json.loads(body) if status == 200 else {}
        return workers if flower["node"] in workers else None

    workers = wait_for(listed, f"{flower['node']} in /api/workers")
    # Flower read the worker's own configuration: it consumes prelabel's queue.
    queues = [q["name"] for q in workers[flower["node"]]["active_queues"]]
    assert queues == [flower["node"].split("@")[0]]


def test_workers_send_events_that_flower_and_its_metrics_see(flower: dict[str, Any]) -> None:
    url = f"{flower['base']}/api/workers?status=1"

    def alive() -> bool:
        status, body = get(url, auth=(USER, PASSWORD))
        return status == 200 and json.loads(body).get(flower["node"]) is True

    wait_for(alive, "a heartbeat event from the worker")

    def online_metric() -> str | None:
        status, body = get(f"{flower['base']}/metrics")
        text = body.decode()
        line = f'flower_worker_online{{worker="{flower["node"]}"}} 1.0'
        return text if status == 200 and line in text else None

    text = wait_for(online_metric, "flower_worker_online in /metrics")
    assert "# TYPE flower_events_total counter" in text


def test_flower_never_logs_the_password(flower: dict[str, Any]) -> None:
    get(f"{flower['base']}/api/workers", auth=(USER, PASSWORD))
    log = Path(flower["log"]).read_text(errors="replace")
    assert "Broker" in log  # the log is there and was written by Flower
    assert PASSWORD not in log


@pytest.mark.parametrize(
    ("env_over", "needle"),
    [
        ({}, "FLOWER_BASIC_AUTH is not set"),
        ({"FLOWER_BASIC_AUTH": "no-colon-here"}, "FLOWER_BASIC_AUTH must be user:password"),
        ({"FLOWER_BASIC_AUTH": "user:"}, "FLOWER_BASIC_AUTH must be user:password"),
    ],
)
def test_flower_refuses_to_start_without_valid_auth(
    redis_url: str, env_over: dict[str, str], needle: str
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, **env_over}
    if not env_over:
        env.pop("FLOWER_BASIC_AUTH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "prelabel", "flower", "--port", str(launch.free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
