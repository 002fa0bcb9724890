"""Does a run's confidence put its errors first? The figures every task type's report shows
when a run measured confidence (`--confidence`), from per-item outcomes only, so that they
serve any task type unchanged (as the bootstrap does).

A task type turns each item with gold into an `Outcome` (its confidence, whether its whole
prediction is right, and the headline metric's numerator and denominator before and after a
human corrects it) and each kept proposal into a `ProposalOutcome`; `confidence_figures` does
the rest:

- **Calibration** (`calibration`): expected calibration error over 10 equal-width bins of
  confidence, ECE = sum over bins of (items in bin / items) * |accuracy - mean confidence|,
  at item level (is the whole prediction right?) and at proposal level (is each kept label
  or mention right?). Only what carries a confidence is binned.
- **Review order** (`review_order`): ascending confidence; an item without one (failed, or
  not measured) comes first, since nothing says it is right; ties by item id.
- **AUROC** (`auroc`): how well low confidence finds wrong items (scikit-learn's
  `roc_auc_score` of "wrong" against 1 - confidence; an item without a confidence counts
  as confidence 0, a failed item as wrong). None when every item is right, or every one wrong.
- **Precision at the least-confident share** (`precision_at`): the share of wrong items
  among the first `floor(share * items)` of the review order.
- **Review curve** (`review_curve`, `random_curve`): the headline metric if a human corrects
  the first `floor(X * items / 100)` items of the order (their prediction replaced by the
  gold), for X = 0, 5, ..., 100, against the mean of seeded random orders with the same
  arithmetic. The metric is a ratio of sums over items (entity F1 = 2 tp / (gold +
  predicted); accuracy = right / items), so each curve is one cumulative sum: O(items).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from prelabel.frozen import Frozen
from task_types.review import order_key

#: Equal-width bins of confidence for the ECE and the reliability diagram.
BINS = 10
#: The least-confident shares whose error rate a report quotes.
PRECISION_SHARES = (0.1, 0.2, 0.5)
#: The review curve's points: percent of the items reviewed.
REVIEW_SHARES = tuple(range(0, 101, 5))
#: The share of the review curve the report's sentence quotes.
QUOTED_SHARE = 20
#: Random orders averaged for the random review curve.
SHUFFLES = 20

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item with gold, as the confidence figures see it.

    `score` is the headline metric's (numerator, denominator) for the item as predicted,
    `reviewed` the same once a human replaced its prediction with the gold (NER: (2 tp,
    gold + predicted) and (2 gold, 2 gold); accuracy: (right, 1) and (1, 1)).
    """

    id: str
    #: None: the item failed, or its confidence was not measured.
    confidence: float | None
    failed: bool
    right: bool
    score: tuple[int, int]
    reviewed: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ProposalOutcome:
    """One kept proposal (a label, or a mention) of a labeled item with gold."""

    confidence: float
    right: bool


class Bin(Frozen):
    """One bin of confidence `[low, high)` (the last one includes 1): how many fell in it,
    their mean confidence and their accuracy (None when empty)."""

    low: float
    high: float
    count: int
    confidence: float | None = None
    accuracy: float | None = None


class Calibration(Frozen):
    """Expected calibration error over `count` units (items or proposals) and its bins."""

    count: int
    ece: float
    bins: tuple[Bin, ...]


class PrecisionAt(Frozen):
    """Wrong items among the least-confident `share` of the items (`items` of them);
    `precision` is None when the share holds no item."""

    share: float
    items: int
    wrong: int
    precision: float | None


class ReviewCurve(Frozen):
    """The headline metric (`metric`) after reviewing the first `shares[i]` percent of the
    items: in confidence order (`ordered`) and in random order (`random`, the mean of
    `shuffles` orders drawn with `seed`)."""

    metric: str
    shares: tuple[int, ...]
    ordered: tuple[float, ...]
    random: tuple[float, ...]
    shuffles: int
    seed: int

    def at(self, share: int) -> tuple[float, float]:
        """The ordered and random values at `share` percent."""
        i = self.shares.index(share)
        return self.ordered[i], self.random[i]


class ConfidenceFigures(Frozen):
    """How well a run's confidence orders review, over its items with gold: `items` of them,
    `measured` labeled with a confidence, `unmeasured` labeled without one, `failed`, and
    `wrong` (failed ones included)."""

    items: int
    measured: int
    unmeasured: int
    failed: int
    wrong: int
    item_calibration: Calibration
    #: None: no kept proposal carried a confidence.
    proposal_calibration: Calibration | None = None
    #: None: only one class (every item right, or every one wrong).
    auroc: float | None = None
    precision_at: tuple[PrecisionAt, ...] = ()
    review: ReviewCurve


def calibration(
    confidences: Sequence[float], right: Sequence[bool], bins: int = BINS
) -> Calibration:
    """ECE and the reliability diagram's bins over `bins` equal-width bins of [0, 1]."""
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(right, dtype=np.float64)
    index = np.minimum((conf * bins).astype(np.int64), bins - 1) if len(conf) else conf
    out: list[Bin] = []
    ece = 0.0
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        low, high = b / bins, (b + 1) / bins
        if not n:
            out.append(Bin(low=low, high=high, count=0))
            continue
        mean_conf, accuracy = float(conf[inside].mean()), float(ok[inside].mean())
        ece += n / len(conf) * abs(accuracy - mean_conf)
        out.append(Bin(low=low, high=high, count=n, confidence=mean_conf, accuracy=accuracy))
    return Calibration(count=len(conf), ece=ece, bins=tuple(out))


def review_order(outcomes: Sequence[Outcome]) -> list[int]:
    """Indices of `outcomes` in review order, as review.csv lists them
    (`task_types.review.order_key`): failed items, then those without a confidence, then by
    ascending confidence; ties by id."""
    return sorted(
        range(len(outcomes)),
        key=lambda i: order_key(outcomes[i].failed, outcomes[i].confidence, outcomes[i].id),
    )


def auroc(wrong: Sequence[bool], confidences: Sequence[float | None]) -> float | None:
    """AUROC of low confidence for finding wrong items (a missing confidence counts as 0);
    None when the items are all right or all wrong."""
    y = np.asarray(wrong, dtype=np.int64)
    if len(y) == 0 or y.min() == y.max():
        return None
    # Imported when used: scikit-learn takes seconds to load.
    from sklearn.metrics import roc_auc_score

    doubt = np.array([1.0 - (c or 0.0) for c in confidences], dtype=np.float64)
    return float(roc_auc_score(y, doubt))


def reviewed_count(items: int, percent: float) -> int:
    """Items in the least-confident `percent` percent of `items`: rounded down, so that a
    report never claims more review than the share says."""
    return math.floor(items * percent / 100 + 1e-9)


def precision_at(wrong_in_order: Sequence[bool], share: float) -> PrecisionAt:
    """The share of wrong items among the first `share` (a fraction) of the review order."""
    k = reviewed_count(len(wrong_in_order), 100 * share)
    wrong = sum(wrong_in_order[:k])
    return PrecisionAt(share=share, items=k, wrong=wrong, precision=wrong / k if k else None)


def _ratio(num: Floats, den: Floats) -> Floats:
    out: Floats = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return out


def _deltas(outcomes: Sequence[Outcome]) -> tuple[float, float, Floats, Floats]:
    """The metric's summed numerator and denominator as predicted, and each item's change to
    them when reviewed."""
    score = np.array([o.score for o in outcomes], dtype=np.float64).reshape(-1, 2)
    reviewed = np.array([o.reviewed for o in outcomes], dtype=np.float64).reshape(-1, 2)
    delta = reviewed - score
    return float(score[:, 0].sum()), float(score[:, 1].sum()), delta[:, 0], delta[:, 1]


def _curve_points(
    num: float, den: float, d_num: Floats, d_den: Floats, shares: Sequence[int]
) -> Floats:
    """The metric after reviewing the first k items, for each share; `d_num` and `d_den` are
    `(..., items)` in review order, the result `(..., len(shares))`."""
    n = d_num.shape[-1]
    zero = np.zeros((*d_num.shape[:-1], 1))
    cum_num = np.concatenate([zero, np.cumsum(d_num, axis=-1)], axis=-1)
    cum_den = np.concatenate([zero, np.cumsum(d_den, axis=-1)], axis=-1)
    ks = [reviewed_count(n, s) for s in shares]
    return _ratio(num + cum_num[..., ks], den + cum_den[..., ks])


def review_curve(
    outcomes: Sequence[Outcome], order: Sequence[int], shares: Sequence[int] = REVIEW_SHARES
) -> tuple[float, ...]:
    """The headline metric after reviewing the first `shares[i]` percent of `order`."""
    num, den, d_num, d_den = _deltas(outcomes)
    idx = np.asarray(order, dtype=np.int64)
    points = _curve_points(num, den, d_num[idx], d_den[idx], shares)
    return tuple(float(x) for x in points)


def random_curve(
    outcomes: Sequence[Outcome],
    shares: Sequence[int] = REVIEW_SHARES,
    *,
    shuffles: int = SHUFFLES,
    seed: int = 0,
) -> tuple[float, ...]:
    """The mean of `review_curve` over `shuffles` random orders drawn with `seed`."""
    num, den, d_num, d_den = _deltas(outcomes)
    rng = np.random.default_rng(seed)
    total = np.zeros(len(shares))
    # One order at a time: memory stays O(items) however many shuffles.
    for _ in range(shuffles):
        order = rng.permutation(len(outcomes))
        total += _curve_points(num, den, d_num[order], d_den[order], shares)
    return tuple(float(x) for x in total / max(shuffles, 1))


def confidence_figures(
    outcomes: Sequence[Outcome],
    proposals: Sequence[ProposalOutcome],
    metric: str,
    *,
    shuffles: int = SHUFFLES,
    seed: int = 0,
) -> ConfidenceFigures | None:
    """Every confidence figure of a run's items with gold; None when none of them carries a
    confidence (the run measured none), so that a report has no such section."""
    measured = [o for o in outcomes if o.confidence is not None and not o.failed]
    if not measured:
        return None
    order = review_order(outcomes)
    wrong_in_order = [not outcomes[i].right for i in order]
    return ConfidenceFigures(
        items=len(outcomes),
        measured=len(measured),
        unmeasured=sum(o.confidence is None and not o.failed for o in outcomes),
        failed=sum(o.failed for o in outcomes),
        wrong=sum(not o.right for o in outcomes),
        item_calibration=calibration(
            [o.confidence or 0.0 for o in measured], [o.right for o in measured]
        ),
        proposal_calibration=calibration(
            [p.confidence for p in proposals], [p.right for p in proposals]
        )
        if proposals
        else None,
        auroc=auroc(
            [not o.right for o in outcomes],
            [None if o.failed else o.confidence for o in outcomes],
        ),
        precision_at=tuple(precision_at(wrong_in_order, s) for s in PRECISION_SHARES),
        review=ReviewCurve(
            metric=metric,
            shares=REVIEW_SHARES,
            ordered=review_curve(outcomes, order),
            random=random_curve(outcomes, shuffles=shuffles, seed=seed),
            shuffles=shuffles,
            seed=seed,
        ),
    )


__all__ = [
    "BINS",
    "PRECISION_SHARES",
    "QUOTED_SHARE",
    "REVIEW_SHARES",
    "SHUFFLES",
    "Bin",
    "Calibration",
    "ConfidenceFigures",
    "Outcome",
    "PrecisionAt",
    "ProposalOutcome",
    "ReviewCurve",
    "auroc",
    "calibration",
    "confidence_figures",
    "precision_at",
    "random_curve",
    "review_curve",
    "review_order",
    "reviewed_count",
]
