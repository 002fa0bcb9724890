"""NER's scores for predicted BIO tags against gold tags: entity-level (the CoNLL number),
token-level (the seed's number), and the per-item span counts the bootstrap resamples.

Entity-level scores are what CoNLL results quote: an entity counts only if its type and both
boundaries match (seqeval, strict mode, IOB2). Token-level scores are kept because the project's
seed reported them (scikit-learn on flat tags, `O` included); they read much higher, so every
place that shows them carries `TOKEN_LEVEL_LABEL`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import precision_recall_fscore_support

from prelabel.errors import DatasetError
from prelabel.frozen import Frozen
from task_types.ner.bio import spans, to_iob2

ENTITY_LEVEL_LABEL = "entity-level (seqeval, strict IOB2): the F1 that CoNLL results use"
TOKEN_LEVEL_LABEL = (
    "token-level, includes O; reads higher than the entity-level F1 that CoNLL results use"
)


class TypeScores(Frozen):
    """Entity-level scores of one type (or an average): `support` gold, `predicted`, `tp`."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    tp: int


class SpanCounts(Frozen):
    """Entity counts of one type, computed from spans without seqeval (a cross-check)."""

    tp: int
    gold: int
    pred: int


class EntityScores(Frozen):
    """Entity-level strict scores: per type, micro and macro averages, and own span counts."""

    label: str = ENTITY_LEVEL_LABEL
    per_type: dict[str, TypeScores]
    micro: TypeScores
    macro: TypeScores
    span_counts: dict[str, SpanCounts]


class LabelScores(Frozen):
    """Token-level scores of one label; `support` is the number of gold tokens with it."""

    precision: float
    recall: float
    f1: float
    support: int


class TokenScores(Frozen):
    """The seed's token-level table. Read `label` before comparing it with anything."""

    label: str = TOKEN_LEVEL_LABEL
    per_tag: dict[str, LabelScores]
    per_type: dict[str, LabelScores]
    weighted: LabelScores
    weighted_by_type: LabelScores


def _check_tags(tags: Sequence[str], where: str) -> None:
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        if len(tag) < 3 or tag[0] not in "BI" or tag[1] != "-":
            raise DatasetError(
                f"{where}, token {i}: tag {tag!r} is not BIO; expected O, B-TYPE or I-TYPE"
            )


def _check_pairs(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred):
        raise DatasetError(
            f"{len(gold)} gold sequences but {len(pred)} predicted ones; "
            "pass the same items, in the same order, to both"
        )
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise DatasetError(
                f"item {i}: {len(g)} gold tags but {len(p)} predicted ones; "
                "the predictions do not belong to these records"
            )
        _check_tags(g, f"item {i} (gold)")
        _check_tags(p, f"item {i} (prediction)")


def span_counts(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict[str, SpanCounts]:
    """Per type: true positives (same type, same boundaries), gold and predicted entities."""
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        gs, ps = spans(g), spans(p)
        n_gold.update(s[0] for s in gs)
        n_pred.update(s[0] for s in ps)
        tp.update(s[0] for s in gs & ps)
    return {
        t: SpanCounts(tp=tp[t], gold=n_gold[t], pred=n_pred[t])
        for t in sorted(n_gold.keys() | n_pred.keys())
    }


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> EntityScores:
    """Entity-level strict scores (seqeval, IOB2) per type, with micro and macro averages.

    Input may be IOB1 or IOB2; both sides go through `to_iob2` first. Types are those found in
    either side. Undefined ratios (no gold or no predicted entity) count as 0.
    """
    _check_pairs(gold, pred)
    g2 = [to_iob2(s) for s in gold]
    p2 = [to_iob2(s) for s in pred]
    own = span_counts(g2, p2)
    if not own:
        # seqeval averages over an empty set of types with a numpy warning; nothing to score.
        zero = TypeScores(precision=0.0, recall=0.0, f1=0.0, support=0, predicted=0, tp=0)
        return EntityScores(per_type={}, micro=zero, macro=zero, span_counts={})

    report: dict[str, dict[str, Any]] = classification_report(
        g2, p2, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    # seqeval's report has no tp or predicted counts. Ours come from `spans`, which reads
    # tags as seqeval's strict IOB2 chunker does (a property test holds them equal); asking
    # seqeval for its entities again would double its cost. Any disagreement stops here.
    per_type: dict[str, TypeScores] = {}
    for t, counts in own.items():
        row = report[t]
        if int(row["support"]) != counts.gold or not math.isclose(
            float(row["precision"]), counts.tp / counts.pred if counts.pred else 0.0
        ):
            raise RuntimeError(f"seqeval and prelabel's span counts disagree on type {t}")
        per_type[t] = TypeScores(
            precision=float(row["precision"]),
            recall=float(row["recall"]),
            f1=float(row["f1-score"]),
            support=int(row["support"]),
            predicted=counts.pred,
            tp=counts.tp,
        )
    support = sum(s.support for s in per_type.values())
    predicted = sum(s.predicted for s in per_type.values())
    tp = sum(s.tp for s in per_type.values())

    def average(key: str) -> TypeScores:
        row = report[key]
        return TypeScores(
            precision=float(row["precision"]),
            recall=float(row["recall"]),
            f1=float(row["f1-score"]),
            support=support,
            predicted=predicted,
            tp=tp,
        )

    return EntityScores(
        per_type=per_type, micro=average("micro avg"), macro=average("macro avg"), span_counts=own
    )


def _tag_type(tag: str) -> str:
    return "O" if tag == "O" else tag[2:]


def _label_table(
    gold: list[str], pred: list[str], labels: list[str]
) -> tuple[dict[str, LabelScores], LabelScores]:
    if not gold:
        empty = LabelScores(precision=0.0, recall=0.0, f1=0.0, support=0)
        return {}, empty
    # Integer codes: scikit-learn's checks on string labels cost more than the scoring.
    index = {label: i for i, label in enumerate(labels)}
    g = np.fromiter((index[t] for t in gold), dtype=np.int64, count=len(gold))
    q = np.fromiter((index[t] for t in pred), dtype=np.int64, count=len(pred))
    codes = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(g, q, labels=codes, average=None, zero_division=0)
    table = {
        label: LabelScores(
            precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i])
        )
        for i, label in enumerate(labels)
    }
    wp, wr, wf, _ = precision_recall_fscore_support(
        g, q, labels=codes, average="weighted", zero_division=0
    )
    weighted = LabelScores(precision=float(wp), recall=float(wr), f1=float(wf), support=len(gold))
    return table, weighted


def token_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> TokenScores:
    """The seed's token-level table: scikit-learn on flat tags, `O` included.

    Its numbers read higher than entity-level F1; show `TOKEN_LEVEL_LABEL` with them.

    `per_tag` scores each B-/I- tag and `O`; `per_type` merges B-X and I-X into X. `weighted`
    averages `per_tag` by gold support (the seed's headline number), `weighted_by_type` averages
    `per_type`. Tags go through `to_iob2` first so that B-/I- mean the same on both sides.
    """
    _check_pairs(gold, pred)
    flat_gold = [t for s in gold for t in to_iob2(s)]
    flat_pred = [t for s in pred for t in to_iob2(s)]
    types = sorted({_tag_type(t) for t in flat_gold + flat_pred} - {"O"})
    tag_labels = [f"{prefix}-{t}" for t in types for prefix in "BI"] + ["O"]
    per_tag, weighted = _label_table(flat_gold, flat_pred, tag_labels)
    per_type, weighted_by_type = _label_table(
        [_tag_type(t) for t in flat_gold], [_tag_type(t) for t in flat_pred], [*types, "O"]
    )
    return TokenScores(
        per_tag=per_tag, per_type=per_type, weighted=weighted, weighted_by_type=weighted_by_type
    )


Counts = npt.NDArray[np.int64]


def item_counts(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Sequence[str]
) -> Counts:
    """Per item and type: strict true positives, gold entities, predicted entities.

    Shape `(items, len(types), 3)`; tags may be IOB1 or IOB2. Types outside `types` are
    ignored, so pass every type of the evaluation.
    """
    index = {t: i for i, t in enumerate(types)}
    counts = np.zeros((len(gold), len(types), 3), dtype=np.int64)
    for n, (g, p) in enumerate(zip(gold, pred, strict=True)):
        gs, ps = spans(to_iob2(g)), spans(to_iob2(p))
        for kind, *_ in gs & ps:
            if kind in index:
                counts[n, index[kind], 0] += 1
        for kind, *_ in gs:
            if kind in index:
                counts[n, index[kind], 1] += 1
        for kind, *_ in ps:
            if kind in index:
                counts[n, index[kind], 2] += 1
    return counts


__all__ = [
    "ENTITY_LEVEL_LABEL",
    "TOKEN_LEVEL_LABEL",
    "Counts",
    "EntityScores",
    "LabelScores",
    "SpanCounts",
    "TokenScores",
    "TypeScores",
    "entity_scores",
    "item_counts",
    "span_counts",
    "token_scores",
]
