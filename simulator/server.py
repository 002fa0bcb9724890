"""The simulator's HTTP server: OpenAI's chat completions API in front of the oracle.

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /stats` (counters as JSON),
`GET /props` (llama.cpp's server's, when `context_tokens` is set), and OpenAI's Files and
Batch API (simulator/batches.py), whose lines are answered by the chat endpoint's own path
(`_Handlers.complete`) without its caps and faults.
Every response carries `x-prelabel-simulator: 1`; completions carry
`system_fingerprint: "prelabel-simulator"`.

A chat request goes through, in order: the API key (401 `invalid_api_key`), the quota (429
`insufficient_quota`), the body (400), the RPM/TPM caps (429 `rate_limit_exceeded`), then
the faults, drawn from one RNG seeded with `seed` (three draws per admitted request, so that
changing one rate does not shift the others' sequence): a 500/502/503 with `fail_rate`, a hang
of `hang_seconds` with `timeout_rate` (the answer is sent afterwards, if the client is still
there), and broken content with `malformed_rate`. `latency_ms` delays each answer by a gamma
draw of that mean (30% spread). With `drip_rate`, that share of answers is sent one byte
every `drip_seconds` (a fourth draw, made only when `drip_rate` is set): a read timeout never
fires on such a body, only a deadline on the whole call does. `retry_after`, when set, is
what every 429 asks the client to wait (a provider asking for an hour, say). As a real model
does, an answer longer than `max_tokens` (or `max_completion_tokens`) is cut there with
`finish_reason: "length"`.

With caps, every answer carries the `x-ratelimit-*` headers of the moment the request was
admitted, read as `header_style` says (simulator/limits.py); `success_headers=False` drops
them from 200 answers only, as a proxy that strips them would (429s and 5xx keep them).

Strict as OpenAI's API is: reasoning models (o-series, gpt-5) refuse `max_tokens`,
`logprobs` and a temperature other than 1 with a 400, and other models refuse
`reasoning_effort`.

For `--confidence`: `n` (1..128) gives that many choices, each an independent noisy draw of
the oracle seeded with the request's `seed` and the choice's index (simulator/oracle.py's
`Draw`); `temperature` changes nothing. `logprobs` (with `top_logprobs`, 0..20) gives each
choice made-up token log-probabilities in the API's shape (simulator/logprobs.py). Usage
counts every choice's tokens, and the TPM cap admits the prompt plus `n` times `max_tokens`.
`no_logprobs` answers `logprobs: null` as a server without them does, and `ignore_n` one
choice whatever `n` asks (llama.cpp's server). A verification question
(task_types/verification.py) is answered from the item's gold, flipped by the noise
(simulator/verifier.py).

Prompt caching (simulator/prompt_cache.py): every answer's usage carries
`prompt_tokens_details.cached_tokens`, as OpenAI's does: the longest prefix of the request's
tokens (the schema's compact JSON, then each message's role and content), at least 1,024
tokens and counted in 128-token steps, identical to a prefix of a request to the same model
within the last 10 minutes (realtime and Batch API lines share one cache per model). Its
`prompt_tokens` count the schema too, as OpenAI bills it (`bill_schema`, on by default; off,
they count the messages only, and a request whose schema makes its cached prefix longer than
that reports all its `prompt_tokens` cached).
`prompt_cache_key` is accepted (a string) and counted in `/stats` (`prompt_cache_keys`, with
`cached_tokens`); `refuse_cache_key` answers it with the 400 of a strict proxy or an old Azure
API version ("Unrecognized request argument supplied: prompt_cache_key").

`broken_bodies` plays a server (or proxy) that answers 200 with something that is not a chat
completion: request N gets the (N mod len)-th kind of `BROKEN_BODIES`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from prelabel.errors import ConfigError
from prelabel.model import ITEM_IDS_HEADER, SIMULATOR_HEADER
from simulator import verifier
from simulator.batches import BatchAPI
from simulator.limits import (
    DEFAULT_MAX_TOKENS,
    HEADER_STYLES,
    HeaderStyle,
    RateLimiter,
    count_prompt_tokens,
    count_tokens,
    encoding,
)
from simulator.logprobs import MAX_TOP, VERDICT_SWAP, marks, token_logprobs
from simulator.oracle import DEFAULT_DRAW, Draw, Oracle, OracleReply
from simulator.prompt_cache import PromptCache, request_tokens
from task_types import verification

FINGERPRINT = "prelabel-simulator"
#: Listed by `/v1/models`; chat accepts any model name and echoes it back.
MODELS = (
    "prelabel-oracle",
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "o4-mini",
    "gpt-5-mini",
)
#: Reasoning models, by name prefix, as OpenAI's API treats them ("gpt-5-chat" is not one).
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
#: 200 bodies that are not chat completions, for `broken_bodies`.
BROKEN_BODIES = ("choices-number", "message-string", "usage-string", "no-choices")
#: Relative spread (coefficient of variation) of the latency draws.
LATENCY_SPREAD = 0.3
#: How many unknown sentences `/stats` keeps as examples, to debug a wire-format mismatch.
UNKNOWN_EXAMPLES = 5


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator listens, limits and misbehaves. Rates are probabilities in [0, 1]."""

    host: str = "127.0.0.1"
    port: int = 8000
    rpm: int | None = None
    tpm: int | None = None
    latency_ms: float = 0.0
    noise: float = 0.0
    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    hang_seconds: float = 30.0
    drip_rate: float = 0.0
    drip_seconds: float = 5.0
    retry_after: float | None = None
    quota_exhausted: bool = False
    header_style: HeaderStyle = "bucket"
    success_headers: bool = True
    require_key: str | None = field(default=None, repr=False)
    seed: int = 0
    broken_bodies: tuple[str, ...] = ()
    #: A context window to play a local server's: `/props` reports it as llama.cpp's server
    #: does, `/v1/models` as vLLM's `max_model_len`, and a longer request gets vLLM's 400.
    context_tokens: int | None = None
    #: The Batch API (simulator/batches.py): seconds from creation to `completed`, of which
    #: validating and finalizing take a tenth each unless set.
    batch_seconds: float = 2.0
    batch_validating_seconds: float | None = None
    batch_finalizing_seconds: float | None = None
    #: Seconds from `cancelling` to `cancelled` (None: a tenth of `batch_seconds`).
    batch_cancel_seconds: float | None = None
    #: Seconds after creation at which an unfinished batch expires (None: the 24 h window).
    batch_expire_seconds: float | None = None
    #: Share of batch lines answered 500 in the error file (seeded with `seed`).
    batch_line_fail_rate: float = 0.0
    #: Prompt tokens one model may have in unfinished batches (None: no limit).
    batch_enqueued_tokens: int | None = None
    #: Answer `logprobs: null` even when asked, as a server without them does.
    no_logprobs: bool = False
    #: Answer one choice whatever `n` asks, as llama.cpp's server does.
    ignore_n: bool = False
    #: Refuse `prompt_cache_key` with a 400, as a strict proxy or an old Azure API does.
    refuse_cache_key: bool = False
    #: Count the response format's schema in `prompt_tokens`, as OpenAI bills it (its compact
    #: JSON, as `workers.tokens.count_schema_tokens` estimates it, and as `prelabel estimate`
    #: counts it); off: the messages only.
    bill_schema: bool = True

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "batch_enqueued_tokens"):
            cap = getattr(self, name)
            if cap is not None and cap <= 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"simulator {flag} must be a positive integer (got {cap})")
        rates = ("noise", "fail_rate", "timeout_rate", "malformed_rate", "drip_rate")
        for name in (*rates, "batch_line_fail_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"simulator {flag} must be between 0 and 1 (got {rate})")
        durations = ("latency_ms", "hang_seconds", "drip_seconds", "retry_after")
        batch_durations = (
            "batch_seconds",
            "batch_validating_seconds",
            "batch_finalizing_seconds",
            "batch_cancel_seconds",
            "batch_expire_seconds",
        )
        for name in (*durations, *batch_durations):
            value = getattr(self, name)
            if value is not None and value < 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"simulator {flag} must be zero or more (got {value})")
        tenth = self.batch_seconds / 10
        validating, finalizing = self.batch_validating_seconds, self.batch_finalizing_seconds
        phases = (tenth if validating is None else validating) + (
            tenth if finalizing is None else finalizing
        )
        if phases > self.batch_seconds:
            raise ConfigError(
                f"simulator --batch-validating-seconds and --batch-finalizing-seconds ({phases}s "
                f"together) must fit in --batch-seconds ({self.batch_seconds}s)"
            )
        if self.header_style not in HEADER_STYLES:
            raise ConfigError(
                f"simulator --header-style must be one of {', '.join(HEADER_STYLES)} "
                f"(got {self.header_style!r})"
            )
        unknown = sorted(set(self.broken_bodies) - set(BROKEN_BODIES))
        if unknown:
            raise ConfigError(
                f"simulator broken body {unknown[0]!r} is unknown; use {', '.join(BROKEN_BODIES)}"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"simulator --port must be between 0 and 65535 (got {self.port})")


@dataclass
class Stats:
    """What the simulator has served since it started (read from `/stats`)."""

    requests: int = 0
    unknown_sentences: int = 0
    rate_limited: int = 0
    faults: int = 0
    sentences: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Choices answered (more than `requests` when requests ask for `n`).
    choices: int = 0
    #: Verification questions answered (`--confidence verify`); not counted in `sentences`.
    verifications: int = 0
    #: Of `prompt_tokens`, those served from the prompt cache (simulator/prompt_cache.py), and
    #: those of response formats' schemas.
    cached_tokens: int = 0
    schema_tokens: int = 0
    #: Answered requests (realtime or batch lines) that carried a `prompt_cache_key`.
    prompt_cache_keys: int = 0
    unknown_examples: list[str] = field(default_factory=list)
    # The Batch API's requests, so that a benchmark can print what a run asked of the API
    # (`requests` above counts realtime chat requests only).
    files_uploaded: int = 0
    file_reads: int = 0
    file_downloads: int = 0
    files_deleted: int = 0
    batches_created: int = 0
    batch_retrieves: int = 0
    batch_lists: int = 0
    batch_cancels: int = 0
    #: Batch lines answered (200 or error), once their batch got to them.
    batch_lines: int = 0


STATS_KEY = web.AppKey("stats", Stats)


def _error_body(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.json_response(_error_body(message, type_, code), status=status, headers=headers)


class ApiError(Exception):
    """An OpenAI error answer, raised where a check fails and sent (or written) by the caller."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return _error_body(self.message, self.type, self.code, self.param)

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=headers)


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A chat request that passed the checks: what the caps and the oracle need of it."""

    messages: list[dict[str, Any]]
    model: str
    max_tokens: int | None
    prompt_tokens: int
    #: Choices asked for.
    n: int = 1
    #: Alternatives asked per token when `logprobs` is asked (None: not asked).
    top_logprobs: int | None = None
    seed: int | None = None
    #: Whether it is a verification question (task_types/verification.py).
    verify: bool = False
    #: The request's tokens as the prompt cache compares them (simulator/prompt_cache.py).
    cache_tokens: tuple[int, ...] = ()
    #: Whether it carried a `prompt_cache_key`.
    cache_key: bool = False
    #: Of `prompt_tokens`, the response format's schema (0 in JSON mode or unbilled).
    schema_tokens: int = 0


def _mask(key: str) -> str:
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)


def _malform(content: str, rng: random.Random) -> str:
    """Content a careless model would send: prose, or the JSON fenced inside prose."""
    if rng.random() < 0.5:
        return (
            "Here is the JSON you asked for:\n```json\n"
            + content
            + "\n```\nLet me know if you need anything else."
        )
    lines = ["Sure! Here are the item labels I found in the text:"]
    _bullets(json.loads(content), "", lines)
    return "\n".join(lines)


def _bullets(value: Any, indent: str, lines: list[str]) -> None:
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{indent}- Sentence {key}:")
            _bullets(item, indent + "  ", lines)
        else:
            lines.append(f"{indent}- {key}: {', '.join(item) if item else 'none'}")


class _Handlers:
    """The routes, sharing the config, oracle, limiter, fault RNG and counters."""

    def __init__(self, config: SimulatorConfig, oracle: Oracle) -> None:
        self.config = config
        self.oracle = oracle
        self.limiter = RateLimiter(config.rpm, config.tpm, style=config.header_style)
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.ids = itertools.count(1)
        self.broken = itertools.count()
        self.auth = None if config.require_key is None else f"Bearer {config.require_key}"
        #: One prompt cache per model, as the provider's is.
        self.caches: dict[str, PromptCache] = {}

    def unauthorized(self, request: web.Request) -> web.Response | None:
        """OpenAI's 401 when a key is required and the request does not carry it."""
        given = request.headers.get("Authorization")
        if self.auth is None or given == self.auth:
            return None
        return _error(
            401,
            f"Incorrect API key provided: {_mask((given or '').removeprefix('Bearer '))}. "
            "Pass the key the simulator was started with (--require-key).",
            "invalid_request_error",
            "invalid_api_key",
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        config, stats = self.config, self.stats
        stats.requests += 1
        refused = self.unauthorized(request)
        if refused is not None:
            return refused
        if config.quota_exhausted:
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        try:
            call = self.check(await request.json())
        except ValueError as exc:
            return _error(400, str(exc), "invalid_request_error", None)
        except ApiError as exc:
            return exc.response()

        max_tokens, model = call.max_tokens, call.model
        answers = self.choices(call) * (max_tokens or DEFAULT_MAX_TOKENS)
        admission = self.limiter.admit(call.prompt_tokens + answers)
        headers = admission.headers
        if not admission.admitted:
            stats.rate_limited += 1
            if config.retry_after is not None:
                headers["retry-after"] = str(math.ceil(config.retry_after))
                headers["retry-after-ms"] = str(math.ceil(config.retry_after * 1000))
            unit = "RPM" if admission.kind == "requests" else "TPM"
            return _error(
                429,
                f"Rate limit reached for {model} in organization org-prelabel-simulator on "
                f"{admission.kind} per min ({unit}): Limit {admission.limit}, "
                f"Requested {admission.requested}. "
                f"Please try again in {headers['retry-after-ms']}ms.",
                str(admission.kind),
                "rate_limit_exceeded",
                headers,
            )

        fail, hang, malformed = self.rng.random(), self.rng.random(), self.rng.random()
        drip = self.rng.random() < config.drip_rate if config.drip_rate else False
        if fail < config.fail_rate:
            stats.faults += 1
            return _error(
                self.rng.choice((500, 502, 503)),
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                headers,
            )
        if hang < config.timeout_rate:
            stats.faults += 1
            await asyncio.sleep(config.hang_seconds)
        if config.latency_ms > 0:
            shape = 1.0 / LATENCY_SPREAD**2
            await asyncio.sleep(self.rng.gammavariate(shape, config.latency_ms / shape) / 1000)

        malform = self.rng if malformed < config.malformed_rate else None
        try:
            completion = self.complete(call, _item_ids(request), malform)
        except ApiError as exc:
            return exc.response(headers)
        if config.broken_bodies:
            stats.faults += 1
            kinds = config.broken_bodies
            _break(completion, kinds[next(self.broken) % len(kinds)])
        if not config.success_headers:
            headers = {k: v for k, v in headers.items() if not k.startswith("x-ratelimit-")}
        answer = web.json_response(completion, headers=headers)
        if not drip:
            return answer
        stats.faults += 1
        return await _drip(request, answer, config.drip_seconds)

    def check(self, body: Any) -> ChatCall:
        """The checks every chat request gets, realtime or batched, before it is answered.

        Raises ValueError for a malformed body, ApiError for a refused parameter.
        """
        messages, model, max_tokens = _parse(body)
        n, top_logprobs, seed = _sampling(body)
        billed = _format(body) if self.config.bill_schema else None
        prompt_tokens = count_prompt_tokens(messages, billed)
        schema_tokens = prompt_tokens - count_prompt_tokens(messages)
        refused = _unsupported(body, model)
        if refused is not None:
            raise refused
        cache_key = _cache_key(body, self.config.refuse_cache_key)
        wanted = prompt_tokens + (max_tokens or 0)
        window = self.config.context_tokens
        if window is not None and wanted > window:
            raise ApiError(
                400,
                f"This model's maximum context length is {window} tokens. "
                f"However, you requested {wanted} tokens ({prompt_tokens} in the messages, "
                f"{max_tokens or 0} in the completion). Please reduce the length of the "
                "messages or completion.",
                "BadRequestError",
                None,
            )
        verify = verification.is_verification(messages, body)
        tokens = tuple(request_tokens(messages, _format(body)))
        return ChatCall(
            messages,
            model,
            max_tokens,
            prompt_tokens,
            n,
            top_logprobs,
            seed,
            verify,
            tokens,
            cache_key,
            schema_tokens,
        )

    def choices(self, call: ChatCall) -> int:
        """How many choices the answer to `call` holds."""
        return 1 if self.config.ignore_n else call.n

    def complete(
        self, call: ChatCall, item_ids: Sequence[str], malform: random.Random | None
    ) -> dict[str, Any]:
        """The chat.completion answering `call` (broken with `malform` when given), counted.

        The one path from the oracle to an answer, shared by the realtime endpoint and the
        Batch API, so that both answer a request alike. Each choice is its own draw of the
        oracle's noise. Raises ApiError (400) when the request has no user message or is a
        verification the simulator cannot read.
        """
        stats = self.stats
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        if malform is not None:
            stats.faults += 1
        for index in range(self.choices(call)):
            try:
                reply = self.reply(call, item_ids, (call.seed, index))
            except ValueError as exc:
                raise ApiError(400, str(exc), "invalid_request_error", None) from exc
            choice, tokens = self.choice(call, reply, index, malform)
            choices.append(choice)
            completion_tokens += tokens
            if index == 0:  # the request's sentences, once whatever `n`
                stats.sentences += reply.sentences
                stats.unknown_sentences += len(reply.unknown)
                room = UNKNOWN_EXAMPLES - len(stats.unknown_examples)
                if reply.unknown and room > 0:
                    stats.unknown_examples.extend(s[:200] for s in reply.unknown[:room])
        cache = self.caches.setdefault(call.model, PromptCache())
        cached = min(call.prompt_tokens, cache.cached(call.cache_tokens, time.monotonic()))
        stats.prompt_tokens += call.prompt_tokens
        stats.cached_tokens += cached
        stats.schema_tokens += call.schema_tokens
        stats.prompt_cache_keys += call.cache_key
        stats.completion_tokens += completion_tokens
        stats.choices += len(choices)
        stats.verifications += call.verify
        return {
            "id": f"chatcmpl-sim{next(self.ids):012x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
            "usage": {
                "prompt_tokens": call.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": call.prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }

    def reply(self, call: ChatCall, item_ids: Sequence[str], draw: Draw) -> OracleReply:
        """The oracle's reply to `call` with `draw`'s noise; ValueError when unreadable."""
        if not call.verify:
            return self.oracle.respond(call.messages, item_ids, draw)
        oracle = self.oracle
        question = verification.read_question(call.messages)
        gold = oracle.gold_of(question.text, item_ids[0] if item_ids else None)
        if gold is None:  # an item it does not know: every proposal right, nothing missing
            given = verification.Verdicts(
                (True,) * len(question.proposals), False if question.asks_missing else None
            )
            return OracleReply(verification.answer(given), 0, [question.text])
        true = verifier.truth(question, gold, oracle.ontology)
        seed = f"{oracle.seed}:verify:{call.messages[-1].get('content')}"
        rng = random.Random(seed if draw == DEFAULT_DRAW else f"{seed}:{draw[0]}:{draw[1]}")
        given = verifier.noisy(true, oracle.noise, rng)
        return OracleReply(
            verification.answer(given), 0, [], _verdict_words(given), _verdict_words(true)
        )

    def choice(
        self, call: ChatCall, reply: OracleReply, index: int, malform: random.Random | None
    ) -> tuple[dict[str, Any], int]:
        """One choice of the answer to `call` from `reply`, and its completion tokens."""
        content = reply.content
        if malform is not None:
            content = _malform(content, malform)
        completion_tokens = count_tokens(content)
        finish_reason = "stop"
        max_tokens = call.max_tokens
        if max_tokens is not None and completion_tokens > max_tokens:
            o200k = encoding()
            content = o200k.decode(o200k.encode_ordinary(content)[:max_tokens])
            completion_tokens, finish_reason = max_tokens, "length"
        logprobs = None
        if call.top_logprobs is not None and not self.config.no_logprobs:
            logprobs = {"content": self.logprobs(call, reply, content), "refusal": None}
        choice = {
            "index": index,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }
        return choice, completion_tokens

    def logprobs(self, call: ChatCall, reply: OracleReply, content: str) -> list[dict[str, Any]]:
        """`logprobs.content` of a choice whose content is `content` (the reply's, maybe cut
        or broken: doubtful spans apply while it is the reply's JSON or a prefix of it)."""
        text, doubtful = marks(reply.answer, reply.gold)
        if reply.answer is None or not text.startswith(content):
            doubtful = []
        top = call.top_logprobs or 0
        swap = VERDICT_SWAP if call.verify else None
        return token_logprobs(content, doubtful, top, self.oracle.seed, swap)

    def answer(
        self, body: Any, item_ids: Sequence[str], malform: random.Random | None
    ) -> tuple[int, dict[str, Any]]:
        """A batch line's answer: status 200 and the chat.completion, or the error the
        realtime endpoint would send (no caps, no faults: the Batch API is its own pool)."""
        try:
            return 200, self.complete(self.check(body), item_ids, malform)
        except ValueError as exc:
            return 400, _error_body(str(exc), "invalid_request_error", None)
        except ApiError as exc:
            return exc.status, exc.body()

    async def models(self, request: web.Request) -> web.Response:
        refused = self.unauthorized(request)
        if refused is not None:
            return refused
        window = self.config.context_tokens
        extra = {} if window is None else {"max_model_len": window}
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": FINGERPRINT, **extra}
            for name in MODELS
        ]
        return web.json_response({"object": "list", "data": data})

    async def props(self, request: web.Request) -> web.Response:
        window = self.config.context_tokens
        if window is None:
            raise web.HTTPNotFound()
        return web.json_response({"default_generation_settings": {"n_ctx": window}})

    async def stats_route(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.stats) | {"gold_sentences": len(self.oracle)})


async def _drip(request: web.Request, answer: web.Response, every: float) -> web.StreamResponse:
    """Send `answer` one byte every `every` seconds (a stalled proxy, a throttled link)."""
    body = answer.body if isinstance(answer.body, bytes) else b""
    stream = web.StreamResponse(status=answer.status, headers=answer.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    for i in range(len(body)):
        await stream.write(body[i : i + 1])
        await asyncio.sleep(every)
    await stream.write_eof()
    return stream


def _break(completion: dict[str, Any], kind: str) -> None:
    """Make `completion` a 200 body that is not a chat completion, of the given kind."""
    if kind == "choices-number":
        completion["choices"] = 5
    elif kind == "message-string":
        completion["choices"][0]["message"] = "hello"
    elif kind == "usage-string":
        completion["usage"] = "lots"
    else:
        del completion["choices"]


def _unsupported(body: dict[str, Any], model: str) -> ApiError | None:
    """OpenAI's 400 for a parameter the model refuses, or None."""
    reasoning = model.rsplit("/", 1)[-1].startswith(REASONING_PREFIXES) and "-chat" not in model
    if reasoning and "max_tokens" in body:
        return _unsupported_error(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    if reasoning and (body.get("logprobs") or "top_logprobs" in body):
        return _unsupported_error(
            "Unsupported parameter: 'logprobs' is not supported with this model.",
            "logprobs",
            "unsupported_parameter",
        )
    temperature = body.get("temperature", 1)
    if reasoning and temperature != 1:
        return _unsupported_error(
            f"Unsupported value: 'temperature' does not support {temperature} with this "
            "model. Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        )
    effort = body.get("reasoning_effort")
    if effort is not None and not reasoning:
        return _unsupported_error(
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "reasoning_effort",
            "unsupported_parameter",
        )
    if effort is not None and effort not in ("minimal", "low", "medium", "high"):
        return _unsupported_error(
            f"Invalid value: '{effort}'. Supported values are: 'minimal', 'low', 'medium', "
            "and 'high'.",
            "reasoning_effort",
            "invalid_value",
        )
    return None


def _unsupported_error(message: str, param: str, code: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param)


def _verdict_words(verdicts: verification.Verdicts) -> dict[str, str]:
    """`verdicts` as the answer's JSON object holds them (task_types.verification.answer)."""
    return json.loads(verification.answer(verdicts))  # type: ignore[no-any-return]


def _sampling(body: dict[str, Any]) -> tuple[int, int | None, int | None]:
    """The `n`, alternatives per token (None: `logprobs` not asked) and `seed` of a chat
    request body; ApiError (400) for a value OpenAI's API refuses."""
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not _integer(n) or not 1 <= n <= 128:
        raise _invalid(f"Invalid 'n': {n!r}; expected an integer from 1 to 128.", "n")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _invalid(f"Invalid 'logprobs': {logprobs!r}; expected a boolean.", "logprobs")
    top = body.get("top_logprobs")
    if top is not None and (not _integer(top) or not 0 <= top <= MAX_TOP):
        raise _invalid(
            f"Invalid 'top_logprobs': {top!r}; expected an integer from 0 to {MAX_TOP}.",
            "top_logprobs",
        )
    if top is not None and not logprobs:
        raise _invalid(
            "Invalid value for 'top_logprobs': 'logprobs' must be true when "
            "'top_logprobs' is given.",
            "top_logprobs",
        )
    seed = body.get("seed")
    if seed is not None and not _integer(seed):
        raise _invalid(f"Invalid 'seed': {seed!r}; expected an integer.", "seed")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        raise _invalid(
            f"Invalid 'temperature': {temperature!r}; expected a number from 0 to 2.",
            "temperature",
        )
    return n, (top or 0) if logprobs else None, seed


def _cache_key(body: dict[str, Any], refuse: bool) -> bool:
    """Whether the body carries a `prompt_cache_key`; ApiError (400) for one that is not a
    string, or for any when the simulator plays an endpoint that refuses the parameter."""
    if body.get("prompt_cache_key") is None:
        return False
    if refuse:
        raise ApiError(
            400,
            "Unrecognized request argument supplied: prompt_cache_key",
            "invalid_request_error",
            None,
        )
    key = body["prompt_cache_key"]
    if not isinstance(key, str):
        raise _invalid(
            f"Invalid 'prompt_cache_key': {key!r}; expected a string.", "prompt_cache_key"
        )
    return True


def _format(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body's `response_format`, when it is an object."""
    given = body.get("response_format")
    return given if isinstance(given, dict) else None


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(message: str, param: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error", "invalid_value", param)


def _item_ids(request: web.Request) -> list[str]:
    """Item ids the client named in `x-prelabel-item-ids` (a JSON list), if any."""
    raw = request.headers.get(ITEM_IDS_HEADER)
    if not raw:
        return []
    try:
        ids = json.loads(raw)
    except ValueError:
        return []
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _parse(body: Any) -> tuple[list[dict[str, Any]], str, int | None]:
    """The messages, model and max tokens of a chat request body; ValueError when invalid."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    if not all(isinstance(m, dict) for m in messages):
        raise ValueError("each message must be an object")
    if body.get("stream"):
        raise ValueError("the simulator does not support 'stream'")
    model = body.get("model", MODELS[0])
    if not isinstance(model, str):
        raise ValueError("'model' must be a string")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ValueError("'max_tokens' must be a positive integer")
    return messages, model, max_tokens


async def _mark(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[SIMULATOR_HEADER] = "1"


def build_app(config: SimulatorConfig, oracle: Oracle) -> web.Application:
    """The simulator's aiohttp application (not yet listening)."""
    encoding()  # load the tokenizer now rather than during the first request
    handlers = _Handlers(config, oracle)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATS_KEY] = handlers.stats
    app.router.add_post("/v1/chat/completions", handlers.chat)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/props", handlers.props)
    app.router.add_get("/stats", handlers.stats_route)
    BatchAPI(config, handlers.stats, handlers.answer, handlers.unauthorized).register(app)
    app.on_response_prepare.append(_mark)
    return app


async def _start(config: SimulatorConfig, oracle: Oracle) -> tuple[web.AppRunner, str]:
    """Start listening; returns the runner and the base URL (with the real port if 0)."""
    app = build_app(config, oracle)
    # A short shutdown timeout so that hanging requests do not hold a stop for hang_seconds;
    # handler cancellation frees a hanging handler as soon as its client gives up.
    runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"simulator cannot listen on {config.host}:{config.port} ({exc.strerror}); "
            "pick another --port or stop what is using it"
        ) from exc
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/v1"


def _announce(base_url: str, oracle: Oracle) -> None:
    print(f"simulator listening on {base_url} ({len(oracle)} gold sentences)", flush=True)


def serve(config: SimulatorConfig, oracle: Oracle) -> None:
    """Run the simulator until SIGINT or SIGTERM, announcing its URL on one stdout line."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner, base_url = await _start(config, oracle)
        try:
            _announce(base_url, oracle)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator serving from a background thread: its base URL and live counters."""

    base_url: str
    stats: Stats


@contextmanager
def serve_in_thread(config: SimulatorConfig, oracle: Oracle) -> Iterator[RunningSimulator]:
    """Serve from a background thread (for tests and benchmarks); stops on exit.

    Use `port=0` for a free port; the base URL says which one was taken.
    """
    started: dict[str, Any] = {}
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            runner, base_url = await _start(config, oracle)
        except BaseException as exc:
            started["error"] = exc
            ready.set()
            return
        started["running"] = RunningSimulator(base_url, runner.app[STATS_KEY])
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="simulator", daemon=True
    )
    thread.start()
    ready.wait()
    try:
        if "error" in started:
            raise started["error"]
        yield started["running"]
    finally:
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()


__all__ = [
    "FINGERPRINT",
    "MODELS",
    "RunningSimulator",
    "SimulatorConfig",
    "Stats",
    "build_app",
    "serve",
    "serve_in_thread",
]
