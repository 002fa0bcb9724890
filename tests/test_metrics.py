"""Entity-level and token-level scores against hand-computed cases, and the span cross-check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from prelabel.errors import DatasetError
from prelabel.figures import RunFigures
from task_types.ner.bio import spans, to_iob2
from task_types.ner.evaluation import evaluate
from task_types.ner.scores import TOKEN_LEVEL_LABEL, entity_scores, token_scores

# (name, gold, pred, micro (tp, gold, pred), micro (P, R, F1), per type {type: (tp, gold, pred)})
ENTITY_CASES = [
    (
        "perfect match",
        [["B-PER", "I-PER", "O", "B-LOC"]],
        [["B-PER", "I-PER", "O", "B-LOC"]],
        (2, 2, 2),
        (1.0, 1.0, 1.0),
        {"PER": (1, 1, 1), "LOC": (1, 1, 1)},
    ),
    (
        "one missed entity",
        [["B-PER", "I-PER", "O", "B-LOC"]],
        [["B-PER", "I-PER", "O", "O"]],
        (1, 2, 1),
        (1.0, 1 / 2, 2 / 3),
        {"PER": (1, 1, 1), "LOC": (0, 1, 0)},
    ),
    (
        "one spurious entity",
        [["B-PER", "O", "O"]],
        [["B-PER", "O", "B-ORG"]],
        (1, 1, 2),
        (1 / 2, 1.0, 2 / 3),
        {"PER": (1, 1, 1), "ORG": (0, 0, 1)},
    ),
    (
        "boundary error is a FP and a FN",
        [["B-PER", "I-PER", "O"]],
        [["B-PER", "O", "O"]],
        (0, 1, 1),
        (0.0, 0.0, 0.0),
        {"PER": (0, 1, 1)},
    ),
    (
        "type error is a FP and a FN",
        [["B-PER", "I-PER", "O"]],
        [["B-ORG", "I-ORG", "O"]],
        (0, 1, 1),
        (0.0, 0.0, 0.0),
        {"PER": (0, 1, 0), "ORG": (0, 0, 1)},
    ),
    (
        "adjacent same-type entities stay apart",
        [["B-LOC", "B-LOC", "O"]],
        [["B-LOC", "I-LOC", "O"]],
        (0, 2, 1),
        (0.0, 0.0, 0.0),
        {"LOC": (0, 2, 1)},
    ),
    (
        "entities spread over sentences",
        [["B-PER"], ["O", "B-PER"]],
        [["B-PER"], ["B-PER", "O"]],
        (1, 2, 2),
        (1 / 2, 1 / 2, 1 / 2),
        {"PER": (1, 2, 2)},
    ),
]


@pytest.mark.parametrize(
    ("gold", "pred", "micro_counts", "micro_prf", "per_type"),
    [case[1:] for case in ENTITY_CASES],
    ids=[case[0] for case in ENTITY_CASES],
)
def test_entity_scores_by_hand(gold, pred, micro_counts, micro_prf, per_type):
    scores = entity_scores(gold, pred)
    micro = scores.micro
    assert (micro.tp, micro.support, micro.predicted) == micro_counts
    assert (micro.precision, micro.recall, micro.f1) == pytest.approx(micro_prf)
    got = {t: (s.tp, s.support, s.predicted) for t, s in scores.per_type.items()}
    assert got == per_type
    own = {t: (c.tp, c.gold, c.pred) for t, c in scores.span_counts.items()}
    assert own == per_type


def test_micro_and_macro_by_hand():
    gold = [["B-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"], ["B-ORG", "O", "O"]]
    pred = [["B-PER", "O", "B-PER", "O", "B-LOC", "O"], ["B-ORG", "O", "B-ORG"]]
    scores = entity_scores(gold, pred)
    # PER 2/2 right; LOC's boundary is wrong; ORG right once, plus one spurious ORG.
    expected = {"PER": (1.0, 1.0, 1.0), "LOC": (0.0, 0.0, 0.0), "ORG": (0.5, 1.0, 2 / 3)}
    for t, prf in expected.items():
        s = scores.per_type[t]
        assert (s.precision, s.recall, s.f1) == pytest.approx(prf)
    # micro: tp 3, gold 4, pred 5.
    m = scores.micro
    assert (m.precision, m.recall, m.f1) == pytest.approx((3 / 5, 3 / 4, 2 / 3))
    # macro: the unweighted mean over the three types.
    a = scores.macro
    assert (a.precision, a.recall, a.f1) == pytest.approx((1 / 2, 2 / 3, 5 / 9))
    assert a.f1 < m.f1


@pytest.mark.parametrize(
    ("iob1", "iob2"),
    [
        (["I-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),
        (["O", "I-LOC", "B-LOC", "I-LOC"], ["O", "B-LOC", "B-LOC", "I-LOC"]),
        (["I-PER", "I-ORG", "I-ORG"], ["B-PER", "B-ORG", "I-ORG"]),
        (["B-MISC", "I-MISC", "O", "I-MISC"], ["B-MISC", "I-MISC", "O", "B-MISC"]),
        ([], []),
    ],
)
def test_to_iob2(iob1, iob2):
    assert to_iob2(iob1) == iob2
    assert to_iob2(iob2) == iob2


def test_iob1_input_scores_as_its_iob2_form():
    iob1 = [["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]]
    iob2 = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    from_iob1 = entity_scores(iob1, pred)
    assert from_iob1 == entity_scores(iob2, pred)
    assert (from_iob1.micro.tp, from_iob1.micro.support) == (3, 4)
    assert token_scores(iob1, pred) == token_scores(iob2, pred)


def test_token_level_includes_o_and_reads_higher():
    gold = [["B-PER", "I-PER", "O", "O", "O", "O"]]
    pred = [["B-PER", "O", "O", "O", "O", "O"]]
    entity = entity_scores(gold, pred)
    token = token_scores(gold, pred)
    assert entity.micro.f1 == 0.0
    assert set(token.per_tag) == {"B-PER", "I-PER", "O"}
    assert set(token.per_type) == {"PER", "O"}
    o = token.per_tag["O"]
    assert (o.precision, o.recall, o.f1, o.support) == pytest.approx((4 / 5, 1.0, 8 / 9, 4))
    per = token.per_type["PER"]
    assert (per.precision, per.recall, per.f1, per.support) == pytest.approx((1.0, 0.5, 2 / 3, 2))
    # weighted by gold support: B-PER 1 x 1, I-PER 1 x 0, O 4 x 8/9.
    assert token.weighted.f1 == pytest.approx(41 / 54)
    assert token.weighted_by_type.f1 == pytest.approx(22 / 27)
    assert token.weighted.f1 > entity.micro.f1
    assert token.label == TOKEN_LEVEL_LABEL
    assert "includes O" in token.label


def test_nothing_to_score_gives_zeros():
    scores = entity_scores([["O", "O"], []], [["O", "O"], []])
    assert scores.per_type == {}
    assert scores.micro.f1 == 0.0
    assert entity_scores([], []).micro.support == 0
    assert token_scores([], []).weighted.support == 0


@pytest.mark.parametrize(
    ("gold", "pred", "needle"),
    [
        ([["O"]], [], "1 gold sequences but 0"),
        ([["O", "O"]], [["O"]], "item 0: 2 gold tags but 1"),
        ([["B-PER"]], [["PER"]], "item 0 (prediction), token 0: tag 'PER'"),
        ([["O", "E-PER"]], [["O", "O"]], "item 0 (gold), token 1"),
        ([["B-"]], [["O"]], "tag 'B-'"),
    ],
)
def test_bad_input_names_the_item(gold, pred, needle):
    with pytest.raises(DatasetError) as info:
        entity_scores(gold, pred)
    assert needle in str(info.value)
    with pytest.raises(DatasetError):
        token_scores(gold, pred)


def test_evaluate_counts_items_and_keeps_figures():
    figures = RunFigures(items=3, labeled=2, failed=1, wall_seconds=4.0, model="m", simulator=True)
    gold = [["B-PER", "O"], ["O", "B-LOC", "I-LOC"]]
    ev = evaluate(gold, gold, figures)
    assert (ev.evaluated_items, ev.evaluated_tokens) == (2, 5)
    assert ev.entity.micro.f1 == 1.0
    assert ev.figures.items_per_second == pytest.approx(3 / 4)
    assert type(ev).model_validate(ev.model_dump(mode="json")) == ev


TAG = st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
PAIRS = st.lists(st.lists(st.tuples(TAG, TAG), max_size=12), max_size=6)


@given(PAIRS)
def test_span_counts_agree_with_seqeval(pairs):
    gold = [[g for g, _ in sent] for sent in pairs]
    pred = [[p for _, p in sent] for sent in pairs]
    scores = entity_scores(gold, pred)
    own = {t: (c.tp, c.gold, c.pred) for t, c in scores.span_counts.items()}
    seqeval = {t: (s.tp, s.support, s.predicted) for t, s in scores.per_type.items()}
    assert own == seqeval
    assert scores.micro.tp == sum(c.tp for c in scores.span_counts.values())


@given(st.lists(TAG, max_size=20))
def test_spans_read_tags_like_conlleval(tags):
    # seqeval's default (conlleval-compatible) chunker, inclusive ends, on the raw tags.
    theirs = {(t, start, end + 1) for t, start, end in get_entities(list(tags))}
    assert spans(tags) == theirs
    assert spans(to_iob2(tags)) == spans(tags)
    assert to_iob2(to_iob2(tags)) == to_iob2(tags)


def test_evaluate_items_scores_only_labeled_items_with_gold():
    from task_types.ner.evaluation import Item, evaluate_items
    from task_types.ner.model import Unaligned

    items = [
        Item("a", ("Paris", "is", "nice"), ("B-LOC", "O", "O"), ("B-LOC", "O", "O")),
        Item("b", ("New", "York"), ("B-LOC", "I-LOC"), ("O", "O"), unaligned=(
            Unaligned(type="LOC", mention="new  york", reason="not found"),
            Unaligned(type="PER", mention="Bob", reason="not found"),
        )),
        Item("c", ("Bob",), ("B-PER",), None, error="timeout"),
        Item("d", ("Bob",), ("B-PER",), None, error="timeout"),
        Item("e", ("Ann",), None, ("B-PER",)),
    ]  # fmt: skip
    ev = evaluate_items(items, RunFigures(), resamples=50)
    assert (ev.evaluated_items, ev.entity.micro.support, ev.entity.micro.tp) == (2, 2, 1)
    losses = ev.losses
    assert (losses.failed, losses.failed_reasons) == (2, {"timeout": 2})
    assert [x.id for x in losses.failed_examples] == ["c", "d"]
    assert (losses.unaligned, losses.unaligned_items, losses.without_gold) == (2, 1, 1)
    # "new  york" is the missed "New York" once whitespace and case are set aside; Bob is not.
    assert losses.unaligned_missed == 1
    assert losses.unaligned_reasons == {"not found": 2}
    assert ev.errors is not None and ev.errors.worst == ("b",)


def test_cost_against_quality():
    from prelabel.figures import cost_quality

    paid = cost_quality(0.9, RunFigures(prompt_tokens=1500, completion_tokens=500, cost_usd=0.5))
    assert (paid.f1_points, paid.tokens) == (pytest.approx(90.0), 2000)
    assert paid.f1_per_dollar == pytest.approx(180.0)
    assert paid.f1_per_1k_tokens == pytest.approx(45.0)
    unknown = cost_quality(0.9, RunFigures())
    assert (unknown.cost_usd, unknown.f1_per_dollar, unknown.f1_per_1k_tokens) == (None, None, None)
