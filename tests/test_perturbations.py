"""The metrics on the CoNLL-2003 test split with known perturbations: dropped mentions,
shifted boundaries, swapped types. The expected counts come from the perturbations
themselves, computed here with this file's own reading of the data, not prelabel's."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prelabel.figures import RunFigures
from task_types.ner.evaluation import evaluate
from task_types.ner.inputs import read_conlleval
from task_types.ner.scores import entity_scores

SWAP = {"LOC": "MISC", "MISC": "ORG", "ORG": "PER", "PER": "LOC"}


def read_sentences(path: Path) -> list[tuple[list[str], list[str]]]:
    """Tokens and tags (last column) per sentence; -DOCSTART- and blank lines split."""
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        tokens.append(cols[0])
        tags.append(cols[-1])
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def mentions(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of an IOB2 sentence: a mention is a B- and the I-s after it."""
    found = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            end = i + 1
            while end < len(tags) and tags[end] == "I-" + tag[2:]:
                end += 1
            found.append((tag[2:], i, end))
    return found


@dataclass
class Expected:
    tp: Counter[str] = field(default_factory=Counter)
    gold: Counter[str] = field(default_factory=Counter)
    pred: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    swaps: Counter[tuple[str, str]] = field(default_factory=Counter)


def perturb(
    sentences: list[tuple[list[str], list[str]]], drop: int, shift: int, swap: int
) -> tuple[list[list[str]], Expected]:
    """Perturb the k-th mention of the file: dropped if k % drop == 0, else boundary-shifted
    if k % shift == 0, else type-swapped if k % swap == 0 (0 turns a perturbation off)."""
    expected = Expected()
    preds: list[list[str]] = []
    k = 0
    for _, tags in sentences:
        pred = list(tags)
        for kind, start, end in mentions(tags):
            k += 1
            expected.gold[kind] += 1
            if drop and k % drop == 0:
                pred[start:end] = ["O"] * (end - start)
                expected.kinds["missed"] += 1
            elif shift and k % shift == 0 and (end - start > 1 or pred[end : end + 1] == ["O"]):
                if end - start > 1:
                    pred[end - 1] = "O"  # one token short
                else:
                    pred[end] = "I-" + kind  # one token long; the next token was O
                expected.pred[kind] += 1
                expected.kinds["boundary"] += 1
            elif swap and k % swap == 0:
                other = SWAP[kind]
                pred[start:end] = ["B-" + other] + ["I-" + other] * (end - start - 1)
                expected.pred[other] += 1
                expected.kinds["type"] += 1
                expected.swaps[(kind, other)] += 1
            else:
                expected.tp[kind] += 1
                expected.pred[kind] += 1
        preds.append(pred)
    return preds, expected


def to_iob1(tags: list[str]) -> list[str]:
    """IOB1: I- everywhere, B- only where a mention follows one of the same type."""
    out = []
    prev = "O"
    for tag in tags:
        if tag.startswith("B-") and prev[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


@pytest.fixture(scope="module")
def conll(conll_test_path: Path) -> list[tuple[list[str], list[str]]]:
    sentences = read_sentences(conll_test_path)
    for _, tags in sentences:  # the shared file is IOB2: no I- opens a mention
        for i, tag in enumerate(tags):
            if tag.startswith("I-"):
                assert i > 0 and tags[i - 1][2:] == tag[2:]
    return sentences


@pytest.mark.parametrize(
    ("drop", "shift", "swap"),
    [(0, 0, 0), (7, 0, 0), (0, 5, 0), (0, 0, 3), (7, 5, 3), (2, 3, 0)],
    ids=["none", "dropped", "shifted", "swapped", "all three", "heavy"],
)
def test_counts_under_perturbation(conll, drop, shift, swap):
    gold = [tags for _, tags in conll]
    tokens = [toks for toks, _ in conll]
    pred, expected = perturb(conll, drop, shift, swap)
    ev = evaluate(
        gold,
        pred,
        RunFigures(),
        ids=[str(i) for i in range(len(gold))],
        tokens=tokens,
        resamples=200,
    )
    scores = ev.entity
    for t, s in scores.per_type.items():
        assert (s.tp, s.support, s.predicted) == (
            expected.tp[t],
            expected.gold[t],
            expected.pred[t],
        )
        p = expected.tp[t] / expected.pred[t] if expected.pred[t] else 0.0
        r = expected.tp[t] / expected.gold[t]
        assert s.precision == pytest.approx(p)
        assert s.recall == pytest.approx(r)
        assert s.f1 == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    tp, n_gold, n_pred = (sum(c.values()) for c in (expected.tp, expected.gold, expected.pred))
    assert (scores.micro.tp, scores.micro.support, scores.micro.predicted) == (tp, n_gold, n_pred)
    assert scores.micro.f1 == pytest.approx(2 * tp / (n_gold + n_pred))
    assert n_gold == 5648  # CoNLL-2003 test: 1668 LOC, 702 MISC, 1661 ORG, 1617 PER
    assert ev.errors is not None
    got_kinds = {k: v for k, v in ev.errors.kinds.items() if v}
    assert got_kinds == {k: v for k, v in expected.kinds.items() if v}
    for (g, p), n in expected.swaps.items():
        assert ev.errors.span_confusion.cell(g, p) == n
    assert ev.intervals is not None
    micro = ev.intervals.micro.f1
    assert micro.low <= scores.micro.f1 <= micro.high
    if not (drop or shift or swap):
        assert (micro.low, micro.high) == (1.0, 1.0)
        assert ev.errors.diffs == ()


def test_iob1_input_scores_like_iob2(conll):
    gold = [tags for _, tags in conll]
    pred, _ = perturb(conll, 7, 5, 3)
    iob2 = entity_scores(gold, pred)
    iob1 = entity_scores([to_iob1(g) for g in gold], [to_iob1(p) for p in pred])
    assert iob1 == iob2
    assert sum(tag.startswith("B-") for g in gold for tag in to_iob1(g)) < 5648


def test_a_conlleval_file_reads_back_to_the_same_counts(conll, tmp_path):
    pred, expected = perturb(conll, 7, 5, 3)
    path = tmp_path / "perturbed.conll"
    with path.open("w", encoding="utf-8") as f:
        f.write("-DOCSTART- -X- O O\n\n")
        for (tokens, gold), p in zip(conll, pred, strict=True):
            f.writelines(f"{t} NNP {g} {q}\n" for t, g, q in zip(tokens, gold, p, strict=True))
            f.write("\n")
    source = read_conlleval(path)
    assert len(source.items) == len(conll)
    scores = entity_scores([i.gold for i in source.items], [i.pred for i in source.items])
    assert scores.micro.tp == sum(expected.tp.values())
    assert scores.micro.predicted == sum(expected.pred.values())
