"""Ontology files: a user's entity types, with an explicit mapping to the dataset's tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prelabel.errors import ConfigError
from prelabel.labels import restrict
from producer.labeling import LabelingOptions, resolve_labeling
from producer.loading import DatasetSpec, load_dataset_records
from task_types.ner.alignment import align
from task_types.ner.model import NerRecord
from task_types.ner.ontology import load_ontology
from task_types.ner.prompts import build_messages

TOML = """
[[types]]
name = "HUMAN"
tag = "PER"
description = "people, by name"

[[types]]
name = "PLACE"
tag = "LOC"
description = "countries, cities and other places"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_and_json_files_give_the_same_ontology(tmp_path: Path) -> None:
    from_toml = load_ontology(write(tmp_path, "o.toml", TOML))
    types = [t.model_dump() for t in from_toml.labels]
    from_json = load_ontology(write(tmp_path, "o.json", json.dumps({"types": types})))
    assert from_toml == from_json
    assert [(t.name, t.tag) for t in from_toml.labels] == [("HUMAN", "PER"), ("PLACE", "LOC")]
    assert from_toml.labels[1].description == "countries, cities and other places"


def test_the_model_answers_with_names_and_the_tags_are_the_datasets(tmp_path: Path) -> None:
    ontology = load_ontology(write(tmp_path, "o.toml", TOML))
    prompt = build_messages([NerRecord.from_tokens("a", ["x"])], ontology)[0]["content"]
    assert "- HUMAN: people, by name" in prompt and "PER" not in prompt
    record = NerRecord.from_tokens("a", ["Ann", "flew", "to", "Rome"])
    aligned = align(record, {"HUMAN": ["Ann"], "PLACE": ["Rome"]}, ontology)
    assert aligned.tags == ("B-PER", "O", "O", "B-LOC")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no entity types"),
        ("types = []", "no entity types"),
        ("[[types]]\nname = 'A'\ntag = 'A'\ncolour = 'red'", "unknown key(s) ['colour']"),
        ("[[types]]\nname = 'A B'\ntag = 'A'", "name 'A B' must be"),
        ("[[types]]\nname = 'A'\ntag = 'B A'", "tag 'B A' must be the dataset's tag name"),
        ("[[types]]\nname = 'A'\ntag = 'O'", "tag 'O' must be"),
        ("[[types]]\nname = 'A'", "tag None must be"),
        ("[[types]]\nname='A'\ntag='X'\n[[types]]\nname='a'\ntag='Y'", "name 'a' is used by two"),
        ("[[types]]\nname='A'\ntag='X'\n[[types]]\nname='B'\ntag='X'", "tag 'X' is used by two"),
        ("[[types]\nname = 'A'", "not valid TOML"),
        ("kinds = 1", "unknown key(s) ['kinds']"),
    ],
)
def test_bad_ontology_files_name_the_file_and_the_fix(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_ontology(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_ontology(tmp_path / "nope.toml")


def test_entity_types_restrict_an_ontology_file(tmp_path: Path) -> None:
    ontology = load_ontology(write(tmp_path, "o.toml", TOML))
    assert [t.name for t in restrict(ontology, ["LOC"], "o.toml").labels] == ["PLACE"]
    with pytest.raises(ConfigError, match=r"--entity-types ORG: not in o\.toml"):
        restrict(ontology, ["ORG"], "o.toml")


def test_a_run_uses_the_ontology_file_instead_of_the_datasets_tags(tmp_path: Path) -> None:
    data = write(tmp_path, "d.conll", "Ann NNP B-PER\nflew VBD O\nto TO O\nRome NNP B-LOC\n")
    spec = DatasetSpec(source=str(data))
    dataset = load_dataset_records(spec)
    default = resolve_labeling(dataset, spec, LabelingOptions())
    assert [t.name for t in default.labels.labels] == ["LOCATION", "PERSON"]
    options = LabelingOptions(ontology_file=write(tmp_path, "o.toml", TOML))
    assert [t.name for t in resolve_labeling(dataset, spec, options).labels.labels] == [
        "HUMAN",
        "PLACE",
    ]
