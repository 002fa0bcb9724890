"""What a worker process keeps from one shard task to the next.

A shard task used to start its own event loop, its own `AsyncOpenAI` client (which loads the
CA certificates) and its own Redis connections, and close them all at its end: with a fast
endpoint that set-up was most of a worker's time. A worker process now keeps one event loop
and, on it, one async Redis client and one `AsyncOpenAI` client per (endpoint, key), for as
long as it lives; HTTP and Redis connections are reused from one shard to the next. Each
shard gets its own realtime transport (`transport`) on the process's client for its endpoint,
and the process's memory of the endpoints that refused `json_schema` (`refusals`).

Celery's prefork pool forks its children from the worker's main process: the context is made
lazily in the process that uses it (and made again when the process id changes), never
inherited across a fork. Each thread has its own (an event loop belongs to one thread), so a
worker started with `--pool threads` is safe too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import redis.asyncio as aioredis
from openai import AsyncOpenAI

from prelabel.connections import async_client_for, connect
from prelabel.model import RunConfig
from prelabel.settings import Settings, load_settings
from prelabel.store import RunStore
from workers.json_mode import SchemaRefusals
from workers.sampling import SamplingMemory
from workers.transports import BatchTransport, RealtimeTransport

log = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerContext:
    """One process's event loop and the clients that live on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.store = RunStore(connect(settings.redis_url, master=settings.sentinel_master))
        self._runner = asyncio.Runner()
        self._redis: aioredis.Redis | None = None
        self._clients: dict[tuple[str, str], AsyncOpenAI] = {}
        #: Endpoints that refused `json_schema` in this process: `auto` runs use JSON mode.
        self.refusals = SchemaRefusals()
        #: Endpoints that ignored `n` or gave no log-probabilities in this process.
        self.sampling = SamplingMemory()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to its end on this process's event loop, in the caller's context.

        The runner would otherwise run every coroutine in the context it copied on its first
        use: each task's log lines would carry the first task's run and shard.
        """
        return self._runner.run(coro, context=contextvars.copy_context())

    @property
    def redis(self) -> aioredis.Redis:
        """The async Redis client (its connections belong to this context's loop)."""
        if self._redis is None:
            self._redis = async_client_for(self.settings.redis_url, self.settings.sentinel_master)
        return self._redis

    def client(self, base_url: str, api_key: str) -> AsyncOpenAI:
        """The `AsyncOpenAI` client for `base_url` and `api_key`, made on first use.

        The client's own retries are off: every retry goes back through the shared bucket.
        """
        key = (base_url, api_key)
        if key not in self._clients:
            self._clients[key] = AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                max_retries=0,
                timeout=self.settings.request_timeout,
            )
        return self._clients[key]

    def transport(self, config: RunConfig, api_key: str) -> RealtimeTransport:
        """The realtime transport for a shard of `config`'s run, on this process's client."""
        client = self.client(config.endpoint.base_url, api_key)
        return RealtimeTransport.for_run(client, self.redis, self.settings, config, self.sampling)

    async def transport_for(
        self, config: RunConfig, api_key: str, shard: int
    ) -> RealtimeTransport | BatchTransport:
        """The transport for one pass of shard `shard`, as the run's `delivery.transport`
        says: the realtime one, or (`batch`, `auto`) the Batch API's, which asks what has no
        stored answer realtime once the run's meta `transport_now` says `realtime` (`auto`
        at its deadline) or, with `retry: realtime`, once a batch of the shard came back."""
        realtime = self.transport(config, api_key)
        if config.delivery.transport == "realtime":
            return realtime
        client = self.client(config.endpoint.base_url, api_key)
        return await BatchTransport.for_run(
            client, self.redis, self.settings, config, shard, realtime
        )

    def close(self) -> None:
        """Close the clients and the loop; tasks the loop still holds are cancelled."""
        # Cancelled before the loop runs again: a task whose wake-up is already due must not
        # take one more step (and send one more request) first.
        for task in asyncio.all_tasks(self._runner.get_loop()):
            task.cancel()
        try:
            self._runner.run(self._aclose())
        except Exception as exc:  # closing is best effort: the process may be going away
            log.debug("closing the worker context: %s", exc)
        finally:
            self._runner.close()

    async def _aclose(self) -> None:
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


_local = threading.local()


def worker_context() -> WorkerContext:
    """This thread's context, made on first use (and after a fork)."""
    current: WorkerContext | None = getattr(_local, "context", None)
    if current is None or current.pid != os.getpid():
        current = _local.context = WorkerContext(load_settings())
    return current


def reset_worker_context() -> None:
    """Close and forget this thread's context.

    For a task interrupted mid-flight (its soft time limit): its loop may still hold calls
    that must not go on alongside the next shard's.
    """
    current: WorkerContext | None = getattr(_local, "context", None)
    if current is not None and current.pid == os.getpid():
        current.close()
    _local.context = None
