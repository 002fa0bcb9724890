"""Error analysis: pairing of gold and predicted spans, confusion matrices, frequent errors,
worst items, and the invariants that tie error kinds to strict false positives/negatives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from task_types.ner.bio import spans
from task_types.ner.errors import NO_ENTITY, analyse, item_diff, pair_spans, token_confusion
from task_types.ner.scores import entity_scores

# (name, gold tags, pred tags, expected errors as (kind, gold span, pred span), tp count)
CASES = [
    ("exact match", ["B-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"], [], 1),
    (
        "type error",
        ["B-PER", "I-PER", "O"],
        ["B-ORG", "I-ORG", "O"],
        [("type", ("PER", 0, 2), ("ORG", 0, 2))],
        0,
    ),
    (
        "boundary error: too short",
        ["B-LOC", "I-LOC", "I-LOC"],
        ["B-LOC", "I-LOC", "O"],
        [("boundary", ("LOC", 0, 3), ("LOC", 0, 2))],
        0,
    ),
    (
        "boundary error: too long",
        ["O", "B-ORG", "O"],
        ["B-ORG", "I-ORG", "O"],
        [("boundary", ("ORG", 1, 2), ("ORG", 0, 2))],
        0,
    ),
    (
        "type and boundary",
        ["B-ORG", "I-ORG", "I-ORG"],
        ["O", "B-LOC", "O"],
        [("type+boundary", ("ORG", 0, 3), ("LOC", 1, 2))],
        0,
    ),
    ("missed", ["B-PER", "O"], ["O", "O"], [("missed", ("PER", 0, 1), None)], 0),
    ("spurious", ["O", "O"], ["O", "B-MISC"], [("spurious", None, ("MISC", 1, 2))], 0),
    (
        "split entity: one half pairs, the other is spurious",
        ["B-LOC", "I-LOC", "I-LOC", "I-LOC"],
        ["B-LOC", "O", "B-LOC", "I-LOC"],
        [("boundary", ("LOC", 0, 4), ("LOC", 2, 4)), ("spurious", None, ("LOC", 0, 1))],
        0,
    ),
    (
        "same-type overlap wins over another type with more overlap",
        ["B-PER", "I-PER", "I-PER", "O"],
        ["B-PER", "B-ORG", "I-ORG", "O"],
        [("boundary", ("PER", 0, 3), ("PER", 0, 1)), ("spurious", None, ("ORG", 1, 3))],
        0,
    ),
    (
        "exact spans pair before overlaps",
        ["B-PER", "O", "B-LOC"],
        ["B-PER", "O", "B-ORG"],
        [("type", ("LOC", 2, 3), ("ORG", 2, 3))],
        1,
    ),
    (
        "IOB1 input reads as IOB2",
        ["I-PER", "I-PER", "O"],
        ["I-PER", "O", "O"],
        [("boundary", ("PER", 0, 2), ("PER", 0, 1))],
        0,
    ),
]


@pytest.mark.parametrize(
    ("gold", "pred", "errors", "tp"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_pairing_by_hand(gold, pred, errors, tp):
    diff = item_diff("x", [f"w{i}" for i in range(len(gold))], gold, pred)
    got = [
        (
            e.kind,
            (e.gold.type, e.gold.start, e.gold.end) if e.gold else None,
            (e.pred.type, e.pred.start, e.pred.end) if e.pred else None,
        )
        for e in diff.errors
    ]
    assert sorted(got, key=str) == sorted(errors, key=str)
    assert diff.tp == tp


def test_span_refs_carry_the_tokens_text():
    diff = item_diff(
        "a",
        ["New", "York", "City", "is", "big"],
        ["B-LOC", "I-LOC", "I-LOC", "O", "O"],
        ["B-LOC", "I-LOC", "O", "O", "O"],
    )
    (error,) = diff.errors
    assert error.gold is not None and error.pred is not None
    assert (error.gold.text, error.pred.text) == ("New York City", "New York")


TAG = st.sampled_from(["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"])
SENTENCES = st.lists(st.lists(st.tuples(TAG, TAG), max_size=10), max_size=6)


@given(SENTENCES)
def test_error_kinds_add_up_to_strict_false_positives_and_negatives(pairs):
    gold = [[g for g, _ in s] for s in pairs]
    pred = [[p for _, p in s] for s in pairs]
    scores = entity_scores(gold, pred)
    analysis = analyse(
        [str(i) for i in range(len(gold))],
        [[f"w{k}" for k in range(len(s))] for s in gold],
        gold,
        pred,
    )
    k = analysis.kinds
    fn = scores.micro.support - scores.micro.tp
    fp = scores.micro.predicted - scores.micro.tp
    assert k["type"] + k["boundary"] + k["type+boundary"] + k["missed"] == fn
    assert k["type"] + k["boundary"] + k["type+boundary"] + k["spurious"] == fp
    # The span confusion counts every gold span once (its row) and every prediction once.
    span = analysis.span_confusion
    n = len(span.labels)
    gold_total = sum(span.counts[i][j] for i in range(n - 1) for j in range(n))
    pred_total = sum(span.counts[i][j] for i in range(n) for j in range(n - 1))
    assert gold_total == scores.micro.support
    assert pred_total == scores.micro.predicted
    assert span.labels[-1] == NO_ENTITY
    # Per-type kinds sum to the totals.
    for kind in k:
        assert sum(t[kind] for t in analysis.kinds_by_type.values()) == k[kind]


@given(st.lists(TAG, max_size=12), st.lists(TAG, max_size=12))
def test_every_span_is_used_at_most_once(gold_tags, pred_tags):
    n = min(len(gold_tags), len(pred_tags))
    g, p = spans(gold_tags[:n]), spans(pred_tags[:n])
    pairing = pair_spans(g, p)
    used_gold = [s for _, s, _ in pairing.errors if s is not None] + list(pairing.tp)
    used_pred = [s for _, _, s in pairing.errors if s is not None] + list(pairing.tp)
    assert sorted(used_gold) == sorted(g)
    assert sorted(used_pred) == sorted(p)


def test_confusions_frequent_errors_and_worst_items():
    tokens = [
        ["Paris", "is", "in", "France"],
        ["Paris", "Hilton", "sings"],
        ["Acme", "Corp", "hires"],
        ["Paris", "again"],
    ]
    gold = [
        ["B-LOC", "O", "O", "B-LOC"],
        ["B-PER", "I-PER", "O"],
        ["B-ORG", "I-ORG", "O"],
        ["B-LOC", "O"],
    ]
    pred = [
        ["B-PER", "O", "O", "O"],  # type error on Paris, France missed
        ["B-LOC", "O", "O"],  # type+boundary
        ["B-ORG", "I-ORG", "O"],  # correct
        ["B-PER", "O"],  # type error on Paris again
    ]
    a = analyse(["a", "b", "c", "d"], tokens, gold, pred, top=5, worst=2)
    assert a.kinds == {"type": 2, "boundary": 0, "type+boundary": 1, "missed": 1, "spurious": 0}
    assert a.kinds_by_type["LOC"] == {
        "type": 2,
        "boundary": 0,
        "type+boundary": 0,
        "missed": 1,
        "spurious": 0,
    }
    s = a.span_confusion
    assert s.labels == ("LOC", "ORG", "PER", "none")
    assert s.cell("LOC", "PER") == 2
    assert s.cell("PER", "LOC") == 1
    assert s.cell("ORG", "ORG") == 1
    assert s.cell("LOC", "none") == 1
    assert a.false_positives[0].text == "Paris"
    assert (a.false_positives[0].type, a.false_positives[0].count) == ("PER", 2)
    assert a.false_positives[0].kinds == {"type": 2}
    fn = {(f.text, f.type): f.count for f in a.false_negatives}
    assert fn == {("Paris", "LOC"): 2, ("France", "LOC"): 1, ("Paris Hilton", "PER"): 1}
    # Only items with errors have diffs; the worst has most errors.
    assert [d.id for d in a.diffs] == ["a", "b", "d"]
    assert a.worst == ("a", "b")
    t = a.token_confusion
    assert t.labels == ("LOC", "ORG", "PER", "O")
    assert t.cell("LOC", "PER") == 2 and t.cell("LOC", "O") == 1 and t.cell("PER", "LOC") == 1
    assert t.cell("PER", "O") == 1 and t.cell("ORG", "ORG") == 2 and t.cell("O", "O") == 5


def test_token_confusion_counts_every_token():
    gold = [["B-PER", "I-PER", "O"], ["O"]]
    pred = [["B-PER", "O", "B-LOC"], ["O"]]
    c = token_confusion(gold, pred)
    assert sum(sum(row) for row in c.counts) == 4
    assert c.cell("PER", "PER") == 1 and c.cell("PER", "O") == 1 and c.cell("O", "LOC") == 1
    assert token_confusion([], []).labels == ("O",)
