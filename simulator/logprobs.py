"""Token log-probabilities for the simulator's answers: made up, with a structure to test by.

The simulator is no model: it has no probabilities. It invents them so that the mechanics
of `--confidence logprobs` and `verify` can be tested end to end, and the link between its
noise and these numbers is invented too. Calibration figures measured from them prove
nothing about a model.

The invention: an answer is compared with the noise-free answer of the same shape (`marks`).
A string value that differs from it (a corrupted label or mention, a flipped yes or no) is
doubtful, and so is the `]` of a list that lacks a gold value (the structure that dropped it:
a confident-looking `]` closing a list too early). An answer may leave out a key whose list
would be empty (NER's compact answers): a list under a key the noise-free answer lacks holds
no gold value (each of its values is doubtful), and the `}` of an object that lacks a key
whose noise-free list is not empty is doubtful (it closed the object too early). Every o200k
token of the answer that overlaps a doubtful span gets a probability near `LOW`, every other
one near `HIGH` (a seeded jitter of a few hundredths, from the oracle's seed and the
answer's text, keeps values apart). A token is o200k's, so one may hold a value's closing
quote and the `]` after it (`"]`): a right value that ends a list which dropped one reads
doubtful too, as the item does. `top_logprobs` lists the chosen token and made-up
alternatives sharing what is left of the probability mass; a "yes" or "no" of a
verification has the other word as its first alternative.

Tokens are o200k pieces of the content, decoded; a character whose bytes span several
tokens is one token here, so that every token is clean text and the tokens spell the
content exactly.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from simulator.limits import encoding

#: Probability of a token of a value the oracle got right (before jitter).
HIGH = 0.97
#: Probability of a token of a doubtful span (before jitter).
LOW = 0.4
#: Largest jitter either way.
JITTER = 0.02
#: The most alternatives OpenAI gives (`top_logprobs` is 0..20).
MAX_TOP = 20
#: Stand-ins for the alternatives a model weighed, in the order they are offered.
_FILLERS = (
    '"',
    '",',
    ' "',
    '"]',
    "]",
    "],",
    "}",
    '"}',
    ",",
    ":",
    '":',
    " ",
    "\n",
    " []",
    " [",
    "{",
    " the",
    "-",
    ".",
    "'",
    " of",
)
#: A verification's verdict words, each the other's alternative.
VERDICT_SWAP = {"yes": "no", "no": "yes"}

#: A doubtful span of an answer: `[start, end)` in characters.
Span = tuple[int, int]


def marks(answer: Any, gold: Any) -> tuple[str, list[Span]]:
    """`answer` as the oracle writes it (`simulator.oracle.answer_text`, compact JSON) and
    its doubtful spans against `gold`, the noise-free answer of the same shape (None where
    there is none: nothing is doubtful)."""
    parts: list[str] = []
    spans: list[Span] = []
    _write(answer, gold, parts, spans, 0)
    return "".join(parts), spans


def _write(value: Any, gold: Any, parts: list[str], spans: list[Span], at: int) -> int:
    """Append `value`'s JSON to `parts` from offset `at`; returns the offset after it."""
    if isinstance(value, dict):
        golds = gold if isinstance(gold, dict) else {}
        at = _put("{", parts, at)
        for i, (key, item) in enumerate(value.items()):
            at = _put(("," if i else "") + _dumps(key) + ":", parts, at)
            at = _write(item, _gold_of(key, item, gold), parts, spans, at)
        if any(found and key not in value for key, found in golds.items()):
            spans.append((at, at + 1))
        return _put("}", parts, at)
    if isinstance(value, list):
        return _write_list(value, gold, parts, spans, at)
    text = _dumps(value)
    if gold is not None and isinstance(value, str) and value != gold:
        spans.append((at, at + len(text)))
    return _put(text, parts, at)


def _gold_of(key: str, item: Any, gold: Any) -> Any:
    """The noise-free value for `item` under `key` of `gold` (None: nothing to compare with);
    a list under a key a noise-free object lacks (a compact answer's) holds no gold value."""
    if not isinstance(gold, dict):
        return None
    if key not in gold and isinstance(item, list):
        return []
    return gold.get(key)


def _write_list(value: list[Any], gold: Any, parts: list[str], spans: list[Span], at: int) -> int:
    """A list whose items are right while gold holds them (as a multiset); its `]` is
    doubtful when gold holds a value the list does not."""
    left = list(gold) if isinstance(gold, list) else None
    at = _put("[", parts, at)
    for i, item in enumerate(value):
        at = _put("," if i else "", parts, at)
        right = left is None or item in left
        if left is not None and item in left:
            left.remove(item)
        start = at
        at = _write(item, None, parts, spans, at)
        if not right:
            spans.append((start, at))
    if left:
        spans.append((at, at + 1))
    return _put("]", parts, at)


def _put(text: str, parts: list[str], at: int) -> int:
    parts.append(text)
    return at + len(text)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def pieces(content: str) -> Iterator[tuple[int, str]]:
    """`content`'s o200k tokens as `(start offset, text)`, a character split across tokens
    kept whole in one; the texts concatenate to `content`."""
    o200k = encoding()
    pending = b""
    at = 0
    for token in o200k.encode_ordinary(content):
        pending += o200k.decode_single_token_bytes(token)
        try:
            text = pending.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a character's first bytes: wait for the rest
        yield at, text
        at += len(text)
        pending = b""
    if pending:  # unreachable for a str's own bytes; kept whole rather than lost
        yield at, pending.decode("utf-8", errors="replace")


def token_logprobs(
    content: str,
    doubtful: Sequence[Span],
    top: int,
    seed: int,
    swap: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """`choices[i].logprobs.content` for `content`: one entry per token, with `top`
    alternatives; a token overlapping a `doubtful` span is unlikely. `swap` maps a token's
    word to the alternative it nearly was (a verification's yes and no)."""
    rng = random.Random(f"{seed}:{content}")
    entries = []
    for start, text in pieces(content):
        end = start + len(text)
        base = LOW if any(s < end and start < e for s, e in doubtful) else HIGH
        p = base + rng.uniform(-JITTER, JITTER)
        entries.append(_entry(text, p, _alternatives(text, p, top, swap or {})))
    return entries


def _alternatives(
    text: str, p: float, top: int, swap: Mapping[str, str]
) -> list[tuple[str, float]]:
    """The `top` most likely tokens at this place: the chosen one and made-up others that
    share what is left of the mass (a swapped word takes nearly all of it), most likely
    first."""
    if top <= 0:
        return []
    left = 1.0 - p
    options: list[tuple[str, float]] = [(text, p)]
    word = text.strip(' "')
    if word in swap:
        options.append((text.replace(word, swap[word]), left * 0.95))
        left *= 0.05
    for filler in _FILLERS:
        if len(options) >= top:
            break
        if filler != text and all(filler != o for o, _ in options):
            left /= 2
            options.append((filler, left))
    return sorted(options[:top], key=lambda o: -o[1])


def _entry(text: str, p: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    return {
        "token": text,
        "logprob": math.log(p),
        "bytes": list(text.encode("utf-8")),
        "top_logprobs": [
            {"token": t, "logprob": math.log(q), "bytes": list(t.encode("utf-8"))} for t, q in top
        ],
    }
