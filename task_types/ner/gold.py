"""A sentence's gold mentions, read from its BIO tags: the simulator's answers and the
few-shot pool's examples."""

from __future__ import annotations

import random
from collections.abc import Iterable

from prelabel.errors import DatasetError
from task_types.base import Example
from task_types.ner.bio import TagError, mention_spans
from task_types.ner.model import NerRecord, Ontology

#: Examples kept in a pool; a larger train split is sampled (seeded) down to this.
POOL_LIMIT = 20_000
_SEED = 0


def gold_mentions(record: NerRecord) -> list[tuple[str, str]] | None:
    """`(tag type, mention text)` of a record's gold mentions in order of appearance, or None
    without gold. A mention's text is the record's text from its first token's start to its
    last token's end (for `NerRecord.from_tokens`, `" ".join(tokens[b:e])`)."""
    tags = record.gold_tags
    if tags is None:
        return None
    if len(tags) != len(record.tokens):
        raise DatasetError(
            f"record {record.id}: {len(tags)} gold tags for {len(record.tokens)} tokens; "
            "fix the dataset's tag column"
        )
    try:
        spans = mention_spans(tags)
    except TagError as exc:
        raise DatasetError(f"record {record.id}: {exc}; use IOB2 tags") from exc
    return [
        (kind, record.text[record.offsets[b][0] : record.offsets[e - 1][1]]) for kind, b, e in spans
    ]


def examples_from_records(
    records: Iterable[NerRecord], ontology: Ontology, limit: int = POOL_LIMIT
) -> list[Example]:
    """A pool from gold-labelled records: one example per distinct text, mentions by type name.

    Gold types the ontology does not list are left out of the answers, as the model is never
    asked for them. Records without gold tags are skipped.
    """
    by_tag = ontology.by_tag()
    pool: list[Example] = []
    seen: set[str] = set()
    for record in records:
        if record.gold_tags is None or record.text in seen or not record.text.strip():
            continue
        seen.add(record.text)
        mentions: dict[str, list[str]] = {t.name: [] for t in ontology.labels}
        for tag, text in gold_mentions(record) or ():
            if tag in by_tag:
                mentions[by_tag[tag].name].append(text)
        pool.append(Example(text=record.text, mentions=mentions))
    if len(pool) > limit:
        keep = sorted(random.Random(_SEED).sample(range(len(pool)), limit))
        pool = [pool[i] for i in keep]
    return pool
