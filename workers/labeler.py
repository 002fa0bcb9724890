"""Label one shard: batches of records, many calls in flight, each item committed once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

import task_types
from prelabel.errors import BudgetReached, Deferred, ItemError
from prelabel.keys import RunKeys
from prelabel.model import ItemResult, Record, RunConfig, Usage
from prelabel.settings import Settings
from prelabel.store import RunStore
from workers.budget import Budget
from workers.cache import ResponseCache
from workers.calls import GuardedCaller
from workers.fewshot import ExampleSelector, selector_for_run
from workers.halving import by_halves
from workers.json_mode import SchemaRefusals
from workers.measure import Confidence, Reading
from workers.requests import RequestBuilder
from workers.results import ResultSink
from workers.sampling import SamplingMemory
from workers.tokens import count_request_tokens
from workers.transports import (
    TRUNCATED,
    CallFailed,
    ChatRequest,
    ContextWindow,
    EmptyAnswer,
    RunStopped,
    SchemaRefused,
    Transport,
    truncated_reason,
)

log = logging.getLogger(__name__)


class ShardLabeler:
    """Labels the uncommitted records of one shard of a run, through `transport`.

    `refusals` remembers the endpoints that refused `json_schema`, `sampling` those that
    ignored `n` or gave no log-probabilities (the worker's context holds one of each for the
    process; a labeler on its own starts with none). How sure each answer is
    (`--confidence`) is `workers.measure`'s.

    With a deferred transport (the Batch API: `transport.deferred`), a request whose answer is
    not back raises `Deferred`, and its items stay uncommitted. Each pass then replays the
    shard from its first requests: the batches are cut from all its records (committed ones
    included), and a batch (or half) whose items are all committed is skipped. A request
    answered in an earlier pass is thus made again with the same items and found among the
    stored answers, and the halves of an answer that was unusable in part are the same
    halves, whose own answers come in the next batch: the passes converge as realtime
    halving does. (Regrouping the uncommitted items would make new requests each pass.)
    """

    def __init__(
        self,
        settings: Settings,
        config: RunConfig,
        transport: Transport,
        redis: aioredis.Redis,
        store: RunStore,
        refusals: SchemaRefusals | None = None,
        sampling: SamplingMemory | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.sink = ResultSink(redis, config.run_id)
        self.transport = transport
        self.caller = GuardedCaller(
            transport,
            ResponseCache(redis, settings.cache_ttl, enabled=config.endpoint.cache),
            Budget(redis, config),
            self.sink,
            config,
        )
        self.redis = redis
        self.task = task_types.get(config.labeling.task)
        self.refusals = refusals if refusals is not None else SchemaRefusals()
        self.requests = RequestBuilder(config, self._selector(), self.refusals)
        memory = sampling if sampling is not None else SamplingMemory()
        self.confidence = Confidence(config, self.task, self.caller, memory, self.refusals)
        self._inflight = asyncio.Semaphore(settings.inflight)
        self._spent: dict[str, Usage] = {}
        self._window: ContextWindow | None = None
        self._stopped: RunStopped | BudgetReached | None = None
        self._status_read_at = float("-inf")
        self._is_running = True
        #: Replay passes (a deferred transport), and the items committed before this pass.
        self._replay = bool(getattr(transport, "deferred", False))
        self._done: set[str] = set()

    async def label(self, records: Sequence[Record]) -> int:
        """Label what is not committed yet; returns how many items this call committed."""
        done = await self.sink.committed([r.id for r in records])
        size = self.config.limits.batch_size
        if self._replay:
            self._done = done
            batches = [records[i : i + size] for i in range(0, len(records), size)]
            batches = [b for b in batches if any(r.id not in done for r in b)]
        else:
            todo = [r for r in records if r.id not in done]
            batches = [todo[i : i + size] for i in range(0, len(todo), size)]
        counts = await asyncio.gather(*(self._label_batch(b) for b in batches))
        if self._stopped is not None:
            raise self._stopped
        return sum(counts)

    async def _label_batch(self, batch: Sequence[Record]) -> int:
        async with self._inflight:
            if self._stopped is not None or not await self._running():
                return 0
            results = await by_halves(batch, self._attempt)
        return await self.sink.commit(results)

    async def _attempt(self, batch: Sequence[Record]) -> tuple[list[ItemResult], list[Record]]:
        """Results for what one call settles of `batch`, and the records it leaves, which
        `by_halves` asks again in smaller batches (a single record is always settled).

        What each call spends is shared out over the items it was for, and an item's result
        carries all it took (retries, and the calls of the batches it was split from), so
        that the items' usage adds up to the run's.
        """
        if self._done and all(r.id in self._done for r in batch):
            return [], []  # a replayed half settled in an earlier pass
        results, left = await self._ask(batch)
        if self._done:  # results of a replay for items settled before are not new
            results = [r for r in results if r.id not in self._done]
        return results, left

    async def _ask(self, batch: Sequence[Record]) -> tuple[list[ItemResult], list[Record]]:
        messages = self.requests.messages(batch)
        response_format = self.requests.response_format(batch)
        request = ChatRequest(
            messages,
            response_format,
            count_request_tokens(messages, response_format, self.config.endpoint.model),
            tuple(r.id for r in batch),
        )
        too_long = await self._too_long(request)
        if too_long:
            if len(batch) > 1:
                return [], list(batch)
            return [self._failed(batch[0], too_long)], []
        try:
            replies = await self.confidence.complete(request, lambda u: self._charge(batch, u))
        except SchemaRefused as exc:
            if self.refusals.fall_back(self.config):  # the same batch again, in JSON mode
                return await self._ask(batch)
            return [self._failed(r, exc.message) for r in batch], []
        except EmptyAnswer as exc:
            if len(batch) > 1:  # as for a partly unusable answer: halves, down to one
                return [], list(batch)
            return [self._failed(batch[0], exc.message)], []
        except CallFailed as exc:
            return [self._failed(r, exc.message) for r in batch], []
        except (RunStopped, BudgetReached) as exc:
            self._stopped = exc
            return [], []
        except Deferred:  # in the next batch: neither results nor halves for now
            return [], []
        truncated = replies[0].completion.finish_reason == TRUNCATED
        readings = self.confidence.read(len(batch), replies)
        settled = await asyncio.gather(
            *(
                self._settle(r, reading, truncated, len(batch))
                for r, reading in zip(batch, readings, strict=True)
            )
        )
        results = [s for s in settled if isinstance(s, ItemResult)]
        retry = [r for r, s in zip(batch, settled, strict=True) if s is _RETRY]
        if results and all(r.status == "labeled" for r in results):
            for reply in replies:
                await self.caller.remember(reply)
        return results, retry

    async def _settle(
        self, record: Record, reading: Reading, truncated: bool, size: int
    ) -> ItemResult | object | None:
        """`record`'s result from its reading of the answer, `_RETRY` to ask it again in a
        smaller batch, or None while its verification is deferred (or the run stopped)."""
        answer = reading.answer
        if isinstance(answer, ItemError):
            if size > 1:
                return _RETRY
            if truncated:
                return self._failed(record, truncated_reason(self.config.endpoint.max_tokens))
            return self._failed(record, answer.message)
        usage = self._spent.get(record.id, Usage())
        predicted = self.task.predict(record, answer, self.config, usage)
        if isinstance(predicted, str):
            return self._failed(record, predicted)
        self._spent.pop(record.id, None)
        try:
            return await self.confidence.finish(record, predicted, reading)
        except (RunStopped, BudgetReached) as exc:
            self._stopped = exc
            return None
        except Deferred:
            return None

    async def _too_long(self, request: ChatRequest) -> str:
        """Why `request` cannot fit the model's context window ("" when it fits)."""
        window = await self._context_window()
        needed = request.prompt_tokens + self.config.endpoint.max_tokens
        if needed <= window.tokens:
            return ""
        return (
            f"too long for the model's context: the request needs {request.prompt_tokens} "
            f"prompt tokens + {self.config.endpoint.max_tokens} for the answer, more than the "
            f"{window.tokens} of {window.source}"
        )

    def _charge(self, batch: Sequence[Record], spent: Usage) -> None:
        """Share `spent` out over `batch`: whole numbers, the remainders to the first items."""
        for record, share in zip(batch, _shares(spent, len(batch)), strict=True):
            self._spent[record.id] = self._spent.get(record.id, Usage()) + share

    async def _context_window(self) -> ContextWindow:
        if self._window is None:
            self._window = await self.transport.context_window()
        return self._window

    def _selector(self) -> ExampleSelector | None:
        """This process's few-shot selector for the run (pool read and fitted once)."""
        if not self.config.labeling.few_shot:
            return None
        key = RunKeys(self.config.run_id).fewshot
        return selector_for_run(
            self.config.run_id,
            self.config.labeling.few_shot_strategy,
            lambda: self.store.redis.get(key),
            self.task.example_labels,
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

    def _failed(self, record: Record, reason: str) -> ItemResult:
        if record.id not in self._done:
            log.warning("item %s failed: %s", record.id, reason)
        return self.task.result_model(
            id=record.id,
            status="failed",
            error=reason,
            usage=self._spent.pop(record.id, Usage()),
            model=self.config.endpoint.model,
            prompt_version=self.config.labeling.prompt_version,
        )


#: `_settle`'s answer for an item to ask again in a smaller batch.
_RETRY = object()


def _shares(spent: Usage, n: int) -> list[Usage]:
    """`spent` in `n` whole shares that add up to it (the first items take the remainders)."""
    counts = (spent.prompt_tokens, spent.completion_tokens, spent.requests, spent.cached_tokens)
    parts = [divmod(v, n) for v in counts]
    return [
        Usage(
            prompt_tokens=parts[0][0] + (i < parts[0][1]),
            completion_tokens=parts[1][0] + (i < parts[1][1]),
            requests=parts[2][0] + (i < parts[2][1]),
            cached_tokens=parts[3][0] + (i < parts[3][1]),
        )
        for i in range(n)
    ]
