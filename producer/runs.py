"""Create a run: check the endpoint, write the run to Redis, enqueue one task per shard."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import openai
import redis

import task_types
from prelabel.errors import BrokerError, EndpointError
from prelabel.keys import RunKeys
from prelabel.model import Record, RunConfig
from prelabel.queue import enqueue
from prelabel.settings import Settings
from prelabel.store import RunStore

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """Sortable and unique: creation time, then randomness."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def check_endpoint(settings: Settings, base_url: str, model: str | None = None) -> str | None:
    """Fail now, with one line, when the LLM endpoint cannot be reached or refuses the key;
    return a warning when the endpoint lists its models and `model` is not one of them.

    The key is the workers' business: without one here, an endpoint that answers 401 has
    answered, and each worker checks its own key on its first call. A model that is not
    listed is only a warning: a server that serves one model (llama.cpp's) answers to any
    name, and a provider may serve models it does not list; but a typo is most often what
    it is.
    """
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    client = openai.OpenAI(
        base_url=base_url, api_key=key or "sk-none-on-the-producer", max_retries=0, timeout=10
    )
    try:
        listed = [m.id for m in client.models.list()]
    except openai.APIConnectionError:
        raise EndpointError(
            f"cannot reach the LLM endpoint at {base_url}: start it, or pass --base-url "
            "(or set OPENAI_BASE_URL) to one that answers"
        ) from None
    except openai.AuthenticationError:
        if key is None:
            return None
        raise EndpointError(f"{base_url} rejected the API key: check OPENAI_API_KEY") from None
    except openai.APIStatusError:
        return None  # some compatible servers have no /models; the endpoint answered
    finally:
        client.close()
    if model is None or not listed or model in listed:
        return None
    shown = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
    return (
        f"model {model!r} is not among the models {base_url} lists ({shown}): check --model "
        "(a server that serves one model may answer to any name)"
    )


def shard(records: Sequence[Record], size: int) -> list[list[Record]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


def start_run(
    settings: Settings,
    store: RunStore,
    records: Sequence[Record],
    config: RunConfig,
    skipped: Sequence[tuple[str, str]] = (),
    fewshot_pool: str | None = None,
    out_dir: Path | None = None,
) -> None:
    """Write the run to Redis (with the input items that could not be read) and enqueue it.

    `fewshot_pool` (`workers.fewshot.pool_to_json`) is stored with the run before any shard
    is enqueued, so that no worker looks for it too early.
    """
    shards = shard(records, config.limits.shard_size)
    if len(shards) != config.shards:
        raise ValueError(f"config says {config.shards} shards, records make {len(shards)}")
    counters = task_types.get(config.labeling.task).counters
    store.create(config, shards, skipped, queue=settings.queue, out_dir=out_dir, counters=counters)
    if fewshot_pool is not None:
        try:
            store.redis.set(RunKeys(config.run_id).fewshot, fewshot_pool)
        except redis.RedisError as exc:
            raise BrokerError(f"could not write run {config.run_id}'s examples: {exc}") from None
    enqueue(settings, config.run_id, range(len(shards)))
