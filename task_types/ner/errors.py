"""Error analysis: how each prediction went wrong, not only how often.

Strict entity-level scoring counts every imperfect prediction as one false positive and one
false negative. A reviewer needs to know more: was the span right and the type wrong, or the
type right and the span off by a token? Everything here is a pure function of token tags.

How gold and predicted spans of one item are paired (each span pairs at most once):

1. exact: same type, same boundaries, a true positive (not an error);
2. `type`: same boundaries, another type;
3. `boundary`: same type, overlapping, other boundaries (largest overlap first);
4. `type+boundary`: another type, overlapping, other boundaries (largest overlap first);
5. `missed`: a gold span left over (no prediction overlaps it);
6. `spurious`: a predicted span left over.

So strict false negatives = type + boundary + type+boundary + missed, and strict false
positives = type + boundary + type+boundary + spurious. A gold span split in two by the
prediction pairs with one half (a boundary error); the other half is spurious.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from prelabel.frozen import Frozen
from task_types.ner.bio import Span, spans, to_iob2

ErrorKind = Literal["type", "boundary", "type+boundary", "missed", "spurious"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("type", "boundary", "type+boundary", "missed", "spurious")
#: Row and column of a span confusion matrix for "no entity here" (missed, spurious).
NO_ENTITY = "none"
#: Token-level confusion's label for tokens outside any entity.
OUTSIDE = "O"


class SpanRef(Frozen):
    """A span of an item: its type, token range `[start, end)` and the tokens' text."""

    type: str
    start: int
    end: int
    text: str


class SpanError(Frozen):
    """One error: its kind, and the gold and predicted spans involved (None when absent)."""

    kind: ErrorKind
    gold: SpanRef | None = None
    pred: SpanRef | None = None


class ItemDiff(Frozen):
    """An item's gold and predicted spans side by side, and its errors."""

    id: str
    tokens: tuple[str, ...]
    gold: tuple[SpanRef, ...]
    pred: tuple[SpanRef, ...]
    tp: int
    errors: tuple[SpanError, ...]


class FrequentError(Frozen):
    """A string that is often a false positive (or negative) of one type, and how it erred."""

    text: str
    type: str
    count: int
    kinds: dict[str, int]


class Confusion(Frozen):
    """A confusion matrix: `counts[i][j]` is gold `labels[i]` against predicted `labels[j]`."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def cell(self, gold: str, pred: str) -> int:
        """The count for gold label `gold` predicted as `pred` (0 for unknown labels)."""
        if gold not in self.labels or pred not in self.labels:
            return 0
        return self.counts[self.labels.index(gold)][self.labels.index(pred)]


class ErrorAnalysis(Frozen):
    """Errors by kind (overall and per type), both confusion matrices, frequent false
    positives and negatives, and the diffs of every item with an error (`worst` names the
    items with most errors, worst first).
    """

    kinds: dict[str, int]
    kinds_by_type: dict[str, dict[str, int]]
    span_confusion: Confusion
    token_confusion: Confusion
    false_positives: tuple[FrequentError, ...]
    false_negatives: tuple[FrequentError, ...]
    diffs: tuple[ItemDiff, ...]
    worst: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pairing:
    """The outcome of pairing one item's spans: true positives and errors."""

    tp: tuple[Span, ...]
    errors: tuple[tuple[ErrorKind, Span | None, Span | None], ...]


def _overlap(a: Span, b: Span) -> int:
    return max(0, min(a[2], b[2]) - max(a[1], b[1]))


def pair_spans(gold: set[Span], pred: set[Span]) -> Pairing:
    """Pair one item's gold and predicted spans in the order the module docstring gives."""
    tp = gold & pred
    g_left = sorted(gold - tp, key=lambda s: (s[1], s[2], s[0]))
    p_left = set(pred - tp)
    errors: list[tuple[ErrorKind, Span | None, Span | None]] = []

    def take(kind: ErrorKind, fits: Callable[[Span, Span], bool]) -> None:
        nonlocal g_left
        rest: list[Span] = []
        for g in g_left:
            best = max(
                (p for p in p_left if fits(g, p)),
                key=lambda p: (_overlap(g, p), -p[1], p[0]),
                default=None,
            )
            if best is None:
                rest.append(g)
                continue
            p_left.discard(best)
            errors.append((kind, g, best))
        g_left = rest

    take("type", lambda g, p: (g[1], g[2]) == (p[1], p[2]))
    take("boundary", lambda g, p: g[0] == p[0] and _overlap(g, p) > 0)
    take("type+boundary", lambda g, p: _overlap(g, p) > 0)
    errors.extend(("missed", g, None) for g in g_left)
    errors.extend(("spurious", None, p) for p in sorted(p_left, key=lambda s: (s[1], s[2], s[0])))
    return Pairing(tp=tuple(sorted(tp, key=lambda s: (s[1], s[2]))), errors=tuple(errors))


def _ref(span: Span, tokens: Sequence[str]) -> SpanRef:
    kind, start, end = span
    return SpanRef(type=kind, start=start, end=end, text=" ".join(tokens[start:end]))


def _diff(
    item_id: str, tokens: Sequence[str], gold: set[Span], pred: set[Span], pairing: Pairing
) -> ItemDiff:
    def ref(span: Span | None) -> SpanRef | None:
        return None if span is None else _ref(span, tokens)

    def ordered(found: set[Span]) -> tuple[SpanRef, ...]:
        return tuple(_ref(s, tokens) for s in sorted(found, key=lambda s: (s[1], s[2])))

    return ItemDiff(
        id=item_id,
        tokens=tuple(tokens),
        gold=ordered(gold),
        pred=ordered(pred),
        tp=len(pairing.tp),
        errors=tuple(
            SpanError(kind=kind, gold=ref(gs), pred=ref(ps)) for kind, gs, ps in pairing.errors
        ),
    )


def item_diff(
    item_id: str, tokens: Sequence[str], gold: Sequence[str], pred: Sequence[str]
) -> ItemDiff:
    """One item's spans and errors; tags may be IOB1 or IOB2."""
    g, p = spans(to_iob2(gold)), spans(to_iob2(pred))
    return _diff(item_id, tokens, g, p, pair_spans(g, p))


def span_confusion(pairings: Sequence[Pairing], types: Sequence[str]) -> Confusion:
    """Gold type against predicted type over paired spans, exact or overlapping.

    The diagonal holds true positives and boundary errors; `none` holds missed entities (as a
    predicted label) and spurious ones (as a gold label).
    """
    labels = (*types, NO_ENTITY)
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for pairing in pairings:
        for kind, _, _ in pairing.tp:
            counts[index[kind], index[kind]] += 1
        for _, g, p in pairing.errors:
            counts[index[g[0] if g else NO_ENTITY], index[p[0] if p else NO_ENTITY]] += 1
    return Confusion(labels=labels, counts=tuple(tuple(int(c) for c in row) for row in counts))


def token_confusion(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Confusion:
    """Gold type against predicted type per token (B-/I- merged), `O` included."""
    flat_g = [t[2:] if t != OUTSIDE else OUTSIDE for s in gold for t in s]
    flat_p = [t[2:] if t != OUTSIDE else OUTSIDE for s in pred for t in s]
    labels = (*sorted((set(flat_g) | set(flat_p)) - {OUTSIDE}), OUTSIDE)
    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    codes = np.fromiter((index[g] * n + index[p] for g, p in zip(flat_g, flat_p, strict=True)), int)
    counts = np.bincount(codes, minlength=n * n).reshape(n, n)
    return Confusion(labels=labels, counts=tuple(tuple(int(c) for c in row) for row in counts))


def _frequent(
    found: Counter[tuple[str, str]], kinds: dict[tuple[str, str], Counter[str]], top: int
) -> tuple[FrequentError, ...]:
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))[:top]
    return tuple(
        FrequentError(text=text, type=kind, count=count, kinds=dict(kinds[(text, kind)]))
        for (text, kind), count in ranked
    )


def analyse(
    ids: Sequence[str],
    tokens: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    top: int = 15,
    worst: int = 20,
) -> ErrorAnalysis:
    """Analyse the errors of scored items (same lengths everywhere; tags IOB1 or IOB2)."""
    pairings: list[Pairing] = []
    diffs: list[ItemDiff] = []
    kinds: Counter[str] = Counter()
    by_type: Counter[tuple[str, str]] = Counter()
    fp: Counter[tuple[str, str]] = Counter()
    fn: Counter[tuple[str, str]] = Counter()
    fp_kinds: dict[tuple[str, str], Counter[str]] = {}
    fn_kinds: dict[tuple[str, str], Counter[str]] = {}
    types: set[str] = set()
    for item_id, words, g_tags, p_tags in zip(ids, tokens, gold, pred, strict=True):
        g, p = spans(to_iob2(g_tags)), spans(to_iob2(p_tags))
        types.update(s[0] for s in g | p)
        pairing = pair_spans(g, p)
        pairings.append(pairing)
        if not pairing.errors:
            continue
        diffs.append(_diff(item_id, words, g, p, pairing))
        for kind, gs, ps in pairing.errors:
            kinds[kind] += 1
            # An error belongs to the gold entity's type, or to the prediction's when the
            # model invented the entity.
            owner = gs if gs is not None else ps
            assert owner is not None
            by_type[(owner[0], kind)] += 1
            if ps is not None:
                key = (" ".join(words[ps[1] : ps[2]]), ps[0])
                fp[key] += 1
                fp_kinds.setdefault(key, Counter())[kind] += 1
            if gs is not None:
                key = (" ".join(words[gs[1] : gs[2]]), gs[0])
                fn[key] += 1
                fn_kinds.setdefault(key, Counter())[kind] += 1
    ordered_types = sorted(types)
    ranked = sorted(range(len(diffs)), key=lambda i: (-len(diffs[i].errors), diffs[i].tp, i))
    return ErrorAnalysis(
        kinds={k: kinds[k] for k in ERROR_KINDS},
        kinds_by_type={t: {k: by_type[(t, k)] for k in ERROR_KINDS} for t in ordered_types},
        span_confusion=span_confusion(pairings, ordered_types),
        token_confusion=token_confusion([to_iob2(g) for g in gold], [to_iob2(p) for p in pred]),
        false_positives=_frequent(fp, fp_kinds, top),
        false_negatives=_frequent(fn, fn_kinds, top),
        diffs=tuple(diffs),
        worst=tuple(diffs[i].id for i in ranked[:worst]),
    )


__all__ = [
    "ERROR_KINDS",
    "NO_ENTITY",
    "Confusion",
    "ErrorAnalysis",
    "ErrorKind",
    "FrequentError",
    "ItemDiff",
    "Pairing",
    "SpanError",
    "SpanRef",
    "analyse",
    "item_diff",
    "pair_spans",
    "span_confusion",
    "token_confusion",
]
