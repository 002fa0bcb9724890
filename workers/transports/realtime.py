"""The realtime transport: one chat completion, through the shared bucket, retried only when
retrying can help.

The `openai` client's own retries are off (`max_retries=0`): every attempt here goes
through the bucket first, so no retry can bypass the fleet's rate limit.

How each outcome is met:

- success: the bucket is settled to the prompt tokens the endpoint counted plus `max_tokens`
  (what the provider charged at admission), and lowered to what the rate-limit headers say;
- 429 `rate_limit_exceeded`: the whole fleet pauses for the retry-after (a shared key that
  acquire.lua honours), at most `PauseLimits.longest`, the headers lower the bucket, and the
  call retries at once through it; a run charged with more than `PauseLimits.in_all` of
  pauses stops (`RunStopped`), rather than wait on an endpoint that keeps refusing;
  the 429 counts as a request in the run's counters, and its reservation stays in the bucket,
  since the provider counts refused requests too;
- 429 "Request too large": the call exceeds the account's per-minute cap; the item fails;
- 429 `insufficient_quota`, 401, 403, 404: the run stops (`RunStopped`) with a clear message;
- 5xx, timeouts, dropped connections: retried with exponential backoff and full jitter;
  the timeout bounds the whole call (httpx's bounds each read: a body dripped one byte at a
  time would otherwise hold a call, and its shard, for ever);
- a 400 about the `json_schema` response format of a request that sent one: `SchemaRefused`
  (the items fail with the endpoint's message, unless the run falls back to JSON mode);
- a 400 naming `prompt_cache_key` (a strict proxy, an old Azure API version): the endpoint is
  remembered as refusing it (`SamplingMemory`, per process) and the call is sent again at once
  without it (through the bucket: the refused one counted as a request);
- anything else (400, other 4xx): the item fails with the endpoint's message;
- a 200 whose body is not a chat completion (not JSON, no `choices`, a `message` that is not
  an object): the item fails with what was wrong, once (it is paid for, and retrying a server
  that answers like this would only pay again).

Every attempt the endpoint received counts as a request, in the run's counters and in the
item's usage (`Completion.requests`, `CallFailed.spent`), so that the items' usage adds up to the
run's. Usage the endpoint reports is checked: a count that is not a non-negative integer, or
that no request of this size could use, is replaced by prelabel's own estimate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
import openai
import redis.asyncio as aioredis
from openai import AsyncOpenAI
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from prelabel import tracing
from prelabel.counters import RunCounter
from prelabel.errors import ItemError
from prelabel.model import SIMULATOR_HEADER, RunConfig, Usage
from prelabel.settings import Settings, is_local_endpoint
from workers.ratelimit import Admission, ProviderLimits, TokenBucket, account_id, caps_for
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
    SchemaRefused,
    truncated_reason,
)
from workers.transports.chat import (
    ChatAnswer,
    chat_body,
    prompt_cache_key,
    read_answer,
    refuses_cache_key,
)
from workers.transports.window import context_window

log = logging.getLogger(__name__)

_backoff = wait_random_exponential(multiplier=0.5, max=30)
#: A prompt the endpoint counts at more than this many times prelabel's estimate is not
#: believed (the estimate is exact for OpenAI models, and above the truth for others).
ABSURD_PROMPT = 10
#: A caller adds its calls to the run's spend counters at most this often, and whenever its
#: last call in flight ends (so a shard's figures are complete before its last item commits):
#: one Redis round trip per interval instead of one per call.
SPEND_EVERY = 0.25
#: A 400 that names these is about the response format (the endpoint takes no `json_schema`).
_SCHEMA_REFUSAL = re.compile(r"response_format|json_schema|structured output", re.IGNORECASE)


class _RateLimited(Exception):
    """A 429 worth retrying; the shared pause already makes everyone wait."""


class _Transient(Exception):
    """A 5xx, a timeout or a dropped connection: worth retrying after a backoff."""


@dataclass(frozen=True, slots=True)
class PauseLimits:
    """How long a 429 may pause the fleet (`longest`), and a run in all (`in_all`), seconds."""

    longest: float = 60.0
    in_all: float = 15 * 60.0


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    if outcome is not None and isinstance(outcome.exception(), _RateLimited):
        return 0.0  # the bucket's pause-until key holds every caller back already
    return _backoff(state)


def _retry_after(headers: Any) -> float:
    """Seconds to wait from a 429's headers (`retry-after-ms` first, then `retry-after`)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return max(float(value) / scale, 0.0)
            except ValueError:
                continue
    return 1.0


class RealtimeTransport:
    """Makes chat completions for one run, under the bucket, counting what they cost.

    The labeler sees the `Transport` seam only: the `AsyncOpenAI` client (made and kept by the
    worker's context) is known here and nowhere else on the way to the endpoint.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        bucket: TokenBucket,
        sink: ResultSink,
        config: RunConfig,
        max_attempts: int,
        pauses: PauseLimits = PauseLimits(),
        context_tokens: int | None = None,
        memory: SamplingMemory | None = None,
    ) -> None:
        self.client = client
        #: What this process learnt of endpoints (here: which refuse `prompt_cache_key`).
        self.memory = memory if memory is not None else SamplingMemory()
        self.pauses = pauses
        #: The context window the settings give (PRELABEL_CONTEXT_TOKENS), else None.
        self.context_tokens = context_tokens
        self.bucket = bucket
        self.sink = sink
        self.config = config
        self.max_attempts = max_attempts
        self._local = is_local_endpoint(config.endpoint.base_url)
        #: Seconds one call may take from sending to its whole answer (None: no deadline).
        self._deadline = _seconds(client.timeout)
        #: The most the endpoint counted above our prompt estimate (e.g. a response schema it
        #: adds to the prompt): later reservations include it, so admission never undercounts.
        self._undercount = 0
        self._warned = False
        self._warned_usage = False
        self._unspent: Counter[str] = Counter()
        self._spent_at = time.monotonic()
        self._active = 0

    @classmethod
    def for_run(
        cls,
        client: AsyncOpenAI,
        redis: aioredis.Redis,
        settings: Settings,
        config: RunConfig,
        memory: SamplingMemory | None = None,
    ) -> RealtimeTransport:
        """The transport of one shard of `config`'s run, as the workers' settings shape it:
        the account's shared bucket, retries, pause limits and context window; `memory` is
        the process's (what it learnt of endpoints outlives the shard)."""
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        bucket = TokenBucket(
            redis,
            account_id(config.endpoint.base_url, config.endpoint.model, key),
            caps_for(settings, config),
        )
        return cls(
            client,
            bucket,
            ResultSink(redis, config.run_id),
            config,
            settings.max_attempts,
            PauseLimits(settings.max_pause, settings.max_paused),
            settings.context_tokens,
            memory,
        )

    async def context_window(self) -> ContextWindow:
        """The setting's window, else what the server says (asked once per process)."""
        cfg = self.config
        return await context_window(
            self.client, cfg.endpoint.base_url, cfg.endpoint.model, self.context_tokens
        )

    async def complete(self, request: ChatRequest) -> Completion:
        """The model's answer to `request`; raises CallFailed (or a subclass) or RunStopped."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait,
            retry=retry_if_exception_type((_RateLimited, _Transient)),
            before_sleep=self._log_retry,
            reraise=True,
        )
        cfg = self.config
        with tracing.llm_call(
            model=cfg.endpoint.model,
            base_url=cfg.endpoint.base_url,
            run_id=cfg.run_id,
            items=len(request.item_ids),
        ) as span:
            completion = await self._complete(request, retrying)
            span.answered(
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                requests=completion.requests,
                finish_reason=completion.finish_reason,
            )
            return completion

    async def _complete(self, request: ChatRequest, retrying: AsyncRetrying) -> Completion:
        sent = Counter[str]()
        self._active += 1
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self._spend({RunCounter.RETRIES: 1})
                    completion = await self._once(request, sent)
                    return dataclasses.replace(completion, requests=sent["requests"])
        except _RateLimited:
            raise CallFailed(
                f"still rate limited after {self.max_attempts} attempts: lower --rpm/--tpm",
                _usage(sent),
            ) from None
        except _Transient as exc:
            raise CallFailed(
                f"endpoint failed {self.max_attempts} times: {exc}", _usage(sent)
            ) from None
        except CallFailed as exc:
            exc.spent = _usage(sent)
            raise
        except ItemError as exc:
            raise CallFailed(exc.message, _usage(sent)) from None
        finally:
            self._active -= 1
            await self._flush_spend(now=self._active == 0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        why = outcome.exception() if outcome is not None else None
        log.warning(
            "call to %s for %s: %s; attempt %d of %d, retrying in %.1fs",
            self.config.endpoint.base_url,
            self.config.endpoint.model,
            why,
            state.attempt_number,
            self.max_attempts,
            state.upcoming_sleep,
        )

    def _spend(self, counts: Mapping[str, int]) -> None:
        self._unspent.update(counts)

    async def _flush_spend(self, now: bool) -> None:
        if not self._unspent or (not now and time.monotonic() - self._spent_at < SPEND_EVERY):
            return
        unspent, self._unspent = self._unspent, Counter()
        self._spent_at = time.monotonic()
        await self.sink.spend(unspent)

    async def _once(self, request: ChatRequest, sent: Counter[str]) -> Completion:
        cfg = self.config
        headers = request.item_headers() if self._local else None
        most = request.answer_tokens(cfg.endpoint.max_tokens)  # n answers of max_tokens
        reserved = request.prompt_tokens + self._undercount + most
        admission = await self.bucket.acquire(tokens=reserved)
        # prelabel.monitor.BUCKET_WAIT_MS: `prelabel status` shows the mean wait per call.
        self._spend({RunCounter.BUCKET_WAIT_MS: round(admission.waited * 1000)})
        cache_key = prompt_cache_key(cfg.run_id) if self.memory.takes_cache_key(cfg) else None
        body = chat_body(cfg.endpoint, request, cache_key)
        try:
            # `client.post` is the client's own route for requests it has no typed method for
            # (auth, base URL, Azure deployments, timeouts and errors as for any call). Here it
            # skips what `chat.completions.create` adds for a body that is already plain JSON:
            # the typed-params transform (about 1 ms of CPU a call) and the response model.
            async with asyncio.timeout(self._deadline):
                raw = await self.client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=httpx.Response,
                    options={"headers": headers} if headers else {},
                )
        except TimeoutError:
            self._sent(sent)  # the endpoint had it, and may bill it
            raise _Transient(f"no whole answer within {self._deadline:g}s") from None
        except openai.APIStatusError as exc:
            self._sent(sent)
            if cache_key is not None and _refuses_cache_key(exc):
                self.memory.note_refused_cache_key(cfg)
                return await self._once(request, sent)  # without the key this time
            await self._refused(exc, reserved, schema=request.response_format is not None)
        except openai.APIConnectionError as exc:  # timeouts included
            if _left(exc):
                self._sent(sent)  # the endpoint may have served it
            timed_out = isinstance(exc, openai.APITimeoutError)
            raise _Transient("timed out" if timed_out else f"connection failed: {exc}") from None
        self._sent(sent)
        return await self._read(raw, request, reserved, admission, sent)

    def _sent(self, sent: Counter[str]) -> None:
        """One more request the endpoint received, in the run's counters and the call's."""
        self._spend({RunCounter.REQUESTS: 1})
        sent["requests"] += 1

    async def _refused(self, exc: openai.APIStatusError, reserved: int, schema: bool) -> NoReturn:
        """Raise what an HTTP error status means for the call, the item or the run (`schema`:
        the request asked for a `json_schema` answer)."""
        endpoint = self.config.endpoint
        if isinstance(exc, openai.RateLimitError):
            self._spend({RunCounter.RATE_LIMITED: 1})
            if _error_code(exc) == "insufficient_quota":
                raise RunStopped(
                    f"the account behind {endpoint.base_url} has no quota left "
                    "(insufficient_quota): "
                    "add credit or use another key, then `prelabel resume`"
                ) from None
            if _message(exc).startswith("Request too large"):
                raise ItemError(
                    f"the request is larger than the account's per-minute cap: {_message(exc)}"
                ) from None
            refused = exc.response.headers
            await self._pause(_retry_after(refused))
            # The provider counted the refused call: its reservation stays, nothing refunded.
            await self.bucket.settle(reserved, reserved, ProviderLimits.from_headers(refused))
            raise _RateLimited(str(exc)) from None
        if isinstance(exc, openai.AuthenticationError):
            raise RunStopped(
                f"{endpoint.base_url} rejected the API key (401): "
                "check OPENAI_API_KEY on the workers"
            ) from None
        if isinstance(exc, openai.PermissionDeniedError):
            raise RunStopped(
                f"{endpoint.base_url} refused access (403) for model {endpoint.model!r}: "
                "check the key's project and permissions"
            ) from None
        if isinstance(exc, openai.NotFoundError):
            raise RunStopped(
                f"model {endpoint.model!r} is not served at {endpoint.base_url} (404): "
                "check --model"
            ) from None
        if isinstance(exc, openai.BadRequestError):
            message = f"the endpoint rejected the request (400): {_message(exc)}"
            if schema and _SCHEMA_REFUSAL.search(message):
                raise SchemaRefused(message) from None
            raise ItemError(message) from None
        if exc.status_code >= 500:
            raise _Transient(f"HTTP {exc.status_code}") from None
        raise ItemError(f"the endpoint answered HTTP {exc.status_code}: {_message(exc)}") from None

    async def _read(
        self,
        raw: httpx.Response,
        request: ChatRequest,
        reserved: int,
        admission: Admission,
        sent: Counter[str],
    ) -> Completion:
        """The completion in a 200's body, its usage checked; CallFailed when unusable."""
        cfg = self.config
        answer = _answer(raw)
        prompt_tokens, most = request.prompt_tokens, request.answer_tokens(cfg.endpoint.max_tokens)
        used_prompt, used_completion = self._usage(answer, prompt_tokens, most)
        self._undercount = max(self._undercount, used_prompt - prompt_tokens)
        limits = ProviderLimits.from_headers(raw.headers)
        self._check_caps(limits)
        # The provider counted prompt + n × max_tokens at admission: settle to that, never
        # below. The headers are as old as the call: `admission` lets settle age them (issue 21).
        await self.bucket.settle(reserved, used_prompt + most, limits, admission)
        simulated = raw.headers.get(SIMULATOR_HEADER) == "1"
        cached = min(answer.cached_tokens, used_prompt)  # of the prompt tokens counted
        self._spend(
            {
                RunCounter.PROMPT_TOKENS: used_prompt,
                RunCounter.CACHED_PROMPT_TOKENS: cached,
                RunCounter.COMPLETION_TOKENS: used_completion,
                RunCounter.SIMULATED: int(simulated),
            }
        )
        sent.update(prompt_tokens=used_prompt, completion_tokens=used_completion, cached=cached)
        if answer.problem:
            raise CallFailed(
                f"{cfg.endpoint.base_url} answered HTTP {raw.status_code} with {answer.problem}: "
                "not a chat completion; check --base-url, or the server"
            )
        if not answer.content:
            if answer.finish_reason == TRUNCATED:
                raise EmptyAnswer(truncated_reason(cfg.endpoint.max_tokens))
            why = f": it refused ({answer.refusal[:200]})" if answer.refusal else ""
            raise EmptyAnswer(f"the model returned an empty answer{why}")
        return Completion(
            answer.content,
            used_prompt,
            used_completion,
            simulated,
            answer.finish_reason,
            choices=answer.choices,
            cached_tokens=cached,
        )

    def _usage(self, answer: ChatAnswer, prompt_tokens: int, most: int) -> tuple[int, int]:
        """The prompt and completion tokens to count: the endpoint's, unless impossible.

        A count that is missing, negative or not an integer, a completion longer than
        `max_tokens`, or a prompt many times the estimate (which is exact for OpenAI models
        and above the truth for others) is replaced by the estimate (the prompt) or the bound
        (`max_tokens`): a broken or hostile endpoint must not make a run's cost negative or
        absurd.
        """
        cfg = self.config
        prompt, completion = answer.prompt_tokens, answer.completion_tokens
        bad: list[str] = []
        if prompt is None or not 0 <= prompt <= ABSURD_PROMPT * prompt_tokens + 1000:
            bad += [] if prompt is None else [f"prompt_tokens {prompt}"]
            prompt = prompt_tokens
        if completion is None or not 0 <= completion <= most:
            bad += [] if completion is None else [f"completion_tokens {completion}"]
            completion = most if completion is not None and completion > 0 else 0
        if bad and not self._warned_usage:
            self._warned_usage = True
            log.warning(
                "%s reported impossible usage (%s) for a request of about %d prompt tokens "
                "and max_tokens %d: prelabel counts its own estimate instead",
                cfg.endpoint.base_url,
                ", ".join(bad),
                prompt_tokens,
                cfg.endpoint.max_tokens,
            )
        return prompt, completion

    async def _pause(self, asked: float) -> None:
        """Pause the fleet for a 429's `asked` seconds, capped; stop the run past its limit."""
        longest, in_all = self.pauses.longest, self.pauses.in_all
        paused = await self.bucket.pause(
            min(asked, longest), run_counters=self.sink.keys.counters, asked=asked
        )
        if asked > longest:
            log.warning(
                "%s asked to wait %.0f s (retry-after): pausing %.0f s (PRELABEL_MAX_PAUSE)",
                self.config.endpoint.base_url,
                asked,
                longest,
            )
        if paused > in_all:
            raise RunStopped(
                f"{self.config.endpoint.base_url} kept answering 429 "
                f"(last retry-after: {asked:.0f} s): "
                f"the run was paused {paused:.0f} s in all, over PRELABEL_MAX_PAUSED "
                f"({in_all:.0f} s); `prelabel resume {self.config.run_id}` once it answers"
            )

    def _check_caps(self, limits: ProviderLimits) -> None:
        """Warn once when the provider's own caps are below the configured ones (429s ahead)."""
        if self._warned:
            return
        caps = self.bucket.caps
        for given, told, flag in (
            (caps.rpm, limits.limit_requests, "rpm"),
            (caps.tpm, limits.limit_tokens, "tpm"),
        ):
            if given is not None and told is not None and told < given:
                self._warned = True
                log.warning(
                    "%s reports a cap of %d %s for %s, below the %d configured: "
                    "lower --%s or PRELABEL_CAPS, or expect 429s",
                    self.config.endpoint.base_url,
                    told,
                    flag,
                    self.config.endpoint.model,
                    given,
                    flag,
                )


def _answer(response: httpx.Response) -> ChatAnswer:
    """What a 200's body says (a body that is not JSON is a `problem` too)."""
    try:
        data = response.json()
    except ValueError:
        return ChatAnswer(problem="a body that is not JSON (a proxy's page?)")
    return read_answer(data)


def _left(exc: openai.APIConnectionError) -> bool:
    """False when the request never left (no connection was made), else True."""
    # By name: the openai client raises from httpx or httpx2, whichever it was built on.
    return type(exc.__cause__).__name__ not in ("ConnectError", "ConnectTimeout")


def _usage(sent: Counter[str]) -> Usage:
    return Usage(
        prompt_tokens=sent["prompt_tokens"],
        completion_tokens=sent["completion_tokens"],
        requests=sent["requests"],
        cached_tokens=sent["cached"],
    )


def _seconds(timeout: object) -> float | None:
    """The whole-call deadline a client's timeout stands for (its longest part, if split)."""
    if isinstance(timeout, int | float):
        return float(timeout)
    names = ("connect", "read", "write", "pool")
    parts = [p for p in (getattr(timeout, n, None) for n in names) if isinstance(p, int | float)]
    return max(parts) if parts else None


def _refuses_cache_key(exc: openai.APIStatusError) -> bool:
    return isinstance(exc, openai.BadRequestError) and refuses_cache_key(_message(exc))


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code")
            return str(code) if code is not None else None
    return getattr(exc, "code", None)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
    return str(exc)[:200]
