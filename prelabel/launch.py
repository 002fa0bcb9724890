"""Start and stop prelabel's own processes (simulator, workers), for the demo and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from prelabel.errors import PrelabelError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
