"""The Reporting half of the task-type protocol is what the collector's frames use: NER
satisfies it, and the frames reach NER's rows, exports and Kili job only through it."""

from __future__ import annotations

import ast
from pathlib import Path

import task_types
from collector.formats import write_kili
from prelabel.model import RunConfig
from prelabel.predictions import read_predictions_jsonl, write_predictions_jsonl
from task_types import KiliJob, PredictionRow, Reporting
from task_types.ner.model import Entity, NerRecord, NerResult
from task_types.ner.rows import NerRow

ROOT = Path(__file__).resolve().parent.parent
#: What only NER's package may name: the frames go through the protocol instead.
NER_ONLY = ("task_types.ner", "seqeval", "kili_json", "entities_from_kili", "write_conll")


def test_ner_satisfies_the_reporting_half() -> None:
    ner = task_types.get("ner")
    assert isinstance(ner, Reporting)
    assert isinstance(ner.kili, KiliJob)
    record = NerRecord.from_tokens("a", ["Ada", "Lovelace"], ["B-PER", "I-PER"])
    result = NerResult(
        id="a",
        status="labeled",
        entities=(Entity(type="PER", start=0, end=12, text="Ada Lovelace"),),
        tags=("B-PER", "I-PER"),
    )
    row = ner.row(record, result)
    assert isinstance(row, ner.row_model) and isinstance(row, PredictionRow)
    ner.check_rows([row])
    assert ner.figures([row]) == {"unaligned_mentions": 0, "mentions_proposed": 1}


class _Recording:
    """Stands in for a task type's reporting half and records what the frames ask of it."""

    def __init__(self) -> None:
        self.inner = task_types.get("ner")
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> object:
        self.asked.append(name)
        return getattr(self.inner, name)


def test_the_frames_ask_the_task_type(tmp_path: Path) -> None:
    ner = task_types.get("ner")
    record = NerRecord.from_tokens("a", ["Ada"], ["B-PER"])
    result = NerResult(
        id="a",
        status="labeled",
        entities=(Entity(type="PER", start=0, end=3, text="Ada"),),
        tags=("B-PER",),
    )
    rows = [ner.row(record, result)]
    write_predictions_jsonl(tmp_path / "p.jsonl", rows)
    recording = _Recording()
    assert read_predictions_jsonl(tmp_path / "p.jsonl", recording) == rows  # type: ignore[arg-type]
    config = RunConfig(run_id="r", model="m", base_url="http://x")
    write_kili(tmp_path, rows, config, recording)  # type: ignore[arg-type]
    assert {"row_model", "check_rows", "kili"} <= set(recording.asked)
    assert isinstance(rows[0], NerRow)


def test_collector_frames_name_nothing_of_ner() -> None:
    for path in sorted((ROOT / "collector").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(a.name for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith(NER_ONLY), f"{path.name} imports {name}"
