"""A text's gold labels: the few-shot pool's examples and the simulator's answers."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from prelabel.model import LabelSet
from task_types.base import Example
from task_types.classify.model import ClassifyRecord
from task_types.classify.prompts import MULTI_KEY, SINGLE_KEY

#: Examples kept in a pool; a larger split is sampled (seeded) down to this.
POOL_LIMIT = 20_000
_SEED = 0


def gold_labels(record: ClassifyRecord) -> list[tuple[str, str]] | None:
    """`(tag, "")` per gold label of `record` (classification has no values), or None
    without gold."""
    if record.gold is None:
        return None
    return [(tag, "") for tag in record.gold]


def examples_from_records(
    records: Iterable[ClassifyRecord],
    labels: LabelSet,
    *,
    multi_label: bool,
    limit: int = POOL_LIMIT,
) -> list[Example]:
    """A pool from gold-labelled records: one example per distinct text, its `mentions`
    mapping each gold label's name to `()`.

    Gold tags the label set does not list are left out, as the model is never asked for them;
    a record left with no label (single-label: not exactly one) is skipped, and so are records
    without gold. A multi-label record whose gold is empty is an example of no label.
    """
    by_tag = labels.by_tag()
    pool: list[Example] = []
    seen: set[str] = set()
    for record in records:
        if record.gold is None or record.text in seen or not record.text.strip():
            continue
        names = {by_tag[tag].name for tag in record.gold if tag in by_tag}
        if (len(names) != 1 and not multi_label) or (record.gold and not names):
            continue
        seen.add(record.text)
        ordered = [t.name for t in labels.labels if t.name in names]
        pool.append(Example(text=record.text, mentions={name: () for name in ordered}))
    if len(pool) > limit:
        keep = sorted(random.Random(_SEED).sample(range(len(pool)), limit))
        pool = [pool[i] for i in keep]
    return pool


def oracle_answer(
    gold: Sequence[tuple[str, str]],
    labels: LabelSet,
    noise: float,
    rng: random.Random | None,
    *,
    multi_label: bool,
) -> dict[str, Any]:
    """The simulator's answer for a text whose gold is `gold` (`[]`: a text it does not know).

    Single-label: `{"label": name}`, with probability `noise` another label's name; an unknown
    text (or a gold tag the label set does not list) gets the first label. Multi-label:
    `{"labels": [name, ...]}` in label-set order, each gold label with probability `noise`
    dropped or (as often) swapped for another label; an unknown text gets `[]`.
    """
    names = [t.name for t in labels.labels]
    by_tag = labels.by_tag()
    given = [by_tag[tag].name for tag, _ in gold if tag in by_tag]
    if not multi_label:
        name = given[0] if given else (names[0] if names else "")
        if rng is not None and given and rng.random() < noise:
            others = [n for n in names if n != name]
            if others:
                name = rng.choice(others)
        return {SINGLE_KEY: name}
    chosen: set[str] = set()
    for name in given:
        if rng is not None and rng.random() < noise:
            others = [n for n in names if n != name and n not in chosen and n not in given]
            if not others or rng.random() < 0.5:
                continue
            name = rng.choice(others)
        chosen.add(name)
    return {MULTI_KEY: [n for n in names if n in chosen]}
