"""The domain model: records to label, the ontology, results and a run's configuration.

All of these are frozen pydantic models, so they cross process boundaries (Redis, files)
as JSON and come back validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from prelabel.frozen import Frozen

PROMPT_VERSION = "ner-v2"


class Record(Frozen):
    """One item to label: its tokens, the text built from them, and gold tags when known.

    `offsets[i]` is the `(start, end)` character span of `tokens[i]` in `text`, so that a
    character span found in `text` maps back to the dataset's own tokens.
    """

    id: str
    tokens: tuple[str, ...]
    text: str
    offsets: tuple[tuple[int, int], ...]
    gold_tags: tuple[str, ...] | None = None

    @classmethod
    def from_tokens(
        cls, id: str, tokens: Sequence[str], gold_tags: Sequence[str] | None = None
    ) -> Record:
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


class EntityType(Frozen):
    """An entity type as the model sees it (`name`), and as the dataset tags it (`tag`)."""

    name: str
    tag: str
    description: str = ""


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


class Ontology(Frozen):
    """The entity types to label, in the order the prompt lists them."""

    types: tuple[EntityType, ...] = CONLL_TYPES

    def by_name(self) -> dict[str, EntityType]:
        return {t.name: t for t in self.types}

    def by_tag(self) -> dict[str, EntityType]:
        return {t.tag: t for t in self.types}

    @classmethod
    def from_tags(cls, tags: Sequence[str]) -> Ontology:
        """An ontology for a dataset's own tag names; CoNLL tags keep their CoNLL names."""
        known = {t.tag: t for t in CONLL_TYPES}
        return cls(types=tuple(known.get(tag, EntityType(name=tag, tag=tag)) for tag in tags))


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


class Usage(Frozen):
    """Tokens and calls spent on one item (a batched call's usage is shared out)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0


ItemStatus = Literal["labeled", "failed"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


class ItemResult(Frozen):
    """What a worker commits for one item: its entities and tags, or its failure."""

    id: str
    status: ItemStatus
    entities: tuple[Entity, ...] = ()
    tags: tuple[str, ...] = ()
    unaligned: tuple[Unaligned, ...] = ()
    error: str | None = None
    usage: Usage = Usage()
    model: str = ""
    prompt_version: str = PROMPT_VERSION


class RunConfig(Frozen):
    """Everything a worker needs to label a run's items. It never holds an API key."""

    run_id: str
    model: str
    base_url: str
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    max_tokens: int = Field(512, gt=0)
    temperature: float = 0.0
    #: For reasoning models (o-series, gpt-5): how much they think before they answer. Their
    #: thinking counts against `max_tokens` (sent as `max_completion_tokens`).
    reasoning_effort: ReasoningEffort | None = None
    batch_size: int = Field(1, ge=1)
    shard_size: int = Field(50, ge=1)
    prompt_version: str = PROMPT_VERSION
    ontology: Ontology = Ontology()
    dataset: str = ""
    split: str = ""
    total: int = 0
    shards: int = 0
    created_at: float = 0.0
    #: Labelled examples per request (0: none), chosen by this strategy from the pool that
    #: the producer stored with the run (`RunKeys.fewshot`).
    few_shot: int = Field(0, ge=0, le=50)
    few_shot_strategy: str = "similar"
    #: `json_schema` (strict structured outputs), `json_object` (JSON mode), or `auto`: the
    #: schema, falling back to JSON mode when the endpoint rejects it.
    response_format: Literal["auto", "json_schema", "json_object"] = "auto"
    #: A user's system-prompt template (`--prompt-file`); None is the built-in one.
    system_template: str | None = None
    #: Reuse answers cached for identical requests (a rerun or a resume never pays twice).
    cache: bool = True
    #: Stop admitting calls once the run has spent this much (None: no budget).
    budget_usd: float | None = Field(None, gt=0)
    budget_tokens: int | None = Field(None, gt=0)
    #: USD per million prompt and completion tokens, resolved when the run is created.
    price_input: float | None = None
    price_output: float | None = None


#: Header on every simulator response, so reports can say the answers were not a model's.
SIMULATOR_HEADER = "x-prelabel-simulator"
#: Header naming a request's item ids (a JSON list). Sent to local endpoints only: it lets
#: the simulator tell apart identical sentences whose gold labels differ.
ITEM_IDS_HEADER = "x-prelabel-item-ids"
