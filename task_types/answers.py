"""Read a model's JSON answer, repairing the usual sloppiness: shared by every task type.

Models wrap JSON in code fences or prose, answer in Python-style quotes, wrap the answer in
one more object (`{"entities": {...}}`), and answer a batch as a list or with keys like
`"line 1"`. All of that is repaired here; what an answer's object means is the task type's
to read. What cannot be repaired becomes an `ItemError` with a one-line reason, so that the
worker can retry the item or record why it failed.

Reading is linear in the answer's length and bounded: an answer longer than `MAX_ANSWER_CHARS`
fails at once, and the search for a JSON object scans at most `SCAN_FACTOR` times the answer
in all, however many candidate braces it holds (a model stuck repeating `{` must not hold the
event loop for minutes).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from prelabel.errors import ItemError

T = TypeVar("T")

#: Candidate objects tried per answer; a sane answer needs one or two.
_MAX_CANDIDATES = 32
#: The longest answer read, in characters: far above any labeling answer (a batch of 20
#: CoNLL sentences answers in about 3,000), far below what would hold a worker.
MAX_ANSWER_CHARS = 200_000
#: Characters the brace matching may scan in all, per character of the answer.
SCAN_FACTOR = 4
#: A quoted string (kept as is) or a bare JSON literal (rewritten for `ast.literal_eval`).
_LITERALS = re.compile(r"""("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|\b(null|true|false)\b""")
_PYTHON_LITERAL = {"null": "None", "true": "True", "false": "False"}
_MISSING = object()
_LINE_KEY = re.compile(r"(?:(?:line|sentence)\s*)?#?\s*(\d+)\s*[.:)]?", re.IGNORECASE)


def read_batch(
    content: str, size: int, read_one: Callable[[Mapping[Any, Any]], T]
) -> list[T | ItemError]:
    """One entry per line number 1..`size` of a batched answer: `read_one` of its object, or
    why not.

    A missing or unreadable line gives an `ItemError` in its slot, so that the caller can
    retry just those items; keys beyond the batch are ignored. When the whole answer is
    unreadable, every slot holds that same error.
    """
    try:
        check_length(content)
    except ItemError as error:
        return [error] * size
    listed = _extract_list(content)
    if listed is not None and len(listed) == size:
        # A list with one object per sentence: the position is the line number.
        answer: Mapping[Any, Any] = {str(i): value for i, value in enumerate(listed, 1)}
    else:
        try:
            answer = unwrap(extract_object(content), lambda key: _line_key(key).isdigit())
        except ItemError as error:
            return [error] * size
    by_line = {_line_key(key): value for key, value in answer.items()}
    results: list[T | ItemError] = []
    for line in range(1, size + 1):
        value = by_line.get(str(line), _MISSING)
        if value is _MISSING:
            results.append(ItemError(f"line {line} is missing from the batched answer"))
        elif not isinstance(value, Mapping):
            results.append(
                ItemError(f"line {line} is not a JSON object: {snippet(json.dumps(value))}")
            )
        else:
            try:
                results.append(read_one(value))
            except ItemError as error:
                results.append(ItemError(f"line {line}: {error}"))
    return results


def check_length(content: str) -> None:
    if len(content) > MAX_ANSWER_CHARS:
        raise ItemError(
            f"answer is {len(content):,} characters, more than the {MAX_ANSWER_CHARS:,} read: "
            f"the model was probably looping; {snippet(content)}"
        )


def _line_key(key: object) -> str:
    """`"1"` for keys like 1, " 1 ", "line 1", "#1", "1." or "Sentence 1:"; else the key."""
    text = str(key).strip()
    match = _LINE_KEY.fullmatch(text)
    return match.group(1) if match else text


def unwrap(answer: Mapping[Any, Any], expected: Callable[[str], bool]) -> Mapping[Any, Any]:
    """The inner object of `{"entities": {...}}`: one key, not an expected one, an object."""
    if len(answer) == 1:
        ((key, value),) = answer.items()
        if isinstance(value, Mapping) and not expected(str(key).strip().casefold()):
            return value
    return answer


def _extract_list(content: str) -> list[Any] | None:
    """The answer as a list of objects, when its first bracket opens a list; else None."""
    start, brace = content.find("["), content.find("{")
    if start == -1 or (brace != -1 and brace < start):
        return None
    end = _matching_brace(content, start, len(content), "[", "]")
    if end is None:
        return None
    value = _decode(content[start : end + 1])
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return value
    return None


def extract_object(content: str) -> Mapping[Any, Any]:
    """The first `{...}` in `content` that reads as an object, as JSON or as a Python literal."""
    if not content.strip():
        raise ItemError("answer is empty")
    # Code fences and prose around the object need no special case: they lie outside it.
    tried = 0
    budget = SCAN_FACTOR * len(content)
    start = content.find("{")
    while start != -1 and tried < _MAX_CANDIDATES and budget > 0:
        # Each scan is charged what it read: total work stays linear in the answer.
        limit = min(len(content), start + budget)
        end = _matching_brace(content, start, limit)
        budget -= (limit if end is None else end + 1) - start
        if end is not None:
            tried += 1
            value = _decode(content[start : end + 1])
            if isinstance(value, Mapping):
                return value
        start = content.find("{", start + 1)
    raise ItemError(f"answer is not JSON: {snippet(content)}")


def _matching_brace(
    text: str, start: int, limit: int, opening: str = "{", closing: str = "}"
) -> int | None:
    """The index of the `closing` that closes the `opening` at `start`, skipping strings,
    looking no further than `limit`."""
    depth = 0
    quote = ""
    i = start
    while i < limit:
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _decode(text: str) -> object:
    """JSON, else a Python literal (single quotes, trailing commas), else `None`."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    python = _LITERALS.sub(lambda m: m.group(1) or _PYTHON_LITERAL[m.group(2)], text)
    try:
        return ast.literal_eval(python)
    # literal_eval reports bad input through many exception types, deep nesting included.
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "JSON object"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    return type(value).__name__


def snippet(text: str) -> str:
    """The start of `text` on one line, for error messages."""
    return " ".join(text.split())[:80]
