"""Answers to `--confidence verify`'s questions (task_types/verification.py), from gold.

A proposal is right iff its label's tag and its text are among the item's gold `(tag, value)`
pairs (classification's gold values, like its proposals' texts, are ""); something is
missing iff a gold pair of a listed label is not proposed. Then, like every answer of the
oracle, each verdict is flipped with the oracle's noise probability, from a `random.Random`
seeded with the oracle's seed, the question and the draw (`simulator.oracle.Draw`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from prelabel.model import LabelSet
from task_types.verification import Question, Verdicts


def truth(question: Question, gold: Sequence[tuple[str, str]], labels: LabelSet) -> Verdicts:
    """The verdicts gold gives `question` (`labels` maps the proposals' names to tags)."""
    tags = {label.name: label.tag for label in labels.labels}
    pairs = {(tag, value) for tag, value in gold if tag in tags.values()}
    proposed = {(tags.get(p.label), p.text) for p in question.proposals}
    right = tuple((tags.get(p.label), p.text) in pairs for p in question.proposals)
    if not question.asks_missing:
        return Verdicts(right)
    return Verdicts(right, any(pair not in proposed for pair in pairs))


def noisy(verdicts: Verdicts, noise: float, rng: random.Random | None) -> Verdicts:
    """`verdicts` with each flipped with probability `noise` (none without `rng`)."""
    if rng is None or not noise:
        return verdicts
    right = tuple(v != (rng.random() < noise) for v in verdicts.right)
    missing = verdicts.missing
    if missing is not None:
        missing = missing != (rng.random() < noise)
    return Verdicts(right, missing)
