"""Few-shot examples: a pool from gold data, and selectors that pick from it, pluggably."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from prelabel.errors import ConfigError
from task_types import Example
from task_types.ner.gold import examples_from_records
from task_types.ner.model import EntityType, NerRecord, Ontology, from_tags
from workers.fewshot import (
    STRATEGIES,
    RandomSelector,
    SimilarSelector,
    make_selector,
    pool_from_json,
    pool_to_json,
    register_strategy,
    selector_for_run,
)

CONLL = from_tags(["LOC", "MISC", "ORG", "PER"])


def rec(i: int, text: str, tags: str | None) -> NerRecord:
    return NerRecord.from_tokens(f"r{i}", text.split(), tags.split() if tags else None)


def test_pool_mentions_come_from_gold_in_order_of_appearance() -> None:
    records = [
        rec(0, "Paris fans love Paris and Peter Smith", "B-LOC O O B-LOC O B-PER I-PER"),
        rec(1, "German EU talks", "I-MISC B-ORG O"),  # IOB1: an I- after O opens a mention
        rec(2, "no gold here", None),
        rec(3, "Paris fans love Paris and Peter Smith", "O O O O O O O"),  # same text again
    ]
    pool = examples_from_records(records, CONLL)
    assert [e.text for e in pool] == [records[0].text, records[1].text]
    first = pool[0].mentions
    assert first["LOCATION"] == ["Paris", "Paris"] and first["PERSON"] == ["Peter Smith"]
    assert list(first) == [t.name for t in CONLL.labels]
    assert pool[1].mentions["MISCELLANEOUS"] == ["German"]
    assert pool[1].mentions["ORGANIZATION"] == ["EU"]


def test_pool_leaves_out_types_the_ontology_does_not_ask_for() -> None:
    people = Ontology(labels=(EntityType(name="PERSON", tag="PER"),))
    pool = examples_from_records([rec(0, "Ann in Rome", "B-PER O B-LOC")], people)
    assert dict(pool[0].mentions) == {"PERSON": ["Ann"]}


def test_pool_is_capped_by_a_seeded_sample() -> None:
    records = [rec(i, f"sentence {i}", "O O") for i in range(50)]
    a = examples_from_records(records, CONLL, limit=10)
    b = examples_from_records(records, CONLL, limit=10)
    assert len(a) == 10 and [e.text for e in a] == [e.text for e in b]


def test_pool_round_trips_through_json() -> None:
    pool = [Example("Ann in Zürich", {"PERSON": ["Ann"], "LOCATION": ["Zürich"]})]
    assert pool_from_json(pool_to_json(pool)) == [
        Example("Ann in Zürich", {"PERSON": ["Ann"], "LOCATION": ["Zürich"]})
    ]


POOL = [
    Example("Manchester United beat Chelsea 2-1 in the league", {"ORGANIZATION": ["x"]}),
    Example("Shares in Siemens rose on the Frankfurt stock exchange", {"ORGANIZATION": ["y"]}),
    Example("The prime minister met the president in Paris", {"LOCATION": ["Paris"]}),
    Example("Arsenal drew 0-0 with Chelsea in the league", {"ORGANIZATION": ["z"]}),
    Example("Oil prices fell in London trading", {"LOCATION": ["London"]}),
    Example("Rain is expected in Berlin", {"LOCATION": ["Berlin"]}),
]


def texts(examples: Sequence[Example]) -> list[str]:
    return [e.text for e in examples]


def test_random_examples_are_the_same_for_every_request() -> None:
    selector = RandomSelector(POOL)
    a = selector.select(["Liverpool won"], 3)
    b = selector.select(["Stocks fell", "Rain in Rome"], 3)
    assert a == b and len(a) == 3
    assert RandomSelector(POOL).select(["x"], 3) == a  # seeded: the same in every process
    assert RandomSelector(POOL, seed=1).select(["x"], 6) != RandomSelector(POOL).select(["x"], 6)


def test_random_never_shows_a_sentence_being_labelled() -> None:
    selector = RandomSelector(POOL)
    shown = selector.select(["x"], 3)
    again = selector.select([shown[0].text], 3)
    assert shown[0] not in again and len(again) == 3
    assert again[:2] == shown[1:]  # the rest of the fixed set stays in place


def test_similar_picks_the_nearest_examples_most_similar_last() -> None:
    chosen = SimilarSelector(POOL).select(["Chelsea lost to Arsenal in the league"], 2)
    assert texts(chosen) == [POOL[0].text, POOL[3].text]


def test_similar_gives_every_sentence_of_a_batch_its_nearest_example_first() -> None:
    batch = [
        "Arsenal beat Chelsea 1-0 in the league",
        "Siemens shares rose in Frankfurt",
        "Rain fell in Berlin",
    ]
    chosen = texts(SimilarSelector(POOL).select(batch, 3))
    assert set(chosen) == {POOL[3].text, POOL[1].text, POOL[5].text}


def test_similar_never_shows_a_sentence_being_labelled_and_is_deterministic() -> None:
    selector = SimilarSelector(POOL)
    chosen = selector.select([POOL[0].text, POOL[2].text], 4)
    assert POOL[0] not in chosen and POOL[2] not in chosen
    assert len(chosen) == 4 and len(set(texts(chosen))) == 4
    assert SimilarSelector(POOL).select([POOL[0].text, POOL[2].text], 4) == chosen
    everything = selector.select([POOL[0].text], 50)
    assert len(everything) == len(POOL) - 1


def test_no_examples_asked_or_none_to_give() -> None:
    assert SimilarSelector(POOL).select(["anything"], 0) == []
    assert SimilarSelector([]).select(["anything"], 3) == []
    assert RandomSelector([]).select(["anything"], 3) == []


class FirstSelector:
    """A custom strategy: the first k examples of the pool."""

    def __init__(self, pool: Sequence[Example]) -> None:
        self.pool = list(pool)

    def select(self, texts: Sequence[str], k: int) -> list[Example]:
        return self.pool[:k]


def test_strategies_are_pluggable_and_cached_once_per_process_and_run() -> None:
    register_strategy("first", FirstSelector)
    try:
        loads: list[int] = []

        def load() -> str:
            loads.append(1)
            return pool_to_json(POOL)

        one = selector_for_run("run-fewshot-test", "first", load)
        two = selector_for_run("run-fewshot-test", "first", load)
        assert one is two and len(loads) == 1
        assert one.select(["x"], 2) == POOL[:2]
        assert selector_for_run("run-fewshot-test-2", "first", lambda: None).select(["x"], 2) == []
    finally:
        del STRATEGIES["first"]
    with pytest.raises(ConfigError, match="--few-shot-strategy 'first' is unknown"):
        make_selector("first", POOL)
