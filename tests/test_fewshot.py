"""Few-shot examples: a pool from gold data, and selectors that pick from it, pluggably."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import task_types
from prelabel.errors import ConfigError
from prelabel.model import Label, LabelSet, RunConfig
from task_types import Example
from task_types.classify.model import ClassifyRecord
from task_types.ner.gold import examples_from_records
from task_types.ner.model import EntityType, NerRecord, Ontology, from_tags
from workers.fewshot import (
    STRATEGIES,
    FixedSelector,
    LabelsOf,
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

    def __init__(self, pool: Sequence[Example], labels_of: LabelsOf) -> None:
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


# --- fixed: one set for the run, chosen for coverage per token ---------------------------

NONE: dict[str, list[str]] = {"PERSON": [], "ORGANIZATION": [], "LOCATION": [], "MISCELLANEOUS": []}
#: o200k tokens of each text in brackets; the labels each shows.
COVERAGE_POOL = [
    Example("It rained .", NONE),  # [4] none
    Example("Ann met Bob .", NONE | {"PERSON": ["Ann", "Bob"]}),  # [4] PER
    Example(  # [12] all four
        "Ann of Acme flew to Paris for the Euro final .",
        {
            "PERSON": ["Ann"],
            "ORGANIZATION": ["Acme"],
            "LOCATION": ["Paris"],
            "MISCELLANEOUS": ["Euro"],
        },
    ),
    Example("Bob works at Acme .", NONE | {"PERSON": ["Bob"], "ORGANIZATION": ["Acme"]}),  # [6]
    Example("Rome is big .", NONE | {"LOCATION": ["Rome"]}),  # [4] LOC
    Example(  # [14] PER ORG
        "Ann and Bob and Carl and Dan and Eve met at Acme .",
        NONE | {"PERSON": ["Ann", "Bob", "Carl", "Dan", "Eve"], "ORGANIZATION": ["Acme"]},
    ),
]


def test_fixed_takes_typical_texts_with_the_most_new_labels_then_the_shortest() -> None:
    # Worked by hand: lengths 4, 4, 12, 6, 4, 14, upper median 6, so the typical texts are
    # 2, 3 and 5. The four-type sentence (2) shows the most; then every label is shown, and
    # the typical ones go shortest first (3, 5), then the rest (0, 1, 4, ties in pool order).
    selector = make_selector("fixed", COVERAGE_POOL, task_types.get("ner").example_labels)
    assert isinstance(selector, FixedSelector)
    order = [COVERAGE_POOL.index(e) for e in selector.select(["anything"], 6)]
    assert order == [2, 3, 5, 0, 1, 4]
    assert texts(selector.select(["x"], 3)) == texts([COVERAGE_POOL[i] for i in (2, 3, 5)])


def test_fixed_covers_the_labels_before_repeating_one() -> None:
    # Typical texts each showing one type: one of each before a second PER.
    pool = [
        Example("Ann and Bob met Carl .", NONE | {"PERSON": ["Ann", "Bob", "Carl"]}),
        Example("Dan and Eve met Fay .", NONE | {"PERSON": ["Dan", "Eve", "Fay"]}),
        Example("They flew to Rome today .", NONE | {"LOCATION": ["Rome"]}),
    ]
    chosen = FixedSelector(pool).select(["x"], 2)
    assert texts(chosen) == [pool[0].text, pool[2].text]


def test_fixed_is_the_same_for_every_request_and_every_process() -> None:
    one = FixedSelector(COVERAGE_POOL)
    assert (
        one.select(["a"], 3)
        == one.select(["b", "c"], 3)
        == FixedSelector(COVERAGE_POOL).select(["z"], 3)
    )
    assert one.select(["a"], 2) == one.select(["a"], 3)[:2]  # a larger K only adds
    assert len(one.select(["a"], 50)) == len(COVERAGE_POOL)
    assert FixedSelector([]).select(["a"], 3) == []


def test_fixed_never_shows_a_sentence_being_labelled() -> None:
    selector = FixedSelector(COVERAGE_POOL)
    # "Bob works at Acme" is being labelled: the next of the order takes its place, here only.
    chosen = selector.select([COVERAGE_POOL[3].text], 3)
    assert texts(chosen) == texts([COVERAGE_POOL[i] for i in (2, 5, 0)])
    assert texts(selector.select(["other"], 3)) == texts([COVERAGE_POOL[i] for i in (2, 3, 5)])


def test_fixed_reads_a_classification_examples_labels_from_its_keys() -> None:
    classify = task_types.get("classify")
    pool = [
        Example("Chelsea won the cup final again", {"Sports": ()}),  # [6]
        Example("Oil prices fell", {"Business": ()}),  # [3]
        Example("Stocks slid as oil fell", {"Business": ()}),
        Example("Sports", {"Sports": ()}),  # [1]
    ]
    assert classify.example_labels(pool[0]) == {"Sports"}
    assert task_types.get("ner").example_labels(COVERAGE_POOL[0]) == frozenset()
    chosen = make_selector("fixed", pool, classify.example_labels).select(["x"], 2)
    # Typical (at least the median length, 5): the two longer ones, shorter first on a tie.
    assert texts(chosen) == ["Stocks slid as oil fell", "Chelsea won the cup final again"]


def test_fixed_examples_make_one_prefix_before_the_items_for_every_task() -> None:
    """System first, then the examples: with `fixed` all but the items' message is the same
    for every full batch (the prompt cache's stable prefix), NER and classification alike."""
    from workers.requests import RequestBuilder

    ner_cfg = RunConfig(
        run_id="r",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        few_shot=2,
        few_shot_strategy="fixed",
        batch_size=2,
    )
    ner = RequestBuilder(
        ner_cfg, FixedSelector(COVERAGE_POOL, task_types.get("ner").example_labels)
    )
    a = ner.messages([rec(1, "Carl visited Oslo", None), rec(2, "Dan left", None)])
    b = ner.messages([rec(3, "Eve met Ann", None), rec(4, "Nothing here", None)])
    assert a[:-1] == b[:-1] and a[-1] != b[-1] and a[0]["role"] == "system"
    assert any(COVERAGE_POOL[3].text in m["content"] for m in a[:-1])

    classify = task_types.get("classify")
    cls_cfg = RunConfig(
        run_id="r",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        task="classify",
        labels=LabelSet(
            labels=(Label(name="Sports", tag="Sports"), Label(name="Business", tag="Business"))
        ),
        few_shot=1,
        few_shot_strategy="fixed",
        batch_size=2,
    )
    pool = [Example("Oil prices fell", {"Business": ()}), Example("Sports", {"Sports": ()})]
    builder = RequestBuilder(cls_cfg, FixedSelector(pool, classify.example_labels))
    one = [ClassifyRecord(id="a", text="Chelsea won"), ClassifyRecord(id="b", text="Oil rose")]
    two = [ClassifyRecord(id="c", text="Rain"), ClassifyRecord(id="d", text="Snow")]
    x, y = builder.messages(one), builder.messages(two)
    assert x[:-1] == y[:-1] and x[-1] != y[-1] and x[0]["role"] == "system"
