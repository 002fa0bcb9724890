"""Confidence in what a run writes (issue 18, outputs): review.csv in review order with each
item's doubt, Label Studio `score`s, Kili category `confidence` and asset priorities in the
`kili` export, for NER and classification (single and multi-label); and nothing of it when
the run measured no confidence.

Rows are built from records and results as the collector builds them; files are read back
with the reader a user would use (csv with `utf-8-sig`, the kili SDK's label parser).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest
import redis

from collector.cli import ExportFormat, OffsetUnitName, export_command
from collector.collect import collect
from collector.formats import write_kili, write_label_studio
from collector.review import HEADER, NOTHING_PROPOSED, REVIEW_CSV, doubt, write_review
from prelabel.keys import RunKeys
from prelabel.model import ConfidenceConfig, Label, LabelSet, RunConfig, Scored
from prelabel.predictions import write_predictions_jsonl
from prelabel.spreadsheet import BOM
from prelabel.store import RunStore
from task_types import PredictionRow
from task_types.classify import CLASSIFY, CLASSIFY_MULTI
from task_types.classify.kili import KILI_JOB as CLASSIFY_JOB
from task_types.classify.model import ClassifyRecord, ClassifyResult
from task_types.classify.rows import ClassifyRow
from task_types.ner import NER
from task_types.ner.exports import entity_confidences
from task_types.ner.kili import KILI_JOB as NER_JOB
from task_types.ner.kili import kili_json_response, response_key
from task_types.ner.model import Entity, NerRecord, NerResult, from_tags
from task_types.ner.rows import NerRow
from task_types.review import (
    PRIORITY_UNSURE,
    kili_confidence,
    kili_priority,
    measured,
    review_order,
)
from tests.test_formats import LABEL_STUDIO_TASKS

ONTOLOGY = from_tags(["PER", "ORG", "LOC", "MISC"])
AG = LabelSet(
    labels=tuple(Label(name=n, tag=n) for n in ("World", "Sports", "Business", "Sci/Tech"))
)
EMOTIONS = LabelSet(labels=tuple(Label(name=n, tag=n) for n in ("anger", "joy", "love")))


def ner_config(method: str = "consistency:5") -> RunConfig:
    return RunConfig(
        run_id="20260101-000000-review",
        model="gpt-test",
        base_url="http://127.0.0.1:1/v1",
        dataset="conll-sample",
        split="test",
        labels=ONTOLOGY,
        confidence=ConfidenceConfig.parse(method),
    )


def classify_config(multi: bool, method: str = "verify") -> RunConfig:
    return RunConfig(
        run_id="20260101-000000-reviewc",
        model="gpt-test",
        base_url="http://127.0.0.1:1/v1",
        dataset="goemotions" if multi else "ag_news",
        split="test",
        labels=EMOTIONS if multi else AG,
        task="classify-multi" if multi else "classify",
        prompt_version="classify-v1",
        confidence=ConfidenceConfig.parse(method),
    )


def ner_row(
    item_id: str,
    tokens: list[str],
    entities: list[tuple[str, str]],
    confidence: float | None,
    scores: list[tuple[str, str, float, bool]] | None = None,
    failed: bool = False,
) -> NerRow:
    """A row whose entities are (type, text) placed at their first occurrence after the
    previous one; scores are (type, text, confidence, kept), placed the same way (a score
    whose text is not an entity's keeps no span)."""
    record = NerRecord.from_tokens(item_id, tokens, None)
    if failed:
        return NerRow.from_result(
            record, NerResult(id=item_id, status="failed", error="endpoint said 500")
        )
    placed, cursor = [], 0
    for kind, text in entities:
        start = record.text.index(text, cursor)
        placed.append(Entity(type=kind, start=start, end=start + len(text), text=text))
        cursor = start + len(text)
    tags = ["O"] * len(tokens)
    for e in placed:
        first = next(k for k, (s, _) in enumerate(record.offsets) if s == e.start)
        last = next(k for k, (_, end) in enumerate(record.offsets) if end == e.end)
        tags[first : last + 1] = [f"B-{e.type}"] + [f"I-{e.type}"] * (last - first)
    spans = {(e.type, e.text): (e.start, e.end) for e in placed}
    scored = tuple(
        Scored(
            label=kind,
            text=text,
            confidence=c,
            kept=kept,
            start=spans.get((kind, text), (None, None))[0] if kept else None,
            end=spans.get((kind, text), (None, None))[1] if kept else None,
        )
        for kind, text, c, kept in scores or []
    )
    result = NerResult(
        id=item_id,
        status="labeled",
        entities=tuple(placed),
        tags=tuple(tags),
        confidence=confidence,
        scores=scored,
        model="gpt-test",
    )
    return NerRow.from_result(record, result)


def ner_rows() -> list[NerRow]:
    """Five items: sure, unsure on one mention, a rejected mention, nothing proposed, failed;
    a formula-looking text; one labeled item whose confidence was not measured."""
    return [
        ner_row(
            "n-sure",
            ["John", "lives", "in", "Paris"],
            [("PER", "John"), ("LOC", "Paris")],
            0.95,
            [("PER", "John", 0.97, True), ("LOC", "Paris", 0.95, True)],
        ),
        ner_row(
            "n-unsure",
            ["=HYPERLINK(1)", "met", "Acme", "🎉", "in", "Zürich"],
            [("ORG", "Acme"), ("LOC", "Zürich")],
            0.4,
            [("ORG", "Acme", 0.4, True), ("LOC", "Zürich", 0.9, True)],
        ),
        ner_row(
            "n-rejected",
            ["Bob", "saw", "Rome"],
            [("PER", "Bob")],
            0.7,
            [("PER", "Bob", 0.8, True), ("LOC", "Rome", 0.1, False)],
        ),
        ner_row("n-empty", ["nothing", "here"], [], 0.9, []),
        ner_row("n-failed", ["Failed", "item"], [], None, failed=True),
        ner_row("n-unmeasured", ["Ann", "left"], [("PER", "Ann")], None, []),
        ner_row(
            "a-tie",
            ["Eve", "left"],
            [("PER", "Eve")],
            0.4,
            [("PER", "Eve", 0.4, True)],
        ),
    ]


def classify_row(
    item_id: str,
    text: str,
    labels: tuple[str, ...] | None,
    confidence: float | None,
    scores: dict[str, tuple[float, bool]] | None = None,
) -> ClassifyRow:
    record = ClassifyRecord(id=item_id, text=text, gold=None)
    result = ClassifyResult(
        id=item_id,
        status="failed" if labels is None else "labeled",
        labels=labels or (),
        error="unreadable answer" if labels is None else None,
        model="gpt-test",
        confidence=confidence,
        scores=tuple(
            Scored(label=tag, confidence=c, kept=kept) for tag, (c, kept) in (scores or {}).items()
        ),
    )
    return ClassifyRow.from_result(record, result)


def classify_rows(multi: bool) -> list[ClassifyRow]:
    if multi:
        return [
            classify_row("g1", "I love this 😍", ("joy", "love"), 0.6,
                         {"joy": (0.9, True), "love": (0.6, True)}),
            classify_row("g2", "+1 from me", ("anger",), 0.95,
                         {"anger": (0.95, True), "joy": (0.2, False)}),
            classify_row("g3", "ok", (), 0.99, {}),
            classify_row("g4", "???", None, None),
        ]  # fmt: skip
    return [
        classify_row("a1", "Zürich wins the cup 🏆", ("Sports",), 0.97, {"Sports": (0.97, True)}),
        classify_row("a2", "-5% says Acme", ("Business",), 0.55, {"Business": (0.55, True)}),
        classify_row("a3", "Markets fall", None, None),
    ]


def read_review(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(BOM.encode("utf-8"))
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == HEADER
        return list(reader)


# --- review order and the Kili scales ---------------------------------------------------


def test_review_order_is_failed_then_unmeasured_then_least_confident_ties_by_id() -> None:
    order = [r.id for r in review_order(ner_rows())]
    assert order == [
        "n-failed",
        "n-unmeasured",
        "a-tie",  # 0.4, before n-unsure (0.4) by id
        "n-unsure",
        "n-rejected",
        "n-empty",
        "n-sure",
    ]


@pytest.mark.parametrize(
    ("confidence", "expected"), [(0.0, 0), (0.004, 0), (0.005, 0), (0.426, 43), (1.0, 100)]
)
def test_kili_confidence_is_a_0_to_100_integer(confidence: float, expected: int) -> None:
    value = kili_confidence(confidence)
    assert isinstance(value, int) and value == expected


def test_kili_priority_puts_the_least_sure_first_and_failed_above_all() -> None:
    by_id = {r.id: kili_priority(r) for r in ner_rows()}
    assert by_id["n-sure"] == 5 and by_id["n-unsure"] == 60 and by_id["n-rejected"] == 30
    assert by_id["n-failed"] == by_id["n-unmeasured"] == PRIORITY_UNSURE == 101
    # Kili serves higher priorities first (equal ones first in, first out): along the
    # review order, priorities never rise
    in_review_order = [kili_priority(r) for r in review_order(ner_rows())]
    assert in_review_order == sorted(in_review_order, reverse=True)


def test_entity_confidences_match_by_span_then_by_text() -> None:
    row = ner_row(
        "x",
        ["Zürich", "and", "Zürich"],
        [("LOC", "Zürich"), ("LOC", "Zürich")],
        0.3,
    )
    first, second = row.entities
    row = row.model_copy(
        update={
            "scores": (
                # the second mention's score comes first: matched by span, not by order
                Scored(label="LOC", text="Zürich", confidence=0.3, start=second.start,
                       end=second.end),
                Scored(label="LOC", text="Zürich", confidence=0.8, start=first.start,
                       end=first.end),
                Scored(label="PER", text="Zürich", confidence=0.1, kept=False),
            )
        }
    )  # fmt: skip
    assert entity_confidences(row) == [0.8, 0.3]
    unplaced = row.model_copy(
        update={"scores": (Scored(label="LOC", text="Zürich", confidence=0.6),)}
    )
    assert entity_confidences(unplaced) == [0.6, None]
    # a placed proposal is its span's, even when an unplaced one of the same text comes later
    mixed = row.model_copy(
        update={
            "scores": (
                Scored(label="LOC", text="Zürich", confidence=0.3, start=second.start,
                       end=second.end),
                Scored(label="LOC", text="Zürich", confidence=0.8),
            )
        }
    )  # fmt: skip
    assert entity_confidences(mixed) == [0.8, 0.3]
    assert entity_confidences(ner_rows()[-2]) == [None]  # not measured


# --- review.csv ------------------------------------------------------------------------------


def test_review_csv_of_a_ner_run(tmp_path: Path) -> None:
    rows = ner_rows()
    (path,) = write_review(tmp_path, rows, ner_config(), NER)
    assert path.name == REVIEW_CSV
    lines = read_review(path)
    assert [line["rank"] for line in lines] == [str(k) for k in range(1, len(rows) + 1)]
    assert [line["id"] for line in lines] == [r.id for r in review_order(rows)]
    by_id = {line["id"]: line for line in lines}
    assert {line["method"] for line in lines} == {"consistency:5"}
    unsure = by_id["n-unsure"]
    assert unsure["confidence"] == "0.400"
    assert unsure["doubt"] == 'ORG "Acme" 0.400'
    assert unsure["predictions"] == "ORG: Acme; LOC: Zürich"
    assert unsure["text"] == "'=HYPERLINK(1) met Acme 🎉 in Zürich"  # shown as text
    assert unsure["status"] == "labeled" and unsure["error"] == ""
    assert by_id["n-rejected"]["doubt"] == 'LOC "Rome" 0.100 (rejected)'
    assert by_id["n-rejected"]["predictions"] == "PER: Bob"  # the rejected one left them
    assert by_id["n-empty"]["doubt"] == NOTHING_PROPOSED and by_id["n-empty"]["predictions"] == ""
    failed = by_id["n-failed"]
    assert (failed["rank"], failed["confidence"], failed["status"]) == ("1", "", "failed")
    assert failed["error"] == "endpoint said 500" and failed["doubt"] == ""
    assert by_id["n-unmeasured"]["confidence"] == "" and by_id["n-unmeasured"]["rank"] == "2"


@pytest.mark.parametrize("multi", [False, True])
def test_review_csv_of_a_classification_run(tmp_path: Path, multi: bool) -> None:
    task = CLASSIFY_MULTI if multi else CLASSIFY
    rows = classify_rows(multi)
    (path,) = write_review(tmp_path, rows, classify_config(multi), task)
    lines = read_review(path)
    assert lines[0]["status"] == "failed" and lines[0]["rank"] == "1"
    assert {line["method"] for line in lines} == {"verify"}
    by_id = {line["id"]: line for line in lines}
    if multi:
        assert [line["id"] for line in lines] == ["g4", "g1", "g2", "g3"]
        assert by_id["g1"]["doubt"] == "love 0.600"
        assert by_id["g1"]["predictions"] == "joy; love"
        assert by_id["g2"]["doubt"] == "joy 0.200 (rejected)"
        assert by_id["g2"]["text"] == "'+1 from me"
        assert by_id["g3"]["doubt"] == NOTHING_PROPOSED
    else:
        assert [line["id"] for line in lines] == ["a3", "a2", "a1"]
        assert by_id["a2"]["doubt"] == "Business 0.550"
        assert by_id["a2"]["text"] == "'-5% says Acme"
        assert by_id["a1"]["predictions"] == "Sports" and by_id["a1"]["confidence"] == "0.970"


def test_doubt_of_each_kind_of_row() -> None:
    rows: dict[str, PredictionRow] = {r.id: r for r in ner_rows()}
    assert doubt(rows["n-sure"]) == 'LOC "Paris" 0.950'
    assert doubt(rows["n-failed"]) == ""
    assert doubt(rows["n-empty"]) == NOTHING_PROPOSED


def store_rows(client: redis.Redis, rows: list[NerRow], config: RunConfig) -> RunStore:
    store = RunStore(client)
    config = config.model_copy(update={"total": len(rows), "shards": 1, "shard_size": len(rows)})
    store.create(config, [[NerRecord.from_tokens(r.id, r.tokens, r.gold_tags) for r in rows]])
    results = {
        r.id: NerResult(
            id=r.id,
            status=r.status,
            entities=r.entities,
            tags=r.tags,
            error=r.error,
            model="gpt-test",
            confidence=r.confidence,
            scores=r.scores,
        ).model_dump_json()
        for r in rows
    }
    client.hset(RunKeys(config.run_id).results, mapping=results)
    return store


def test_collect_writes_review_csv_when_the_run_measured_confidence(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    rows = ner_rows()
    config = ner_config("logprobs")
    store = store_rows(redis_client, rows, config)
    collected = collect(store, config.run_id, tmp_path / "run", wall_seconds=1.0)
    assert tmp_path / "run" / REVIEW_CSV in collected.files
    lines = read_review(tmp_path / "run" / REVIEW_CSV)
    assert [line["id"] for line in lines] == [r.id for r in review_order(rows)]
    assert {line["method"] for line in lines} == {"logprobs"}


def test_collect_writes_no_review_csv_without_confidence(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    rows = [r.model_copy(update={"confidence": None, "scores": ()}) for r in ner_rows()]
    config = ner_config("none")
    store = store_rows(redis_client, rows, config)
    collected = collect(store, config.run_id, tmp_path / "run", wall_seconds=1.0)
    assert not (tmp_path / "run" / REVIEW_CSV).exists()
    assert all(p.name != REVIEW_CSV for p in collected.files)


def test_export_format_review_writes_it_for_any_run(tmp_path: Path) -> None:
    rows = classify_rows(True)
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", rows)
    (folder / "run.json").write_text(classify_config(True).model_dump_json(), encoding="utf-8")
    export_command(
        str(folder),
        format=ExportFormat.review,
        out=tmp_path / "out",
        redis_url=None,
        offset_unit=OffsetUnitName.utf16,
    )
    lines = read_review(tmp_path / "out" / REVIEW_CSV)
    assert [line["id"] for line in lines] == ["g4", "g1", "g2", "g3"]


# --- Label Studio ----------------------------------------------------------------------------


def test_label_studio_scores_of_a_ner_run(tmp_path: Path) -> None:
    rows = ner_rows()
    tasks_path, _ = write_label_studio(tmp_path, rows, ner_config(), NER)
    jsonschema.validate(json.loads(tasks_path.read_text("utf-8")), LABEL_STUDIO_TASKS)
    tasks = {t["data"]["item_id"]: t for t in json.loads(tasks_path.read_text("utf-8"))}
    assert "predictions" not in tasks["n-failed"]
    (unsure,) = tasks["n-unsure"]["predictions"]
    assert unsure["score"] == 0.4
    assert [(r["value"]["text"], r["score"]) for r in unsure["result"]] == [
        ("Acme", 0.4),
        ("Zürich", 0.9),
    ]
    (unmeasured,) = tasks["n-unmeasured"]["predictions"]
    assert "score" not in unmeasured and all("score" not in r for r in unmeasured["result"])


@pytest.mark.parametrize("multi", [False, True])
def test_label_studio_scores_of_a_classification_run(tmp_path: Path, multi: bool) -> None:
    task = CLASSIFY_MULTI if multi else CLASSIFY
    rows = classify_rows(multi)
    tasks_path, _ = write_label_studio(tmp_path, rows, classify_config(multi), task)
    tasks = json.loads(tasks_path.read_text("utf-8"))
    for ls_task, row in zip(tasks, rows, strict=True):
        if row.status != "labeled":
            assert "predictions" not in ls_task
            continue
        (prediction,) = ls_task["predictions"]
        assert prediction["score"] == row.confidence
        for result in prediction["result"]:
            # one choices result: its label's confidence, or the least of a set's
            assert result["score"] == min(
                s.confidence for s in row.scores if s.kept and s.label in row.labels
            )
    if multi:
        assert tasks[0]["predictions"][0]["result"][0]["score"] == 0.6


def test_label_studio_export_is_unchanged_without_confidence(tmp_path: Path) -> None:
    rows = [r.model_copy(update={"confidence": None, "scores": ()}) for r in ner_rows()]
    tasks_path, _ = write_label_studio(tmp_path, rows, ner_config("none"), NER)
    text = tasks_path.read_text("utf-8")
    assert '"score"' not in text


# --- the kili export files -------------------------------------------------------------------


def test_kili_export_carries_category_confidence_and_priorities(tmp_path: Path) -> None:
    from kili.utils.labels.parsing import ParsedLabel

    rows = ner_rows()
    paths = write_kili(tmp_path, rows, ner_config(), NER)
    assert [p.name for p in paths] == [
        "kili_predictions.jsonl",
        "kili_interface.json",
        "kili_priorities.json",
    ]
    interface = json.loads(paths[1].read_text("utf-8"))
    lines = {
        line["external_id"]: line
        for line in map(json.loads, paths[0].read_text("utf-8").splitlines())
    }
    annotations = lines["n-unsure"]["json_response"][NER_JOB]["annotations"]
    assert [a["categories"] for a in annotations] == [
        [{"name": "ORG", "confidence": 40}],
        [{"name": "LOC", "confidence": 90}],
    ]
    # the SDK's own parser takes the confidence and gives it back
    parsed = ParsedLabel({"jsonResponse": lines["n-unsure"]["json_response"]}, interface, "TEXT")
    assert [a.category.confidence for a in parsed.jobs[NER_JOB].annotations] == [40, 90]
    unmeasured = lines["n-unmeasured"]["json_response"][NER_JOB]["annotations"]
    assert unmeasured[0]["categories"] == [{"name": "PER"}]
    priorities = json.loads(paths[2].read_text("utf-8"))
    assert priorities == {r.id: kili_priority(r) for r in rows}
    assert priorities["n-failed"] == 101 and priorities["n-sure"] == 5


@pytest.mark.parametrize("multi", [False, True])
def test_kili_export_of_a_classification_run(tmp_path: Path, multi: bool) -> None:
    task = CLASSIFY_MULTI if multi else CLASSIFY
    rows = classify_rows(multi)
    predictions, _, priorities = write_kili(tmp_path, rows, classify_config(multi), task)
    first = json.loads(predictions.read_text("utf-8").splitlines()[0])
    if multi:
        assert first["json_response"] == {
            CLASSIFY_JOB: {
                "categories": [
                    {"name": "joy", "confidence": 90},
                    {"name": "love", "confidence": 60},
                ]
            }
        }
    else:
        assert first["json_response"] == {
            CLASSIFY_JOB: {"categories": [{"name": "Sports", "confidence": 97}]}
        }
    assert json.loads(priorities.read_text("utf-8"))[rows[-1].id] == 101


def test_the_kili_export_with_confidence_reads_back_for_evaluation(tmp_path: Path) -> None:
    """`prelabel evaluate --format kili` reads the export's spans as before the confidence."""
    from task_types.ner.kili_export import KiliExport

    rows = ner_rows()
    predictions, *_ = write_kili(tmp_path, rows, ner_config(), NER)
    records = [NerRecord.from_tokens(r.id, r.tokens, r.gold_tags) for r in rows]
    source = KiliExport().read(predictions, records, None)
    labeled = {r.id: r.tags for r in rows if r.status == "labeled"}
    assert {i.id: i.pred for i in source.items} == labeled
    assert all(not i.unaligned for i in source.items)


def test_kili_export_without_confidence_is_as_before(tmp_path: Path) -> None:
    rows = [r.model_copy(update={"confidence": None, "scores": ()}) for r in ner_rows()]
    assert not measured(rows)
    paths = write_kili(tmp_path, rows, ner_config("none"), NER)
    assert len(paths) == 2 and not (tmp_path / "kili_priorities.json").exists()
    assert "confidence" not in paths[0].read_text("utf-8")


def test_a_changed_confidence_changes_the_response_key() -> None:
    row = ner_rows()[1]
    key = response_key(kili_json_response(row, NER_JOB, "utf16"), NER_JOB)
    surer = row.model_copy(
        update={"scores": tuple(s.model_copy(update={"confidence": 0.99}) for s in row.scores)}
    )
    assert response_key(kili_json_response(surer, NER_JOB, "utf16"), NER_JOB) != key
    # what Kili gives back (a float 40.0 for the 40 sent) is the same response
    sent = kili_json_response(row, NER_JOB, "utf16")
    back = json.loads(json.dumps(sent).replace('"confidence": 40', '"confidence": 40.0'))
    assert response_key(back, NER_JOB) == key
