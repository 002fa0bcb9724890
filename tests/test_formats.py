"""Exports, each read back with its own ecosystem's reader where one is installable:

- Kili json_response JSONL: the `kili` SDK's own label parser (`ParsedLabel`), against the
  exported json_interface (it refuses a category the interface lacks);
- Hugging Face: `datasets.load_from_disk`, ClassLabel names and values;
- Label Studio: its official reader (`label-studio-sdk`) would pull opencv, nltk, black and a
  numpy downgrade into the project, so the tasks are checked against Label Studio's documented
  import format (a JSON Schema below) and its labeling config parsed as XML;
- CoNLL: prelabel's CoNLL reader (the one `--dataset file.conll` uses), then seqeval;
- JSONL: prelabel's own reader.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from collector.cli import ExportFormat, OffsetUnitName, export_command
from collector.formats import KILI_OFFSET_UNIT, write_hf_dataset, write_kili, write_label_studio
from prelabel.errors import ConfigError, DatasetError
from prelabel.model import RunConfig
from prelabel.predictions import read_predictions_jsonl, write_predictions_jsonl
from task_types.ner import NER
from task_types.ner.exports import tag_names
from task_types.ner.kili import KILI_JOB, entities_from_kili, kili_json_response
from task_types.ner.model import Entity, NerRecord, NerResult, from_tags
from task_types.ner.rows import NerRow

ONTOLOGY = from_tags(["PER", "ORG", "LOC", "MISC"])
CONFIG = RunConfig(
    run_id="20260101-000000-abc123",
    model="gpt-test",
    base_url="http://127.0.0.1:1/v1",
    dataset="conll-sample",
    split="test",
    labels=ONTOLOGY,
)


def _labeled(record: NerRecord, tags: list[str], entities: list[Entity]) -> NerRow:
    result = NerResult(
        id=record.id, status="labeled", entities=tuple(entities), tags=tuple(tags), model="m"
    )
    return NerRow.from_result(record, result)


def make_rows() -> list[NerRow]:
    """Emoji before and inside entities, a repeated mention, no entity, a failure, no gold."""
    r0 = NerRecord.from_tokens(
        "t-0",
        ["🎉", "Élise", "visited", "Zürich", "and", "Zürich", "😀😀", "again"],
        ["O", "B-PER", "O", "B-LOC", "O", "B-LOC", "O", "O"],
    )
    r1 = NerRecord.from_tokens("t-1", ["Paris", "Saint-Germain", "won"], None)
    r2 = NerRecord.from_tokens("t-2", ["nothing", "here"], ["O", "O"])
    r3 = NerRecord.from_tokens("t-3", ["Failed", "item"], ["O", "O"])
    r4 = NerRecord.from_tokens("t-4", ["𝔸lpha", "Corp", "🚀"], ["B-ORG", "I-ORG", "O"])
    return [
        _labeled(
            r0,
            ["O", "B-PER", "O", "B-LOC", "O", "B-LOC", "O", "O"],
            [
                Entity(type="PER", start=2, end=7, text="Élise"),
                Entity(type="LOC", start=16, end=22, text="Zürich"),
                Entity(type="LOC", start=27, end=33, text="Zürich"),
            ],
        ),
        _labeled(
            r1,
            ["B-ORG", "I-ORG", "O"],
            [Entity(type="ORG", start=0, end=19, text="Paris Saint-Germain")],
        ),
        _labeled(r2, ["O", "O"], []),
        NerRow.from_result(
            r3, NerResult(id="t-3", status="failed", error="endpoint said 500 three times")
        ),
        _labeled(
            r4, ["B-ORG", "I-ORG", "O"], [Entity(type="ORG", start=0, end=10, text="𝔸lpha Corp")]
        ),
    ]


@pytest.fixture
def rows() -> list[NerRow]:
    rows = make_rows()
    for row in rows:  # the fixture itself must be right to the character
        for e in row.entities:
            assert row.text[e.start : e.end] == e.text
    return rows


@pytest.fixture
def run_folder(tmp_path: Path, rows: list[NerRow]) -> Path:
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", rows)
    (folder / "run.json").write_text(CONFIG.model_dump_json(), encoding="utf-8")
    return folder


def _shifted(rows: list[NerRow]) -> list[NerRow]:
    """The rows with one entity one character off, as a hand-edited file could have it."""
    bad = rows[0].model_copy(
        update={"entities": (Entity.model_construct(type="PER", start=3, end=8, text="Élise"),)}
    )
    return [bad, *rows[1:]]


# --- Kili -------------------------------------------------------------------------------


def test_kili_json_response_counts_utf16_units_after_emoji(rows: list[NerRow]) -> None:
    response = kili_json_response(rows[0], KILI_JOB, "utf16")
    annotations = response[KILI_JOB]["annotations"]
    # "🎉 Élise": the emoji is two UTF-16 units, so Élise begins at unit 3, code point 2
    assert [a["beginOffset"] for a in annotations] == [3, 17, 28]
    units = rows[0].text.encode("utf-16-le")
    for a in annotations:
        content = a["content"].encode("utf-16-le")
        assert units[2 * a["beginOffset"] : 2 * a["beginOffset"] + len(content)] == content
    as_codepoints = kili_json_response(rows[0], KILI_JOB, "codepoint")[KILI_JOB]["annotations"]
    assert [a["beginOffset"] for a in as_codepoints] == [2, 16, 27]
    assert entities_from_kili(response, rows[0].text, KILI_JOB, "utf16") == list(rows[0].entities)
    assert KILI_OFFSET_UNIT == "codepoint"  # what Kili's own code counts, unless shown otherwise


def test_kili_export_reads_back_through_the_sdk_label_parser(
    tmp_path: Path, rows: list[NerRow]
) -> None:
    from kili.utils.labels.parsing import ParsedLabel

    predictions, interface_path = write_kili(tmp_path, rows, CONFIG, NER)
    interface = json.loads(interface_path.read_text(encoding="utf-8"))
    categories = interface["jobs"][KILI_JOB]["content"]["categories"]
    assert list(categories) == ["PER", "ORG", "LOC", "MISC"]
    assert len({c["color"] for c in categories.values()}) == 4
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    by_id = {r.id: r for r in rows}
    assert [line["external_id"] for line in lines] == ["t-0", "t-1", "t-2", "t-4"]  # not failed
    for line in lines:
        assert line["model_name"] == "gpt-test@ner-v3"
        row = by_id[line["external_id"]]
        parsed = ParsedLabel({"jsonResponse": line["json_response"]}, interface, "TEXT")
        back = [  # the export counts code points unless told otherwise
            Entity(
                type=a.category.name,
                start=a.begin_offset,
                end=a.begin_offset + len(a.content),
                text=a.content,
            )
            for a in parsed.jobs[KILI_JOB].annotations
        ]
        assert back == list(row.entities)


def test_kili_parser_refuses_a_category_the_interface_lacks(rows: list[NerRow]) -> None:
    from kili.services.label_data_parsing.exceptions import InvalidMutationError
    from kili.utils.labels.parsing import ParsedLabel

    from task_types.ner.kili import kili_json_interface

    narrow = kili_json_interface(from_tags(["PER"]))
    with pytest.raises(InvalidMutationError, match="Category 'LOC' is not in the job interface"):
        ParsedLabel(
            {"jsonResponse": kili_json_response(rows[0], KILI_JOB, KILI_OFFSET_UNIT)},
            narrow,
            "TEXT",
        )


# --- Label Studio -----------------------------------------------------------------------

#: Label Studio's import format for tasks with pre-annotations (docs: "Import pre-annotated
#: data into Label Studio", "Label Studio JSON format of annotated tasks"), for a Labels
#: control over a Text object.
LABEL_STUDIO_TASKS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string"}},
            },
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["result"],
                    "properties": {
                        "model_version": {"type": "string"},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "result": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["from_name", "to_name", "type", "value"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                                    "from_name": {"type": "string"},
                                    "to_name": {"type": "string"},
                                    "type": {"const": "labels"},
                                    "value": {
                                        "type": "object",
                                        "required": ["start", "end", "labels"],
                                        "properties": {
                                            "start": {"type": "integer", "minimum": 0},
                                            "end": {"type": "integer", "minimum": 0},
                                            "text": {"type": "string"},
                                            "labels": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                                "minItems": 1,
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_label_studio_export_matches_the_import_format_and_its_config(
    tmp_path: Path, rows: list[NerRow]
) -> None:
    tasks_path, config_path = write_label_studio(tmp_path, rows, CONFIG, NER)
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    jsonschema.validate(tasks, LABEL_STUDIO_TASKS)

    view = ET.fromstring(config_path.read_text(encoding="utf-8"))
    control = view.find("Labels")
    obj = view.find("Text")
    assert control is not None and obj is not None
    assert control.get("toName") == obj.get("name") and obj.get("value") == "$text"
    label_values = {label.get("value") for label in control.findall("Label")}
    assert label_values == {"PER", "ORG", "LOC", "MISC"}

    assert len(tasks) == len(rows)  # every item, the failed one without predictions
    for task, row in zip(tasks, rows, strict=True):
        assert task["data"] == {"text": row.text, "item_id": row.id}
        if row.status != "labeled":
            assert "predictions" not in task
            continue
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "gpt-test@ner-v3"
        back = []
        for result in prediction["result"]:
            assert result["from_name"] == control.get("name")
            assert result["to_name"] == obj.get("name")
            value = result["value"]
            assert set(value["labels"]) <= label_values
            # Label Studio stores code points: Python slicing is exact
            assert task["data"]["text"][value["start"] : value["end"]] == value["text"]
            back.append(
                Entity(type=value["labels"][0], **{k: value[k] for k in ("start", "end", "text")})
            )
        assert back == list(row.entities)
        assert len({r["id"] for r in prediction["result"]}) == len(prediction["result"])


# --- Hugging Face ---------------------------------------------------------------------------


def test_hf_export_loads_with_classlabel_names_beside_gold(
    tmp_path: Path, rows: list[NerRow]
) -> None:
    from datasets import ClassLabel, load_from_disk

    folder = write_hf_dataset(tmp_path / "hf", rows, CONFIG, NER)
    dataset = load_from_disk(str(folder))
    names = tag_names(ONTOLOGY, rows)
    assert names[:9] == [
        "O",
        "B-PER",
        "I-PER",
        "B-ORG",
        "I-ORG",
        "B-LOC",
        "I-LOC",
        "B-MISC",
        "I-MISC",
    ]
    for column in ("pred_tags", "gold_tags"):
        feature = dataset.features[column].feature
        assert isinstance(feature, ClassLabel)
        assert feature.names == names
    label = dataset.features["pred_tags"].feature
    assert dataset["id"] == [r.id for r in rows]
    for item, row in zip(dataset, rows, strict=True):
        assert item["tokens"] == list(row.tokens)
        assert item["text"] == row.text
        assert [label.int2str(i) for i in item["pred_tags"]] == list(row.tags)
        gold = item["gold_tags"]
        assert (None if gold is None else [label.int2str(i) for i in gold]) == (
            list(row.gold_tags) if row.gold_tags is not None else None
        )
        assert item["status"] == row.status and item["error"] == row.error
    assert dataset[3]["pred_tags"] == []  # the failed item


def test_hf_export_replaces_its_own_folder_and_refuses_another(
    tmp_path: Path, rows: list[NerRow]
) -> None:
    from datasets import load_from_disk

    folder = tmp_path / "hf"
    write_hf_dataset(folder, rows, CONFIG, NER)
    write_hf_dataset(folder, rows[:2], CONFIG, NER)
    assert load_from_disk(str(folder))["id"] == ["t-0", "t-1"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a datasets folder"):
        write_hf_dataset(other, rows, CONFIG, NER)
    assert (other / "mine.txt").read_text() == "keep me"


def test_tag_names_keep_tags_outside_the_ontology(rows: list[NerRow]) -> None:
    record = NerRecord.from_tokens("t-9", ["Mars"], ["B-PLANET"])
    extra = _labeled(record, ["O"], [])
    names = tag_names(from_tags(["PER"]), [*rows, extra])
    assert names[:3] == ["O", "B-PER", "I-PER"]
    assert {"B-PLANET", "B-LOC", "B-ORG", "I-ORG"} <= set(names[3:])
    assert len(names) == len(set(names))


# --- the export command, for every format ---------------------------------------------------


def test_export_command_writes_every_format(run_folder: Path, tmp_path: Path) -> None:
    from seqeval.metrics import f1_score

    from producer.conll import read_conll

    rows = read_predictions_jsonl(run_folder / "predictions.jsonl", NER)
    for fmt in ExportFormat:
        if fmt is ExportFormat.csv:  # classification's own format
            with pytest.raises(ConfigError, match="--format csv does not apply to ner runs"):
                export_command(
                    str(run_folder),
                    format=fmt,
                    out=tmp_path / fmt.value,
                    redis_url=None,
                    offset_unit=OffsetUnitName.utf16,
                )
            continue
        export_command(
            str(run_folder),
            format=fmt,
            out=tmp_path / fmt.value,
            redis_url=None,
            offset_unit=OffsetUnitName.utf16,
        )

    assert read_predictions_jsonl(tmp_path / "jsonl" / "predictions.jsonl", NER) == rows

    sentences = read_conll(tmp_path / "conll" / "predictions.conll")
    labeled = [r for r in rows if r.status == "labeled"]
    assert [s.tokens for s in sentences] == [r.tokens for r in labeled]
    assert [s.tags for s in sentences] == [r.tags for r in labeled]  # last column: predicted
    gold = [list(r.gold_tags or ["O"] * len(r.tokens)) for r in labeled]
    assert f1_score(gold, [list(s.tags) for s in sentences]) == pytest.approx(
        f1_score(gold, [list(r.tags) for r in labeled])
    )

    assert (tmp_path / "kili" / "kili_predictions.jsonl").exists()
    assert (tmp_path / "label-studio" / "tasks.json").exists()
    assert (tmp_path / "hf" / "dataset_info.json").exists()


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_no_export_leaves_with_an_offset_off(
    tmp_path: Path, rows: list[NerRow], fmt: ExportFormat
) -> None:
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", _shifted(rows))
    (folder / "run.json").write_text(CONFIG.model_dump_json(), encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"item 't-0', entity 0"):
        export_command(
            str(folder), format=fmt, out=out, redis_url=None, offset_unit=OffsetUnitName.utf16
        )
    assert not out.exists()


def test_export_names_a_folder_without_run_json(tmp_path: Path, rows: list[NerRow]) -> None:
    write_predictions_jsonl(tmp_path / "predictions.jsonl", rows)
    with pytest.raises(DatasetError, match=r"run\.json does not exist"):
        export_command(
            str(tmp_path),
            format=ExportFormat.kili,
            out=tmp_path / "o",
            redis_url=None,
            offset_unit=OffsetUnitName.utf16,
        )
