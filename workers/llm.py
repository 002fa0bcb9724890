"""One chat completion, through the shared bucket, retried only when retrying can help.

The `openai` client's own retries are off (`max_retries=0`): every attempt here goes
through the bucket first, so no retry can bypass the fleet's rate limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
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
from workers.ratelimit import TokenBucket
from workers.results import ResultSink

#: The default answer format: JSON mode, which OpenAI, Azure, vLLM and Ollama all accept.
JSON_MODE: dict[str, Any] = {"type": "json_object"}
_backoff = wait_random_exponential(multiplier=0.5, max=30)


class RunStopped(RunError):
    """The endpoint refused for good (quota, key, permissions, model): stop the whole run."""


class _RateLimited(Exception):
    """A 429 worth retrying; the shared pause already makes everyone wait."""


class _Transient(Exception):
    """A 5xx, a timeout or a dropped connection: worth retrying after a backoff."""


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


def _remaining(headers: Any, name: str) -> int | None:
    value = headers.get(f"x-ratelimit-remaining-{name}")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ChatCaller:
    """Makes chat completions for one run, under the bucket, counting what they cost."""

    def __init__(
        self,
        client: AsyncOpenAI,
        bucket: TokenBucket,
        sink: ResultSink,
        config: RunConfig,
        max_attempts: int,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.sink = sink
        self.config = config
        self.max_attempts = max_attempts
        self._local = is_local_endpoint(config.base_url)

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
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        await self.sink.spend(retries=1)
                    return await self._once(
                        messages, prompt_tokens, item_ids, response_format or JSON_MODE
                    )
        except _RateLimited:
            raise ItemError(
                f"still rate limited after {self.max_attempts} attempts: lower --rpm/--tpm"
            ) from None
        except _Transient as exc:
            raise ItemError(f"endpoint failed {self.max_attempts} times: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        messages: list[dict[str, str]],
        prompt_tokens: int,
        item_ids: list[str],
        response_format: dict[str, Any],
    ) -> Completion:
        cfg = self.config
        headers = {ITEM_IDS_HEADER: json.dumps(item_ids)} if self._local else None
        reserved = prompt_tokens + cfg.max_tokens
        await self.bucket.acquire(tokens=reserved)
        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                model=cfg.model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                response_format=cast("ResponseFormat", response_format),
                extra_headers=headers,
            )
        except openai.RateLimitError as exc:
            await self.sink.spend(requests=1, rate_limited=1)
            if _error_code(exc) == "insufficient_quota":
                raise RunStopped(
                    f"the account behind {cfg.base_url} has no quota left (insufficient_quota): "
                    "add credit or use another key, then `prelabel resume`"
                ) from None
            await self.bucket.pause(_retry_after(exc.response.headers))
            raise _RateLimited(str(exc)) from None
        except openai.AuthenticationError:
            await self.sink.spend(requests=1)
            raise RunStopped(
                f"{cfg.base_url} rejected the API key (401): check OPENAI_API_KEY on the workers"
            ) from None
        except openai.PermissionDeniedError:
            await self.sink.spend(requests=1)
            raise RunStopped(
                f"{cfg.base_url} refused access (403) for model {cfg.model!r}: "
                "check the key's project and permissions"
            ) from None
        except openai.NotFoundError:
            await self.sink.spend(requests=1)
            raise RunStopped(
                f"model {cfg.model!r} is not served at {cfg.base_url} (404): check --model"
            ) from None
        except openai.BadRequestError as exc:
            await self.sink.spend(requests=1)
            raise ItemError(f"the endpoint rejected the request (400): {_message(exc)}") from None
        except openai.APIStatusError as exc:
            await self.sink.spend(requests=1)
            if exc.status_code >= 500:
                raise _Transient(f"HTTP {exc.status_code}") from None
            raise ItemError(
                f"the endpoint answered HTTP {exc.status_code}: {_message(exc)}"
            ) from None
        except openai.APITimeoutError:
            await self.sink.spend(requests=1)
            raise _Transient("timed out") from None
        except openai.APIConnectionError as exc:
            raise _Transient(f"connection failed: {exc}") from None

        completion = raw.parse()
        usage = completion.usage
        used_prompt = usage.prompt_tokens if usage else prompt_tokens
        used_completion = usage.completion_tokens if usage else 0
        # The provider counted prompt + max_tokens at admission: reconcile to that, never below.
        await self.bucket.reconcile(reserved, used_prompt + cfg.max_tokens)
        await self.bucket.resync(
            _remaining(raw.headers, "requests"), _remaining(raw.headers, "tokens")
        )
        simulated = raw.headers.get(SIMULATOR_HEADER) == "1"
        await self.sink.spend(
            requests=1,
            prompt_tokens=used_prompt,
            completion_tokens=used_completion,
            simulated=int(simulated),
        )
        choice = completion.choices[0] if completion.choices else None
        content = choice.message.content if choice and choice.message else None
        if not content:
            raise ItemError("the model returned an empty answer")
        return Completion(content, used_prompt, used_completion, simulated)


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
