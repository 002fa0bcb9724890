"""Bootstrap intervals and the paired bootstrap test, against slow reference loops and
hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_types.bootstrap import (
    bootstrap_intervals,
    paired_bootstrap,
    resample_weights,
    resampled_sums,
    scores,
)
from task_types.ner.scores import entity_scores, item_counts

TAG = st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"])
PAIRS = st.lists(st.lists(st.tuples(TAG, TAG), min_size=1, max_size=8), min_size=1, max_size=8)


@given(PAIRS)
def test_scores_from_counts_equal_seqeval(pairs):
    gold = [[g for g, _ in s] for s in pairs]
    pred = [[p for _, p in s] for s in pairs]
    reference = entity_scores(gold, pred)
    types = list(reference.per_type)
    s = scores(item_counts(gold, pred, types).sum(0).astype(float))
    for i, t in enumerate(types):
        r = reference.per_type[t]
        assert (s.precision[i], s.recall[i], s.f1[i]) == pytest.approx(
            (r.precision, r.recall, r.f1)
        )
    m, a = reference.micro, reference.macro
    assert (float(s.micro_precision), float(s.micro_recall), float(s.micro_f1)) == pytest.approx(
        (m.precision, m.recall, m.f1)
    )
    assert (float(s.macro_precision), float(s.macro_recall), float(s.macro_f1)) == pytest.approx(
        (a.precision, a.recall, a.f1)
    )


def test_item_counts_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    counts = item_counts(gold, pred, ["LOC", "PER"])
    # per item, per type: (tp, gold, pred)
    assert counts.tolist() == [[[0, 1, 0], [1, 1, 1]], [[1, 1, 1], [0, 0, 1]]]


def test_weights_are_draws_of_every_item_count():
    w = resample_weights(items=7, resamples=50, seed=3)
    assert w.shape == (50, 7)
    assert (w.sum(axis=1) == 7).all()
    assert (w >= 0).all()
    assert np.array_equal(w, resample_weights(items=7, resamples=50, seed=3))
    assert not np.array_equal(w, resample_weights(items=7, resamples=50, seed=4))


def _reference_micro_f1(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Slow and plain: rebuild each resample's totals item by item."""
    out = []
    for row in weights:
        tp = gold = pred = 0.0
        for item, times in enumerate(row):
            for t in range(counts.shape[1]):
                tp += times * counts[item, t, 0]
                gold += times * counts[item, t, 1]
                pred += times * counts[item, t, 2]
        out.append(2 * tp / (gold + pred) if gold + pred else 0.0)
    return np.array(out)


def test_interval_matches_a_reference_loop():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(40, 3, 3))
    counts[:, :, 0] = np.minimum(counts[:, :, 0], np.minimum(counts[:, :, 1], counts[:, :, 2]))
    weights = resample_weights(40, 200, seed=11)
    fast = scores(resampled_sums(counts, weights)).micro_f1
    slow = _reference_micro_f1(counts, weights)
    assert fast == pytest.approx(slow)
    iv = bootstrap_intervals(counts, ["A", "B", "C"], resamples=200, seed=11)
    low, high = np.percentile(slow, [2.5, 97.5])
    assert (iv.micro.f1.low, iv.micro.f1.high) == pytest.approx((low, high))
    assert iv.resamples == 200 and iv.seed == 11 and iv.level == 0.95


@settings(max_examples=30)
@given(PAIRS, st.integers(0, 2**16))
def test_point_estimate_lies_in_its_interval_for_the_whole_data(pairs, seed):
    gold = [[g for g, _ in s] for s in pairs]
    pred = [[p for _, p in s] for s in pairs]
    reference = entity_scores(gold, pred)
    types = list(reference.per_type)
    iv = bootstrap_intervals(item_counts(gold, pred, types), types, resamples=200, seed=seed)
    for t in types:
        assert 0.0 <= iv.per_type[t].f1.low <= iv.per_type[t].f1.high <= 1.0
    assert iv.micro.f1.low <= iv.micro.f1.high


def test_perfect_predictions_have_a_degenerate_interval():
    gold = [["B-PER", "O"], ["B-LOC", "I-LOC"], ["O", "B-ORG"]]
    counts = item_counts(gold, gold, ["LOC", "ORG", "PER"])
    iv = bootstrap_intervals(counts, ["LOC", "ORG", "PER"], resamples=100, seed=0)
    assert (iv.micro.f1.low, iv.micro.f1.high) == (1.0, 1.0)


def test_no_items_gives_zero_intervals():
    counts = np.zeros((0, 2, 3), dtype=np.int64)
    iv = bootstrap_intervals(counts, ["A", "B"], resamples=100)
    assert iv.resamples == 0 and iv.micro.f1.high == 0.0 and set(iv.per_type) == {"A", "B"}


def _reference_p(counts_a, counts_b, weights) -> float:
    a = _reference_micro_f1(counts_a, weights)
    b = _reference_micro_f1(counts_b, weights)
    full_a = _reference_micro_f1(counts_a, np.ones((1, counts_a.shape[0])))[0]
    full_b = _reference_micro_f1(counts_b, np.ones((1, counts_b.shape[0])))[0]
    observed = full_b - full_a
    flips = [(d == 0) or (np.sign(d) != np.sign(observed)) for d in b - a]
    return sum(flips) / len(flips)


def test_paired_p_value_matches_its_definition():
    rng = np.random.default_rng(5)
    gold = rng.integers(1, 4, size=(60, 2))
    tp_a = np.minimum(gold, rng.integers(0, 4, size=(60, 2)))
    tp_b = np.minimum(gold, rng.integers(0, 4, size=(60, 2)))
    counts_a = np.stack([tp_a, gold, gold], axis=-1)
    counts_b = np.stack([tp_b, gold, gold], axis=-1)
    result = paired_bootstrap(counts_a, counts_b, ["X", "Y"], resamples=300, seed=9)
    expected = _reference_p(counts_a, counts_b, resample_weights(60, 300, seed=9))
    assert result.micro.p_value == pytest.approx(expected)
    assert result.micro.low <= result.micro.delta <= result.micro.high
    assert result.items == 60 and result.resamples == 300


def test_paired_identical_runs_and_a_uniformly_better_run():
    gold = [["B-PER", "O", "B-LOC"]] * 20
    worse = [["B-PER", "O", "O"]] * 20
    types = ["LOC", "PER"]
    same = paired_bootstrap(
        item_counts(gold, worse, types), item_counts(gold, worse, types), types, resamples=100
    )
    assert same.micro.delta == 0.0 and same.micro.p_value == 1.0
    better = paired_bootstrap(
        item_counts(gold, worse, types), item_counts(gold, gold, types), types, resamples=100
    )
    assert better.micro.delta > 0 and better.micro.p_value == 0.0
    assert better.per_type["LOC"].a == 0.0 and better.per_type["LOC"].b == 1.0
    assert better.per_type["PER"].delta == 0.0 and better.per_type["PER"].p_value == 1.0
    # B worse than A: the observed sign is negative, and every resample agrees.
    reverse = paired_bootstrap(
        item_counts(gold, gold, types), item_counts(gold, worse, types), types, resamples=100
    )
    assert reverse.micro.delta < 0 and reverse.micro.p_value == 0.0


def test_paired_needs_the_same_items():
    with pytest.raises(ValueError, match="shapes differ"):
        paired_bootstrap(np.zeros((3, 1, 3)), np.zeros((4, 1, 3)), ["X"])
