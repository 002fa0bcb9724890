"""`prelabel flower`: Flower on the workers' broker, with the workers' transport options.

Flower is started through the same Celery app as the workers (prelabel.queue.make_app), so its
broker URL and `visibility_timeout` are the workers'. Equivalent by hand:

    FLOWER_BASIC_AUTH=user:password celery --app workers.app flower --port=5555

Basic auth is read by Flower itself from `FLOWER_BASIC_AUTH` (`user:password`, several
separated by commas), so the password is never on a command line where `ps` shows it.
Without it, `prelabel flower` refuses to start unless `--unauthenticated` is given; then
it also sets `FLOWER_UNAUTHENTICATED_API=true`, without which Flower 2.x answers 401 to every
/api call. Flower's /metrics and /healthcheck answer without auth in any case: they show
task and worker counts, never a secret.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from prelabel.errors import ConfigError
from prelabel.extras import MissingExtra, installed
from prelabel.options import RedisUrlOpt

AUTH_ENV = "FLOWER_BASIC_AUTH"
UNAUTHENTICATED_ENV = "FLOWER_UNAUTHENTICATED_API"
DEFAULT_PORT = 5555


def check_basic_auth(value: str) -> None:
    """Raise ConfigError unless `value` is `user:password[,user:password...]`."""
    for entry in value.split(","):
        user, sep, password = entry.partition(":")
        if not (user.strip() and sep and password):
            raise ConfigError(
                f"{AUTH_ENV} must be user:password (several separated by commas); "
                "fix the environment or .env"
            )


def flower_argv(port: int, address: str) -> list[str]:
    """The `celery` arguments `prelabel flower` runs (auth travels in the environment)."""
    return ["flower", f"--port={port}", f"--address={address}"]


def flower_command(
    port: Annotated[int, typer.Option(help="Port Flower listens on.")] = DEFAULT_PORT,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    unauthenticated: Annotated[
        bool,
        typer.Option(
            "--unauthenticated",
            help="Run without basic auth (a trusted network only): UI and API open to all.",
        ),
    ] = False,
    redis_url: RedisUrlOpt = None,
) -> None:
    """Start Flower for the workers, with basic auth from $FLOWER_BASIC_AUTH.

    Workers always send task events (`prelabel worker` passes --events). Flower's
    /api/workers lists them and /metrics serves Celery's Prometheus metrics; a run's
    figures (tokens, cost, 429s, ETA) are in `prelabel status` and `prelabel metrics`.
    """
    if not installed("flower"):
        raise MissingExtra("flower", "flower")
    auth = os.environ.get(AUTH_ENV, "").strip()
    if auth:
        check_basic_auth(auth)
    elif unauthenticated:
        os.environ[UNAUTHENTICATED_ENV] = "true"
    else:
        raise ConfigError(
            f"{AUTH_ENV} is not set: export {AUTH_ENV}=user:password, "
            "or pass --unauthenticated on a trusted network"
        )

    from prelabel import logs
    from prelabel.connections import connect
    from prelabel.queue import make_app
    from prelabel.settings import load_settings

    settings = load_settings(**({"REDIS_URL": redis_url} if redis_url else {}))
    connect(settings.redis_url, master=settings.sentinel_master)
    # Our handler on the root logger first: tornado then adds none of its own.
    logs.configure()
    make_app(settings).start(flower_argv(port, address))
