"""Character offsets: Python's code points and UTF-16 code units.

prelabel's own files (predictions.jsonl, a span's start) count code points, as Python's `str`
does. Browser-based labeling tools count UTF-16 code units, as JavaScript's `String` does: a
character outside the Basic Multilingual Plane (most emoji, some CJK ideographs) is one code
point but two units, so every offset after it differs by one. The conversion happens at the
boundary, in both directions, and only for texts that hold such characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: How a tool counts offsets into a text.
OffsetUnit = Literal["utf16", "codepoint"]

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units (JavaScript's `text.length`)."""
    return len(text) + len(_ASTRAL.findall(text))


@dataclass(frozen=True)
class OffsetMap:
    """Converts offsets into one text between code points and UTF-16 code units.

    `astral` holds the code-point positions of the characters that take two units, in order;
    a text without any (the usual case) converts as the identity.
    """

    text: str
    astral: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> OffsetMap:
        return cls(text, tuple(m.start() for m in _ASTRAL.finditer(text)))

    def to_utf16(self, index: int) -> int:
        """The UTF-16 unit offset of code point `index` (0 ≤ index ≤ len(text))."""
        if not 0 <= index <= len(self.text):
            raise ValueError(f"offset {index} is outside a text of {len(self.text)} characters")
        return index + sum(1 for a in self.astral if a < index)

    def from_utf16(self, units: int) -> int:
        """The code-point offset of UTF-16 unit `units`; it may not split a surrogate pair."""
        before = 0  # astral characters wholly before `units`
        for i, a in enumerate(self.astral):
            first_unit = a + i  # where this character's surrogate pair starts
            if first_unit + 2 <= units:
                before += 1
            elif first_unit + 1 == units:
                raise ValueError(f"UTF-16 offset {units} splits a surrogate pair")
            else:
                break
        index = units - before
        if not 0 <= index <= len(self.text):
            raise ValueError(
                f"UTF-16 offset {units} is outside a text of {utf16_len(self.text)} units"
            )
        return index

    def to_unit(self, index: int, unit: OffsetUnit) -> int:
        return self.to_utf16(index) if unit == "utf16" else index

    def from_unit(self, offset: int, unit: OffsetUnit) -> int:
        if unit == "utf16":
            return self.from_utf16(offset)
        if not 0 <= offset <= len(self.text):
            raise ValueError(f"offset {offset} is outside a text of {len(self.text)} characters")
        return offset

    def holds(self, offset: int, content: str, unit: OffsetUnit) -> bool:
        """Whether `content` is in the text at `offset`, counted in `unit`."""
        try:
            begin = self.from_unit(offset, unit)
        except ValueError:
            return False
        return span_matches(self.text, begin, content)


def span_matches(text: str, begin: int, content: str) -> bool:
    """Kili's own check, in code points: `text[begin:begin+len(content)] == content`."""
    return begin >= 0 and text[begin : begin + len(content)] == content


__all__ = ["OffsetMap", "OffsetUnit", "span_matches", "utf16_len"]
