"""A forgiving scan of a JSON answer's text: where its strings and its containers' members lie.

The answer was already read (`task_types.answers`); this only places what was read on the
characters the model wrote, so that token log-probabilities can be laid over them. It never
raises: unbalanced brackets or an unterminated string just end the scan.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_LINE_KEY = re.compile(r"(?:(?:line|sentence)\s*)?#?\s*(\d+)\s*[.:)]?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string value (not a key): its span, quotes included, its text, and the key of the
    nearest enclosing object member ("" at the top)."""

    start: int
    end: int
    value: str
    key: str


@dataclass(slots=True)
class _Container:
    kind: str  # "{" or "["
    opened: int = 0
    key: str = ""  # the member being read (an object's key; an array's 1-based index)
    expect_key: bool = True
    index: int = 0
    value_start: int | None = None
    members: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scan:
    strings: tuple[StringValue, ...]
    #: Every container's members (key, or 1-based index for a list) and their spans, in the
    #: order the containers opened.
    containers: tuple[dict[str, tuple[int, int]], ...]


def scan(content: str) -> Scan:
    """The string values and the containers' members of `content`."""
    strings: list[StringValue] = []
    stack: list[_Container] = []
    done: list[_Container] = []
    i, n = 0, len(content)
    while i < n:
        char = content[i]
        top = stack[-1] if stack else None
        if (
            top is not None
            and top.value_start is None
            and not char.isspace()
            and char not in ",:]}"
        ):
            top.value_start = i
            if top.kind == "[":
                top.index += 1
                top.key = str(top.index)
        if char == '"':
            j = _string_end(content, i)
            value = _decode(content[i:j])
            if top is not None and top.kind == "{" and top.expect_key:
                top.key, top.expect_key, top.value_start = value, False, None
            else:
                strings.append(StringValue(i, j, value, _nearest_key(stack)))
            i = j
            continue
        if char in "{[":
            stack.append(_Container(char, opened=i, expect_key=char == "{"))
        elif char in "}]" and stack:
            _close_member(stack[-1], content, i)
            done.append(stack.pop())
        elif char == "," and top is not None:
            _close_member(top, content, i)
            top.expect_key = top.kind == "{"
            top.value_start = None
        elif char == ":" and top is not None and top.kind == "{":
            top.value_start = None
        i += 1
    done.sort(key=lambda c: c.opened)
    return Scan(tuple(strings), tuple(c.members for c in done))


def item_parts(content: str, size: int) -> list[tuple[int, int] | None]:
    """The span of each of `size` items' parts of an answer: the whole answer for one item;
    for a batch, the members keyed 1..size (`"1"`, `"line 1"`, ... or a list's positions) of
    the outermost container that holds them (None for an item whose part is not found)."""
    if size == 1:
        return [(0, len(content))]
    for members in scan(content).containers:
        lines = {_line(k): span for k, span in members.items()}
        if any(str(i) in lines for i in range(1, size + 1)):
            return [lines.get(str(i)) for i in range(1, size + 1)]
    return [None] * size


def _line(key: str) -> str:
    match = _LINE_KEY.fullmatch(key.strip())
    return match.group(1) if match else key


def _close_member(container: _Container, content: str, at: int) -> None:
    if container.value_start is None:
        return
    end = at
    while end > container.value_start and content[end - 1].isspace():
        end -= 1
    container.members[container.key] = (container.value_start, end)
    container.value_start = None


def _nearest_key(stack: list[_Container]) -> str:
    for container in reversed(stack):
        if container.kind == "{":
            return container.key
    return ""


def _string_end(content: str, start: int) -> int:
    """The index just past the string opening at `start` (the end of `content` when open)."""
    i = start + 1
    while i < len(content):
        if content[i] == "\\":
            i += 2
            continue
        if content[i] == '"':
            return i + 1
        i += 1
    return len(content)


def _decode(literal: str) -> str:
    try:
        value = json.loads(literal)
    except ValueError:
        return literal.strip('"')
    return value if isinstance(value, str) else literal.strip('"')
