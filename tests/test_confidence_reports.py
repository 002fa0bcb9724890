"""The confidence section of both task types' reports, from predictions.jsonl rows that
carry confidences: the figures against hand counts (the review curve starts at the
headline), the section and its two charts in every layout, the simulator caveat, the method
in the facts, and no section at all for a run that measured no confidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

import task_types
from evaluation import read_report_json
from evaluation.outputs import write_reports
from evaluation.sources import read_source
from prelabel.figures import RunFigures
from prelabel.model import Scored, Usage
from prelabel.predictions import write_predictions_jsonl
from task_types import PredictionRow
from task_types.classify import CLASSIFY, CLASSIFY_MULTI
from task_types.classify.model import ClassifyRecord, ClassifyResult
from task_types.confidence_report import (
    CONFIDENCE_TITLE,
    RELIABILITY_PNG,
    REVIEW_PNG,
    SIMULATOR_CAVEAT,
)
from task_types.ner import NER
from task_types.ner.model import NerRecord, NerResult


def ner_row(
    item_id: str,
    tokens: str,
    gold: str | None,
    pred: str | None,
    confidence: float | None = None,
    scores: tuple[Scored, ...] = (),
) -> PredictionRow:
    """A row as the collector joins it; `pred` None is a failed item."""
    record = NerRecord.from_tokens(item_id, tokens.split(), gold.split() if gold else None)
    result = NerResult(
        id=item_id,
        status="failed" if pred is None else "labeled",
        tags=tuple(pred.split()) if pred else (),
        error="endpoint said 500" if pred is None else None,
        model="gpt-test",
        usage=Usage(prompt_tokens=10, completion_tokens=2, requests=1),
        confidence=confidence,
        scores=scores,
    )
    return NER.row(record, result)


def ner_rows(with_confidence: bool = True) -> list[PredictionRow]:
    def c(x: float) -> float | None:
        return x if with_confidence else None

    def s(*scored: Scored) -> tuple[Scored, ...]:
        return scored if with_confidence else ()

    return [
        # Bob missed: 2 tp, 3 gold, 2 predicted; both placed proposals right. A rejected one
        # (kept=False) is left out.
        ner_row(
            "n1",
            "Alice met Bob in Paris",
            "B-PER O B-PER O B-LOC",
            "B-PER O O O B-LOC",
            c(0.4),
            s(
                Scored(label="PER", confidence=0.9, text="Alice", start=0, end=5),
                Scored(label="LOC", confidence=0.4, text="Paris", start=17, end=22),
                Scored(label="PER", confidence=0.2, text="Bob", start=10, end=13, kept=False),
            ),
        ),
        ner_row(
            "n2",
            "Acme sued Zed",
            "B-ORG O B-PER",
            "B-ORG O B-PER",
            c(0.95),
            s(
                Scored(label="ORG", confidence=0.95, text="Acme", start=0, end=4),
                Scored(label="PER", confidence=0.97, text="Zed", start=10, end=13),
            ),
        ),
        # Wrong type; a mention that could not be placed is left out.
        ner_row(
            "n3",
            "Rome is old",
            "B-LOC O O",
            "B-PER O O",
            c(0.6),
            s(
                Scored(label="PER", confidence=0.6, text="Rome", start=0, end=4),
                Scored(label="MISC", confidence=0.3, text="olde"),
            ),
        ),
        ner_row("n4", "Oslo", "B-LOC", None),
        # No gold: not in any figure.
        ner_row("n5", "Nobody here", None, "O O", c(0.1)),
    ]


def _write_run(folder: Path, rows: list[PredictionRow], task: str, method: str) -> Path:
    folder.mkdir()
    write_predictions_jsonl(folder / "predictions.jsonl", rows)
    method_name, _, samples = method.partition(":")
    group = {"method": method_name, **({"samples": int(samples)} if samples else {})}
    run = {"task": task, "confidence": group}
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return folder


def test_ner_figures_by_hand_from_a_run_folder(tmp_path: Path) -> None:
    source = read_source(_write_run(tmp_path / "run", ner_rows(), "ner", "consistency:5"))
    assert source.figures.confidence_method == "consistency:5"
    ev = NER.evaluate(source.items, source.figures, resamples=0, seed=0)
    c = ev.confidence
    assert c is not None
    assert (c.items, c.measured, c.unmeasured, c.failed, c.wrong) == (4, 3, 0, 1, 3)
    # Items with a confidence: 0.4 and 0.6 wrong, 0.95 right: (0.4 + 0.6 + 0.05) / 3.
    assert c.item_calibration.ece == pytest.approx(0.35)
    # Proposals: 0.4 right, 0.6 wrong, 0.9, 0.95, 0.97 right (mean 0.94):
    # (0.6 + 0.6 + 3 * 0.06) / 5.
    assert c.proposal_calibration is not None and c.proposal_calibration.count == 5
    assert c.proposal_calibration.ece == pytest.approx(0.276)
    assert c.auroc == pytest.approx(1.0)
    # 2 * tp over gold + predicted: 8/12 before, the headline's F1 over all items. Review
    # order n4 (failed), n1, n3, n2: 10/13 after one item, 12/14 after two, then 1.
    r = c.review
    assert ev.headline is not None
    assert r.at(0)[0] == pytest.approx(ev.headline.all_items.f1) == pytest.approx(8 / 12)
    assert r.at(25)[0] == pytest.approx(10 / 13)
    assert r.at(50)[0] == pytest.approx(12 / 14)
    assert r.at(75)[0] == pytest.approx(1.0)
    assert r.at(100) == pytest.approx((1.0, 1.0))
    assert r.metric == "F1"
    facts = dict(NER.report.facts(ev))
    assert facts["confidence"] == "consistency:5"


def test_classification_single_label_figures_by_hand() -> None:
    def row(i: str, gold: str, label: str | None, conf: float | None) -> PredictionRow:
        result = ClassifyResult(
            id=i,
            status="failed" if label is None else "labeled",
            labels=(label,) if label else (),
            error="unreadable answer" if label is None else None,
            confidence=conf,
            scores=(Scored(label=label, confidence=conf or 0.0),) if label else (),
        )
        return CLASSIFY.row(ClassifyRecord(id=i, text=f"text {i}", gold=(gold,)), result)

    rows = [
        row("c1", "World", "World", 0.9),
        row("c2", "Sports", "World", 0.3),
        row("c3", "Business", None, None),
        row("c4", "Sci/Tech", "Sci/Tech", 0.3),
    ]
    ev = CLASSIFY.evaluate([CLASSIFY.item(r) for r in rows], RunFigures(), resamples=0, seed=0)
    c = ev.confidence
    assert c is not None and c.review.metric == "accuracy"
    # Wrong: c2 (doubt 0.7), c3 (failed: doubt 1); right: c1 (0.1), c4 (0.7). Of four
    # pairs, three rank the wrong item first and one ties: 3.5 / 4.
    assert c.auroc == pytest.approx(0.875)
    # Order c3, c2, c4 (tie with c2, by id), c1: accuracy 2/4, then 3/4, then 4/4.
    assert ev.headline is not None
    assert c.review.at(0)[0] == pytest.approx(ev.headline.accuracy_all) == pytest.approx(0.5)
    assert c.review.at(25)[0] == pytest.approx(0.75)
    assert c.review.at(50)[0] == pytest.approx(1.0)
    # Proposals: World 0.9 right, World 0.3 wrong, Sci/Tech 0.3 right.
    assert c.proposal_calibration is not None
    assert c.proposal_calibration.ece == pytest.approx((0.1 + 2 * 0.2) / 3)
    assert c.precision_at[2].items == 2 and c.precision_at[2].precision == pytest.approx(1.0)


def test_classification_multi_label_review_curve_is_micro_f1() -> None:
    def row(i: str, gold: tuple[str, ...], labels: tuple[str, ...] | None, conf: float | None):
        result = ClassifyResult(
            id=i,
            status="failed" if labels is None else "labeled",
            labels=labels or (),
            error="unreadable answer" if labels is None else None,
            confidence=conf,
            scores=tuple(Scored(label=t, confidence=conf or 0.0) for t in labels or ()),
        )
        return CLASSIFY_MULTI.row(ClassifyRecord(id=i, text=f"text {i}", gold=gold), result)

    rows = [
        row("m1", ("joy", "love"), ("joy",), 0.5),
        row("m2", ("anger",), ("anger",), 0.9),
        row("m3", ("neutral",), None, None),
    ]
    items = [CLASSIFY_MULTI.item(r) for r in rows]
    ev = CLASSIFY_MULTI.evaluate(items, RunFigures(), resamples=0, seed=0)
    c = ev.confidence
    assert c is not None and c.review.metric == "micro F1"
    assert ev.headline is not None
    # 2 tp over gold + predicted: 4/6; reviewing m3 (failed): 6/7; then m1: 8/8.
    assert c.review.at(0)[0] == pytest.approx(ev.headline.micro_f1_all) == pytest.approx(4 / 6)
    assert c.review.at(35)[0] == pytest.approx(6 / 7)
    assert c.review.at(70)[0] == pytest.approx(1.0)


def _ner_evaluation(with_confidence: bool, *, simulator: bool):
    rows = ner_rows(with_confidence)
    figures = RunFigures(
        items=len(rows),
        model="gpt-test",
        simulator=simulator,
        confidence_method="verify" if with_confidence else "none",
    )
    return NER.evaluate([NER.item(r) for r in rows], figures, resamples=50, seed=0)


@pytest.mark.parametrize("simulator", [False, True])
def test_a_report_with_confidence_has_the_section_and_both_charts(
    tmp_path: Path, simulator: bool
) -> None:
    ev = _ner_evaluation(True, simulator=simulator)
    written = {p.name for p in write_reports(ev, tmp_path)}
    assert {REVIEW_PNG, RELIABILITY_PNG} <= written
    for name in (REVIEW_PNG, RELIABILITY_PNG):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"## {CONFIDENCE_TITLE}" in md
    assert "Reviewing the least-confident 20% of items brings F1 from 66.7 to " in md
    assert f"]({REVIEW_PNG})" in md and f"]({RELIABILITY_PNG})" in md
    assert ("confidence from the simulator is made up" in md.lower()) is simulator
    assert "- confidence: verify" in md
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert CONFIDENCE_TITLE in html and html.count('<img class="chart"') == 4
    assert "failed · confidence verify" in html
    assert (SIMULATOR_CAVEAT[1:] in html) is simulator
    back = read_report_json(tmp_path / "report.json", "ner")
    assert back == ev and back.confidence is not None
    console = Console(record=True, width=160)
    for table in NER.report.tables(ev):
        console.print(table)
    text = console.export_text()
    assert CONFIDENCE_TITLE in text and "least confident first" in text
    assert (SIMULATOR_CAVEAT[1:] in text) is simulator
    assert "Reviewing the least-confident 20% of items brings F1 from 66.7 to" in text


@pytest.mark.parametrize("task_name", ["ner", "classify"])
def test_a_run_without_confidence_writes_no_section_and_no_chart(
    tmp_path: Path, task_name: str
) -> None:
    if task_name == "ner":
        ev = _ner_evaluation(False, simulator=True)
    else:
        rows = [
            CLASSIFY.row(
                ClassifyRecord(id=str(i), text="t", gold=(tag,)),
                ClassifyResult(id=str(i), status="labeled", labels=("World",)),
            )
            for i, tag in enumerate(("World", "Sports", "World"))
        ]
        ev = CLASSIFY.evaluate([CLASSIFY.item(r) for r in rows], RunFigures(), resamples=0, seed=0)
    assert ev.confidence is None
    written = {p.name for p in write_reports(ev, tmp_path)}
    assert not {REVIEW_PNG, RELIABILITY_PNG} & written
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for text in (md, html):
        assert CONFIDENCE_TITLE not in text and "least-confident" not in text
    assert "- confidence:" not in md
    report = task_types.get(task_name).report
    assert "confidence" not in dict(report.facts(ev))


def test_classification_report_writes_the_section_too(tmp_path: Path) -> None:
    rows = [
        CLASSIFY.row(
            ClassifyRecord(id=str(i), text="t", gold=("World" if i % 3 else "Sports",)),
            ClassifyResult(
                id=str(i),
                status="labeled",
                labels=("World",),
                confidence=0.3 + 0.05 * i,
                scores=(Scored(label="World", confidence=0.3 + 0.05 * i),),
            ),
        )
        for i in range(12)
    ]
    ev = CLASSIFY.evaluate([CLASSIFY.item(r) for r in rows], RunFigures(), resamples=0, seed=0)
    written = {p.name for p in write_reports(ev, tmp_path)}
    assert {REVIEW_PNG, RELIABILITY_PNG} <= written
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Reviewing the least-confident 20% of items brings accuracy from 66.7 to" in md
    assert read_report_json(tmp_path / "report.json", "classify") == ev


def test_collect_records_the_method_and_writes_the_section(redis_client, tmp_path: Path) -> None:
    from collector.collect import collect
    from prelabel.keys import RunKeys
    from prelabel.model import ConfidenceConfig, RunConfig
    from prelabel.store import RunStore

    config = RunConfig(
        run_id="20260101-000000-conf01",
        model="gpt-test",
        base_url="http://127.0.0.1:1/v1",
        dataset="ag_news",
        split="test",
        task="classify",
        prompt_version="classify-v1",
        total=12,
        shards=1,
    ).model_copy(update={"confidence": ConfidenceConfig.parse("consistency:7")})
    records = [
        ClassifyRecord(id=f"{i:02d}", text="t", gold=("World" if i % 3 else "Sports",))
        for i in range(12)
    ]
    store = RunStore(redis_client)
    store.create(config, [records])
    results = {
        r.id: ClassifyResult(
            id=r.id,
            status="labeled",
            labels=("World",),
            model="gpt-test",
            confidence=0.5 + 0.04 * i,
            scores=(Scored(label="World", confidence=0.5 + 0.04 * i),),
        )
        for i, r in enumerate(records)
    }
    redis_client.hset(
        RunKeys(config.run_id).results,
        mapping={k: v.model_dump_json() for k, v in results.items()},
    )
    collected = collect(store, config.run_id, tmp_path / "run", wall_seconds=1.0)
    names = {p.name for p in collected.files}
    assert {REVIEW_PNG, RELIABILITY_PNG} <= names
    ev = collected.evaluation
    assert ev.figures.confidence_method == "consistency:7"
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "- confidence: consistency:7" in md and f"## {CONFIDENCE_TITLE}" in md
    # Read back from the folder, the figures come from report.json and agree.
    again = read_source(tmp_path / "run")
    assert again.figures.confidence_method == "consistency:7"
    assert CLASSIFY.item(CLASSIFY.row(records[0], results["00"])).confidence == 0.5
