"""The Batch API transport: a shard's requests go into one batch file, half the price, and
are labeled when the batch is back (within 24 hours).

One shard pass with this transport runs the usual labeler. `complete(request)` names the
request by its `custom_id` (`prelabel.batches.custom_id(run, f"{shard}.{digest[:12]}",
item_ids)`, the digest that of the request's content, so the same request in a later pass has
the same name). When the run's `batch_answers` hold an answer under that name, it is the
request's answer (a `Completion`, or a `CallFailed` with the line's error); otherwise the
request is kept as a pending line and `Deferred` is raised: its items stay uncommitted. After
the pass, `submit()` writes every pending line into one JSONL file (the body is
`chat.chat_body`, the very body the realtime transport posts), uploads it and creates the
batch; the poller (`workers.batch_poller`) stores its answers when it is final and enqueues
the shard again, whose next pass labels them.

Submitting is idempotent, keyed by the shard and a digest of the lines' custom_ids
(`submission_key`): `batch_submits` holds `submitting:<unix time>` from before the upload,
and the batch id once the batch is created (with its `BatchRecord` in `batches`). A pass that
finds the batch id submits nothing; one that finds `submitting:` (a worker that died between
the two) lists the account's batches, newest first, back to a minute before that time, and
adopts the one whose metadata names the run, shard and key; only when there is none does it
submit. A worker killed at any point therefore never pays for one pass twice.

Prompt tokens waiting in batches count against the fleet's enqueued-token limit
(`delivery.enqueued_tokens`, else `PRELABEL_CAPS`' `enqueued_tokens` for the model): a file
that would pass it is not submitted (the shard waits and is tried again), and the poller gives
the tokens back (`workers.batch_poller`) when the batch is final.

Spend: the poller counts a batch's requests and tokens once, when it collects the batch. A
stored answer handed to the labeler here moves no spend counter (only transports move them:
the cache-and-budget wrapper and the labeler never do); its tokens and its one request still
go into the item's usage, as the labeler shares them out.

Budget (issue 17: "budgets are reserved at submission"): a new submission reserves the whole
file in the run's budget before the upload (its prompt tokens + requests × max_tokens, the
dollars at the batch price, `Budget.for_batch`); over the budget, `BudgetReached` stops the
run and no batch is made. A submission then not made (the enqueued-token limit, an API error)
gives its reservation back. The record keeps what was reserved (`reserved_tokens`,
`reserved_musd`); the poller replaces it by what the lines used when it collects the batch,
or gives it back when the batch fails. `GuardedCaller` leaves this transport's calls alone;
the realtime fallback is reserved and settled here, at the list price.

`realtime`: with `auto` past its deadline (the run's meta `transport_now` = `realtime`), and
with `delivery.retry` = `realtime` once one of the shard's batches was collected, what has no
stored answer is asked through the realtime transport instead of being deferred.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import openai
import redis
import redis.asyncio as aioredis
from openai import AsyncOpenAI
from openai.types import Batch

from prelabel.batches import FINAL, MAX_BYTES, MAX_REQUESTS, BatchRecord, custom_id
from prelabel.counters import RunCounter
from prelabel.errors import Deferred, PrelabelError
from prelabel.keys import RunKeys, batch_enqueued_key
from prelabel.model import RunConfig, Usage
from prelabel.settings import Settings
from workers.budget import Budget
from workers.cache import request_digest
from workers.ratelimit import lua_source
from workers.results import ResultSink
from workers.sampling import SamplingMemory
from workers.transports.base import (
    TRUNCATED,
    CallFailed,
    ChatRequest,
    Completion,
    ContextWindow,
    EmptyAnswer,
    RunStopped,
    choices_from_json,
    truncated_reason,
)
from workers.transports.chat import chat_body, prompt_cache_key, request_params, sampling_params
from workers.transports.realtime import RealtimeTransport
from workers.transports.window import context_window

log = logging.getLogger(__name__)

#: The one endpoint prelabel's batch lines call, and the only completion window the API has.
ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
#: A `submitting:` mark is this many seconds older than the batch it stands for, at most
#: (the worker's clock against the API's): listing looks back that much further.
CLOCK_SLACK = 60.0
#: Test hook (chaos tests only, like the other PRELABEL_TEST_ variables): `1` makes the
#: worker exit at once (`os._exit(137)`, as a SIGKILL would) right after `batches.create`
#: returned and before the batch is recorded, so a test can check that a rerun adopts it.
DIE_AFTER_CREATE = "PRELABEL_TEST_DIE_AFTER_BATCH_CREATE"
#: The run's meta field the poller sets to `realtime` when `auto` reaches its deadline.
TRANSPORT_NOW = "transport_now"
#: The run's meta field the poller sets when the endpoint refused a line's `prompt_cache_key`:
#: every process's next lines go without it.
CACHE_KEY_REFUSED = "cache_key_refused"
SUBMITTING = "submitting:"
#: Added to a `submitting:` mark whose enqueued tokens were given back (the upload or the
#: create failed with an error, not a crash): a batch adopted from it holds them again.
RELEASED = ":released"


class SubmitFailed(PrelabelError):
    """The API refused or failed the upload or the batch's creation, for now: the shard is
    tried again later (its `submitting:` mark makes sure a batch that exists is adopted)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """What `submit` did: `created` a batch, `adopted` one a dead worker created, found it
    `recorded` already, or was `refused` by the enqueued-token limit (`batch_id` None)."""

    how: Literal["created", "adopted", "recorded", "refused"]
    key: str
    batch_id: str | None
    requests: int = 0
    prompt_tokens: int = 0


def submission_key(custom_ids: Sequence[str]) -> str:
    """The digest that names one submission of a shard: its lines' sorted custom_ids."""
    return hashlib.sha256("\n".join(sorted(custom_ids)).encode()).hexdigest()[:16]


def batch_line(
    config: RunConfig, cid: str, request: ChatRequest, cache_key: bool = True
) -> dict[str, Any]:
    """One line of a batch file: the realtime transport's request body, named `cid`, with the
    run's `prompt_cache_key` unless `cache_key` is False (an endpoint that refused it)."""
    key = prompt_cache_key(config.run_id) if cache_key else None
    return {
        "custom_id": cid,
        "method": "POST",
        "url": ENDPOINT,
        "body": chat_body(config.endpoint, request, key),
    }


def enqueued_limit(settings: Settings, config: RunConfig) -> int | None:
    """The enqueued-token limit for the run's model: the run's own, else the workers'
    `PRELABEL_CAPS` entry for the model (or its `"*"` entry), else None (no limit)."""
    if config.delivery.enqueued_tokens is not None:
        return config.delivery.enqueued_tokens
    model = config.endpoint.model
    for entry in (settings.caps.get(model), settings.caps.get("*")):
        value = getattr(entry, "enqueued_tokens", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class EnqueuedTokens:
    """The fleet's count of prompt tokens waiting in batches for one model (enqueue.lua).

    Works with a sync or an async Redis client (the poller runs in a thread, with a sync one):
    each method returns what the client's script call returns (awaitable with an async one).
    """

    def __init__(self, client: redis.Redis | aioredis.Redis, base_url: str, model: str) -> None:
        self.key = batch_enqueued_key(base_url, model)
        # register_script keeps the sha and reloads the script if Redis forgot it (NOSCRIPT).
        self._script = client.register_script(lua_source("enqueue"))

    def hold(self, tokens: int, limit: int | None, force: bool = False) -> Any:
        """Add `tokens`; refused (-1, nothing added) when that would pass `limit`, unless
        `force`. Returns the new count otherwise."""
        mode = "force" if force else "check"
        return self._script(keys=[self.key], args=[tokens, limit or 0, mode])

    def release(self, tokens: int) -> Any:
        """Give `tokens` back (a batch turned final); the count stops at zero."""
        return self._script(keys=[self.key], args=[-tokens, 0, "force"])


def waiting_shards(client: redis.Redis, run_id: str) -> set[int]:
    """For the reconciler: the shards of `run_id` with a batch that is not final yet. Their
    tasks ended on purpose: the poller enqueues them when the batch is back."""
    waiting: set[int] = set()
    for raw in client.hvals(RunKeys(run_id).batches):
        record = BatchRecord.model_validate_json(raw)
        if record.status not in FINAL:
            waiting.add(record.shard)
    return waiting


class BatchTransport:
    """The requests of one shard pass: answers from the run's collected batches, the rest
    into one batch file at the end of the pass (`submit`)."""

    #: The labeler replays a shard's requests from its first ones (see `ShardLabeler`).
    deferred = True

    def __init__(
        self,
        client: AsyncOpenAI,
        redis_client: aioredis.Redis,
        config: RunConfig,
        shard: int,
        *,
        limit: int | None = None,
        realtime: RealtimeTransport | None = None,
        context_tokens: int | None = None,
        memory: SamplingMemory | None = None,
    ) -> None:
        self.client = client
        self.redis = redis_client
        self.config = config
        self.shard = shard
        self.limit = limit
        #: Set: requests without a stored answer go there instead of into a batch.
        self.realtime = realtime
        self.context_tokens = context_tokens
        #: The process's memory of endpoints: lines go without `prompt_cache_key` to one that
        #: refused it realtime.
        self.memory = memory if memory is not None else SamplingMemory()
        self.keys = RunKeys(config.run_id)
        self.sink = ResultSink(redis_client, config.run_id)
        self.enqueued = EnqueuedTokens(
            redis_client, config.endpoint.base_url, config.endpoint.model
        )
        #: The run's budget at the batch price: a new batch file is reserved whole.
        self.budget = Budget.for_batch(redis_client, config)
        #: At the list price, for the realtime fallback (`GuardedCaller` leaves a deferred
        #: transport's calls to it).
        self.realtime_budget = Budget(redis_client, config)
        self._pending: dict[str, ChatRequest] = {}
        #: Stored answers this pass used.
        self.answered = 0

    @classmethod
    async def for_run(
        cls,
        client: AsyncOpenAI,
        redis_client: aioredis.Redis,
        settings: Settings,
        config: RunConfig,
        shard: int,
        realtime: RealtimeTransport,
    ) -> BatchTransport:
        """The transport of one pass of shard `shard`; `realtime` answers what has no stored
        answer when the run was switched to realtime (`auto` at its deadline), or when its
        `retry` policy is `realtime` and a batch of the shard was collected already."""
        keys = RunKeys(config.run_id)
        now, refused = await redis_client.hmget(keys.meta, [TRANSPORT_NOW, CACHE_KEY_REFUSED])
        if refused:
            realtime.memory.note_refused_cache_key(config)
        use_realtime = now == b"realtime"
        if not use_realtime and config.delivery.retry == "realtime":
            records = [
                BatchRecord.model_validate_json(r) for r in await redis_client.hvals(keys.batches)
            ]
            use_realtime = any(r.shard == shard and r.status == "collected" for r in records)
        return cls(
            client,
            redis_client,
            config,
            shard,
            limit=enqueued_limit(settings, config),
            realtime=realtime if use_realtime else None,
            memory=realtime.memory,
            context_tokens=settings.context_tokens,
        )

    @property
    def pending(self) -> dict[str, ChatRequest]:
        """The pass's requests that have no answer yet, by custom_id."""
        return dict(self._pending)

    def custom_id(self, request: ChatRequest) -> str:
        """The request's name in a batch file: the same for the same request in any pass."""
        endpoint = self.config.endpoint
        # A plain request's sampling parameters are none: its name is as it always was.
        params = {
            **request_params(endpoint),
            **sampling_params(endpoint, request),
            "response_format": request.response_format,
        }
        digest = request_digest(endpoint.base_url, endpoint.model, request.messages, params)
        return custom_id(self.config.run_id, f"{self.shard}.{digest[:12]}", request.item_ids)

    async def context_window(self) -> ContextWindow:
        cfg = self.config
        return await context_window(
            self.client, cfg.endpoint.base_url, cfg.endpoint.model, self.context_tokens
        )

    async def complete(self, request: ChatRequest) -> Completion:
        """The stored answer to `request`; else (realtime fallback aside) `Deferred`."""
        cid = self.custom_id(request)
        raw = await self.redis.hget(self.keys.batch_answers, cid)
        if raw is not None:
            self.answered += 1
            return self._answer(json.loads(raw))
        if self.realtime is not None:
            return await self._realtime(request)
        self._pending[cid] = request
        raise Deferred(f"request {cid} waits for a batch")

    async def _realtime(self, request: ChatRequest) -> Completion:
        """Ask `request` through the realtime transport, reserved and settled at the list
        price as `GuardedCaller` does for a realtime run."""
        budget = self.realtime_budget
        max_tokens = request.answer_tokens(self.config.endpoint.max_tokens)
        assert self.realtime is not None
        await budget.reserve(request.prompt_tokens, max_tokens)
        used_prompt = used_completion = used_cached = 0
        try:
            completion = await self.realtime.complete(request)
            used_prompt, used_completion = completion.prompt_tokens, completion.completion_tokens
            used_cached = completion.cached_tokens
        except CallFailed as exc:  # a 200 that could not be read was paid for all the same
            used_prompt, used_completion = exc.spent.prompt_tokens, exc.spent.completion_tokens
            used_cached = exc.spent.cached_tokens
            raise
        finally:
            await budget.settle(
                request.prompt_tokens, max_tokens, used_prompt, used_completion, used_cached
            )
        return completion

    def _answer(self, data: dict[str, Any]) -> Completion:
        """A stored answer as the realtime transport would have given it. No spend counter
        moves: the poller counted the batch's spend when it collected it."""
        spent = Usage(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            # An error says whether the API ran its line; an answer is one request.
            requests=int(data.get("requests", 0 if "error" in data else 1)),
            cached_tokens=int(data.get("cached_tokens") or 0),
        )
        if "error" in data:
            raise CallFailed(str(data["error"]), spent)
        completion = Completion(
            content=str(data.get("content") or ""),
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            simulated=bool(data.get("simulated", False)),
            finish_reason=str(data.get("finish_reason") or ""),
            requests=spent.requests,
            choices=choices_from_json(data.get("choices")),
            cached_tokens=spent.cached_tokens,
        )
        if not completion.content:
            if completion.finish_reason == TRUNCATED:
                raise EmptyAnswer(truncated_reason(self.config.endpoint.max_tokens), spent)
            refusal = data.get("refusal")
            why = f": it refused ({str(refusal)[:200]})" if refusal else ""
            raise EmptyAnswer(f"the model returned an empty answer{why}", spent)
        return completion

    async def submit(self) -> Submission:
        """Submit the pass's pending lines as one batch, at most once (see the module)."""
        lines = sorted(self._pending.items())
        cids = [cid for cid, _ in lines]
        key = submission_key(cids)
        field = f"{self.shard}:{key}"
        tokens = sum(request.prompt_tokens for _, request in lines)
        current = await self.redis.hget(self.keys.batch_submits, field)
        mark = current.decode() if isinstance(current, bytes) else (current or "")
        if mark and not mark.startswith(SUBMITTING):
            return Submission("recorded", key, mark, len(lines), tokens)
        # The budget a file holds: its prompt tokens, and each line's n × max_tokens.
        most = sum(r.answer_tokens(self.config.endpoint.max_tokens) for _, r in lines)
        held = False  # the enqueued tokens and budget of this submission are counted already
        if mark:
            released = mark.endswith(RELEASED)
            since = float(mark.removeprefix(SUBMITTING).removesuffix(RELEASED))
            found = await self._find(key, since)
            if found is not None:
                if released:
                    await self.enqueued.hold(tokens, self.limit, force=True)
                    # The batch exists, so it is paid for: held again whatever the budget.
                    await self.budget.settle(0, 0, tokens, most)
                await self._record(field, found, key, lines, tokens)
                log.warning(
                    "run %s shard %d: adopted batch %s, created by a task that died before "
                    "recording it",
                    self.config.run_id,
                    self.shard,
                    found.id,
                )
                return Submission("adopted", key, found.id, len(lines), tokens)
            held = not released
        data = "".join(
            json.dumps(
                batch_line(self.config, cid, request, self.memory.takes_cache_key(self.config)),
                ensure_ascii=False,
            )
            + "\n"
            for cid, request in lines
        ).encode()
        self._check_size(len(lines), len(data), tokens)
        if not held:
            # The whole file, at the batch price; BudgetReached stops the run, no batch made.
            await self.budget.reserve(tokens, most)
            if int(await self.enqueued.hold(tokens, self.limit)) < 0:
                await self.budget.settle(tokens, most, 0, 0)
                return Submission("refused", key, None, len(lines), tokens)
        mark = f"{SUBMITTING}{time.time()}"
        await self.redis.hset(self.keys.batch_submits, field, mark)
        try:
            batch = await self._create(data, key)
        except Exception:
            # An error, not a crash: the batch may exist all the same (a timeout after the
            # API took it), so the mark stays and the next pass looks for it first; the
            # tokens and the budget are given back meanwhile, and the mark says so.
            await self.enqueued.release(tokens)
            await self.budget.settle(tokens, most, 0, 0)
            await self.redis.hset(self.keys.batch_submits, field, mark + RELEASED)
            raise
        if os.environ.get(DIE_AFTER_CREATE) == "1":  # test hook: see DIE_AFTER_CREATE
            os._exit(137)
        await self._record(field, batch, key, lines, tokens)
        return Submission("created", key, batch.id, len(lines), tokens)

    def _check_size(self, requests: int, size: int, tokens: int) -> None:
        """Stop the run on a file no submission could ever take (a wait would never end)."""
        shard = self.shard
        if requests > MAX_REQUESTS or size > MAX_BYTES:
            raise RunStopped(
                f"shard {shard}'s batch file has {requests} requests ({size} bytes), over the "
                f"Batch API's {MAX_REQUESTS} requests or {MAX_BYTES} bytes a file: run again "
                "with a smaller --shard-size"
            )
        if self.limit is not None and tokens > self.limit:
            raise RunStopped(
                f"shard {shard}'s batch file holds {tokens} prompt tokens, more than the "
                f"enqueued-token limit ({self.limit}) on its own: run again with a smaller "
                "--shard-size, or a higher --enqueued-tokens"
            )

    async def _create(self, data: bytes, key: str) -> Batch:
        """Upload the file and create the batch; the API's refusals as prelabel's errors."""
        cfg = self.config
        name = f"prelabel-{cfg.run_id}-{self.shard}-{key}.jsonl"
        try:
            uploaded = await self.client.files.create(file=(name, data), purpose="batch")
            return await self.client.batches.create(
                input_file_id=uploaded.id,
                endpoint=ENDPOINT,
                completion_window=COMPLETION_WINDOW,
                metadata={
                    "prelabel_run": cfg.run_id,
                    "prelabel_shard": str(self.shard),
                    "prelabel_key": key,
                },
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise RunStopped(
                f"{cfg.endpoint.base_url} refused the batch upload ({exc.status_code}): check "
                "OPENAI_API_KEY on the workers, and that its project may use the Batch API"
            ) from None
        except openai.APIStatusError as exc:
            raise SubmitFailed(
                f"{cfg.endpoint.base_url} refused shard {self.shard}'s batch "
                f"(HTTP {exc.status_code}): {str(exc)[:200]}"
            ) from None
        except openai.APIConnectionError as exc:
            raise SubmitFailed(f"could not submit shard {self.shard}'s batch: {exc}") from None

    async def _find(self, key: str, since: float) -> Batch | None:
        """The batch this shard's submission `key` created, listed back to `since` (less the
        clock slack), or None."""
        want = {
            "prelabel_run": self.config.run_id,
            "prelabel_shard": str(self.shard),
            "prelabel_key": key,
        }
        try:
            async for batch in self.client.batches.list(limit=100):
                if batch.created_at < since - CLOCK_SLACK:
                    return None
                metadata = batch.metadata or {}
                if all(metadata.get(k) == v for k, v in want.items()):
                    return batch
        except openai.APIError as exc:
            raise SubmitFailed(f"could not list batches to recover a submission: {exc}") from None
        return None

    async def _record(
        self,
        field: str,
        batch: Batch,
        key: str,
        lines: Sequence[tuple[str, ChatRequest]],
        tokens: int,
    ) -> None:
        """Record `batch` for the poller, and count it once (the record is written once)."""
        most = sum(r.answer_tokens(self.config.endpoint.max_tokens) for _, r in lines)
        reserved = self.budget.enabled
        record = BatchRecord(
            reserved_tokens=tokens + most if reserved else 0,
            reserved_musd=self.budget.micro_usd(tokens, most) if reserved else 0,
            batch_id=batch.id,
            shard=self.shard,
            key=key,
            status=batch.status,
            requests=len(lines),
            items=len({i for _, request in lines for i in request.item_ids}),
            prompt_tokens=tokens,
            input_file_id=batch.input_file_id,
            created_at=float(batch.created_at),
            next_poll_at=float(batch.created_at),
        )
        new = await self.redis.hsetnx(self.keys.batches, batch.id, record.model_dump_json())
        await self.redis.hset(self.keys.batch_submits, field, batch.id)
        if new:
            await self.sink.spend({RunCounter.BATCHES: 1})

    async def forget_answers(self) -> int:
        """Delete the shard's stored answers (once all its items are committed: the passes
        before replay them, see `ShardLabeler`); returns how many."""
        prefix = custom_id(self.config.run_id, f"{self.shard}.", ["x"]).rsplit(":", 1)[0]
        pattern = _glob_escape(prefix) + "*"
        names = [n async for n, _ in self.redis.hscan_iter(self.keys.batch_answers, match=pattern)]
        if names:
            await self.redis.hdel(self.keys.batch_answers, *names)
        return len(names)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
