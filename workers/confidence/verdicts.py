"""Confidence from a verification's answer (`--confidence verify`).

A proposal's confidence is P(yes) for its number: from the yes or no token's log-probability,
the other word's read from the alternatives (`top_logprobs`), yes taken as 1 - P(no) when only
no is visible; without log-probabilities, 1.0 for yes and 0.0 for no. The item's is the least
of them and, where `missing` was asked, of P(missing = no).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from task_types.verification import MISSING, Verdicts
from workers.confidence.scan import scan
from workers.confidence.spans import Measured, place_tokens
from workers.transports.base import TokenLogprob


def verdict_confidence(
    verdicts: Verdicts, content: str, tokens: Sequence[TokenLogprob] | None
) -> Measured:
    """The proposals' and the item's confidence from a verification's `verdicts`, read from
    `content` (whose tokens, when given, hold the log-probabilities)."""
    keys = [str(n) for n in range(1, len(verdicts.right) + 1)]
    said = list(verdicts.right)
    if verdicts.missing is not None:
        keys.append(MISSING)
        said.append(verdicts.missing)
    yes = [_p_yes(content, tokens, key, word) for key, word in zip(keys, said, strict=True)]
    proposals = tuple(yes[: len(verdicts.right)])
    doubts = list(proposals)
    if verdicts.missing is not None:
        doubts.append(1.0 - yes[-1])
    return Measured(min(doubts, default=1.0), proposals)


def _p_yes(content: str, tokens: Sequence[TokenLogprob] | None, key: str, said: bool) -> float:
    fallback = 1.0 if said else 0.0
    if tokens is None:
        return fallback
    token = _token_of(content, tokens, key)
    if token is None:
        return fallback
    yes = no = None
    for text, logprob in ((token.token, token.logprob), *token.top):
        word = text.strip(' "').casefold()
        if not word:
            continue
        if yes is None and "yes".startswith(word):
            yes = logprob
        elif no is None and "no".startswith(word):
            no = logprob
    if yes is not None:
        return min(1.0, math.exp(yes))
    if no is not None:
        return max(0.0, 1.0 - math.exp(no))
    return fallback


def _token_of(content: str, tokens: Sequence[TokenLogprob], key: str) -> TokenLogprob | None:
    """The token holding the first letter of the value under `key`."""
    value = next((s for s in scan(content).strings if s.key == key), None)
    if value is None or value.end - value.start < 3:
        return None
    at = value.start + 1
    placed = place_tokens(content, tokens)
    if placed is None:
        return None
    pos = 0
    for t in tokens:
        if pos <= at < pos + len(t.token):
            return t
        pos += len(t.token)
    return None
