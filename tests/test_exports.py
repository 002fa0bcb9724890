"""predictions.jsonl and CoNLL writers, and the evaluation's report files and tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from evaluation import (
    read_report_json,
    render_tables,
    write_report_json,
    write_report_md,
)
from prelabel.errors import DatasetError, RunError
from prelabel.figures import RunFigures
from prelabel.model import Usage
from prelabel.predictions import read_predictions_jsonl, write_predictions_jsonl
from task_types.ner import NER
from task_types.ner.evaluation import evaluate
from task_types.ner.exports import write_conll
from task_types.ner.model import Entity, NerRecord, NerResult, Unaligned
from task_types.ner.rows import NerRow
from task_types.ner.scores import TOKEN_LEVEL_LABEL
from task_types.ner.tables import ENTITY_TITLE, TOKEN_TITLE


def _labeled(record: NerRecord, tags: list[str], entities: list[Entity]) -> NerResult:
    return NerResult(
        id=record.id,
        status="labeled",
        entities=tuple(entities),
        tags=tuple(tags),
        unaligned=(Unaligned(type="ORG", mention="Acme", reason="not in text"),),
        usage=Usage(prompt_tokens=120, completion_tokens=30, requests=1),
        model="gpt-test",
    )


@pytest.fixture
def rows() -> list[NerRow]:
    elise = NerRecord.from_tokens(
        "train-0", ["Élise", "visited", "Zürich", "🎉"], ["B-PER", "O", "B-LOC", "O"]
    )
    paris = NerRecord.from_tokens("train-1", ["Paris", "Saint-Germain", "won"], None)
    failed = NerRecord.from_tokens("train-2", ["Nothing", "here"], ["O", "O"])
    return [
        NerRow.from_result(
            elise,
            _labeled(
                elise,
                ["B-PER", "O", "B-LOC", "O"],
                [
                    Entity(type="PER", start=0, end=5, text="Élise"),
                    Entity(type="LOC", start=14, end=20, text="Zürich"),
                ],
            ),
        ),
        NerRow.from_result(
            paris,
            _labeled(
                paris,
                ["B-ORG", "I-ORG", "O"],
                [Entity(type="ORG", start=0, end=19, text="Paris Saint-Germain")],
            ),
        ),
        NerRow.from_result(
            failed,
            NerResult(id="train-2", status="failed", error="endpoint said 500 three times"),
        ),
    ]


def test_from_result_joins_record_and_result(rows):
    elise, paris, failed = rows
    assert elise.text == "Élise visited Zürich 🎉"
    assert all(elise.text[e.start : e.end] == e.text for e in elise.entities)
    assert elise.gold_tags == ("B-PER", "O", "B-LOC", "O")
    assert paris.gold_tags is None
    assert (failed.status, failed.tags, failed.error) == (
        "failed",
        (),
        "endpoint said 500 three times",
    )


def test_from_result_rejects_a_mismatch():
    record = NerRecord.from_tokens("a", ["x", "y"])
    with pytest.raises(RunError, match="'b'"):
        NerRow.from_result(record, NerResult(id="b", status="failed"))
    short = NerResult(id="a", status="labeled", tags=("O",))
    with pytest.raises(RunError, match="1 tags for 2 tokens"):
        NerRow.from_result(record, short)


def test_jsonl_round_trip_keeps_non_ascii(tmp_path, rows):
    path = tmp_path / "out" / "predictions.jsonl"
    assert write_predictions_jsonl(path, rows) == 3
    raw = path.read_bytes().decode("utf-8")
    assert "Élise" in raw and "🎉" in raw and "\\u" not in raw
    lines = raw.splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["tags"] == []
    assert read_predictions_jsonl(path, NER) == rows
    # Only the file itself: the temporary file was renamed over it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["predictions.jsonl"]


def test_jsonl_write_is_atomic(tmp_path, rows):
    path = tmp_path / "predictions.jsonl"
    write_predictions_jsonl(path, rows)
    before = path.read_bytes()

    def broken() -> Iterator[NerRow]:
        yield rows[0]
        raise RuntimeError("collector died mid-write")

    with pytest.raises(RuntimeError):
        write_predictions_jsonl(path, broken())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]


def test_read_jsonl_names_the_bad_line(tmp_path, rows):
    path = tmp_path / "predictions.jsonl"
    write_predictions_jsonl(path, rows[:1])
    with path.open("a", encoding="utf-8") as f:
        f.write("\n" + json.dumps({"id": "x", "status": "maybe"}) + "\n")
    with pytest.raises(DatasetError, match=r"predictions\.jsonl:3:"):
        read_predictions_jsonl(path, NER)
    with pytest.raises(DatasetError, match="does not exist"):
        read_predictions_jsonl(tmp_path / "missing.jsonl", NER)


def _read_conll(path: Path) -> list[list[tuple[str, str, str]]]:
    """conlleval's reading: whitespace-split lines, a blank line ends a sentence."""
    sentences: list[list[tuple[str, str, str]]] = []
    current: list[tuple[str, str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if not fields:
            if current:
                sentences.append(current)
            current = []
            continue
        assert len(fields) == 3, line
        current.append((fields[0], fields[1], fields[2]))
    if current:
        sentences.append(current)
    return sentences


def test_conll_reads_back_with_the_same_tags(tmp_path, rows):
    path = tmp_path / "predictions.conll"
    assert write_conll(path, rows) == 2  # the failed item is skipped
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n\n") and "#" not in text and "DOCSTART" not in text
    sentences = _read_conll(path)
    labeled = [r for r in rows if r.status == "labeled"]
    assert len(sentences) == len(labeled)
    for sentence, row in zip(sentences, labeled, strict=True):
        assert [t for t, _, _ in sentence] == list(row.tokens)
        assert [p for _, _, p in sentence] == list(row.tags)
        gold = row.gold_tags or ("O",) * len(row.tokens)
        assert [g for _, g, _ in sentence] == list(gold)


def test_conll_keeps_three_columns_for_odd_tokens(tmp_path):
    record = NerRecord.from_tokens("odd", ["New York", "", "ok"], ["B-LOC", "O", "O"])
    row = NerRow.from_result(
        record, NerResult(id="odd", status="labeled", tags=("B-LOC", "O", "O"))
    )
    path = tmp_path / "odd.conll"
    write_conll(path, [row])
    assert _read_conll(path) == [
        [("New_York", "B-LOC", "B-LOC"), ("_", "O", "O"), ("ok", "O", "O")]
    ]


@pytest.fixture
def evaluation():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-MISC", "B-MISC"]]
    figures = RunFigures(
        items=3,
        labeled=2,
        failed=1,
        requests=4,
        prompt_tokens=900,
        completion_tokens=120,
        rate_limited=2,
        retries=3,
        unaligned_mentions=1,
        wall_seconds=6.0,
        model="gpt-test",
        prompt_version="ner-v1",
        dataset="conll2003",
        split="test",
        simulator=True,
    )
    return evaluate(gold, pred, figures)


def test_report_files(tmp_path, evaluation):
    md_path, json_path = tmp_path / "report.md", tmp_path / "report.json"
    write_report_md(evaluation, md_path)
    write_report_json(evaluation, json_path)
    md = md_path.read_text(encoding="utf-8")
    f1 = f"{100 * evaluation.entity.micro.f1:.2f}"
    assert f"Entity-level micro F1 over labeled items: {f1}" in md
    micro_row = next(line for line in md.splitlines() if line.startswith("| micro avg |"))
    assert [cell.strip() for cell in micro_row.split("|")][4] == f1
    assert TOKEN_LEVEL_LABEL in md and TOKEN_TITLE in md and ENTITY_TITLE in md
    for needle in ("gpt-test", "ner-v1", "conll2003", "`test`", "prelabel simulator"):
        assert needle in md
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["entity"]["micro"]["f1"] == evaluation.entity.micro.f1
    assert data["token"]["label"] == TOKEN_LEVEL_LABEL
    assert data["figures"]["items_per_second"] == pytest.approx(0.5)
    assert read_report_json(json_path) == evaluation


def test_rich_tables_render(evaluation):
    console = Console(record=True, width=120)
    for table in render_tables(evaluation):
        console.print(table)
    text = console.export_text()
    flat = " ".join(text.split())
    assert ENTITY_TITLE in text
    assert TOKEN_TITLE in text
    assert "includes O" in flat
    assert f"{100 * evaluation.entity.micro.f1:.2f}" in text
    assert f"{100 * evaluation.token.weighted.f1:.2f}" in text
    for needle in ("micro avg", "macro avg", "429s", "unaligned mentions", "prelabel simulator"):
        assert needle in text
    real = evaluation.model_copy(
        update={"figures": evaluation.figures.model_copy(update={"simulator": False})}
    )
    console = Console(record=True, width=120)
    for table in render_tables(real):
        console.print(table)
    assert "prelabel simulator" not in console.export_text()


def test_collect_writes_predictions_and_every_report(redis_client, tmp_path):
    from collector import collect
    from prelabel.keys import RunKeys
    from prelabel.model import RunConfig
    from prelabel.store import RunStore

    records = [
        NerRecord.from_tokens("t-0", ["Élise", "visited", "Zürich"], ["B-PER", "O", "B-LOC"]),
        NerRecord.from_tokens(
            "t-1", ["Acme", "Corp", "hired", "Bob"], ["B-ORG", "I-ORG", "O", "B-PER"]
        ),
        NerRecord.from_tokens("t-2", ["Nothing", "here"], ["O", "O"]),
    ]
    config = RunConfig(
        run_id="collect-test",
        model="gpt-test",
        base_url="http://x",
        dataset="tiny",
        split="test",
        total=3,
        shards=1,
    )
    store = RunStore(redis_client)
    store.create(config, [records])
    keys = RunKeys(config.run_id)
    results = {
        "t-0": NerResult(
            id="t-0", status="labeled", tags=("B-PER", "O", "B-LOC"), model="gpt-test"
        ),
        "t-1": NerResult(
            id="t-1", status="labeled", tags=("B-ORG", "O", "O", "B-PER"), model="gpt-test"
        ),
    }
    for item_id, result in results.items():
        redis_client.hset(keys.results, item_id, result.model_dump_json())
    redis_client.hset(keys.counters, "simulated", 1)

    collected = collect(store, config.run_id, tmp_path / "out", wall_seconds=2.0)

    names = {p.name for p in collected.files}
    assert {"predictions.jsonl", "predictions.conll", "report.json", "report.md"} <= names
    assert {"report.html", "f1_by_type.png", "confusion.png"} <= names
    assert all(p.exists() for p in collected.files)
    ev = collected.evaluation
    assert collected.missing == 1
    assert (ev.evaluated_items, ev.losses.failed) == (2, 1)  # t-2 stopped early: not scored
    assert ev.errors is not None and ev.errors.kinds["boundary"] == 1
    assert ev.figures.simulator is True
    assert read_report_json(tmp_path / "out" / "report.json") == ev
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "prelabel simulator" in html and "data:image/png;base64," in html
