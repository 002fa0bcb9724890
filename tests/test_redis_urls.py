"""Redis URL forms beyond the plain one, end to end: a password as `?password=` and a Sentinel
setup (Celery's `sentinel://` form), each on redis-servers of the test's own. `run`, `worker`
and `status` work, and the password shows nowhere: not in their output, not in the log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prelabel import launch

pytestmark = pytest.mark.slow

PRELABEL = str(Path(sys.executable).parent / "prelabel")
PASSWORD = "pw-of-the-url-test"


def wait_for(client: redis.Redis) -> None:
    for _ in range(200):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("redis-server did not start")


def server(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(params=["query-password", "sentinel", "tls", "unix"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    port = launch.free_port()
    base = ("--save", "", "--appendonly", "no", "--dir", str(tmp_path))
    auth = ("--requirepass", PASSWORD, "--masterauth", PASSWORD)
    if request.param == "tls":
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1"),
            ],
            check=True,
            capture_output=True,
        )
        tls = ("--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no")
        files = ("--tls-cert-file", str(cert), "--tls-key-file", str(key))
        proc = server(tmp_path, *base, *auth, *tls, *files, "--tls-ca-cert-file", str(cert))
        url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/2?ssl_cert_reqs=required&ssl_ca_certs={cert}"
        wait_for(redis.Redis.from_url(url))
        yield url
        proc.terminate()
        proc.wait(10)
        return
    if request.param == "unix":
        sock = tmp_path / "redis.sock"
        proc = server(tmp_path, "--port", "0", "--unixsocket", str(sock), *base, *auth)
        wait_for(redis.Redis(unix_socket_path=str(sock), password=PASSWORD))
        yield f"unix://:{PASSWORD}@{sock}?db=2"
        proc.terminate()
        proc.wait(10)
        return
    procs = [server(tmp_path, "--port", str(port), *base, *auth)]
    wait_for(redis.Redis(port=port, password=PASSWORD))
    if request.param == "query-password":
        yield f"redis://127.0.0.1:{port}/2?password={PASSWORD}"
    else:
        sentinel_port = launch.free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor mymaster 127.0.0.1 {port} 1\n"
            f"sentinel auth-pass mymaster {PASSWORD}\n"
        )
        procs.append(server(tmp_path, str(conf), "--sentinel"))
        wait_for(redis.Redis(port=sentinel_port))
        # The master's password is the URL's; the Sentinels here need none.
        yield f"sentinel://:{PASSWORD}@127.0.0.1:{sentinel_port}/2"
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_run_worker_and_status_on_the_url(
    url: str, simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "REDIS_URL": url, "PRELABEL_QUEUE": f"urls-{uuid.uuid4().hex[:8]}"}
    env.pop("OPENAI_API_KEY", None)
    log = tmp_path / "worker.log"
    worker = launch.start_worker(env=env, log=log)
    try:
        run = subprocess.run(
            [
                *(PRELABEL, "run", "--dataset", str(gold_path), "--limit", "10"),
                *("--model", "m", "--base-url", simulator_url, "--out", str(tmp_path / "out")),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr + run.stdout
        run_id = run.stdout.splitlines()[0].split()[1].rstrip(":")
        status = subprocess.run(
            [PRELABEL, "status", run_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert "completed" in status.stdout
    finally:
        launch.stop([worker])
    outputs = run.stdout + run.stderr + status.stdout + status.stderr + log.read_text()
    assert PASSWORD not in outputs
    assert "shard" in log.read_text()  # the worker did the labeling
