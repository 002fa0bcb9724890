"""Command-line options that several commands take, declared once.

Only typer is imported here: `prelabel --help` reads every command's signature.
"""

from __future__ import annotations

from typing import Annotated

import typer

#: `--redis-url`, for every command that reads or writes runs in Redis.
RedisUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="REDIS_URL",
        show_envvar=True,
        help="Redis URL (redis://, rediss://, unix://, sentinel://). "
        "Default: redis://127.0.0.1:6379/0.",
    ),
]
