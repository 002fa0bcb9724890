"""A worker process keeps its event loop and clients from one task to the next, one set per
thread, and a reset (after a soft time limit) cancels what the old loop still held."""

from __future__ import annotations

import asyncio
import threading

import pytest

from workers.context import WorkerContext, reset_worker_context, worker_context


@pytest.fixture(autouse=True)
def _redis_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)


def test_tasks_of_one_thread_share_a_loop_and_clients() -> None:
    first = worker_context()
    try:
        loop_one = first.run(_running_loop())
        assert worker_context() is first
        assert first.run(_running_loop()) is loop_one
        url = "http://127.0.0.1:9/v1"
        assert first.client(url, "sk-a") is first.client(url, "sk-a")
        assert first.client(url, "sk-a") is not first.client(url, "sk-b")
        assert first.run(first.redis.ping())
        others: list[WorkerContext] = []
        thread = threading.Thread(target=lambda: others.append(worker_context()))
        thread.start()
        thread.join()
        assert others and others[0] is not first
        others[0].close()
    finally:
        reset_worker_context()
    assert worker_context() is not first
    reset_worker_context()


def test_a_reset_cancels_what_the_old_loop_held() -> None:
    context = worker_context()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def leave_behind() -> None:
        asyncio.get_running_loop().create_task(stuck())
        await asyncio.sleep(0)

    context.run(leave_behind())
    assert not cancelled.is_set()
    reset_worker_context()
    assert cancelled.is_set()


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_each_task_runs_in_its_own_logging_context() -> None:
    """Log lines name the shard being labeled, not the first one the process ran."""
    from prelabel.logs import RUN_ID, SHARD, log_context

    async def tagged() -> tuple[str | None, int | None]:
        return RUN_ID.get(), SHARD.get()

    context = worker_context()
    try:
        for run_id, shard in (("run-a", 0), ("run-b", 7)):
            with log_context(run_id, shard):
                assert context.run(tagged()) == (run_id, shard)
    finally:
        reset_worker_context()
