"""Label one shard: batches of records, many calls in flight, each item committed once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from openai import AsyncOpenAI

from prelabel.errors import ItemError
from prelabel.keys import RunKeys
from prelabel.model import ItemResult, Record, RunConfig, Usage
from prelabel.settings import Settings
from prelabel.store import RunStore
from workers.alignment import align
from workers.budget import Budget, BudgetReached
from workers.cache import ResponseCache
from workers.calls import GuardedCaller
from workers.fewshot import ExampleSelector, selector_for_run
from workers.llm import ChatCaller, Completion, EmptyAnswer, PauseLimits, RunStopped
from workers.parsing import parse_answer, parse_batch_answer
from workers.ratelimit import TokenBucket, account_id, caps_for
from workers.requests import RequestBuilder
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
        self.caps = caps_for(settings, config)
        bucket = TokenBucket(redis, account_id(config.base_url, config.model, api_key), self.caps)
        self.caller = GuardedCaller(
            ChatCaller(
                client,
                bucket,
                self.sink,
                config,
                settings.max_attempts,
                PauseLimits(settings.max_pause, settings.max_paused),
            ),
            ResponseCache(redis, settings.cache_ttl, enabled=config.cache),
            Budget(redis, config),
            self.sink,
            config,
        )
        self.redis = redis
        self.requests = RequestBuilder(config, self._selector())
        self._inflight = asyncio.Semaphore(settings.inflight)
        self._stopped: RunStopped | BudgetReached | None = None
        self._status_read_at = float("-inf")
        self._is_running = True

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
        async with self._inflight:
            if self._stopped is not None or not await self._running():
                return 0
            results = await self._attempt(batch)
        return await self.sink.commit(results)

    async def _attempt(self, batch: Sequence[Record]) -> list[ItemResult]:
        """Results for `batch`; a batch whose answer is partly unusable is split in halves."""
        ontology = self.config.ontology
        messages = self.requests.messages(batch)
        fmt = self.requests.response_format(len(batch))
        prompt_tokens = count_message_tokens(messages, self.config.model)
        if prompt_tokens + self.config.max_tokens > self.settings.context_tokens:
            if len(batch) > 1:
                half = len(batch) // 2
                return await self._attempt(batch[:half]) + await self._attempt(batch[half:])
            reason = (
                f"the request needs {prompt_tokens} prompt tokens + {self.config.max_tokens} "
                f"for the answer, more than the model's context of "
                f"{self.settings.context_tokens} (PRELABEL_CONTEXT_TOKENS)"
            )
            return [self._failed(batch[0], reason)]
        try:
            reply = await self.caller.complete(
                messages, prompt_tokens, [r.id for r in batch], response_format=fmt
            )
        except EmptyAnswer as exc:
            if len(batch) > 1:  # as for a partly unusable answer: halves, down to one
                half = len(batch) // 2
                return await self._attempt(batch[:half]) + await self._attempt(batch[half:])
            return [self._failed(batch[0], exc.message)]
        except ItemError as exc:
            if fmt is not None and self.requests.fall_back(exc.message):
                log.warning("%s refused json_schema: JSON mode from now on", self.config.base_url)
                return await self._attempt(batch)
            return [self._failed(r, exc.message) for r in batch]
        except (RunStopped, BudgetReached) as exc:
            self._stopped = exc
            return []
        completion = reply.completion
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
        if results and all(r.status == "labeled" for r in results):
            await self.caller.remember(reply)
        if retry:
            half = max(1, len(retry) // 2)
            for part in (retry[:half], retry[half:]):
                if part:
                    results.extend(await self._attempt(part))
        return results

    def _selector(self) -> ExampleSelector | None:
        """This process's few-shot selector for the run (pool read and fitted once)."""
        if not self.config.few_shot:
            return None
        key = RunKeys(self.config.run_id).fewshot
        return selector_for_run(
            self.config.run_id, self.config.few_shot_strategy, lambda: self.store.redis.get(key)
        )

    async def _running(self) -> bool:
        """False once the run is cancelled or stopped (read at most every half second)."""
        now = time.monotonic()
        if now - self._status_read_at > 0.5:
            # Marked read before the await: the batches waiting meanwhile use the last answer
            # rather than all asking Redis at once.
            self._status_read_at = now
            status = await self.redis.hget(RunKeys(self.config.run_id).meta, "status")
            self._is_running = status in (b"running", None)
        return self._is_running

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
