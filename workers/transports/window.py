"""The model's context window: `PRELABEL_CONTEXT_TOKENS` when set, else what the server says.

Local servers know the window they serve, and it is often much smaller than the model's own
(llama.cpp's server splits its context between its slots: 4,096 tokens a slot is common).
Asked once per worker process, endpoint and model, where each server documents it:

- vLLM: `GET /v1/models`, the model's `max_model_len`;
- llama.cpp's server: `GET /props` (beside `/v1`), `default_generation_settings.n_ctx`, the
  context of one slot, which is what one request gets;
- Ollama: `GET /api/ps`, the loaded model's `context_length` (the window it was started
  with, `OLLAMA_CONTEXT_LENGTH` or its default, not the model's largest).

OpenAI and Azure say nothing of the kind; without a setting, a window of
`DEFAULT_CONTEXT_TOKENS` is assumed, and a request too long for the real one fails with the
endpoint's 400.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
from openai import AsyncOpenAI

from workers.transports.base import ContextWindow

log = logging.getLogger(__name__)

#: The window assumed when neither the setting nor the server gives one.
DEFAULT_CONTEXT_TOKENS = 128_000
#: Seconds each question to the server may take: an endpoint that does not answer these
#: routes must not hold a shard up.
ASK_TIMEOUT = 5.0


_known: dict[tuple[str, str], ContextWindow] = {}


async def context_window(
    client: AsyncOpenAI, base_url: str, model: str, setting: int | None = None
) -> ContextWindow:
    """The window a request to `model` at `base_url` gets: `setting` (PRELABEL_CONTEXT_TOKENS)
    when given, else what the server says (asked once per process)."""
    if setting is not None:
        return ContextWindow(setting, "PRELABEL_CONTEXT_TOKENS")
    key = (base_url, model)
    if key not in _known:
        told = await _ask(client, base_url, model)
        if told is not None:
            log.info("%s serves %s with a context of %d tokens (%s)", base_url, model, *told)
            _known[key] = ContextWindow(told[0], f"the server ({told[1]})")
        else:
            _known[key] = ContextWindow(
                DEFAULT_CONTEXT_TOKENS, "the default (set PRELABEL_CONTEXT_TOKENS)"
            )
    return _known[key]


async def _ask(client: AsyncOpenAI, base_url: str, model: str) -> tuple[int, str] | None:
    models = await _get(client, "/models")
    entries = models.get("data") if isinstance(models, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            found = _positive(entry.get("max_model_len"))
            if found:
                return found, "/v1/models max_model_len"
    props = await _get(client, _beside(base_url, "/props"))
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    found = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    if found:
        return found, "/props n_ctx"
    loaded = await _get(client, _beside(base_url, "/api/ps"))
    running = loaded.get("models") if isinstance(loaded, dict) else None
    for entry in running if isinstance(running, list) else []:
        if isinstance(entry, dict) and model in (entry.get("name"), entry.get("model")):
            found = _positive(entry.get("context_length"))
            if found:
                return found, "/api/ps context_length"
    return None


async def _get(client: AsyncOpenAI, url: str) -> Any:
    """The JSON at `url` (relative to the client's base URL, or absolute), or None."""
    try:
        response = await client.get(url, cast_to=httpx.Response, options={"timeout": ASK_TIMEOUT})
        return response.json()
    except (openai.OpenAIError, ValueError):
        return None


def _beside(base_url: str, path: str) -> str:
    """`path` at the server's root: `http://host:8080/v1` → `http://host:8080/props`."""
    parts = urlsplit(base_url)
    root = parts.path.rstrip("/").removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, root + path, "", ""))


def _positive(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
