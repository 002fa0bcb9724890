"""The wire format of K items in one request, shared by every task type.

One item goes out as its bare text; several go out as numbered lines `"{i}: {text}"`, and
their answer is an object keyed "1".."K" (read by `task_types.answers.read_batch`). The
simulator reads requests in this format.
"""

from __future__ import annotations

from collections.abc import Sequence


def user_content(texts: Sequence[str]) -> str:
    """The user message: one text as it is, or one numbered line per text."""
    return texts[0] if len(texts) == 1 else numbered(texts)


def numbered(texts: Sequence[str]) -> str:
    """One line `"{i}: {text}"` per text, from 1."""
    # A line break inside a text would break the one-line-per-sentence contract.
    return "\n".join(f"{i}: {' '.join(text.splitlines())}" for i, text in enumerate(texts, 1))
