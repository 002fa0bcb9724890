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
- anything else (400, other 4xx): the item fails with the endpoint's message;
- a 200 whose body is not a chat completion (not JSON, no `choices`, a `message` that is not
  an object): the item fails with what was wrong, once (it is paid for, and retrying a server
  that answers like this would only pay again).

Every attempt the endpoint received counts as a request, in the run's counters and in the
item's usage (`Completion.spent`, `CallFailed.spent`), so that the items' usage adds up to the
run's. Usage the endpoint reports is checked: a count that is not a non-negative integer, or
that no request of this size could use, is replaced by prelabel's own estimate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, NoReturn

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

from prelabel.errors import CallFailed as CallFailed  # re-exported for calls.py, labeler.py
from prelabel.errors import EmptyAnswer as EmptyAnswer
from prelabel.errors import ItemError
from prelabel.errors import RunStopped as RunStopped
from prelabel.model import ITEM_IDS_HEADER, SIMULATOR_HEADER, RunConfig, Usage
from prelabel.settings import is_local_endpoint
from workers.ratelimit import Admission, ProviderLimits, TokenBucket
from workers.results import ResultSink

log = logging.getLogger(__name__)

#: The default answer format: JSON mode, which OpenAI, Azure, vLLM and Ollama all accept.
JSON_MODE: dict[str, Any] = {"type": "json_object"}
_backoff = wait_random_exponential(multiplier=0.5, max=30)
#: A prompt the endpoint counts at more than this many times prelabel's estimate is not
#: believed (the estimate is exact for OpenAI models, and above the truth for others).
ABSURD_PROMPT = 10
#: A caller adds its calls to the run's spend counters at most this often, and whenever its
#: last call in flight ends (so a shard's figures are complete before its last item commits):
#: one Redis round trip per interval instead of one per call.
SPEND_EVERY = 0.25


class _RateLimited(Exception):
    """A 429 worth retrying; the shared pause already makes everyone wait."""


class _Transient(Exception):
    """A 5xx, a timeout or a dropped connection: worth retrying after a backoff."""


@dataclass(frozen=True, slots=True)
class PauseLimits:
    """How long a 429 may pause the fleet (`longest`), and a run in all (`in_all`), seconds."""

    longest: float = 60.0
    in_all: float = 15 * 60.0


#: `finish_reason` of an answer cut off at `max_tokens`.
TRUNCATED = "length"


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    simulated: bool
    #: "stop", or "length" when the answer was cut off at max_tokens ("" when not given).
    finish_reason: str = ""
    #: Attempts the endpoint received for this answer (retries included); 0 from the cache.
    requests: int = 1


def truncated_reason(max_tokens: int) -> str:
    """Why an answer cut off at `max_tokens` cannot be read, and what to do."""
    return (
        f"answer cut off at max_tokens ({max_tokens}) before its JSON closed: the model ran "
        "out of room, often by repeating itself; raise --max-tokens or lower --batch-size"
    )


def is_reasoning_model(model: str) -> bool:
    """OpenAI's reasoning models (o-series, gpt-5 family): they take `max_completion_tokens`,
    only the default temperature, and `reasoning_effort`."""
    name = model.rsplit("/", 1)[-1].removeprefix("ft:")
    return bool(_REASONING.match(name)) and "-chat" not in name


_REASONING = re.compile(r"(o[1-9]|gpt-5)(\b|[-.])")


def request_params(config: RunConfig) -> dict[str, Any]:
    """The generation parameters of a run's requests, as the model accepts them.

    Reasoning models refuse `max_tokens` and a non-default `temperature` with a 400: they get
    `max_completion_tokens` (which bounds reasoning and answer together) and, when the run
    gives one, `reasoning_effort`. Other models get `max_tokens`, which every
    OpenAI-compatible server knows, and the run's temperature.
    """
    if is_reasoning_model(config.model):
        params: dict[str, Any] = {"max_completion_tokens": config.max_tokens}
        if config.reasoning_effort is not None:
            params["reasoning_effort"] = config.reasoning_effort
        return params
    return {"max_tokens": config.max_tokens, "temperature": config.temperature}


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
        self._warned_usage = False
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
            before_sleep=self._log_retry,
            reraise=True,
        )
        sent = Counter[str]()
        self._active += 1
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self._spend(retries=1)
                    completion = await self._once(
                        messages, prompt_tokens, item_ids, response_format or JSON_MODE, sent
                    )
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
            self.config.base_url,
            self.config.model,
            why,
            state.attempt_number,
            self.max_attempts,
            state.upcoming_sleep,
        )

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
        sent: Counter[str],
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
            **request_params(cfg),
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
            self._sent(sent)  # the endpoint had it, and may bill it
            raise _Transient(f"no whole answer within {self._deadline:g}s") from None
        except openai.APIStatusError as exc:
            self._sent(sent)
            await self._refused(exc, reserved)
        except openai.APIConnectionError as exc:  # timeouts included
            if _left(exc):
                self._sent(sent)  # the endpoint may have served it
            timed_out = isinstance(exc, openai.APITimeoutError)
            raise _Transient("timed out" if timed_out else f"connection failed: {exc}") from None
        self._sent(sent)
        return await self._read(raw, prompt_tokens, reserved, admission, sent)

    def _sent(self, sent: Counter[str]) -> None:
        """One more request the endpoint received, in the run's counters and the call's."""
        self._spend(requests=1)
        sent["requests"] += 1

    async def _refused(self, exc: openai.APIStatusError, reserved: int) -> NoReturn:
        """Raise what an HTTP error status means for the call, the item or the run."""
        cfg = self.config
        if isinstance(exc, openai.RateLimitError):
            self._spend(rate_limited=1)
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
        if isinstance(exc, openai.AuthenticationError):
            raise RunStopped(
                f"{cfg.base_url} rejected the API key (401): check OPENAI_API_KEY on the workers"
            ) from None
        if isinstance(exc, openai.PermissionDeniedError):
            raise RunStopped(
                f"{cfg.base_url} refused access (403) for model {cfg.model!r}: "
                "check the key's project and permissions"
            ) from None
        if isinstance(exc, openai.NotFoundError):
            raise RunStopped(
                f"model {cfg.model!r} is not served at {cfg.base_url} (404): check --model"
            ) from None
        if isinstance(exc, openai.BadRequestError):
            raise ItemError(f"the endpoint rejected the request (400): {_message(exc)}") from None
        if exc.status_code >= 500:
            raise _Transient(f"HTTP {exc.status_code}") from None
        raise ItemError(f"the endpoint answered HTTP {exc.status_code}: {_message(exc)}") from None

    async def _read(
        self,
        raw: httpx.Response,
        prompt_tokens: int,
        reserved: int,
        admission: Admission,
        sent: Counter[str],
    ) -> Completion:
        """The completion in a 200's body, its usage checked; CallFailed when unusable."""
        cfg = self.config
        answer = _answer(raw)
        used_prompt, used_completion = self._usage(answer, prompt_tokens)
        self._undercount = max(self._undercount, used_prompt - prompt_tokens)
        limits = ProviderLimits.from_headers(raw.headers)
        self._check_caps(limits)
        # The provider counted prompt + max_tokens at admission: settle to that, never below.
        # The headers are as old as the call: `admission` lets settle age them (issue 21).
        await self.bucket.settle(reserved, used_prompt + cfg.max_tokens, limits, admission)
        simulated = raw.headers.get(SIMULATOR_HEADER) == "1"
        self._spend(
            prompt_tokens=used_prompt, completion_tokens=used_completion, simulated=int(simulated)
        )
        sent.update(prompt_tokens=used_prompt, completion_tokens=used_completion)
        if answer.problem:
            raise CallFailed(
                f"{cfg.base_url} answered HTTP {raw.status_code} with {answer.problem}: "
                "not a chat completion; check --base-url, or the server"
            )
        if not answer.content:
            if answer.finish_reason == TRUNCATED:
                raise EmptyAnswer(truncated_reason(cfg.max_tokens))
            why = f": it refused ({answer.refusal[:200]})" if answer.refusal else ""
            raise EmptyAnswer(f"the model returned an empty answer{why}")
        return Completion(
            answer.content, used_prompt, used_completion, simulated, answer.finish_reason
        )

    def _usage(self, answer: _Answer, prompt_tokens: int) -> tuple[int, int]:
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
        if completion is None or not 0 <= completion <= cfg.max_tokens:
            bad += [] if completion is None else [f"completion_tokens {completion}"]
            completion = cfg.max_tokens if completion is not None and completion > 0 else 0
        if bad and not self._warned_usage:
            self._warned_usage = True
            log.warning(
                "%s reported impossible usage (%s) for a request of about %d prompt tokens "
                "and max_tokens %d: prelabel counts its own estimate instead",
                cfg.base_url,
                ", ".join(bad),
                prompt_tokens,
                cfg.max_tokens,
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
    """What prelabel reads from a chat completion's JSON; `problem` says why it is not one."""

    content: str | None = None
    refusal: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = ""
    problem: str = ""


def _answer(response: httpx.Response) -> _Answer:
    """The first choice's content (or refusal), finish reason and usage, from a body.

    Read with `json` rather than into openai's `ChatCompletion` model: prelabel needs a few
    fields, and an OpenAI-compatible server may omit any of them. Each field is checked for
    its type: a body a server or proxy got wrong becomes a `problem`, never an exception.
    """
    try:
        data = response.json()
    except ValueError:
        return _Answer(problem="a body that is not JSON (a proxy's page?)")
    if not isinstance(data, dict):
        return _Answer(problem=f"JSON that is {_kind(data)}, not an object")
    usage = data.get("usage")
    prompt = completion = None
    if isinstance(usage, dict):
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens"))
    problem = _problem(data)
    if problem:
        return _Answer(prompt_tokens=prompt, completion_tokens=completion, problem=problem)
    choice = data["choices"][0]
    message = choice["message"]
    return _Answer(
        content=_text(message.get("content")),
        refusal=_text(message.get("refusal")),
        prompt_tokens=prompt,
        completion_tokens=completion,
        finish_reason=_text(choice.get("finish_reason")) or "",
    )


def _problem(data: dict[str, Any]) -> str:
    """What makes `data` not a chat completion ("" when it is one)."""
    if "choices" not in data:
        return "an object without choices"
    choices = data["choices"]
    if not isinstance(choices, list) or not choices:
        return f"choices that are {_kind(choices)}, not a list of choices"
    if not isinstance(choices[0], dict):
        return f"a choice that is {_kind(choices[0])}, not an object"
    if not isinstance(choices[0].get("message"), dict):
        return f"a message that is {_kind(choices[0].get('message'))}, not an object"
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return f"usage that is {_kind(usage)}, not an object"
    return ""


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if value is None:
        return "null"
    return {dict: "an object", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _left(exc: openai.APIConnectionError) -> bool:
    """False when the request never left (no connection was made), else True."""
    # By name: the openai client raises from httpx or httpx2, whichever it was built on.
    return type(exc.__cause__).__name__ not in ("ConnectError", "ConnectTimeout")


def _usage(sent: Counter[str]) -> Usage:
    return Usage(
        prompt_tokens=sent["prompt_tokens"],
        completion_tokens=sent["completion_tokens"],
        requests=sent["requests"],
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
