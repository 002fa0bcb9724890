"""Classification's reporting half: its predictions.jsonl row, the metrics (checked against
scikit-learn and by hand on fixed inputs), bootstrap intervals, failed items and repairs, the
report files the frame writes, `compare`, and the exports (CSV, Label Studio, Hugging Face),
each read back with the tool a user would read it with.

Rows are built here from `ClassifyRecord`/`ClassifyResult`, as the collector builds them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
)
from sklearn.preprocessing import MultiLabelBinarizer

import task_types
from evaluation import read_report_json, report_markdown
from evaluation.outputs import write_reports
from prelabel.errors import DatasetError, RunError
from prelabel.figures import RunFigures
from prelabel.model import Label, LabelSet, RunConfig, Usage
from prelabel.predictions import read_predictions_jsonl, write_predictions_jsonl
from task_types.base import Source
from task_types.classify import CLASSIFY, CLASSIFY_MULTI
from task_types.classify.evaluation import (
    MultiEvaluation,
    SingleEvaluation,
    evaluate_items,
    scores,
)
from task_types.classify.exports import BOM, class_names
from task_types.classify.model import ClassifyRecord, ClassifyResult, Item, Repair
from task_types.classify.rows import ClassifyRow
from task_types.classify.tables import CONFUSION_PNG, F1_PNG

AG = LabelSet(
    labels=tuple(Label(name=n, tag=n) for n in ("World", "Sports", "Business", "Sci/Tech"))
)
EMOTIONS = LabelSet(
    labels=tuple(Label(name=n, tag=n) for n in ("admiration", "anger", "joy", "love", "neutral"))
)


def row(
    item_id: str,
    gold: tuple[str, ...] | None,
    labels: tuple[str, ...] | None,
    *,
    text: str | None = None,
    repairs: tuple[Repair, ...] = (),
    error: str = "unreadable answer: 'Foo' is none of World, Sports",
) -> ClassifyRow:
    """A row as the collector joins it; `labels` None is a failed item."""
    record = ClassifyRecord(id=item_id, text=text or f"text of {item_id}", gold=gold)
    result = ClassifyResult(
        id=item_id,
        status="failed" if labels is None else "labeled",
        labels=labels or (),
        error=error if labels is None else None,
        repairs=repairs,
        model="gpt-test",
        usage=Usage(prompt_tokens=10, completion_tokens=2, requests=1),
    )
    task = CLASSIFY_MULTI if labels is not None and len(labels) != 1 else CLASSIFY
    out = task.row(record, result)
    assert isinstance(out, ClassifyRow)
    return out


def items(rows: list[ClassifyRow]) -> list[Item]:
    return [CLASSIFY.item(r) for r in rows]


# --- the row ---------------------------------------------------------------------------------


def test_row_keys_are_in_the_contract_order_and_round_trip(tmp_path: Path) -> None:
    rows = [
        row("1", ("World",), ("World",), text='Émile in Zürich 🎉, "quoted"'),
        row("2", ("Sports",), None),
        row(
            "3",
            None,
            ("Sci/Tech",),
            repairs=(Repair(given="sci tech", label="Sci/Tech", reason="near miss"),),
        ),
    ]
    path = tmp_path / "predictions.jsonl"
    write_predictions_jsonl(path, rows)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == [
        "id", "text", "labels", "gold", "status", "error", "repairs", "model",
        "prompt_version", "usage", "confidence", "scores",
    ]  # fmt: skip
    assert first["labels"] == ["World"] and first["gold"] == ["World"]
    assert "🎉" in path.read_text(encoding="utf-8")
    assert read_predictions_jsonl(path, CLASSIFY) == rows
    failed = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
    assert failed["labels"] == [] and failed["status"] == "failed" and failed["error"]


def test_row_refuses_a_result_of_another_item_or_labels_on_a_failure() -> None:
    record = ClassifyRecord(id="1", text="t", gold=("World",))
    with pytest.raises(RunError, match="paired with record '1'"):
        CLASSIFY.row(record, ClassifyResult(id="2", status="labeled", labels=("World",)))
    with pytest.raises(ValueError, match="failed item carries no labels"):
        ClassifyRow(id="1", text="t", labels=("World",), status="failed")
    with pytest.raises(ValueError, match="repeat a label"):
        ClassifyRow(id="1", text="t", labels=("joy", "joy"), status="labeled")


def test_check_rows_refuses_several_labels_in_a_single_label_run() -> None:
    rows = [row("1", ("joy",), ("joy", "love")), row("2", ("joy",), ())]
    CLASSIFY_MULTI.check_rows(rows)  # a set, or an empty one, is multi-label's
    with pytest.raises(DatasetError, match=r"item '1' is labeled with 2 labels \(joy, love\)"):
        CLASSIFY.check_rows(rows)
    with pytest.raises(DatasetError, match=r"item '2' is labeled with 0 labels"):
        CLASSIFY.check_rows(rows[1:])
    CLASSIFY.check_rows([row("3", ("joy",), None)])  # a failed row has none


# --- metrics on fixed inputs -----------------------------------------------------------------

SINGLE_GOLD = ["A", "A", "B", "B", "C"]
SINGLE_PRED = ["A", "B", "B", "B", "A"]


def test_single_label_scores_match_scikit_learn_and_the_hand_count() -> None:
    s = scores([[g] for g in SINGLE_GOLD], [[p] for p in SINGLE_PRED], multi_label=False)
    # by hand: A tp 1 of 2 predicted, 2 gold; B tp 2 of 3 predicted, 2 gold; C never predicted
    assert s.classes == ("A", "B", "C")
    assert s.accuracy == pytest.approx(3 / 5)
    assert (s.per_class["A"].precision, s.per_class["A"].recall) == (0.5, 0.5)
    assert s.per_class["B"].precision == pytest.approx(2 / 3) and s.per_class["B"].recall == 1.0
    assert s.per_class["B"].f1 == pytest.approx(0.8)
    assert (s.per_class["C"].f1, s.per_class["C"].support, s.per_class["C"].predicted) == (0, 1, 0)
    assert s.macro.f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert s.micro.f1 == pytest.approx(0.6) == pytest.approx(s.accuracy)
    assert s.confusion == ((1, 1, 0), (0, 2, 0), (1, 0, 0))
    assert s.hamming_loss is None
    # and scikit-learn's own calls agree
    p, r, f, sup = precision_recall_fscore_support(SINGLE_GOLD, SINGLE_PRED, zero_division=0)
    assert [s.per_class[c].f1 for c in s.classes] == pytest.approx(list(f))
    assert [s.per_class[c].precision for c in s.classes] == pytest.approx(list(p))
    assert [s.per_class[c].recall for c in s.classes] == pytest.approx(list(r))
    assert [s.per_class[c].support for c in s.classes] == list(sup)
    assert s.macro.f1 == pytest.approx(f1_score(SINGLE_GOLD, SINGLE_PRED, average="macro"))
    assert s.micro.f1 == pytest.approx(f1_score(SINGLE_GOLD, SINGLE_PRED, average="micro"))
    assert s.accuracy == accuracy_score(SINGLE_GOLD, SINGLE_PRED)
    assert [list(x) for x in s.confusion] == confusion_matrix(SINGLE_GOLD, SINGLE_PRED).tolist()


MULTI_GOLD = [["a", "b"], ["a"], ["c"], []]
MULTI_PRED = [["a"], ["a", "c"], ["c"], []]


def test_multi_label_scores_match_scikit_learn_and_the_hand_count() -> None:
    s = scores(MULTI_GOLD, MULTI_PRED, multi_label=True)
    # by hand: a 2/2 right; b missed once; c right once and spurious once
    assert s.per_class["a"].f1 == 1.0
    assert (s.per_class["b"].precision, s.per_class["b"].recall, s.per_class["b"].f1) == (0, 0, 0)
    assert s.per_class["c"].precision == 0.5 and s.per_class["c"].recall == 1.0
    assert s.per_class["c"].f1 == pytest.approx(2 / 3)
    assert (s.micro.tp, s.micro.predicted, s.micro.support) == (3, 4, 4)
    assert s.micro.f1 == pytest.approx(0.75)
    assert s.macro.f1 == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert s.accuracy == 0.5  # items 3 and 4 are exact, the empty set equal to the empty set
    assert s.hamming_loss == pytest.approx(2 / 12)  # b of item 1, c of item 2, of 4 × 3
    assert s.confusion is None
    binarizer = MultiLabelBinarizer(classes=list(s.classes))
    g, p = binarizer.fit_transform(MULTI_GOLD), binarizer.transform(MULTI_PRED)
    assert s.accuracy == accuracy_score(g, p)
    assert s.hamming_loss == pytest.approx(hamming_loss(g, p))
    assert s.micro.f1 == pytest.approx(f1_score(g, p, average="micro"))
    assert s.macro.f1 == pytest.approx(f1_score(g, p, average="macro", zero_division=0))
    assert [s.per_class[c].f1 for c in s.classes] == pytest.approx(
        list(f1_score(g, p, average=None, zero_division=0))
    )


def test_a_single_label_evaluation_refuses_an_item_with_several_gold_labels() -> None:
    with pytest.raises(DatasetError, match=r"item 'x' has 2 gold labels"):
        scores([["A", "B"]], [["A"]], multi_label=False, ids=["x"])


def _random_rows(multi: bool, n: int = 300, seed: int = 7) -> list[ClassifyRow]:
    rng = random.Random(seed)
    tags = [t.tag for t in (EMOTIONS if multi else AG).labels]
    out = []
    for i in range(n):
        if multi:
            gold = tuple(sorted(rng.sample(tags, rng.randint(1, 2))))
            pred = tuple(t for t in gold if rng.random() < 0.8) + tuple(
                t for t in tags if t not in gold and rng.random() < 0.1
            )
        else:
            gold = (rng.choice(tags),)
            pred = gold if rng.random() < 0.7 else (rng.choice(tags),)
        out.append(row(f"r{i}", gold, pred))
    return out


@pytest.mark.parametrize("multi", [False, True])
def test_bootstrap_intervals_hold_the_point_estimate(multi: bool) -> None:
    task = CLASSIFY_MULTI if multi else CLASSIFY
    ev = task.evaluate(items(_random_rows(multi)), RunFigures(), resamples=500, seed=3)
    iv = ev.intervals
    assert iv is not None and iv.scores.resamples == 500
    pairs = [(ev.scores.accuracy, iv.accuracy), (ev.scores.micro.f1, iv.scores.micro.f1)]
    pairs.append((ev.scores.macro.f1, iv.scores.macro.f1))
    pairs += [(ev.scores.per_class[c].f1, iv.scores.per_type[c].f1) for c in ev.scores.classes]
    if multi:
        assert ev.scores.hamming_loss is not None and iv.hamming_loss is not None
        pairs.append((ev.scores.hamming_loss, iv.hamming_loss))
    for point, interval in pairs:
        assert interval.low <= point <= interval.high
        assert interval.low < interval.high  # 300 items with errors: not a degenerate interval
    if not multi:  # one label per item: micro F1 is accuracy, resample by resample
        assert iv.accuracy == iv.scores.micro.f1
    same = task.evaluate(items(_random_rows(multi)), RunFigures(), resamples=500, seed=3)
    assert same == ev  # seeded: the same intervals every time


def test_failed_items_are_losses_by_kind_and_wrong_in_the_headline() -> None:
    rows = [
        row("1", ("World",), ("World",)),
        row("2", ("Sports",), ("Sports",)),
        row("3", ("Business",), ("World",)),
        row("4", ("World",), None, error="line 2: unreadable answer: 'Foo' is none of World"),
        row("5", ("Sports",), None, error="line 7: unreadable answer: 'Bar' is none of World"),
        row("6", ("Sports",), None, error="request failed: HTTP 500 from the endpoint"),
        row("7", None, ("Sports",)),
    ]
    ev = CLASSIFY.evaluate(items(rows), RunFigures(items=7), resamples=0, seed=0)
    assert isinstance(ev, SingleEvaluation) and ev.task == "classify"
    assert ev.evaluated_items == 3 and ev.scores.accuracy == pytest.approx(2 / 3)
    h = ev.headline
    assert h is not None and (h.items, h.failed) == (6, 3)
    assert h.accuracy_all == pytest.approx(2 / 6)  # the failed three are wrong
    assert h.accuracy_labeled == pytest.approx(2 / 3)
    # micro F1 with a failed item predicting nothing: 2 right of 3 predicted, of 6 gold
    assert h.micro_f1_all == pytest.approx(2 * 2 / (6 + 3))
    losses = ev.losses
    assert losses.failed == 3 and losses.without_gold == 1
    assert losses.failed_reasons == {"unreadable answer": 2, "request failed": 1}
    first = losses.failed_kinds[0]
    assert (first.kind, first.items, first.example.id) == ("unreadable answer", 2, "4")
    assert [w.id for w in ev.wrong] == ["3"] and ev.wrong_items == 1
    assert [(c.gold, c.pred, c.count) for c in ev.confused] == [("Business", "World", 1)]


def test_repairs_are_counted_and_shown() -> None:
    near = Repair(given="Sprots", label="Sports", reason="near-miss spelling of Sports")
    wrong = Repair(given="Wrld", label="World", reason="near-miss spelling of World")
    gone = Repair(given="happy-ish", label=None, reason="no label close to 'happy-ish'")
    rows = [
        row("1", ("Sports",), ("Sports",), repairs=(near,)),
        row("2", ("Business",), ("World",), repairs=(wrong,)),
        row("3", ("joy",), ("joy",), repairs=(gone,)),
        row("4", ("joy",), ()),
    ]
    ev = CLASSIFY_MULTI.evaluate(items(rows), RunFigures(), resamples=0, seed=0)
    r = ev.repairs
    assert (r.repaired, r.repaired_right, r.dropped, r.items, r.empty) == (2, 1, 1, 3, 1)
    assert [(x.id, x.given, x.label) for x in r.examples] == [
        ("1", "Sprots", "Sports"), ("2", "Wrld", "World"), ("3", "happy-ish", None)
    ]  # fmt: skip
    md = report_markdown(ev)
    assert "## Answer repairs" in md and "| 3 | happy-ish | (dropped) |" in md
    assert "| items labeled with no label (empty answer) | 1 |" in md


def test_no_gold_says_so_instead_of_scores() -> None:
    ev = CLASSIFY.evaluate(
        items([row("1", None, ("World",)), row("2", None, None)]),
        RunFigures(),
        resamples=100,
        seed=0,
    )
    assert ev.headline is None and ev.evaluated_items == 0
    assert "No gold labels" in report_markdown(ev)
    assert CLASSIFY.report.tables(ev)  # renders
    assert not CLASSIFY.can_score(items([row("1", None, ("World",))]))


# --- the report files ------------------------------------------------------------------------


@pytest.mark.parametrize("multi", [False, True])
def test_the_frame_writes_every_report_with_charts(tmp_path: Path, multi: bool) -> None:
    task = CLASSIFY_MULTI if multi else CLASSIFY
    rows = [*_random_rows(multi, n=60), row("f", ("World",), None)]
    ev = task.evaluate(items(rows), RunFigures(items=61, model="gpt-test"), resamples=200, seed=0)
    written = write_reports(ev, tmp_path)
    names = {p.name for p in written}
    charts = {F1_PNG} if multi else {F1_PNG, CONFUSION_PNG}
    assert names == {"report.json", "report.md", "report.html", *charts}
    for chart in charts:
        assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG")
    back = read_report_json(tmp_path / "report.json", task.name)
    assert back == ev and type(back) is (MultiEvaluation if multi else SingleEvaluation)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"![F1 by class, with 95% intervals]({F1_PNG})" in md
    assert ("## Confusion matrix" in md) is not multi
    assert ("Hamming loss" in md) is multi
    assert (
        "subset accuracy over all 61 items (the 1 failed are wrong)" in md
        if multi
        else ("accuracy over all 61 items (the 1 failed are wrong)" in md)
    )
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count('<img class="chart"') == len(charts)
    assert "Failed items by kind" in html and "unreadable answer" in html
    console = Console(record=True, width=160)
    for table in task.report.tables(ev):
        console.print(table)
    text = console.export_text()
    assert "macro avg" in text and ("gold \\ pred" in text) is not multi


# --- compare ------------------------------------------------------------------------------------


def _source(path: str, rows: list[ClassifyRow], task_name: str) -> Source:
    task = task_types.get(task_name)
    figures = RunFigures(items=len(rows), prompt_tokens=1000, completion_tokens=100)
    return Source(Path(path), "predictions", [task.item(r) for r in rows], figures, "", task_name)


def test_compare_pairs_items_by_id_and_tests_the_difference() -> None:
    rng = random.Random(1)
    tags = [t.tag for t in AG.labels]
    gold = [rng.choice(tags) for _ in range(200)]
    a = [
        row(f"i{k}", (g,), (g if rng.random() < 0.6 else rng.choice(tags),))
        for k, g in enumerate(gold)
    ]
    b = [row(f"i{k}", (g,), (g,)) for k, g in enumerate(gold)]
    b[0] = row("i0", (gold[0],), None)  # failed in B: not compared, wrong in the headline
    b.append(row("extra", ("World",), ("World",)))
    c = CLASSIFY.compare(
        _source("a", a, "classify"), _source("b", b, "classify"), resamples=300, seed=0
    )
    assert (c.compared, c.only_in_a, c.only_in_b, c.not_scored) == (199, 0, 1, 1)
    assert c.accuracy.b == 1.0 and c.accuracy.delta > 0.2 and c.accuracy.p_value < 0.01
    assert c.accuracy.low <= c.accuracy.delta <= c.accuracy.high
    assert c.paired.micro.delta == pytest.approx(c.accuracy.delta)
    assert set(c.paired.per_type) == set(tags)
    assert (c.failed_a, c.failed_b, c.items_all) == (0, 1, 200)
    assert c.accuracy_all_b == pytest.approx(199 / 200)
    console = Console(record=True, width=160)
    for table in CLASSIFY.report.comparison_tables(c):
        console.print(table)
    assert "B vs A: single-label classification" in console.export_text()
    json.dumps(c.model_dump(mode="json"))  # what `compare --json` prints


def test_compare_multi_label_and_refuses_different_gold() -> None:
    a = [row("1", ("joy",), ("joy",)), row("2", ("anger", "joy"), ("anger",))]
    b = [row("1", ("joy",), ("joy",)), row("2", ("anger", "joy"), ("joy", "anger"))]
    c = CLASSIFY_MULTI.compare(
        _source("a", a, "classify-multi"), _source("b", b, "classify-multi"), resamples=50, seed=0
    )
    assert (c.accuracy.a, c.accuracy.b) == (0.5, 1.0) and c.multi_label
    other = [row("1", ("love",), ("joy",)), row("2", ("anger", "joy"), ("anger",))]
    with pytest.raises(DatasetError, match="item '1' has different gold labels"):
        CLASSIFY_MULTI.compare(
            _source("a", a, "classify-multi"), _source("b", other, "classify-multi"),
            resamples=10, seed=0,
        )  # fmt: skip


# --- exports -----------------------------------------------------------------------------------


def _config(task: str, labels: LabelSet) -> RunConfig:
    return RunConfig(
        run_id="20260101-000000-cls001",
        model="gpt-test",
        base_url="http://127.0.0.1:1/v1",
        dataset="ag_news",
        split="test",
        labels=labels,
        task=task,
        prompt_version="classify-v1",
    )


AWKWARD = 'Comma, "quotes" and\na line break; 🎉 Zürich'


def test_csv_opens_in_a_spreadsheet_and_reads_back(tmp_path: Path) -> None:
    rows = [
        row("1", ("World",), ("World",), text=AWKWARD),
        row("2", ("Sports",), None),
        row("3", None, ("Sci/Tech",), text="=1+1 stays text"),
    ]
    (path,) = CLASSIFY.formats["csv"](tmp_path, rows)
    raw = path.read_bytes()
    assert raw.startswith(BOM.encode("utf-8")) and path.name == "predictions.csv"
    assert b"\r\n" in raw  # RFC 4180 line ends
    with path.open(encoding="utf-8-sig", newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == ["id", "text", "label", "gold", "status", "error"]
    assert back[0] == {
        "id": "1", "text": AWKWARD, "label": "World", "gold": "World", "status": "labeled",
        "error": "",
    }  # fmt: skip
    assert (back[1]["label"], back[1]["status"]) == ("", "failed") and back[1]["error"]
    # A formula-looking text is kept as text: the apostrophe that says so, spreadsheets hide.
    assert (back[2]["gold"], back[2]["text"]) == ("", "'=1+1 stays text")


def test_csv_joins_a_multi_label_set(tmp_path: Path) -> None:
    rows = [row("1", ("anger", "joy"), ("joy", "love")), row("2", ("neutral",), ())]
    (path,) = CLASSIFY_MULTI.formats["csv"](tmp_path, rows)
    back = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    assert [(r["labels"], r["gold"]) for r in back] == [
        ("joy; love", "anger; joy"),
        ("", "neutral"),
    ]


@pytest.mark.parametrize("multi", [False, True])
def test_label_studio_config_parses_and_tasks_carry_choices(tmp_path: Path, multi: bool) -> None:
    from collector.formats import write_label_studio

    task = task_types.get("classify-multi" if multi else "classify")
    labels = EMOTIONS if multi else AG
    rows = (
        [row("1", ("joy",), ("joy", "love")), row("2", ("joy",), ()), row("3", ("joy",), None)]
        if multi
        else [row("1", ("Sci/Tech",), ("Sci/Tech",), text=AWKWARD), row("2", ("World",), None)]
    )
    tasks_path, config_path = write_label_studio(tmp_path, rows, _config(task.name, labels), task)
    root = ET.fromstring(config_path.read_text(encoding="utf-8"))
    (choices,) = root.iter("Choices")
    (text,) = root.iter("Text")
    assert choices.get("choice") == ("multiple" if multi else "single")
    assert choices.get("toName") == text.get("name") == "text" and text.get("value") == "$text"
    assert [c.get("value") for c in choices.iter("Choice")] == [t.tag for t in labels.labels]
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    assert [t["data"]["item_id"] for t in tasks] == [r.id for r in rows]
    (result,) = tasks[0]["predictions"][0]["result"]
    assert result["type"] == "choices" and result["from_name"] == choices.get("name")
    assert result["value"]["choices"] == list(rows[0].labels)
    assert "predictions" not in tasks[-1]  # failed: no prediction
    if multi:
        assert tasks[1]["predictions"][0]["result"] == []  # labeled with no label


@pytest.mark.parametrize("multi", [False, True])
def test_hf_dataset_loads_back_with_class_labels(tmp_path: Path, multi: bool) -> None:
    from datasets import ClassLabel, List, load_from_disk

    from collector.formats import write_hf_dataset

    task = task_types.get("classify-multi" if multi else "classify")
    labels = EMOTIONS if multi else AG
    if multi:
        rows = [
            row("1", ("anger", "joy"), ("joy", "love")),
            row("2", ("neutral",), ()),
            row("3", None, None),
            row("4", ("joy",), ("surprise",)),  # a tag outside the label set
        ]
    else:
        rows = [
            row("1", ("World",), ("World",), text=AWKWARD),
            row("2", ("Sports",), None),
            row("3", None, ("Sci/Tech",)),
        ]
    out = write_hf_dataset(tmp_path / "hf", rows, _config(task.name, labels), task)
    ds = load_from_disk(str(out))
    names = [t.tag for t in labels.labels] + (["surprise"] if multi else [])
    assert class_names(labels, rows) == names
    column = "labels" if multi else "label"
    feature = ds.features[column]
    if multi:
        assert isinstance(feature, List) and isinstance(feature.feature, ClassLabel)
        assert feature.feature.names == names and ds.features["gold"] == feature
        decode = feature.feature.int2str
        assert [decode(v) for v in ds[0]["labels"]] == ["joy", "love"]
        assert [decode(v) for v in ds[0]["gold"]] == ["anger", "joy"]
        assert ds[1]["labels"] == [] and ds[2]["labels"] is None and ds[2]["gold"] is None
        assert decode(ds[3]["labels"][0]) == "surprise"
    else:
        assert isinstance(feature, ClassLabel) and feature.names == names
        assert ds.features["gold"] == feature
        assert feature.int2str(ds[0]["label"]) == "World" and ds[0]["text"] == AWKWARD
        assert ds[1]["label"] is None and feature.int2str(ds[1]["gold"]) == "Sports"
        assert ds[2]["gold"] is None
    assert ds["status"] == [r.status for r in rows] and ds["id"] == [r.id for r in rows]


# --- through the collector, from Redis ------------------------------------------------------


def test_collect_writes_csv_and_reports_and_evaluate_reads_the_folder(
    redis_client, tmp_path: Path
) -> None:
    from collector.collect import collect
    from evaluation.sources import read_source
    from prelabel.keys import RunKeys
    from prelabel.store import RunStore

    rows = [*_random_rows(False, n=40), row("f1", ("World",), None)]
    config = _config("classify", AG).model_copy(update={"total": len(rows), "shards": 1})
    store = RunStore(redis_client)
    store.create(config, [[ClassifyRecord(id=r.id, text=r.text, gold=r.gold) for r in rows]])
    redis_client.hset(
        RunKeys(config.run_id).results,
        mapping={
            r.id: ClassifyResult(
                id=r.id, status=r.status, labels=r.labels, error=r.error, model="gpt-test"
            ).model_dump_json()
            for r in rows
        },
    )
    collected = collect(store, config.run_id, tmp_path / "run", wall_seconds=2.0)
    names = {p.name for p in collected.files}
    assert {"predictions.jsonl", "predictions.csv", "run.json", "report.json", "report.html",
            "confusion.png", "f1_by_class.png"} <= names  # fmt: skip
    ev = collected.evaluation
    assert isinstance(ev, SingleEvaluation) and ev.figures.failed == 1
    source = read_source(tmp_path / "run")
    assert source.task == "classify" and len(source.items) == 41
    again = CLASSIFY.evaluate(source.items, source.figures, resamples=1000, seed=0)
    assert again.scores == ev.scores and again.headline == ev.headline


def test_evaluation_single_and_multi_are_told_apart() -> None:
    assert CLASSIFY.evaluation_model is SingleEvaluation
    assert CLASSIFY_MULTI.evaluation_model is MultiEvaluation
    assert evaluate_items([], RunFigures(), multi_label=True).task == "classify-multi"


@pytest.mark.skipif(
    not hasattr(CLASSIFY, "gold"), reason="needs classification's Labeling.gold (the labeling half)"
)
def test_evaluate_with_gold_loads_it_as_the_files_task_type(tmp_path: Path) -> None:
    """`prelabel evaluate --gold` reads the gold as records of the task type the run.json
    beside the predictions names (not the default, NER)."""
    import subprocess
    import sys

    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        '{"text": "Markets fall", "label": "Business"}\n'
        '{"text": "Cup won", "label": "Sports"}\n'
        '{"text": "Rain in Oslo", "label": "World"}\n',
        encoding="utf-8",
    )
    folder = tmp_path / "run"
    rows = [
        row("test-000000", None, ("Business",)),
        row("test-000001", None, ("World",)),
        row("test-000002", None, None),
    ]
    write_predictions_jsonl(folder / "predictions.jsonl", rows)
    (folder / "run.json").write_text(_config("classify", AG).model_dump_json(), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "prelabel", "evaluate", str(folder), "--gold", str(gold), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ev = SingleEvaluation.model_validate_json(proc.stdout)
    assert (ev.evaluated_items, ev.scores.accuracy) == (2, 0.5)
    assert ev.headline is not None and ev.headline.accuracy_all == pytest.approx(1 / 3)


@pytest.mark.parametrize("multi", [False, True])
def test_export_command_writes_every_format_of_a_classification_run(
    tmp_path: Path, multi: bool
) -> None:
    from collector.cli import ExportFormat, OffsetUnitName, export_command
    from prelabel.errors import ConfigError

    task = CLASSIFY_MULTI if multi else CLASSIFY
    rows = [*_random_rows(multi, n=12), row("f", ("joy",) if multi else ("World",), None)]
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", rows)
    config = _config(task.name, EMOTIONS if multi else AG)
    (folder / "run.json").write_text(config.model_dump_json(), encoding="utf-8")
    for fmt in ExportFormat:
        out = tmp_path / fmt.value

        def export(fmt: ExportFormat = fmt, out: Path = out) -> None:
            export_command(
                str(folder), format=fmt, out=out, redis_url=None, offset_unit=OffsetUnitName.utf16
            )

        if fmt is ExportFormat.conll:  # NER's own format
            with pytest.raises(ConfigError, match=f"--format conll does not apply to {task.name}"):
                export()
            continue
        export()
    assert read_predictions_jsonl(tmp_path / "jsonl" / "predictions.jsonl", task) == rows
    with (tmp_path / "csv" / "predictions.csv").open(encoding="utf-8-sig", newline="") as f:
        back = list(csv.DictReader(f))
    column = "labels" if multi else "label"
    assert [r[column] for r in back] == ["; ".join(r.labels) for r in rows]
    assert (tmp_path / "kili" / "kili_predictions.jsonl").exists()
    assert (tmp_path / "label-studio" / "label_config.xml").exists()
    assert (tmp_path / "hf" / "dataset_info.json").exists()


def test_evaluate_and_compare_commands_on_classification_run_folders(tmp_path: Path) -> None:
    import subprocess
    import sys

    rng = random.Random(5)
    tags = [t.tag for t in EMOTIONS.labels]
    gold = [tuple(sorted(rng.sample(tags, rng.randint(1, 2)))) for _ in range(80)]
    folders = []
    for name, right in (("a", 0.5), ("b", 0.9)):
        rows = [
            row(f"g{k}", g, g if rng.random() < right else (rng.choice(tags),))
            for k, g in enumerate(gold)
        ]
        folder = tmp_path / name
        write_predictions_jsonl(folder / "predictions.jsonl", rows)
        config = _config("classify-multi", EMOTIONS)
        (folder / "run.json").write_text(config.model_dump_json(), encoding="utf-8")
        folders.append(str(folder))

    def prelabel(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "prelabel", *args],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = prelabel("evaluate", folders[0], "--out", str(tmp_path / "report"))
    assert "Headline: subset (exact-set) accuracy" in out and "Hamming loss" in out
    assert (tmp_path / "report" / "f1_by_class.png").exists()
    assert not (tmp_path / "report" / "confusion.png").exists()
    compared = json.loads(prelabel("compare", *folders, "--json"))
    assert compared["compared"] == 80 and compared["multi_label"] is True
    assert compared["accuracy"]["delta"] > 0 and compared["accuracy"]["p_value"] < 0.05
    assert "B vs A: multi-label classification" in prelabel("compare", *folders)
