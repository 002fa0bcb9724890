"""Fixtures that start and stop real services: Redis (the machine's, or an embedded one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prelabel.connections import answers, embedded_redis

ROOT = Path(__file__).resolve().parents[1]
CONLL_DIR = ROOT.parent / "shared" / "data" / "conll2003"
SAMPLE_CONLL = ROOT / "producer" / "samples" / "sample.conll"

#: Tests use their own database so that they never touch a user's data in db 0
#: (PRELABEL_TEST_DB picks another, so that two test sessions can share one server).
TEST_DB = int(os.environ.get("PRELABEL_TEST_DB", "15"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: REDIS_URL's server (database 15) when it answers, else an embedded one."""
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/{TEST_DB}"
    if answers(url):
        yield url
        return
    with embedded_redis() as embedded:
        yield embedded.rsplit("/", 1)[0] + f"/{TEST_DB}"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a flushed test database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def conll_test_path() -> Path:
    """The shared CoNLL-2003 test split; tests that need it skip when it is absent."""
    path = CONLL_DIR / "test.txt"
    if not path.exists():
        pytest.skip(f"CoNLL-2003 test split not found at {path} (../shared/data is absent)")
    return path


@pytest.fixture(scope="session")
def gold_path() -> Path:
    """Gold data for end-to-end runs: the shared CoNLL-2003 test split, else the shipped sample."""
    shared = CONLL_DIR / "test.txt"
    return shared if shared.exists() else SAMPLE_CONLL


@pytest.fixture(scope="session")
def simulator_url(gold_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `prelabel simulate` subprocess answering from `gold_path`, at zero noise."""
    from prelabel import launch

    port = launch.free_port()
    log = tmp_path_factory.mktemp("simulator") / "simulator.log"
    proc = launch.start_simulator(port, gold_path, log=log)
    yield f"http://127.0.0.1:{port}/v1"
    launch.stop([proc])


@pytest.fixture(scope="module")
def fleet_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two real `celery worker` subprocesses on a queue of their own; yields their environment."""
    import uuid

    from prelabel import launch

    queue = f"prelabel-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_url, "PRELABEL_QUEUE": queue}
    env.pop("OPENAI_API_KEY", None)
    logs = tmp_path_factory.mktemp("workers")
    procs = [
        launch.start_worker(
            concurrency=1, env=env, log=logs / f"worker{i}.log", hostname=f"{queue}-{i}@%h"
        )
        for i in range(2)
    ]
    yield env
    launch.stop(procs)
