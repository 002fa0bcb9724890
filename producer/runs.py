"""Create a run: check the endpoint, write the run to Redis, enqueue one task per shard."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import openai
from kombu.exceptions import OperationalError

from prelabel.errors import BrokerError, EndpointError
from prelabel.model import Ontology, Record, RunConfig
from prelabel.settings import Settings, api_key_for
from prelabel.store import RunStore
from workers.app import make_app
from workers.tasks import TASK_NAME, shard_task_id


def new_run_id() -> str:
    """Sortable and unique: creation time, then randomness."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def check_endpoint(settings: Settings, base_url: str) -> None:
    """Fail now, with one line, when the LLM endpoint cannot be reached or refuses the key."""
    client = openai.OpenAI(
        base_url=base_url, api_key=api_key_for(settings, base_url), max_retries=0, timeout=10
    )
    try:
        client.models.list()
    except openai.APIConnectionError:
        raise EndpointError(
            f"cannot reach the LLM endpoint at {base_url}: start it, or pass --base-url "
            "(or set OPENAI_BASE_URL) to one that answers"
        ) from None
    except openai.AuthenticationError:
        raise EndpointError(f"{base_url} rejected the API key: check OPENAI_API_KEY") from None
    except openai.APIStatusError:
        pass  # some compatible servers have no /models; the endpoint answered, which is enough
    finally:
        client.close()


def shard(records: Sequence[Record], size: int) -> list[list[Record]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


def start_run(
    settings: Settings,
    store: RunStore,
    records: Sequence[Record],
    *,
    model: str,
    base_url: str,
    ontology: Ontology,
    dataset: str,
    split: str,
    rpm: int | None = None,
    tpm: int | None = None,
    shard_size: int = 50,
    batch_size: int = 1,
    max_tokens: int = 512,
) -> RunConfig:
    """Write the run to Redis and enqueue its shards; returns its configuration."""
    shards = shard(records, shard_size)
    config = RunConfig(
        run_id=new_run_id(),
        model=model,
        base_url=base_url,
        rpm=rpm,
        tpm=tpm,
        max_tokens=max_tokens,
        batch_size=batch_size,
        shard_size=shard_size,
        ontology=ontology,
        dataset=dataset,
        split=split,
        total=len(records),
        shards=len(shards),
        created_at=time.time(),
    )
    store.create(config, shards)
    enqueue(settings, config.run_id, range(len(shards)))
    return config


def enqueue(settings: Settings, run_id: str, shards: Sequence[int] | range) -> None:
    """One Celery task per shard, with a deterministic task id."""
    app = make_app(settings)
    try:
        with app.producer_or_acquire() as producer:
            for n in shards:
                app.send_task(
                    TASK_NAME,
                    args=[run_id, n],
                    task_id=shard_task_id(run_id, n),
                    queue=settings.queue,
                    producer=producer,
                )
    except OperationalError as exc:
        raise BrokerError(f"could not enqueue run {run_id}: {exc}") from None
