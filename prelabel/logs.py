"""Structured logs: every line carries the run id and the shard it is about, and no secret.

Text by default (`2024-05-01 10:00:00,123 INFO run=20240501-... shard=3 workers.labeler: ...`),
one JSON object per line with `PRELABEL_LOG_FORMAT=json` or `prelabel worker --log-json`.

The run and shard come from context variables that Celery's `task_prerun` signal sets from
the task's arguments `(run_id, shard)`, so that every line a task logs (its asyncio tasks
inherit the context) is tagged without the task code passing them around. Lines Celery logs
about a task outside of it ("received", "succeeded") are tagged from the task id, which
prelabel makes `RUN:shard:N`.

Secrets are masked in the formatted line, tracebacks included: the values of the API keys
and passwords in this process's environment, passwords in URLs, `sk-...` keys and
`Authorization` headers.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

#: The run and shard the current code works on; None outside of a task.
RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("prelabel_run", default=None)
SHARD: contextvars.ContextVar[int | None] = contextvars.ContextVar("prelabel_shard", default=None)

#: Environment variables whose values are secrets, masked wherever they appear in a line.
SECRET_ENV = (
    "OPENAI_API_KEY",
    "PRELABEL_OPENAI_API_KEY",
    "KILI_API_KEY",
    "PRELABEL_KILI_API_KEY",
    "FLOWER_BASIC_AUTH",
    "REDIS_PASSWORD",
)
#: Environment variables that may hold a URL with a password in it.
URL_ENV = ("REDIS_URL", "PRELABEL_REDIS_URL", "CELERY_BROKER_URL")

#: Loggers that write one INFO line per HTTP call: thousands a minute at fleet rates. prelabel
#: counts calls, 429s and failures itself (`prelabel status`), so these start at WARNING.
CHATTY = ("httpx", "httpx2", "httpcore")

MASK = "***"
TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(processName)s run=%(run_id)s shard=%(shard)s %(name)s: %(message)s"
)
_TASK_ID = re.compile(r"^(?P<run>.+):shard:(?P<shard>\d+)$")
_PATTERNS = (
    # user:password@ in any URL
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I), r"\g<keep>***@"),
    # OpenAI-style keys
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), "sk-***"),
    # ?password=... in a Redis URL
    (re.compile(r"(?P<keep>[?&;]password=)[^&;\s]+", re.I), r"\g<keep>***"),
    # Authorization headers, as HTTP libraries print them
    (re.compile(r"(?P<keep>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]{8,}", re.I), r"\g<keep>***"),
)


class Redactor:
    """Masks known secret values and secret-looking patterns in a string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is masked whole. Very short
        # values would mask ordinary words: a real key or password is never that short.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Redactor:
        """The secrets of `env` (default: this process's environment)."""
        env = os.environ if env is None else env
        values: list[str] = []
        for name in SECRET_ENV:
            value = env.get(name)
            if value:
                values.append(value)
                # FLOWER_BASIC_AUTH is `user:password[,user:password]`: mask the passwords too.
                values.extend(p.split(":", 1)[1] for p in value.split(",") if ":" in p)
        for name in URL_ENV:
            # The user part (also of a mistyped `redis//:PASS@`), `?password=`, and every
            # address of a `;`-joined Sentinel URL.
            url = env.get(name, "")
            values += re.findall(r"//[^/@:\s]*:([^\s/]+)@", url)
            values += re.findall(r"[?&;]password=([^&;\s]+)", url, re.I)
        return cls(values)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text


class ContextFilter(logging.Filter):
    """Puts `run_id` and `shard` on every record ("-" when the line is about no shard)."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id, shard = RUN_ID.get(), SHARD.get()
        if run_id is None:
            run_id, shard = _from_task_id(record)
        record.run_id = run_id if run_id is not None else "-"
        record.shard = shard if shard is not None else "-"
        return True


def _from_task_id(record: logging.LogRecord) -> tuple[str | None, int | None]:
    # Celery's task lines pass the task id in a dict of arguments: `Task %(name)s[%(id)s] ...`.
    args = record.args
    task_id = args.get("id") if isinstance(args, Mapping) else None
    match = _TASK_ID.match(task_id) if isinstance(task_id, str) else None
    if match is None:
        return None, None
    return match.group("run"), int(match.group("shard"))


class TextFormatter(logging.Formatter):
    """The plain format, with secrets masked."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, process, run_id, shard, message, exc."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        run_id = getattr(record, "run_id", "-")
        shard = getattr(record, "shard", "-")
        out: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "run_id": None if run_id == "-" else run_id,
            "shard": None if shard == "-" else shard,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Masked after serialising, so that a secret split by JSON escaping cannot slip by.
        return self.redactor(json.dumps(out, ensure_ascii=False, default=str))


def json_requested(env: Mapping[str, str] | None = None) -> bool:
    """True when `PRELABEL_LOG_FORMAT` asks for JSON."""
    env = os.environ if env is None else env
    return env.get("PRELABEL_LOG_FORMAT", "text").strip().lower() == "json"


def make_handler(
    *, json_logs: bool | None = None, stream: IO[str] | None = None
) -> logging.StreamHandler[IO[str]]:
    """A stream handler with the context filter and the chosen (redacting) format."""
    handler: logging.StreamHandler[IO[str]] = logging.StreamHandler(stream or sys.stderr)
    redactor = Redactor.from_env()
    use_json = json_requested() if json_logs is None else json_logs
    handler.setFormatter(JsonFormatter(redactor) if use_json else TextFormatter(redactor))
    handler.addFilter(ContextFilter())
    handler.set_name("prelabel")
    return handler


def configure(
    *, json_logs: bool | None = None, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the root logger's records through prelabel's handler (replacing a previous one)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "prelabel"]:
        root.removeHandler(old)
    handler = make_handler(json_logs=json_logs, stream=stream)
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    return handler


@contextlib.contextmanager
def log_context(run_id: str | None, shard: int | None = None) -> Iterator[None]:
    """Tag the lines logged inside the block with `run_id` and `shard`."""
    run_token = RUN_ID.set(run_id)
    shard_token = SHARD.set(shard)
    try:
        yield
    finally:
        SHARD.reset(shard_token)
        RUN_ID.reset(run_token)


def install_celery_logging(*, json_logs: bool | None = None) -> None:
    """Make Celery workers log through prelabel's handler, tagging lines from task arguments.

    Call before the worker starts. Connecting `setup_logging` tells Celery not to configure
    logging itself; in JSON mode the worker's start-up banner (not a log line) is turned off
    and its essentials logged instead.
    """
    from celery import signals

    use_json = json_requested() if json_logs is None else json_logs

    def on_setup_logging(loglevel: int | None = None, **_: Any) -> None:
        configure(json_logs=use_json, level=loglevel or logging.INFO)

    def on_init(sender: str, instance: Any, **_: Any) -> None:
        if use_json:
            instance.quiet = True

    def on_after_setup(sender: str, instance: Any, **_: Any) -> None:
        queues = ",".join(sorted(q.name for q in instance.app.amqp.queues.consume_from.values()))
        logging.getLogger("prelabel.worker").info(
            "worker %s starting: concurrency %s, queues %s", sender, instance.concurrency, queues
        )

    def on_prerun(task_id: str, task: Any, args: Any = None, **_: Any) -> None:
        run_id, shard = _task_args(args)
        RUN_ID.set(run_id)
        SHARD.set(shard)

    def on_postrun(**_: Any) -> None:
        RUN_ID.set(None)
        SHARD.set(None)

    # weak=False: these closures would otherwise be collected as soon as this call returns.
    signals.setup_logging.connect(on_setup_logging, weak=False)
    signals.celeryd_init.connect(on_init, weak=False)
    signals.celeryd_after_setup.connect(on_after_setup, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)


def _task_args(args: Any) -> tuple[str | None, int | None]:
    # prelabel's shard task takes (run_id, shard); other tasks leave the context empty.
    if isinstance(args, list | tuple) and len(args) >= 2 and isinstance(args[0], str):
        try:
            return args[0], int(args[1])
        except (TypeError, ValueError):
            return args[0], None
    return None, None
