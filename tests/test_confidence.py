"""The confidence figures (task_types.confidence_figures) against values computed by hand: ECE and
its bins, AUROC, precision at the least-confident shares, the review order, and the review
curve in confidence order and in random order."""

from __future__ import annotations

import pytest

from task_types.confidence_figures import (
    Outcome,
    ProposalOutcome,
    auroc,
    calibration,
    confidence_figures,
    precision_at,
    random_curve,
    review_curve,
    review_order,
    reviewed_count,
)


def test_ece_on_five_items_by_hand() -> None:
    # bin 0: 0.05 wrong -> |0 - 0.05| weighs 1/5; bin 1: 0.15 right, 0.12 wrong -> accuracy
    # 0.5, confidence 0.135, |0.365| weighs 2/5; bin 9: 0.95 right, 0.91 wrong -> |0.5 - 0.93|
    # weighs 2/5. ECE = 0.01 + 0.146 + 0.172 = 0.328.
    cal = calibration([0.05, 0.15, 0.12, 0.95, 0.91], [False, True, False, True, False])
    assert cal.count == 5
    assert cal.ece == pytest.approx(0.328)
    assert [b.count for b in cal.bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert cal.bins[1].confidence == pytest.approx(0.135)
    assert cal.bins[1].accuracy == pytest.approx(0.5)
    assert cal.bins[9].accuracy == pytest.approx(0.5)
    assert cal.bins[4].accuracy is None and cal.bins[4].confidence is None
    assert (cal.bins[3].low, cal.bins[3].high) == pytest.approx((0.3, 0.4))


def test_ece_edges_a_perfect_score_falls_in_the_last_bin() -> None:
    cal = calibration([1.0, 0.1, 0.0], [True, False, False])
    assert cal.bins[9].count == 1 and cal.bins[1].count == 1 and cal.bins[0].count == 1
    # 1.0 right (gap 0); 0.1 wrong (gap 0.1); 0.0 wrong (gap 0): ECE = 0.1 / 3.
    assert cal.ece == pytest.approx(0.1 / 3)


def test_a_calibrated_confidence_has_no_error() -> None:
    # Four items at 0.75, three of them right: the confidence says what happens.
    cal = calibration([0.75] * 4, [True, True, True, False])
    assert cal.ece == pytest.approx(0.0)


def test_auroc_by_hand_and_none_with_one_class() -> None:
    # wrong items' doubts (1 - confidence): 0.4, 0.7; right ones': 0.1, 0.5. Of the four
    # (wrong, right) pairs, three rank the wrong item first: 0.75.
    assert auroc([True, False, True, False], [0.6, 0.9, 0.3, 0.5]) == pytest.approx(0.75)
    # A missing confidence counts as 0: the failed item is the surest doubt.
    assert auroc([True, False], [None, 0.0]) == pytest.approx(0.5)
    assert auroc([True, False], [None, 0.2]) == pytest.approx(1.0)
    assert auroc([False, False], [0.2, 0.3]) is None
    assert auroc([True, True], [0.2, 0.3]) is None


def test_precision_at_the_least_confident_shares() -> None:
    wrong = [True, True, False, True, False, False, False, False, False, False]
    assert precision_at(wrong, 0.1).precision == pytest.approx(1.0)
    at20 = precision_at(wrong, 0.2)
    assert (at20.items, at20.wrong, at20.precision) == (2, 2, pytest.approx(1.0))
    at50 = precision_at(wrong, 0.5)
    assert (at50.items, at50.wrong, at50.precision) == (5, 3, pytest.approx(0.6))
    # A share of four items that holds none of them.
    assert precision_at([True, False, False, False], 0.1).precision is None


def test_reviewed_count_rounds_down() -> None:
    assert [reviewed_count(4, x) for x in (0, 5, 20, 25, 50, 75, 100)] == [0, 0, 0, 1, 2, 3, 4]
    assert reviewed_count(10, 30) == 3  # 10 * 30 / 100 is 3.0000000000000004 in floats


def _four() -> list[Outcome]:
    # NER-like: score = (2 tp, gold + predicted), reviewed = (2 gold, 2 gold).
    return [
        Outcome("a", 0.9, False, True, (4, 4), (4, 4)),  # 2 gold, 2 found
        Outcome("d", 0.3, False, False, (2, 3), (2, 2)),  # 1 gold, 2 predicted, 1 right
        Outcome("c", None, True, False, (0, 1), (2, 2)),  # failed: 1 gold, nothing
        Outcome("b", 0.3, False, False, (0, 3), (4, 4)),  # 2 gold, 1 predicted, wrong
    ]


def test_review_order_puts_failed_first_then_ascending_ties_by_id() -> None:
    outcomes = _four()
    assert [outcomes[i].id for i in review_order(outcomes)] == ["c", "b", "d", "a"]


def test_labeled_items_without_a_confidence_are_reviewed_with_the_failed() -> None:
    outcomes = [
        Outcome("z", 0.0, False, True, (1, 1), (1, 1)),
        Outcome("y", None, False, True, (1, 1), (1, 1)),  # labeled, not measured
        Outcome("x", None, True, False, (0, 1), (1, 1)),  # failed
    ]
    assert [outcomes[i].id for i in review_order(outcomes)] == ["x", "y", "z"]
    fig = confidence_figures(outcomes, [], "accuracy", shuffles=2)
    assert fig is not None and (fig.measured, fig.unmeasured, fig.failed) == (1, 1, 1)
    # Only the measured item is binned; no proposal, no proposal-level calibration.
    assert fig.item_calibration.count == 1 and fig.proposal_calibration is None


def test_review_curve_by_hand() -> None:
    outcomes = _four()
    shares = (0, 20, 25, 50, 75, 100)
    curve = review_curve(outcomes, review_order(outcomes), shares)
    # Before: 2 tp * 2 = 6 over 11 (gold + predicted). Reviewing c: 8/12; then b: 12/13;
    # then d: 12/12; then a: 12/12. 20% of 4 items is none.
    assert curve == pytest.approx((6 / 11, 6 / 11, 8 / 12, 12 / 13, 1.0, 1.0))


def test_random_curve_is_the_expected_line_for_accuracy() -> None:
    # Accuracy: (right, 1) per item, (1, 1) reviewed. Random review of k of 10 items with 4
    # wrong fixes 0.4 k of them on average: accuracy 0.6 + 0.04 k.
    outcomes = [Outcome(str(i), 0.5, False, i >= 4, (int(i >= 4), 1), (1, 1)) for i in range(10)]
    shares = (0, 10, 30, 50, 100)
    curve = random_curve(outcomes, shares, shuffles=4000, seed=3)
    expected = [0.6 + 0.04 * reviewed_count(10, s) for s in shares]
    assert curve == pytest.approx(expected, abs=0.005)
    assert curve[0] == pytest.approx(0.6) and curve[-1] == pytest.approx(1.0)


def test_random_curve_is_exact_when_every_order_gives_the_same() -> None:
    outcomes = [Outcome(str(i), 0.5, False, False, (0, 1), (1, 1)) for i in range(5)]
    assert random_curve(outcomes, (0, 20, 60, 100), shuffles=3) == pytest.approx(
        (0.0, 0.2, 0.6, 1.0)
    )


def test_figures_of_a_run_with_and_without_confidence() -> None:
    outcomes = _four()
    proposals = [ProposalOutcome(0.9, True), ProposalOutcome(0.3, False)]
    fig = confidence_figures(outcomes, proposals, "F1", shuffles=5)
    assert fig is not None
    assert (fig.items, fig.measured, fig.unmeasured, fig.failed, fig.wrong) == (4, 3, 0, 1, 3)
    # Items with a confidence only: 0.9 right (bin 9), 0.3 and 0.3 wrong (bin 3).
    assert fig.item_calibration.count == 3
    assert fig.item_calibration.ece == pytest.approx((0.1 + 2 * 0.3) / 3)
    assert fig.proposal_calibration is not None
    assert fig.proposal_calibration.ece == pytest.approx((0.1 + 0.3) / 2)
    # The right item has the least doubt: every wrong one ranks above it.
    assert fig.auroc == pytest.approx(1.0)
    assert fig.review.at(0)[0] == pytest.approx(6 / 11)
    assert fig.review.at(100) == pytest.approx((1.0, 1.0))
    blind = [Outcome(o.id, None, o.failed, o.right, o.score, o.reviewed) for o in outcomes]
    assert confidence_figures(blind, [], "F1") is None
