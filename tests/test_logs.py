"""Structured logs: run and shard on every line, JSON on request, no secret ever; and the
worker's liveness file. Unit tests on the formatter, then a real worker labeling a real run."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from prelabel import launch
from prelabel.logs import (
    ContextFilter,
    JsonFormatter,
    Redactor,
    TextFormatter,
    _task_args,
    configure,
    json_requested,
    log_context,
)
from prelabel.store import RunStore

KEY = "sk-proj-abcdefghijklmnop0123456789"
REDIS_PW = "r3dis-pass-word"


def record(msg: str, args: Any = None, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"call failed with key {KEY}")
        except RuntimeError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("workers.llm", logging.INFO, __file__, 1, msg, args, exc_info)
    ContextFilter().filter(rec)
    return rec


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"calling with {KEY}", KEY),
        ("broker redis://:hunter22@redis:6379/0 down", "hunter22"),
        ("broker redis://default:hunter22@redis:6379/0 down", "hunter22"),
        ("headers {'Authorization': 'Bearer abcdefghijklmnop'}", "abcdefghijklmnop"),
        ("Authorization: Basic d2F0Y2hlcjpzZWNyZXQ=", "d2F0Y2hlcjpzZWNyZXQ="),
        (f"env says {REDIS_PW}", REDIS_PW),
        ("flower auth alice:flower-pw-123", "flower-pw-123"),
    ],
)
def test_redactor_masks_secrets(text: str, secret: str) -> None:
    env = {
        "REDIS_URL": f"redis://:{REDIS_PW}@redis:6379/0",
        "FLOWER_BASIC_AUTH": "alice:flower-pw-123,bob:other-pw-456",
    }
    masked = Redactor.from_env(env)(text)
    assert secret not in masked
    assert "***" in masked


def test_redactor_leaves_ordinary_lines_alone() -> None:
    line = "run 20240101-000000-abc123 shard 3: 50 items committed (task-id ok)"
    assert Redactor.from_env({"OPENAI_API_KEY": "abc"})(line) == line  # too short to mask


def test_context_tags_records_inside_and_only_inside() -> None:
    with log_context("run-a", 7):
        inside = record("x")
        with log_context("run-b", 1):
            nested = record("y")
        back = record("z")
    outside = record("w")
    assert (inside.run_id, inside.shard) == ("run-a", 7)  # type: ignore[attr-defined]
    assert (nested.run_id, nested.shard) == ("run-b", 1)  # type: ignore[attr-defined]
    assert (back.run_id, back.shard) == ("run-a", 7)  # type: ignore[attr-defined]
    assert (outside.run_id, outside.shard) == ("-", "-")  # type: ignore[attr-defined]


def test_celery_task_lines_are_tagged_from_the_task_id() -> None:
    rec = record("Task %(name)s[%(id)s] received", {"name": "t", "id": "20240101-x:shard:12"})
    assert (rec.run_id, rec.shard) == ("20240101-x", 12)  # type: ignore[attr-defined]
    other = record("Task %(name)s[%(id)s] received", {"name": "t", "id": "not-a-shard-task"})
    assert other.run_id == "-"  # type: ignore[attr-defined]


def test_json_lines_parse_carry_the_context_and_mask_the_key_in_tracebacks() -> None:
    formatter = JsonFormatter(Redactor([KEY]))
    with log_context("run-j", 2):
        line = formatter.format(record("done %d items, key %s", (5, KEY), exc=True))
    data = json.loads(line)
    assert data["run_id"] == "run-j"
    assert data["shard"] == 2
    assert data["level"] == "INFO"
    assert data["logger"] == "workers.llm"
    assert data["message"].startswith("done 5 items")
    assert "RuntimeError" in data["exc"]
    assert KEY not in line


def test_text_lines_name_run_and_shard() -> None:
    formatter = TextFormatter(Redactor())
    with log_context("run-t", 4):
        line = formatter.format(record("hello"))
    assert "run=run-t shard=4 workers.llm: hello" in line
    assert "run=- shard=- " in formatter.format(record("bye"))


def test_configure_replaces_its_own_handler_and_quiets_per_call_http_lines() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    stream = io.StringIO()
    try:
        configure(json_logs=True, stream=io.StringIO())
        configure(json_logs=True, stream=stream)
        assert sum(h.get_name() == "prelabel" for h in root.handlers) == 1
        logging.getLogger("httpx").info("HTTP Request: POST ...")
        logging.getLogger("prelabel.test").info("kept")
        lines = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert [x["message"] for x in lines] == ["kept"]
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"PRELABEL_LOG_FORMAT": "json"}, True),
        ({"PRELABEL_LOG_FORMAT": " JSON "}, True),
        ({"PRELABEL_LOG_FORMAT": "text"}, False),
    ],
)
def test_json_requested(env: dict[str, str], expected: bool) -> None:
    assert json_requested(env) is expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["r1", 3], ("r1", 3)),
        (("r1", "4"), ("r1", 4)),
        (["r1", "x"], ("r1", None)),
        ([], (None, None)),
        (None, (None, None)),
        ([1, 2], (None, None)),
    ],
)
def test_task_args(args: Any, expected: tuple[str | None, int | None]) -> None:
    assert _task_args(args) == expected


# --- a real worker ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def json_worker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One `prelabel worker --log-json` with a secret key and a liveness file."""
    queue = f"prelabel-logs-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("jsonworker")
    health = tmp / "alive"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PRELABEL_QUEUE": queue,
        "OPENAI_API_KEY": KEY,
        "PRELABEL_HEALTH_FILE": str(health),
    }
    log = tmp / "worker.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prelabel", "worker", "--concurrency", "1", "--log-json"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state = {"env": env, "log": log, "health": health, "proc": proc}
    try:
        yield state
    finally:
        launch.stop([proc])


def wait_until(check: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_worker_logs_json_with_run_and_shard_and_never_the_key(
    json_worker: dict[str, Any], simulator_url: str, gold_path: Path, redis_url: str
) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "prelabel", "run", "--dataset", str(gold_path)),
            *("--limit", "30", "--model", "m", "--base-url", simulator_url),
            *("--shard-size", "10", "--no-wait"),
        ],
        env=json_worker["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    store = RunStore(redis.Redis.from_url(redis_url))

    def finished() -> bool:
        c = store.counters(run_id)
        return c.get("labeled", 0) + c.get("failed", 0) >= 30

    wait_until(finished, f"run {run_id} to be labeled")
    # The task's own line comes last in a shard: wait until all three are logged.
    wait_until(lambda: json_worker["log"].read_text().count("items committed") >= 3, "shard lines")

    text = json_worker["log"].read_text(errors="replace")
    assert KEY not in text
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    assert {"ts", "level", "logger", "process", "run_id", "shard", "message"} <= set(lines[0])
    # Everything logged about this run names it, with the shard it is about.
    ours = [x for x in lines if run_id in x["message"]]
    assert ours, "the worker logged nothing about the run"
    for line in ours:
        assert line["run_id"] == run_id, line
        assert isinstance(line["shard"], int), line
    shards = {x["shard"] for x in ours if "items committed" in x["message"]}
    assert shards == {0, 1, 2}
    # Lines from inside the task (the pool process) carry the context without naming it.
    inside = [x for x in lines if x["process"].startswith("ForkPoolWorker")]
    assert inside and all(x["run_id"] == run_id for x in inside)
    # The start-up banner is replaced by one JSON line.
    assert any(x["message"].startswith("worker ") and "starting" in x["message"] for x in lines)


@pytest.mark.slow
def test_liveness_file_is_touched_by_heartbeats_and_removed_on_shutdown(
    json_worker: dict[str, Any],
) -> None:
    health: Path = json_worker["health"]
    wait_until(health.exists, "the liveness file")
    first = health.stat().st_mtime_ns
    wait_until(lambda: health.stat().st_mtime_ns > first, "a heartbeat to touch the file", 30)
    launch.stop([json_worker["proc"]])
    assert json_worker["proc"].returncode is not None
    assert not health.exists()
