"""NER's records and results, and its label set under NER's names (entity types, ontology).

They subclass the core's models, so a run's shards and results keep their JSON shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prelabel.frozen import Frozen
from prelabel.model import ItemResult, Label, LabelSet, Record, Scored

#: Bumped whenever the messages change, so that cached answers are not reused.
PROMPT_VERSION = "ner-v3"

#: An entity type: what the model answers with (`name`) and what the BIO tags say (`tag`).
EntityType = Label
#: The entity types to label, in the order the prompt lists them.
Ontology = LabelSet


class NerRecord(Record):
    """A sentence to label: its tokens, the text built from them, and gold tags when known.

    `offsets[i]` is the `(start, end)` character span of `tokens[i]` in `text`, so that a
    character span found in `text` maps back to the dataset's own tokens.
    """

    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    gold_tags: tuple[str, ...] | None = None

    @classmethod
    def from_tokens(
        cls, id: str, tokens: Sequence[str], gold_tags: Sequence[str] | None = None
    ) -> NerRecord:
        """Join tokens with single spaces, remembering each token's character span."""
        offsets: list[tuple[int, int]] = []
        pos = 0
        for tok in tokens:
            offsets.append((pos, pos + len(tok)))
            pos += len(tok) + 1
        return cls(
            id=id,
            tokens=tuple(tokens),
            text=" ".join(tokens),
            offsets=tuple(offsets),
            gold_tags=tuple(gold_tags) if gold_tags is not None else None,
        )


CONLL_TYPES: tuple[EntityType, ...] = (
    EntityType(
        name="PERSON",
        tag="PER",
        description="names of people, real or fictional, including surnames alone",
    ),
    EntityType(
        name="ORGANIZATION",
        tag="ORG",
        description="companies, institutions, agencies, political parties, sports teams, "
        "bands and other named groups",
    ),
    EntityType(
        name="LOCATION",
        tag="LOC",
        description="countries, cities, regions, geographic features, addresses and facilities",
    ),
    EntityType(
        name="MISCELLANEOUS",
        tag="MISC",
        description="other named entities: nationalities, languages, events, works of art, "
        "products, and adjectives derived from names (e.g. German, British)",
    ),
)
#: CoNLL's four types: NER's default label set.
CONLL = Ontology(labels=CONLL_TYPES)


def from_tags(tags: Sequence[str]) -> Ontology:
    """An ontology for a dataset's own tag names; CoNLL tags keep their CoNLL names."""
    known = {t.tag: t for t in CONLL_TYPES}
    return Ontology(labels=tuple(known.get(tag, EntityType(name=tag, tag=tag)) for tag in tags))


class Entity(Frozen):
    """A labeled span: `text == record.text[start:end]`, `type` is the dataset's tag name."""

    type: str
    start: int
    end: int
    text: str


class Unaligned(Frozen):
    """A mention the model gave that could not be placed in the text, and why."""

    type: str
    mention: str
    reason: str


class NerResult(ItemResult):
    """An item's entities and IOB2 tags, and the mentions that could not be placed."""

    entities: tuple[Entity, ...] = ()
    tags: tuple[str, ...] = ()
    unaligned: tuple[Unaligned, ...] = ()
    prompt_version: str = PROMPT_VERSION

    def counts(self) -> dict[str, int]:
        return {"unaligned": len(self.unaligned)}


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a run as the evaluation sees it, whatever file it came from. `pred` is None
    for a failed item, `gold` None for an item without gold labels; `confidence` and
    `scores` are the run's (`--confidence`; None and () when not measured), and `offsets`
    each token's character span in the item's text, which places the scores' mentions on
    tokens (() when the file gives no text).
    """

    id: str
    tokens: tuple[str, ...]
    gold: tuple[str, ...] | None
    pred: tuple[str, ...] | None
    error: str | None = None
    unaligned: tuple[Unaligned, ...] = ()
    confidence: float | None = None
    scores: tuple[Scored, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()


__all__ = [
    "CONLL",
    "CONLL_TYPES",
    "PROMPT_VERSION",
    "Entity",
    "EntityType",
    "Item",
    "NerRecord",
    "NerResult",
    "Ontology",
    "Unaligned",
    "from_tags",
]
