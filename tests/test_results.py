"""ResultSink on real Redis: results committed once each, in groups, counters moved once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from prelabel.keys import RunKeys
from task_types.ner.model import NerResult, Unaligned
from workers.results import ResultSink

RUN = "results-test-run"


def result(item_id: str, status: str = "labeled", unaligned: int = 0) -> NerResult:
    return NerResult(
        id=item_id,
        status=status,  # type: ignore[arg-type]
        error=None if status == "labeled" else "a reason",
        unaligned=(Unaligned(type="PER", mention="x", reason="not in the sentence"),) * unaligned,
        model="m",
        prompt_version="v",
    )


def counters(client: redis.Redis) -> dict[str, int]:
    raw: dict[bytes, bytes] = client.hgetall(RunKeys(RUN).counters)  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def run_with_sink(redis_url: str, body: Any) -> Any:
    async def main() -> Any:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await body(ResultSink(client, RUN))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_concurrent_commits_go_to_redis_in_groups(
    redis_url: str, redis_client: redis.Redis
) -> None:
    script_calls: list[int] = []

    async def body(sink: ResultSink) -> list[int]:
        commit = sink._commit

        async def counted(keys: list[str], args: list[Any]) -> Any:
            script_calls.append(len(args) // 4)
            return await commit(keys=keys, args=args)

        sink._commit = counted  # type: ignore[assignment]
        results = [result(f"i{n}", "labeled" if n % 3 else "failed", n % 2) for n in range(40)]
        return await asyncio.gather(*(sink.commit([r]) for r in results))

    committed = run_with_sink(redis_url, body)
    assert committed == [1] * 40
    assert sum(script_calls) == 40
    assert len(script_calls) < 40  # grouped: callers that came while a commit was out
    assert counters(redis_client) == {"labeled": 26, "failed": 14, "unaligned": 20}
    assert redis_client.hlen(RunKeys(RUN).results) == 40


def test_a_result_is_committed_once_and_counted_once(
    redis_url: str, redis_client: redis.Redis
) -> None:
    async def body(sink: ResultSink) -> tuple[int, int, int]:
        first = await sink.commit([result("a"), result("b")])
        again = await sink.commit([result("a", "failed"), result("c")])  # "a" keeps its result
        nothing = await sink.commit([])
        return first, again, nothing

    assert run_with_sink(redis_url, body) == (2, 1, 0)
    assert counters(redis_client) == {"labeled": 3}
    assert b'"labeled"' in (redis_client.hget(RunKeys(RUN).results, "a") or b"")


def test_every_caller_of_a_failed_group_hears_of_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    redis_client.set(RunKeys(RUN).results, "not a hash")  # the script's HSETNX fails

    async def body(sink: ResultSink) -> list[BaseException | int]:
        outcome = await asyncio.gather(
            *(sink.commit([result(f"i{n}")]) for n in range(5)), return_exceptions=True
        )
        redis_client.delete(RunKeys(RUN).results)
        outcome.append(await sink.commit([result("later")]))  # the sink still works
        return outcome

    outcome = run_with_sink(redis_url, body)
    assert all(isinstance(o, redis.ResponseError) for o in outcome[:5])
    assert outcome[5] == 1


@pytest.mark.parametrize("mid_commit", [False, True])
def test_a_cancelled_writer_leaves_no_caller_waiting(redis_url: str, mid_commit: bool) -> None:
    """The worker's context closing cancels the writer: before it took its group, or while
    the group's script call is out."""

    async def body(sink: ResultSink) -> None:
        sent = asyncio.Event()

        async def stuck(keys: list[str], args: list[Any]) -> Any:
            sent.set()
            await asyncio.Event().wait()

        sink._commit = stuck  # type: ignore[assignment]
        waiting = [asyncio.create_task(sink.commit([result(f"i{n}")])) for n in range(3)]
        await (sent.wait() if mid_commit else asyncio.sleep(0))
        assert sink._writer is not None
        sink._writer.cancel()
        for task in waiting:
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)

    run_with_sink(redis_url, body)
