"""`prelabel run` as cron, CI and Kubernetes Jobs see it: the run id first, at once; exit 1
with the reason first when a run stops; a word when no worker takes the run; `--out` kept
for `collect`; one node name per worker. Real workers, Redis and the simulator."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from prelabel import launch

pytestmark = pytest.mark.slow

PRELABEL = str(Path(sys.executable).parent / "prelabel")


def prelabel(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRELABEL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`prelabel ARGS` with stdout piped, as a cron job's log sees it."""
    return subprocess.Popen(
        [PRELABEL, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """The next line of the process's stdout, waiting while the process still runs."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=1):
            return proc.stdout.readline()
    raise AssertionError(f"no output within {timeout}s")


def test_a_piped_run_prints_its_id_first_and_a_cancel_exits_1_with_the_reason_first(
    fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # 60 requests/min over 200 items: minutes of work, so the cancel lands in the middle.
    proc = start(
        *("run", "--dataset", str(gold_path), "--limit", "200", "--model", "m"),
        *("--base-url", simulator_url, "--rpm", "60", "--shard-size", "10", "--out", str(out)),
        env=fleet_env,
    )
    try:
        first = read_line(proc)
        assert first.startswith("run "), first
        run_id = first.split()[1].rstrip(":")
        cancel = prelabel("cancel", run_id, env=fleet_env)
        assert cancel.returncode == 0, cancel.stderr
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[0] == f"error: run {run_id} cancelled: cancelled by the user"
    # A short summary, not the evaluation's tables of zeros.
    assert "not labeled" in stdout and f"files in {out}" in stdout
    assert "Entity-level" not in stdout and "Token-level" not in stdout
    assert (out / "predictions.jsonl").exists()


def test_no_wait_then_collect_writes_into_the_runs_out(
    fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "chosen"
    started = prelabel(
        *("run", "--dataset", str(gold_path), "--limit", "20", "--model", "m"),
        *("--base-url", simulator_url, "--no-wait", "--out", str(out)),
        env=fleet_env,
    )
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 180
    while True:
        collected = prelabel("collect", run_id, env=fleet_env, timeout=120)
        if collected.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert collected.returncode == 0, collected.stderr
    assert (out / "predictions.jsonl").exists() and (out / "report.json").exists()
    assert not (Path("runs") / run_id).exists()


def test_a_run_without_workers_says_what_to_start_and_keeps_waiting(
    redis_url: str, simulator_url: str, gold_path: Path
) -> None:
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PRELABEL_QUEUE": queue,
        "PRELABEL_NO_WORKER_WARNING": "1",
    }
    proc = start(
        *("run", "--dataset", str(gold_path), "--limit", "5", "--model", "m"),
        *("--base-url", simulator_url),
        env=env,
    )
    try:
        lines = [read_line(proc) for _ in range(3)]
        while not any("no worker" in line for line in lines):
            lines.append(read_line(proc))
        (hint,) = [line for line in lines if "no worker" in line]
        assert f"PRELABEL_QUEUE={queue}" in hint
        assert f"REDIS_URL={redis_url}" in hint
        assert proc.poll() is None  # still waiting
        run_id = lines[0].split()[1].rstrip(":")
        status = prelabel("status", run_id, env={**env, "COLUMNS": "250"})
        assert status.returncode == 0, status.stderr
        assert "no worker" in status.stdout and queue in status.stdout
    finally:
        proc.kill()
        proc.wait(10)


def test_two_workers_on_one_machine_get_two_node_names(redis_url: str, tmp_path: Path) -> None:
    from prelabel.queue import make_app
    from prelabel.settings import load_settings

    queue = f"names-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_url, "PRELABEL_QUEUE": queue}
    procs = [launch.start_worker(env=env, log=tmp_path / f"w{i}.log") for i in range(2)]
    try:
        app = make_app(load_settings(REDIS_URL=redis_url, queue=queue))
        names: set[str] = set()
        deadline = time.monotonic() + 180
        while len(names) < 2 and time.monotonic() < deadline:
            for reply in app.control.ping(timeout=2):
                names |= set(reply)
        mine = {n for n in names if n.startswith("prelabel-")}
        assert len(mine) >= 2, names
    finally:
        launch.stop(procs)


def test_demo_says_what_it_replaces(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    out.mkdir()
    (out / "predictions.jsonl").write_text("{}\n")
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.run(
        [PRELABEL, "demo", "--limit", "5", "--workers", "1", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"{out} holds files: the demo's replace them" in proc.stdout.replace("\n", "")
    assert (out / "report.json").exists()
