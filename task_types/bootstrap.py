"""Bootstrap confidence intervals for per-type scores (NER's: entity-level), and the paired
bootstrap test.

The unit of resampling is the item (a sentence): errors within a sentence are not
independent, so resampling the scored units (NER: entities) would make the intervals too
narrow. Each resample draws as many items as there are, with replacement, and recomputes
per-type, micro and macro precision, recall and F1 from per-item counts. The counts are
precomputed once, by the task type (NER's `item_counts` counts spans), as an
`(items, types, 3)` array of (true positives, gold, predicted), and a resample is a vector of
how many times each item was drawn, so all resamples are one matrix product.

Intervals are percentile intervals (2.5th and 97.5th percentiles for 95%). The paired test
for `compare` draws the same items for both runs in every resample; its p-value is defined in
`paired_bootstrap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from prelabel.frozen import Frozen

#: Default number of resamples; enough for stable 95% percentile bounds (±0.1 F1 points).
RESAMPLES = 1000
LEVEL = 0.95

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class Interval(Frozen):
    """A confidence interval `[low, high]`, as fractions like the scores."""

    low: float
    high: float


class ScoreIntervals(Frozen):
    """Intervals for precision, recall and F1 of one type or average."""

    precision: Interval
    recall: Interval
    f1: Interval


class TypeIntervals(Frozen):
    """Bootstrap intervals of the per-type scores (NER's: entity-level), and how they were
    drawn."""

    resamples: int
    seed: int
    level: float = LEVEL
    per_type: dict[str, ScoreIntervals]
    micro: ScoreIntervals
    macro: ScoreIntervals


def _ratio(num: Floats, den: Floats) -> Floats:
    # Undefined ratios count as 0, as seqeval's zero_division=0 does.
    out: Floats = np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)
    return out


@dataclass(frozen=True, slots=True)
class Scores:
    """Precision, recall and F1 arrays: per type `(..., types)`, micro and macro `(...)`."""

    precision: Floats
    recall: Floats
    f1: Floats
    micro_precision: Floats
    micro_recall: Floats
    micro_f1: Floats
    macro_precision: Floats
    macro_recall: Floats
    macro_f1: Floats


def scores(sums: Floats) -> Scores:
    """Scores from summed counts of shape `(..., types, 3)`, the way seqeval computes them.

    Macro averages are unweighted means of the per-type scores over every type given
    (a type absent from a resample scores 0, as seqeval scores a type it never saw).
    """
    tp, gold, pred = sums[..., 0], sums[..., 1], sums[..., 2]
    p, r, f = _ratio(tp, pred), _ratio(tp, gold), _ratio(2 * tp, gold + pred)
    tps, golds, preds = tp.sum(-1), gold.sum(-1), pred.sum(-1)
    has_types = sums.shape[-2] > 0

    def mean(x: Floats) -> Floats:
        return x.mean(-1) if has_types else np.zeros(x.shape[:-1])

    return Scores(
        precision=p,
        recall=r,
        f1=f,
        micro_precision=_ratio(tps, preds),
        micro_recall=_ratio(tps, golds),
        micro_f1=_ratio(2 * tps, golds + preds),
        macro_precision=mean(p),
        macro_recall=mean(r),
        macro_f1=mean(f),
    )


def resample_weights(items: int, resamples: int, seed: int) -> Floats:
    """How often each item is drawn in each resample: shape `(resamples, items)`.

    Drawn as item indices (not a multinomial) so that the draws for a given seed, item count
    and resample count are the same wherever they are used, e.g. for both sides of a
    paired test.
    """
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, items, size=(resamples, items), dtype=np.int64)
    flat = drawn + (np.arange(resamples) * items)[:, None]
    weights: Floats = (
        np.bincount(flat.ravel(), minlength=resamples * items)
        .reshape(resamples, items)
        .astype(np.float64)
    )
    return weights


def resampled_sums(counts: Counts, weights: Floats) -> Floats:
    """Summed counts for each resample: `(resamples, types, 3)`."""
    items, types, _ = counts.shape
    flat = counts.reshape(items, types * 3).astype(np.float64)
    out: Floats = (weights @ flat).reshape(weights.shape[0], types, 3)
    return out


def _interval(values: Floats, level: float) -> Interval:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(low=float(low), high=float(high))


def _triple(p: Floats, r: Floats, f: Floats, level: float) -> ScoreIntervals:
    return ScoreIntervals(
        precision=_interval(p, level), recall=_interval(r, level), f1=_interval(f, level)
    )


def bootstrap_intervals(
    counts: Counts,
    types: Sequence[str],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> TypeIntervals:
    """Percentile intervals of per-type, micro and macro P, R and F1 over item resamples."""
    items = counts.shape[0]
    if items == 0 or resamples < 1:
        zero = Interval(low=0.0, high=0.0)
        none = ScoreIntervals(precision=zero, recall=zero, f1=zero)
        return TypeIntervals(
            resamples=0,
            seed=seed,
            level=level,
            per_type={t: none for t in types},
            micro=none,
            macro=none,
        )
    s = scores(resampled_sums(counts, resample_weights(items, resamples, seed)))
    return TypeIntervals(
        resamples=resamples,
        seed=seed,
        level=level,
        per_type={
            t: _triple(s.precision[:, i], s.recall[:, i], s.f1[:, i], level)
            for i, t in enumerate(types)
        },
        micro=_triple(s.micro_precision, s.micro_recall, s.micro_f1, level),
        macro=_triple(s.macro_precision, s.macro_recall, s.macro_f1, level),
    )


class PairedDifference(Frozen):
    """F1 of A and B on the same items, B − A, its interval, and the paired bootstrap p."""

    a: float
    b: float
    delta: float
    low: float
    high: float
    p_value: float


def _paired(
    a: Floats | None, b: Floats | None, a_all: float, b_all: float, level: float
) -> PairedDifference:
    observed = b_all - a_all
    if a is None or b is None:
        # No resamples: nothing can confirm the observed difference.
        return PairedDifference(
            a=a_all, b=b_all, delta=observed, low=observed, high=observed, p_value=1.0
        )
    deltas = b - a
    # The share of resamples in which the difference is zero or has the other sign than the
    # one observed; with no observed difference there is nothing to confirm, so p is 1.
    p_value = float(np.mean(deltas * np.sign(observed) <= 0)) if observed != 0 else 1.0
    ci = _interval(deltas, level)
    return PairedDifference(
        a=a_all, b=b_all, delta=observed, low=ci.low, high=ci.high, p_value=p_value
    )


def _type_f1(i: int) -> Callable[[Scores], Floats]:
    def pick(s: Scores) -> Floats:
        return s.f1[:, i]

    return pick


class PairedComparison(Frozen):
    """B against A on the same items: F1 differences per type, micro and macro."""

    items: int
    resamples: int
    seed: int
    level: float = LEVEL
    per_type: dict[str, PairedDifference]
    micro: PairedDifference
    macro: PairedDifference


def paired_bootstrap(
    counts_a: Counts,
    counts_b: Counts,
    types: Sequence[str],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> PairedComparison:
    """Compare B with A on the same items (row `i` of both counts is the same item).

    In every resample both sides use the same drawn items. The p-value is the share of
    resamples in which B − A is zero or has the opposite sign to the difference observed on
    all items (1.0 when that difference is 0): a small p means the observed ordering of A
    and B holds in almost every resample, i.e. it is not an accident of which sentences
    happen to be in the test set. It is one-sided, in the direction observed.
    """
    if counts_a.shape != counts_b.shape:
        raise ValueError(f"count shapes differ: {counts_a.shape} and {counts_b.shape}")
    items = counts_a.shape[0]
    full_a = scores(counts_a.sum(0).astype(np.float64))
    full_b = scores(counts_b.sum(0).astype(np.float64))
    sa: Scores | None = None
    sb: Scores | None = None
    if items and resamples > 0:
        weights = resample_weights(items, resamples, seed)
        sa = scores(resampled_sums(counts_a, weights))
        sb = scores(resampled_sums(counts_b, weights))
    else:
        resamples = 0

    def diff(pick: Callable[[Scores], Floats], a_all: Floats, b_all: Floats) -> PairedDifference:
        a = pick(sa) if sa is not None else None
        b = pick(sb) if sb is not None else None
        return _paired(a, b, float(a_all), float(b_all), level)

    return PairedComparison(
        items=items,
        resamples=resamples,
        seed=seed,
        level=level,
        per_type={t: diff(_type_f1(i), full_a.f1[i], full_b.f1[i]) for i, t in enumerate(types)},
        micro=diff(lambda s: s.micro_f1, full_a.micro_f1, full_b.micro_f1),
        macro=diff(lambda s: s.macro_f1, full_a.macro_f1, full_b.macro_f1),
    )


__all__ = [
    "LEVEL",
    "RESAMPLES",
    "Interval",
    "PairedComparison",
    "PairedDifference",
    "ScoreIntervals",
    "Scores",
    "TypeIntervals",
    "bootstrap_intervals",
    "paired_bootstrap",
    "resample_weights",
    "resampled_sums",
    "scores",
]
