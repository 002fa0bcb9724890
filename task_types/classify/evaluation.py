"""The whole evaluation of a classification run in one value: scores (scikit-learn) with
bootstrap intervals, the confusion matrix (single-label), the headline over every item with
gold, the answer repairs, what was lost before the model was ever judged, and what the
quality cost.

Single-label (`classify`): accuracy, micro and macro F1, per-class precision, recall, F1 and
support, and the confusion matrix, from the one gold and one predicted label of each item.
Multi-label (`classify-multi`): per-label precision, recall and F1 on the items' label sets
as indicator rows, micro and macro F1, subset (exact-set) accuracy and Hamming loss.

Scored items are those labeled and with gold. A failed item is not scored; it is counted
among the losses, by kind of reason (`prelabel.errors.failure_kind`), and the headline
counts it as wrong (an item that predicted no label) over every item with gold.

The classes are the tags the scored items' gold and predictions use, sorted: a class of the
label set that neither uses is not a row (its F1 would be undefined), and a predicted tag
outside the label set is one (it is a model error worth seeing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    hamming_loss,
    precision_recall_fscore_support,
)

from prelabel.errors import DatasetError, failure_kind
from prelabel.figures import CostQuality, RunFigures, cost_quality
from prelabel.frozen import Frozen
from task_types.bootstrap import (
    LEVEL,
    RESAMPLES,
    Interval,
    TypeIntervals,
    bootstrap_intervals,
    resample_weights,
)
from task_types.classify.model import Item
from task_types.confidence_figures import (
    ConfidenceFigures,
    Outcome,
    ProposalOutcome,
    confidence_figures,
)

#: How many failed items, repairs, wrong items and confused pairs a report lists by name.
EXAMPLES = 20

Matrix = npt.NDArray[np.int64]


class ClassScores(Frozen):
    """Precision, recall and F1 of one class or average, with the counts behind them
    (`support`: gold items of the class; `predicted`; `tp`: both)."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    tp: int


class Scores(Frozen):
    """Per-class and averaged scores of the scored items.

    `accuracy` is the share of items whose prediction equals the gold: the label
    (single-label) or the whole set (multi-label, subset accuracy). `hamming_loss` (multi-label)
    is the share of (item, label) decisions that are wrong. `confusion` (single-label) has gold
    in rows and predictions in columns, both in `classes` order.
    """

    classes: tuple[str, ...]
    per_class: dict[str, ClassScores]
    micro: ClassScores
    macro: ClassScores
    accuracy: float
    hamming_loss: float | None = None
    confusion: tuple[tuple[int, ...], ...] | None = None


class Intervals(Frozen):
    """Bootstrap intervals (items resampled): per class, micro and macro (P, R, F1), accuracy
    and, multi-label, Hamming loss."""

    scores: TypeIntervals
    accuracy: Interval
    hamming_loss: Interval | None = None


class Headline(Frozen):
    """Accuracy and micro F1 over every item with gold, a failed item counting as wrong (it
    predicted no label), beside the same over the labeled items only: the second leaves the
    failed items out, which are often the hard ones, and so reads higher than what the run
    delivers."""

    items: int
    failed: int
    accuracy_all: float
    accuracy_labeled: float
    micro_f1_all: float
    micro_f1_labeled: float


class LossExample(Frozen):
    """One item lost before scoring, and why."""

    id: str
    reason: str


class FailureKind(Frozen):
    """Failed items of one kind (`prelabel.errors.failure_kind`), with one example."""

    kind: str
    items: int
    example: LossExample


class Losses(Frozen):
    """What the model was never judged on: failed items (by kind, with examples), and labeled
    items without gold."""

    failed: int = 0
    failed_reasons: dict[str, int] = Field(default_factory=dict)
    failed_kinds: tuple[FailureKind, ...] = ()
    failed_examples: tuple[LossExample, ...] = ()
    without_gold: int = 0


class RepairExample(Frozen):
    """One repaired or dropped label of an item's answer."""

    id: str
    given: str
    label: str | None
    reason: str


class Repairs(Frozen):
    """How much of the answers had to be repaired to be read (`task_types.classify.model.
    Repair`): labels read from a near-miss spelling (`repaired`; `repaired_right`: of those,
    the ones in the item's gold), answers outside the label set that were dropped
    (`dropped`), items with any repair, and multi-label items labeled with no label
    (`empty`), over the labeled items."""

    repaired: int = 0
    repaired_right: int = 0
    dropped: int = 0
    items: int = 0
    empty: int = 0
    examples: tuple[RepairExample, ...] = ()


class Confused(Frozen):
    """A gold class predicted as another, and how often (single-label)."""

    gold: str
    pred: str
    count: int


class WrongItem(Frozen):
    """A scored item whose prediction is not its gold."""

    id: str
    gold: tuple[str, ...]
    pred: tuple[str, ...]


class Evaluation(Frozen):
    """Everything a classification report shows (the base of the two task types' models)."""

    #: The task type (`task_types.Evaluated`), a class variable: not in report.json.
    task: ClassVar[str] = "classify"

    multi_label: bool = False
    scores: Scores
    figures: RunFigures
    evaluated_items: int
    intervals: Intervals | None = None
    headline: Headline | None = None
    losses: Losses = Losses()
    repairs: Repairs = Repairs()
    confused: tuple[Confused, ...] = ()
    wrong: tuple[WrongItem, ...] = ()
    wrong_items: int = 0
    cost: CostQuality | None = None
    #: How well the run's confidence orders review (None: it measured none, or no gold).
    confidence: ConfidenceFigures | None = None


class SingleEvaluation(Evaluation):
    """A `classify` run's evaluation (one label per text)."""

    task: ClassVar[str] = "classify"


class MultiEvaluation(Evaluation):
    """A `classify-multi` run's evaluation (a set of labels per text)."""

    task: ClassVar[str] = "classify-multi"

    multi_label: bool = True


def model_for(multi_label: bool) -> type[Evaluation]:
    """The evaluation model of `classify` or `classify-multi`."""
    return MultiEvaluation if multi_label else SingleEvaluation


# --- scores -------------------------------------------------------------------------------


def indicator(sets: Sequence[Sequence[str]], classes: Sequence[str]) -> Matrix:
    """Label sets as rows of 0/1 over `classes` (a tag not in `classes` is ignored)."""
    index = {c: j for j, c in enumerate(classes)}
    out = np.zeros((len(sets), len(classes)), dtype=np.int64)
    for i, tags in enumerate(sets):
        for t in tags:
            if t in index:
                out[i, index[t]] = 1
    return out


def item_counts(gold: Matrix, pred: Matrix) -> Matrix:
    """Per item and class: (true positive, gold, predicted), `(items, classes, 3)`, the
    counts `task_types.bootstrap` resamples."""
    out: Matrix = np.stack([gold & pred, gold, pred], axis=-1).astype(np.int64)
    return out


def _class_scores(
    p: float, r: float, f: float, support: int, predicted: int, tp: int
) -> ClassScores:
    return ClassScores(
        precision=float(p),
        recall=float(r),
        f1=float(f),
        support=int(support),
        predicted=int(predicted),
        tp=int(tp),
    )


def _single(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], ids: Sequence[str]
) -> tuple[list[str], list[str]]:
    for item, g, p in zip(ids, gold, pred, strict=True):
        if len(g) != 1 or len(p) != 1:
            what = "gold labels" if len(g) != 1 else "predicted labels"
            raise DatasetError(
                f"item {item!r} has {len(g) if len(g) != 1 else len(p)} {what} in a "
                "single-label evaluation; multi-label data is --task classify --multi-label"
            )
    return [g[0] for g in gold], [p[0] for p in pred]


def scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    multi_label: bool,
    ids: Sequence[str] | None = None,
) -> Scores:
    """Scores of paired gold and predicted labels (scikit-learn, `zero_division=0`)."""
    ids = list(ids) if ids is not None else [str(i) for i in range(len(gold))]
    classes = sorted({t for tags in (*gold, *pred) for t in tags})
    g, p = indicator(gold, classes), indicator(pred, classes)
    counts = item_counts(g, p).sum(axis=0) if len(gold) else np.zeros((len(classes), 3), np.int64)
    confusion = None
    ham: float | None = None
    if not classes or not len(gold):
        zero = _class_scores(0, 0, 0, 0, 0, 0)
        return Scores(
            classes=tuple(classes),
            per_class={c: zero for c in classes},
            micro=zero,
            macro=zero,
            accuracy=0.0,
            hamming_loss=0.0 if multi_label else None,
            confusion=None if multi_label else (),
        )
    if multi_label:
        y_true, y_pred = g, p
        accuracy = float(accuracy_score(y_true, y_pred))
        ham = float(hamming_loss(y_true, y_pred))
        per = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
        micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
        macro = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    else:
        t1, p1 = _single(gold, pred, ids)
        accuracy = float(accuracy_score(t1, p1))
        per = precision_recall_fscore_support(t1, p1, labels=classes, zero_division=0)
        micro = precision_recall_fscore_support(
            t1, p1, labels=classes, average="micro", zero_division=0
        )
        macro = precision_recall_fscore_support(
            t1, p1, labels=classes, average="macro", zero_division=0
        )
        matrix = confusion_matrix(t1, p1, labels=classes)
        confusion = tuple(tuple(int(x) for x in row) for row in matrix)
    tp, support, predicted = counts[:, 0], counts[:, 1], counts[:, 2]
    return Scores(
        classes=tuple(classes),
        per_class={
            c: _class_scores(per[0][j], per[1][j], per[2][j], support[j], predicted[j], tp[j])
            for j, c in enumerate(classes)
        },
        micro=_class_scores(micro[0], micro[1], micro[2], support.sum(), predicted.sum(), tp.sum()),
        macro=_class_scores(macro[0], macro[1], macro[2], support.sum(), predicted.sum(), tp.sum()),
        accuracy=accuracy,
        hamming_loss=ham,
        confusion=confusion,
    )


def _mean_interval(
    values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], level: float
) -> Interval:
    means = weights @ values / len(values)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(low=float(low), high=float(high))


def intervals(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    classes: Sequence[str],
    *,
    multi_label: bool,
    resamples: int,
    seed: int,
) -> Intervals:
    """Percentile bootstrap intervals over items: the same draws for every score."""
    g, p = indicator(gold, classes), indicator(pred, classes)
    counts = item_counts(g, p) if len(gold) else np.zeros((0, len(classes), 3), np.int64)
    by_type = bootstrap_intervals(counts, classes, resamples=resamples, seed=seed, level=LEVEL)
    if by_type.resamples == 0:
        zero = Interval(low=0.0, high=0.0)
        return Intervals(scores=by_type, accuracy=zero, hamming_loss=zero if multi_label else None)
    weights = resample_weights(len(gold), resamples, seed)
    exact = np.array([set(a) == set(b) for a, b in zip(gold, pred, strict=True)], dtype=np.float64)
    ham = None
    if multi_label:
        wrong = (g != p).sum(axis=1).astype(np.float64) / max(len(classes), 1)
        ham = _mean_interval(wrong, weights, LEVEL)
    return Intervals(
        scores=by_type, accuracy=_mean_interval(exact, weights, LEVEL), hamming_loss=ham
    )


# --- losses, repairs, errors ------------------------------------------------------------------


def losses_of(items: Sequence[Item]) -> Losses:
    """Failed items, by kind of reason with an example each, and labeled items without gold."""
    failed = [i for i in items if i.pred is None]
    kinds = Counter(failure_kind(i.error) for i in failed)
    first: dict[str, Item] = {}
    for item in failed:
        first.setdefault(failure_kind(item.error), item)
    return Losses(
        failed=len(failed),
        failed_reasons=dict(kinds.most_common()),
        failed_kinds=tuple(
            FailureKind(
                kind=kind,
                items=n,
                example=LossExample(
                    id=first[kind].id, reason=first[kind].error or "no reason recorded"
                ),
            )
            for kind, n in kinds.most_common()
        ),
        failed_examples=tuple(
            LossExample(id=i.id, reason=i.error or "no reason recorded") for i in failed[:EXAMPLES]
        ),
        without_gold=sum(i.pred is not None and i.gold is None for i in items),
    )


def repairs_of(items: Sequence[Item]) -> Repairs:
    """The repairs of the labeled items' answers (a failed item's are in its reason)."""
    labeled = [i for i in items if i.pred is not None]
    found = [(i, r) for i in labeled for r in i.repairs]
    return Repairs(
        repaired=sum(r.label is not None for _, r in found),
        repaired_right=sum(
            r.label is not None and i.gold is not None and r.label in i.gold for i, r in found
        ),
        dropped=sum(r.label is None for _, r in found),
        items=sum(bool(i.repairs) for i in labeled),
        empty=sum(not i.pred for i in labeled),
        examples=tuple(
            RepairExample(id=i.id, given=r.given, label=r.label, reason=r.reason)
            for i, r in found[:EXAMPLES]
        ),
    )


def confused_pairs(s: Scores) -> tuple[Confused, ...]:
    """The confusion matrix's off-diagonal cells, most frequent first (single-label)."""
    if not s.confusion:
        return ()
    cells = [
        Confused(gold=s.classes[i], pred=s.classes[j], count=n)
        for i, row in enumerate(s.confusion)
        for j, n in enumerate(row)
        if i != j and n
    ]
    return tuple(sorted(cells, key=lambda c: (-c.count, c.gold, c.pred))[:EXAMPLES])


# --- the whole -----------------------------------------------------------------------------


def headline(items: Sequence[Item], labeled: Scores) -> Headline | None:
    """Accuracy and micro F1 over every item with gold, a failed item counting as wrong
    (None when no item has gold)."""
    with_gold = [i for i in items if i.gold is not None]
    if not with_gold:
        return None
    gold = [list(i.gold or ()) for i in with_gold]
    pred = [list(i.pred) if i.pred is not None else [] for i in with_gold]
    classes = sorted({t for tags in (*gold, *pred) for t in tags})
    g, p = indicator(gold, classes), indicator(pred, classes)
    exact = sum(i.pred is not None and set(i.pred) == set(i.gold or ()) for i in with_gold)
    tp, n_gold, n_pred = int((g & p).sum()), int(g.sum()), int(p.sum())
    return Headline(
        items=len(with_gold),
        failed=sum(i.pred is None for i in with_gold),
        accuracy_all=exact / len(with_gold),
        accuracy_labeled=labeled.accuracy,
        micro_f1_all=2 * tp / (n_gold + n_pred) if n_gold + n_pred else 0.0,
        micro_f1_labeled=labeled.micro.f1,
    )


def _outcome(item: Item, *, multi_label: bool) -> Outcome:
    """The item for the confidence figures; the metric is accuracy (single-label: (right, 1)
    per item) or micro F1 (multi-label: (2 tp, gold + predicted) per item)."""
    gold = set(item.gold or ())
    pred = set(item.pred or ())
    right = item.pred is not None and gold == pred
    confidence = item.confidence if item.pred is not None else None
    if multi_label:
        tp, n = len(gold & pred), len(gold)
        score, reviewed = (2 * tp, n + len(pred)), (2 * n, 2 * n)
    else:
        score, reviewed = (int(right), 1), (1, 1)
    return Outcome(item.id, confidence, item.pred is None, right, score, reviewed)


def confidence_of(
    items: Sequence[Item], *, multi_label: bool, seed: int = 0
) -> ConfidenceFigures | None:
    """How well the items' confidence orders review, over those with gold (None when no
    labeled one carries a confidence). Each kept proposal is right when its label is in the
    item's gold; the review curve's metric is the headline's accuracy (single-label) or
    micro F1 (multi-label) over every item with gold."""
    with_gold = [i for i in items if i.gold is not None]
    proposals = [
        ProposalOutcome(s.confidence, s.label in (i.gold or ()))
        for i in with_gold
        if i.pred is not None
        for s in i.scores
        if s.kept
    ]
    return confidence_figures(
        [_outcome(i, multi_label=multi_label) for i in with_gold],
        proposals,
        "micro F1" if multi_label else "accuracy",
        seed=seed,
    )


def evaluate_items(
    items: Sequence[Item],
    figures: RunFigures,
    *,
    multi_label: bool,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Evaluation:
    """Evaluate a run's items: score those labeled with gold, report the rest as losses."""
    scored = [i for i in items if i.pred is not None and i.gold is not None]
    gold = [list(i.gold or ()) for i in scored]
    pred = [list(i.pred or ()) for i in scored]
    s = scores(gold, pred, multi_label=multi_label, ids=[i.id for i in scored])
    wrong = [
        WrongItem(id=i.id, gold=i.gold or (), pred=i.pred or ())
        for i in scored
        if set(i.gold or ()) != set(i.pred or ())
    ]
    return model_for(multi_label)(
        multi_label=multi_label,
        scores=s,
        figures=figures,
        evaluated_items=len(scored),
        intervals=intervals(
            gold, pred, s.classes, multi_label=multi_label, resamples=resamples, seed=seed
        ),
        headline=headline(items, s),
        losses=losses_of(items),
        repairs=repairs_of(items),
        confused=confused_pairs(s),
        wrong=tuple(wrong[:EXAMPLES]),
        wrong_items=len(wrong),
        cost=cost_quality(s.micro.f1, figures),
        confidence=confidence_of(items, multi_label=multi_label, seed=seed),
    )


__all__ = [
    "EXAMPLES",
    "ClassScores",
    "Confused",
    "Evaluation",
    "FailureKind",
    "Headline",
    "Intervals",
    "LossExample",
    "Losses",
    "MultiEvaluation",
    "RepairExample",
    "Repairs",
    "Scores",
    "SingleEvaluation",
    "WrongItem",
    "confidence_of",
    "evaluate_items",
    "headline",
    "indicator",
    "intervals",
    "item_counts",
    "losses_of",
    "model_for",
    "repairs_of",
    "scores",
]
