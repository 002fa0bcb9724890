"""One chat completion, through the shared bucket, retried only when retrying can help.

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
- anything else (400, other 4xx): the item fails with the endpoint's message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from prelabel.errors import ItemError, RunError
from prelabel.model import ITEM_IDS_HEADER, SIMULATOR_HEADER, RunConfig
from prelabel.settings import is_local_endpoint
from workers.ratelimit import ProviderLimits, TokenBucket
from workers.results import ResultSink

log = logging.getLogger(__name__)

#: The default answer format: JSON mode, which OpenAI, Azure, vLLM and Ollama all accept.
JSON_MODE: dict[str, Any] = {"type": "json_object"}
_backoff = wait_random_exponential(multiplier=0.5, max=30)
#: A caller adds its calls to the run's spend counters at most this often, and whenever its
#: last call in flight ends (so a shard's figures are complete before its last item commits):
#: one Redis round trip per interval instead of one per call.
SPEND_EVERY = 0.25


class RunStopped(RunError):
    """The endpoint refused for good (quota, key, permissions, model): stop the whole run."""


class EmptyAnswer(ItemError):
    """The model answered with no content (a refusal under structured outputs, say)."""


class _RateLimited(Exception):
    """A 429 worth retrying; the shared pause already makes everyone wait."""


class _Transient(Exception):
    """A 5xx, a timeout or a dropped connection: worth retrying after a backoff."""


@dataclass(frozen=True, slots=True)
class PauseLimits:
    """How long a 429 may pause the fleet (`longest`), and a run in all (`in_all`), seconds."""

    longest: float = 60.0
    in_all: float = 15 * 60.0


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    simulated: bool


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


class ChatCaller:
    """Makes chat completions for one run, under the bucket, counting what they cost."""

    def __init__(
        self,
        client: AsyncOpenAI,
        bucket: TokenBucket,
        sink: ResultSink,
        config: RunConfig,
        max_attempts: int,
        pauses: PauseLimits = PauseLimits(),
    ) -> None:
        self.client = client
        self.pauses = pauses
        self.bucket = bucket
        self.sink = sink
        self.config = config
        self.max_attempts = max_attempts
        self._local = is_local_endpoint(config.base_url)
        #: Seconds one call may take from sending to its whole answer (None: no deadline).
        self._deadline = _seconds(client.timeout)
        #: The most the endpoint counted above our prompt estimate (e.g. a response schema it
        #: adds to the prompt): later reservations include it, so admission never undercounts.
        self._undercount = 0
        self._warned = False
        self._unspent: Counter[str] = Counter()
        self._spent_at = time.monotonic()
        self._active = 0

    async def complete(
        self,
        messages: list[dict[str, str]],
        prompt_tokens: int,
        item_ids: list[str],
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """The model's answer to `messages`; raises ItemError or RunStopped when it cannot."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait,
            retry=retry_if_exception_type((_RateLimited, _Transient)),
            reraise=True,
        )
        self._active += 1
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self._spend(retries=1)
                    return await self._once(
                        messages, prompt_tokens, item_ids, response_format or JSON_MODE
                    )
        except _RateLimited:
            raise ItemError(
                f"still rate limited after {self.max_attempts} attempts: lower --rpm/--tpm"
            ) from None
        except _Transient as exc:
            raise ItemError(f"endpoint failed {self.max_attempts} times: {exc}") from None
        finally:
            self._active -= 1
            await self._flush_spend(now=self._active == 0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _spend(self, **amounts: int) -> None:
        self._unspent.update(amounts)

    async def _flush_spend(self, now: bool) -> None:
        if not self._unspent or (not now and time.monotonic() - self._spent_at < SPEND_EVERY):
            return
        unspent, self._unspent = self._unspent, Counter()
        self._spent_at = time.monotonic()
        await self.sink.spend(**unspent)

    async def _once(
        self,
        messages: list[dict[str, str]],
        prompt_tokens: int,
        item_ids: list[str],
        response_format: dict[str, Any],
    ) -> Completion:
        cfg = self.config
        headers = {ITEM_IDS_HEADER: json.dumps(item_ids)} if self._local else None
        reserved = prompt_tokens + self._undercount + cfg.max_tokens
        admission = await self.bucket.acquire(tokens=reserved)
        # prelabel.monitor.BUCKET_WAIT_MS: `prelabel status` shows the mean wait per call.
        self._spend(bucket_wait_ms=round(admission.waited * 1000))
        body = {
            "model": cfg.model,
            "messages": messages,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "response_format": response_format,
        }
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
            self._spend(requests=1)
            raise _Transient(f"no whole answer within {self._deadline:g}s") from None
        except openai.RateLimitError as exc:
            self._spend(requests=1, rate_limited=1)
            if _error_code(exc) == "insufficient_quota":
                raise RunStopped(
                    f"the account behind {cfg.base_url} has no quota left (insufficient_quota): "
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
        except openai.AuthenticationError:
            self._spend(requests=1)
            raise RunStopped(
                f"{cfg.base_url} rejected the API key (401): check OPENAI_API_KEY on the workers"
            ) from None
        except openai.PermissionDeniedError:
            self._spend(requests=1)
            raise RunStopped(
                f"{cfg.base_url} refused access (403) for model {cfg.model!r}: "
                "check the key's project and permissions"
            ) from None
        except openai.NotFoundError:
            self._spend(requests=1)
            raise RunStopped(
                f"model {cfg.model!r} is not served at {cfg.base_url} (404): check --model"
            ) from None
        except openai.BadRequestError as exc:
            self._spend(requests=1)
            raise ItemError(f"the endpoint rejected the request (400): {_message(exc)}") from None
        except openai.APIStatusError as exc:
            self._spend(requests=1)
            if exc.status_code >= 500:
                raise _Transient(f"HTTP {exc.status_code}") from None
            raise ItemError(
                f"the endpoint answered HTTP {exc.status_code}: {_message(exc)}"
            ) from None
        except openai.APITimeoutError:
            self._spend(requests=1)
            raise _Transient("timed out") from None
        except openai.APIConnectionError as exc:
            raise _Transient(f"connection failed: {exc}") from None

        answer = _answer(raw)
        used_prompt = answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens
        used_completion = answer.completion_tokens or 0
        self._undercount = max(self._undercount, used_prompt - prompt_tokens)
        limits = ProviderLimits.from_headers(raw.headers)
        self._check_caps(limits)
        # The provider counted prompt + max_tokens at admission: settle to that, never below.
        # The headers are as old as the call: `admission` lets settle age them (issue 21).
        await self.bucket.settle(reserved, used_prompt + cfg.max_tokens, limits, admission)
        simulated = raw.headers.get(SIMULATOR_HEADER) == "1"
        self._spend(
            requests=1,
            prompt_tokens=used_prompt,
            completion_tokens=used_completion,
            simulated=int(simulated),
        )
        if not answer.json:
            raise ItemError(
                f"{cfg.base_url} answered HTTP {raw.status_code} with a body that is not JSON "
                "(a proxy's page?): check --base-url"
            )
        if not answer.content:
            why = f": it refused ({answer.refusal})" if answer.refusal else ""
            raise EmptyAnswer(f"the model returned an empty answer{why}")
        return Completion(answer.content, used_prompt, used_completion, simulated)

    async def _pause(self, asked: float) -> None:
        """Pause the fleet for a 429's `asked` seconds, capped; stop the run past its limit."""
        longest, in_all = self.pauses.longest, self.pauses.in_all
        paused = await self.bucket.pause(
            min(asked, longest), run_counters=self.sink.keys.counters, asked=asked
        )
        if asked > longest:
            log.warning(
                "%s asked to wait %.0f s (retry-after): pausing %.0f s (PRELABEL_MAX_PAUSE)",
                self.config.base_url,
                asked,
                longest,
            )
        if paused > in_all:
            raise RunStopped(
                f"{self.config.base_url} kept answering 429 (last retry-after: {asked:.0f} s): "
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
                    self.config.base_url,
                    told,
                    flag,
                    self.config.model,
                    given,
                    flag,
                )


@dataclass(frozen=True, slots=True)
class _Answer:
    """What prelabel reads from a chat completion's JSON."""

    content: str | None
    refusal: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    json: bool = True


def _answer(response: httpx.Response) -> _Answer:
    """The first choice's content (or refusal) and the usage, from a completion's body.

    Read with `json` rather than into openai's `ChatCompletion` model: prelabel needs four
    fields, and an OpenAI-compatible server may omit any of them.
    """
    try:
        data = response.json()
    except ValueError:
        return _Answer(None, None, None, None, json=False)
    data = data if isinstance(data, dict) else {}
    choices = data.get("choices") or [{}]
    message = (choices[0] if isinstance(choices[0], dict) else {}).get("message") or {}
    usage = data.get("usage") or {}
    return _Answer(
        content=_text(message.get("content")),
        refusal=_text(message.get("refusal")),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(timeout: object) -> float | None:
    """The whole-call deadline a client's timeout stands for (its longest part, if split)."""
    if isinstance(timeout, int | float):
        return float(timeout)
    names = ("connect", "read", "write", "pool")
    parts = [p for p in (getattr(timeout, n, None) for n in names) if isinstance(p, int | float)]
    return max(parts) if parts else None


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
