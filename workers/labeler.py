"""Label one shard: batches of records, many calls in flight, each item committed once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from openai import AsyncOpenAI

from prelabel.errors import ConfigError, ItemError
from prelabel.model import ItemResult, Record, RunConfig, Usage
from prelabel.settings import Settings, api_key_for
from prelabel.store import RunStore
from workers.alignment import align
from workers.llm import ChatCaller, Completion, RunStopped
from workers.parsing import parse_answer, parse_batch_answer
from workers.prompts import build_messages
from workers.ratelimit import Caps, TokenBucket, account_id
from workers.results import ResultSink
from workers.tokens import count_message_tokens

log = logging.getLogger(__name__)


class ShardLabeler:
    """Labels the uncommitted records of one shard of a run."""

    def __init__(
        self,
        settings: Settings,
        config: RunConfig,
        client: AsyncOpenAI,
        redis: aioredis.Redis,
        store: RunStore,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.sink = ResultSink(redis, config.run_id)
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        bucket = TokenBucket(
            redis,
            account_id(config.base_url, config.model, api_key),
            Caps(rpm=config.rpm, tpm=config.tpm),
        )
        self.caller = ChatCaller(client, bucket, self.sink, config, settings.max_attempts)
        self._inflight = asyncio.Semaphore(settings.inflight)
        self._stopped: RunStopped | None = None

    async def label(self, records: Sequence[Record]) -> int:
        """Label what is not committed yet; returns how many items this call committed."""
        done = await self.sink.committed([r.id for r in records])
        todo = [r for r in records if r.id not in done]
        size = self.config.batch_size
        batches = [todo[i : i + size] for i in range(0, len(todo), size)]
        counts = await asyncio.gather(*(self._label_batch(b) for b in batches))
        if self._stopped is not None:
            raise self._stopped
        return sum(counts)

    async def _label_batch(self, batch: Sequence[Record]) -> int:
        if self._stopped is not None:
            return 0
        async with self._inflight:
            results = await self._attempt(batch)
        committed = 0
        for result in results:
            committed += await self.sink.commit(result)
        return committed

    async def _attempt(self, batch: Sequence[Record]) -> list[ItemResult]:
        """Results for `batch`; a batch whose answer is partly unusable is split in halves."""
        ontology = self.config.ontology
        messages = build_messages(batch, ontology)
        prompt_tokens = count_message_tokens(messages, self.config.model)
        try:
            completion = await self.caller.complete(messages, prompt_tokens, [r.id for r in batch])
        except ItemError as exc:
            return [self._failed(r, exc.message) for r in batch]
        except RunStopped as exc:
            self._stopped = exc
            return []
        if len(batch) == 1:
            answers: list[dict[str, list[str]] | ItemError]
            try:
                answers = [parse_answer(completion.content, ontology)]
            except ItemError as exc:
                answers = [exc]
        else:
            answers = parse_batch_answer(completion.content, len(batch), ontology)
        usage = _share(completion, len(batch))
        results: list[ItemResult] = []
        retry: list[Record] = []
        for record, answer in zip(batch, answers, strict=True):
            if isinstance(answer, ItemError):
                if len(batch) > 1:
                    retry.append(record)
                else:
                    results.append(self._failed(record, answer.message, usage))
                continue
            aligned = align(record, answer, ontology)
            results.append(
                ItemResult(
                    id=record.id,
                    status="labeled",
                    entities=aligned.entities,
                    tags=aligned.tags,
                    unaligned=aligned.unaligned,
                    usage=usage,
                    model=self.config.model,
                    prompt_version=self.config.prompt_version,
                )
            )
        if retry:
            half = max(1, len(retry) // 2)
            for part in (retry[:half], retry[half:]):
                if part:
                    results.extend(await self._attempt(part))
        return results

    def _failed(self, record: Record, reason: str, usage: Usage | None = None) -> ItemResult:
        log.warning("item %s failed: %s", record.id, reason)
        return ItemResult(
            id=record.id,
            status="failed",
            error=reason,
            usage=usage or Usage(),
            model=self.config.model,
            prompt_version=self.config.prompt_version,
        )


def _share(completion: Completion, n: int) -> Usage:
    """One item's share of a batched call's usage."""
    return Usage(
        prompt_tokens=completion.prompt_tokens // n,
        completion_tokens=completion.completion_tokens // n,
        requests=1 if n == 1 else 0,
    )


async def label_shard(settings: Settings, run_id: str, shard: int) -> int:
    """Label shard `shard` of run `run_id`; returns the number of items committed."""
    from prelabel.connections import connect

    store = RunStore(connect(settings.redis_url))
    status, _ = store.status(run_id)
    if status != "running":
        log.info("run %s is %s: shard %d skipped", run_id, status, shard)
        return 0
    config = store.config(run_id)
    records = store.shard(run_id, shard)
    try:
        api_key = api_key_for(settings, config.base_url)
    except ConfigError as exc:
        store.set_status(run_id, "failed", exc.message)
        log.error("run %s stopped: %s", run_id, exc.message)
        return 0
    redis = aioredis.Redis.from_url(settings.redis_url)
    client = AsyncOpenAI(
        base_url=config.base_url,
        api_key=api_key,
        max_retries=0,
        timeout=settings.request_timeout,
    )
    try:
        labeler = ShardLabeler(settings, config, client, redis, store)
        try:
            return await labeler.label(records)
        except RunStopped as exc:
            store.set_status(run_id, "failed", exc.message)
            log.error("run %s stopped: %s", run_id, exc.message)
            return 0
    finally:
        await client.close()
        await redis.aclose()
