"""A chat completion's body, both ways: the request body a run sends, and what prelabel
reads from an answer's body. Any transport of chat completions shares both (a Batch API
file holds the same bodies, one a line, and its output lines the same answers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from prelabel.model import Endpoint
from workers.transports.base import ChatRequest

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


def chat_body(endpoint: Endpoint, request: ChatRequest) -> dict[str, Any]:
    """The JSON body of `request` for the endpoint's model (JSON mode when it has no schema)."""
    return {
        "model": endpoint.model,
        "messages": request.messages,
        **request_params(endpoint),
        "response_format": request.response_format or JSON_MODE,
    }


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """What prelabel reads from a chat completion's JSON; `problem` says why it is not one."""

    content: str | None = None
    refusal: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = ""
    problem: str = ""


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
    if isinstance(usage, dict):
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens"))
    problem = _problem(data)
    if problem:
        return ChatAnswer(prompt_tokens=prompt, completion_tokens=completion, problem=problem)
    choice = data["choices"][0]
    message = choice["message"]
    return ChatAnswer(
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


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
