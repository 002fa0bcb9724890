"""A chat completion's body, both ways: the request body a run sends, and what prelabel
reads from an answer's body. Any transport of chat completions shares both (a Batch API
file holds the same bodies, one a line, and its output lines the same answers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from prelabel.model import Endpoint
from workers.transports.base import ChatRequest, Choice, TokenLogprob

#: The default answer format: JSON mode, which OpenAI, Azure, vLLM and Ollama all accept.
JSON_MODE: dict[str, Any] = {"type": "json_object"}

_REASONING = re.compile(r"(o[1-9]|gpt-5)(\b|[-.])")


def is_reasoning_model(model: str) -> bool:
    """OpenAI's reasoning models (o-series, gpt-5 family): they take `max_completion_tokens`,
    only the default temperature, and `reasoning_effort`."""
    name = model.rsplit("/", 1)[-1].removeprefix("ft:")
    return bool(_REASONING.match(name)) and "-chat" not in name


def request_params(endpoint: Endpoint) -> dict[str, Any]:
    """The generation parameters of a run's requests, as the model accepts them.

    Reasoning models refuse `max_tokens` and a non-default `temperature` with a 400: they get
    `max_completion_tokens` (which bounds reasoning and answer together) and, when the run
    gives one, `reasoning_effort`. Other models get `max_tokens`, which every
    OpenAI-compatible server knows, and the run's temperature.
    """
    if is_reasoning_model(endpoint.model):
        params: dict[str, Any] = {"max_completion_tokens": endpoint.max_tokens}
        if endpoint.reasoning_effort is not None:
            params["reasoning_effort"] = endpoint.reasoning_effort
        return params
    return {"max_tokens": endpoint.max_tokens, "temperature": endpoint.temperature}


def sampling_params(endpoint: Endpoint, request: ChatRequest) -> dict[str, Any]:
    """What `request` asks beyond the run's parameters: log-probabilities, several answers,
    its own temperature, seed or answer length (`{}` for a plain request)."""
    params: dict[str, Any] = {}
    if request.logprobs is not None:
        params["logprobs"] = True
        if request.logprobs > 0:
            params["top_logprobs"] = request.logprobs
    if request.n > 1:
        params["n"] = request.n
    reasoning = is_reasoning_model(endpoint.model)
    if request.temperature is not None and not reasoning:  # reasoning models sample at 1
        params["temperature"] = request.temperature
    if request.seed is not None:
        params["seed"] = request.seed
    if request.max_tokens is not None:
        params["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
    return params


def prompt_cache_key(run_id: str) -> str:
    """The run's `prompt_cache_key`: one for all its requests, so that the provider routes
    them to the same cache (their system prompt, schema and fixed examples are one prefix)."""
    return "prelabel-" + run_id


def refuses_cache_key(message: str) -> bool:
    """Whether a 400's message is the endpoint refusing `prompt_cache_key` (a strict proxy,
    an old Azure API version: "Unrecognized request argument supplied: prompt_cache_key")."""
    return "prompt_cache_key" in message


def chat_body(
    endpoint: Endpoint, request: ChatRequest, cache_key: str | None = None
) -> dict[str, Any]:
    """The JSON body of `request` for the endpoint's model (JSON mode when it has no schema),
    with `cache_key` as its `prompt_cache_key` when given. The key routes the request and asks
    nothing: the answer cache's digest (`workers.calls`) and a batch line's custom_id leave it
    out."""
    body = {
        "model": endpoint.model,
        "messages": request.messages,
        **request_params(endpoint),
        **sampling_params(endpoint, request),
        "response_format": request.response_format or JSON_MODE,
    }
    if cache_key is not None:
        body["prompt_cache_key"] = cache_key
    return body


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """What prelabel reads from a chat completion's JSON; `problem` says why it is not one."""

    content: str | None = None
    refusal: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = ""
    problem: str = ""
    #: Every choice, in the order of their `index` (the first is `content`'s).
    choices: tuple[Choice, ...] = ()
    #: Of the prompt tokens, those the provider served from its prompt cache
    #: (`usage.prompt_tokens_details.cached_tokens`; 0 when absent or not a count).
    cached_tokens: int = 0


def read_answer(data: object) -> ChatAnswer:
    """The first choice's content (or refusal), finish reason and usage, from a parsed body.

    Read with `json` rather than into openai's `ChatCompletion` model: prelabel needs a few
    fields, and an OpenAI-compatible server may omit any of them. Each field is checked for
    its type: a body a server or proxy got wrong becomes a `problem`, never an exception.
    """
    if not isinstance(data, dict):
        return ChatAnswer(problem=f"JSON that is {_kind(data)}, not an object")
    usage = data.get("usage")
    prompt = completion = None
    cached = 0
    if isinstance(usage, dict):
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens"))
        cached = _cached(usage.get("prompt_tokens_details"), prompt)
    problem = _problem(data)
    if problem:
        return ChatAnswer(
            prompt_tokens=prompt,
            completion_tokens=completion,
            problem=problem,
            cached_tokens=cached,
        )
    choice = data["choices"][0]
    message = choice["message"]
    return ChatAnswer(
        content=_text(message.get("content")),
        refusal=_text(message.get("refusal")),
        prompt_tokens=prompt,
        completion_tokens=completion,
        finish_reason=_text(choice.get("finish_reason")) or "",
        choices=_choices(data["choices"]),
        cached_tokens=cached,
    )


def _cached(details: object, prompt: int | None) -> int:
    """`prompt_tokens_details.cached_tokens`, within [0, prompt_tokens] (0 when either is
    missing or not a count: a server that does not cache says nothing)."""
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None or prompt is None:
        return 0
    return min(max(cached, 0), prompt)


def _choices(choices: list[Any]) -> tuple[Choice, ...]:
    """The choices with a text answer, by `index`; a choice that is not one is left out, and
    log-probabilities that are not as the API gives them are None (never an exception)."""
    read: list[tuple[int, Choice]] = []
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            continue
        content = _text(choice["message"].get("content"))
        if content is None:
            continue
        index = choice.get("index")
        order = index if isinstance(index, int) and not isinstance(index, bool) else position
        finish = _text(choice.get("finish_reason")) or ""
        read.append((order, Choice(content, finish, _logprobs(choice.get("logprobs")))))
    return tuple(c for _, c in sorted(read, key=lambda pair: pair[0]))


def _logprobs(value: object) -> tuple[TokenLogprob, ...] | None:
    """`choice.logprobs.content` as tokens (None when absent or not in the API's shape)."""
    content = value.get("content") if isinstance(value, dict) else None
    if not isinstance(content, list):
        return None
    tokens: list[TokenLogprob] = []
    for entry in content:
        if not isinstance(entry, dict):
            return None
        token, logprob = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or not _number(logprob):
            return None
        top: list[tuple[str, float]] = []
        for alt in entry.get("top_logprobs") or ():
            alt_token = alt.get("token") if isinstance(alt, dict) else None
            alt_logprob = alt.get("logprob") if isinstance(alt, dict) else None
            if isinstance(alt_token, str) and _number(alt_logprob):
                top.append((alt_token, float(alt_logprob)))
        tokens.append(TokenLogprob(token, float(logprob), tuple(top)))
    return tuple(tokens)


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
