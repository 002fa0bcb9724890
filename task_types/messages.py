"""The wire format of K items in one request, shared by every task type.

One item goes out as its bare text; several go out as numbered lines `"{i}: {text}"`, and
their answer is an object keyed "1".."K" (read by `task_types.answers.read_batch`), whose
schema is `batch_schema`'s. The simulator reads requests in this format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def user_content(texts: Sequence[str]) -> str:
    """The user message: one text as it is, or one numbered line per text."""
    return texts[0] if len(texts) == 1 else numbered(texts)


def numbered(texts: Sequence[str]) -> str:
    """One line `"{i}: {text}"` per text, from 1."""
    # A line break inside a text would break the one-line-per-sentence contract.
    return "\n".join(f"{i}: {' '.join(text.splitlines())}" for i, text in enumerate(texts, 1))


def batch_schema(line: dict[str, Any], batch_size: int, *, shared: bool) -> dict[str, Any]:
    """The JSON schema of a batch's answer: an object keyed "1".."K", each key required and
    holding a `line`, nothing else allowed.

    `shared` writes `line` once, in `$defs`, and each key refers to it (`$ref`, which OpenAI,
    llama.cpp's grammar conversion and vLLM's guided decoding resolve): the provider bills the
    schema as input, and K inlined copies of a line cost more than the batch's sentences.
    """
    keys = [str(i) for i in range(1, batch_size + 1)]
    each = {"$ref": "#/$defs/line"} if shared else line
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {key: each for key in keys},
        "required": keys,
        "additionalProperties": False,
    }
    if shared:
        schema["$defs"] = {"line": line}
    return schema
