"""The whole evaluation of a run in one value: scores with their intervals, the error
analysis, what was lost before the model was ever judged, and what the quality cost.

`evaluate_items` is the entry point for a run's items (labeled, failed, with or without
gold); `evaluate` scores tag sequences that are already paired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from prelabel.errors import failure_kind
from prelabel.figures import CostQuality, RunFigures, cost_quality
from prelabel.frozen import Frozen
from task_types.bootstrap import RESAMPLES, TypeIntervals, bootstrap_intervals
from task_types.confidence_figures import (
    ConfidenceFigures,
    Outcome,
    ProposalOutcome,
    confidence_figures,
)
from task_types.ner.bio import spans, to_iob2
from task_types.ner.errors import ErrorAnalysis, analyse, item_diff
from task_types.ner.model import Item
from task_types.ner.rows import NerRow
from task_types.ner.scores import (
    EntityScores,
    TokenScores,
    TypeScores,
    entity_scores,
    item_counts,
    token_scores,
)

#: How many failed items and unaligned mentions a report lists by name.
EXAMPLES = 20


class LossExample(Frozen):
    """One item lost before scoring (failed), or one mention lost in alignment."""

    id: str
    reason: str
    type: str = ""
    mention: str = ""


class FailureKind(Frozen):
    """Failed items of one kind (`prelabel.errors.failure_kind`), with one example."""

    kind: str
    items: int
    example: LossExample


class Headline(Frozen):
    """Micro F1 over every item with gold (a failed item predicts nothing) beside the F1 over
    the labeled items only: the second leaves out the failed items, which are the hard ones,
    and so reads higher than what the run delivers."""

    all_items: TypeScores
    labeled_items: TypeScores
    items: int
    failed: int


class Losses(Frozen):
    """What the model was never judged on: failed items, and mentions the aligner could not
    place. Apart from model errors on purpose: they are plumbing, prompt or data problems.

    `unaligned_missed` counts unaligned mentions whose text is a gold entity of the same item
    that the prediction missed: recall lost to alignment rather than to the model.
    """

    failed: int = 0
    #: Failed items by kind of reason, most frequent first (`failed_kinds` has an example).
    failed_reasons: dict[str, int] = Field(default_factory=dict)
    failed_kinds: tuple[FailureKind, ...] = ()
    failed_examples: tuple[LossExample, ...] = ()
    unaligned: int = 0
    unaligned_items: int = 0
    unaligned_reasons: dict[str, int] = Field(default_factory=dict)
    unaligned_examples: tuple[LossExample, ...] = ()
    unaligned_missed: int = 0
    without_gold: int = 0


class Evaluation(Frozen):
    """Everything a report shows: both score tables, their intervals, the error analysis,
    the losses that are not model errors, the run's figures and its cost against quality.
    """

    #: The task type (`task_types.Evaluated`), a class variable: not in report.json.
    task: ClassVar[str] = "ner"

    entity: EntityScores
    token: TokenScores
    figures: RunFigures
    evaluated_items: int
    evaluated_tokens: int
    intervals: TypeIntervals | None = None
    errors: ErrorAnalysis | None = None
    losses: Losses = Losses()
    cost: CostQuality | None = None
    headline: Headline | None = None
    #: How well the run's confidence orders review (None: it measured none, or no gold).
    confidence: ConfidenceFigures | None = None


def token_offsets(text: str, tokens: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Each token's character span in `text`, found in order (() when one is not there)."""
    out: list[tuple[int, int]] = []
    pos = 0
    for token in tokens:
        start = text.find(token, pos)
        if start < 0:
            return ()
        pos = start + len(token)
        out.append((start, pos))
    return tuple(out)


def item_of_row(row: NerRow) -> Item:
    """A predictions.jsonl row as an evaluation item (a failed row predicts nothing)."""
    return Item(
        id=row.id,
        tokens=row.tokens,
        gold=row.gold_tags,
        pred=row.tags if row.status == "labeled" else None,
        error=row.error,
        unaligned=row.unaligned,
        confidence=row.confidence if row.status == "labeled" else None,
        scores=row.scores,
        offsets=token_offsets(row.text, row.tokens) if row.scores else (),
    )


def evaluate(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    figures: RunFigures,
    *,
    ids: Sequence[str] | None = None,
    tokens: Sequence[Sequence[str]] | None = None,
    losses: Losses | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Evaluation:
    """Score paired tag sequences (IOB1 or IOB2): entity-level with bootstrap intervals,
    token-level, and the error analysis. `ids` and `tokens` name items and spans in the
    error analysis (default: item indices and token positions).
    """
    entity = entity_scores(gold, pred)
    token = token_scores(gold, pred)
    names = list(ids) if ids is not None else [str(i) for i in range(len(gold))]
    words = (
        [list(t) for t in tokens]
        if tokens is not None
        else [[f"#{k}" for k in range(len(g))] for g in gold]
    )
    types = list(entity.per_type)
    intervals = bootstrap_intervals(
        item_counts(gold, pred, types), types, resamples=resamples, seed=seed
    )
    return Evaluation(
        entity=entity,
        token=token,
        figures=figures,
        evaluated_items=len(gold),
        evaluated_tokens=sum(len(s) for s in gold),
        intervals=intervals,
        errors=analyse(names, words, gold, pred),
        losses=losses if losses is not None else Losses(),
        cost=cost_quality(entity.micro.f1, figures),
    )


def _folded(text: str) -> str:
    return "".join(text.split()).casefold()


def losses_of(items: Sequence[Item]) -> Losses:
    """Failed items and alignment losses of a run's items, with reasons and examples."""
    failed = [i for i in items if i.pred is None]
    with_unaligned = [i for i in items if i.unaligned]
    missed_by_aligner = 0
    for item in with_unaligned:
        if item.pred is None or item.gold is None:
            continue
        diff = item_diff(item.id, item.tokens, item.gold, item.pred)
        missed = Counter(_folded(e.gold.text) for e in diff.errors if e.gold is not None)
        for u in item.unaligned:
            key = _folded(u.mention)
            if missed[key] > 0:
                missed[key] -= 1
                missed_by_aligner += 1
    kinds = Counter(failure_kind(i.error) for i in failed)
    first: dict[str, Item] = {}
    for item in failed:
        first.setdefault(failure_kind(item.error), item)
    unaligned = [(i.id, u) for i in with_unaligned for u in i.unaligned]
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
        unaligned=len(unaligned),
        unaligned_items=len(with_unaligned),
        unaligned_reasons=dict(Counter(u.reason for _, u in unaligned).most_common()),
        unaligned_examples=tuple(
            LossExample(id=i, reason=u.reason, type=u.type, mention=u.mention)
            for i, u in unaligned[:EXAMPLES]
        ),
        unaligned_missed=missed_by_aligner,
        without_gold=sum(i.pred is not None and i.gold is None for i in items),
    )


def evaluate_items(
    items: Sequence[Item], figures: RunFigures, *, resamples: int = RESAMPLES, seed: int = 0
) -> Evaluation:
    """Evaluate a run's items: score those labeled with gold, report the rest as losses."""
    scored = [i for i in items if i.pred is not None and i.gold is not None]
    evaluation = evaluate(
        [list(i.gold or ()) for i in scored],
        [list(i.pred or ()) for i in scored],
        figures,
        ids=[i.id for i in scored],
        tokens=[list(i.tokens) for i in scored],
        losses=losses_of(items),
        resamples=resamples,
        seed=seed,
    )
    return evaluation.model_copy(
        update={
            "headline": headline(items, evaluation.entity.micro),
            "confidence": confidence_of(items, seed=seed),
        }
    )


def _outcome(item: Item) -> Outcome:
    gold = spans(to_iob2(item.gold or ()))
    if item.pred is None:
        return Outcome(item.id, None, True, False, (0, len(gold)), (2 * len(gold), 2 * len(gold)))
    pred = spans(to_iob2(item.pred))
    tp = len(gold & pred)
    return Outcome(
        id=item.id,
        confidence=item.confidence,
        failed=False,
        right=gold == pred,
        score=(2 * tp, len(gold) + len(pred)),
        reviewed=(2 * len(gold), 2 * len(gold)),
    )


def _proposals(item: Item) -> list[ProposalOutcome]:
    """The item's kept, placed mentions, each right when its type and character span are a
    gold entity's."""
    if item.pred is None or not item.offsets:
        return []
    gold = {
        (kind, item.offsets[start][0], item.offsets[end - 1][1])
        for kind, start, end in spans(to_iob2(item.gold or ()))
    }
    return [
        ProposalOutcome(s.confidence, (s.label, s.start, s.end) in gold)
        for s in item.scores
        if s.kept and s.start is not None and s.end is not None
    ]


def confidence_of(items: Sequence[Item], *, seed: int = 0) -> ConfidenceFigures | None:
    """How well the items' confidence orders review, over those with gold (None when no
    labeled one carries a confidence); the review curve's metric is the headline's entity
    micro F1 over every item with gold."""
    with_gold = [i for i in items if i.gold is not None]
    return confidence_figures(
        [_outcome(i) for i in with_gold],
        [p for i in with_gold for p in _proposals(i)],
        "F1",
        seed=seed,
    )


def headline(items: Sequence[Item], labeled: TypeScores) -> Headline | None:
    """Micro F1 over every item with gold, a failed item counting as one that found nothing
    (None when no item has gold)."""
    with_gold = [i for i in items if i.gold is not None]
    if not with_gold:
        return None
    everything = entity_scores(
        [list(i.gold or ()) for i in with_gold],
        [list(i.pred) if i.pred is not None else ["O"] * len(i.gold or ()) for i in with_gold],
    )
    return Headline(
        all_items=everything.micro,
        labeled_items=labeled,
        items=len(with_gold),
        failed=sum(i.pred is None for i in with_gold),
    )


__all__ = [
    "Evaluation",
    "FailureKind",
    "Headline",
    "Item",
    "LossExample",
    "Losses",
    "confidence_of",
    "evaluate",
    "evaluate_items",
    "headline",
    "item_of_row",
    "losses_of",
    "token_offsets",
]
