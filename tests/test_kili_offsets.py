"""Which unit an upload counts Kili's beginOffset in: code points unless the project's human
labels show UTF-16, and no guess where a text holds an emoji and nothing shows which.
Through the real `kili` SDK against the fake Kili, set to count either unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.kili import KiliTarget, UploadOptions, upload_run
from collector.kili_offsets import needs_unit, resolve_unit, unit_shown
from collector.source import RunData
from prelabel.errors import UploadError
from prelabel.predictions import write_predictions_jsonl
from task_types.ner.kili import KILI_JOB
from task_types.ner.model import Entity, NerRecord, NerResult
from task_types.ner.rows import NerRow
from tests.fake_kili import FakeKili, serve_for_sdk
from tests.test_kili import config_for

#: "🎉 Élise met Bob": the emoji is one code point and two UTF-16 units.
EMOJI_TEXT = "🎉 Élise met Bob"
PLAIN_TEXT = "Ann met Bob"


def row(id: str, tokens: list[str], entities: list[tuple[str, int, int]]) -> NerRow:
    record = NerRecord.from_tokens(id, tokens)
    tags = ["O"] * len(tokens)
    placed = []
    for type_, start, end in entities:
        placed.append(Entity(type=type_, start=start, end=end, text=record.text[start:end]))
        first = next(i for i, (s, _) in enumerate(record.offsets) if s == start)
        tags[first] = f"B-{type_}"
    result = NerResult(id=id, status="labeled", entities=tuple(placed), tags=tuple(tags))
    return NerRow.from_result(record, result)


def rows(with_emoji: bool = True) -> tuple[NerRow, ...]:
    out = [row("plain", ["Ann", "met", "Bob"], [("PER", 0, 3), ("PER", 8, 11)])]
    if with_emoji:
        out.append(row("emoji", ["🎉", "Élise", "met", "Bob"], [("PER", 2, 7), ("PER", 12, 15)]))
    return tuple(out)


def human(text: str, content: str, begin: int) -> dict[str, Any]:
    """A json_response of one PER annotation, as a person's label holds it."""
    annotation = {"categories": [{"name": "PER"}], "beginOffset": begin, "content": content}
    return {KILI_JOB: {"annotations": [annotation]}}


# --- the rule ---------------------------------------------------------------------------------


def test_annotations_tell_the_unit_only_after_a_character_beyond_the_bmp() -> None:
    # "Élise" starts at code point 2, UTF-16 unit 3; "Bob" at code point 12, unit 13.
    assert unit_shown([(EMOJI_TEXT, human(EMOJI_TEXT, "Élise", 3))]) == {"utf16"}
    assert unit_shown([(EMOJI_TEXT, human(EMOJI_TEXT, "Bob", 12))]) == {"codepoint"}
    # before any emoji, or in a text without one, both readings agree: no evidence
    assert unit_shown([("Bob 🎉", human("Bob 🎉", "Bob", 0))]) == set()
    assert unit_shown([(PLAIN_TEXT, human(PLAIN_TEXT, "Bob", 8))]) == set()
    # an annotation that sits nowhere tells nothing either
    assert unit_shown([(EMOJI_TEXT, human(EMOJI_TEXT, "Zoe", 3))]) == set()
    assert needs_unit([PLAIN_TEXT, EMOJI_TEXT]) and not needs_unit([PLAIN_TEXT])


def test_the_unit_is_code_points_where_it_cannot_matter_and_never_a_guess() -> None:
    def unread() -> list[tuple[str, dict[str, Any]]]:
        raise AssertionError("the labels were read although the unit could not matter")

    ner = "NAMED_ENTITIES_RECOGNITION"
    assert resolve_unit("auto", ner, rows(with_emoji=False), unread) == "codepoint"
    assert resolve_unit("auto", "CLASSIFICATION", rows(), unread) == "codepoint"
    assert resolve_unit("utf16", ner, rows(), unread) == "utf16"
    shown = [(EMOJI_TEXT, human(EMOJI_TEXT, "Élise", 3))]
    assert resolve_unit("auto", ner, rows(), lambda: shown) == "utf16"
    with pytest.raises(UploadError) as none:
        resolve_unit("auto", ner, rows(), list)
    assert "no human label" in str(none.value) and "--offset-unit codepoint" in str(none.value)
    both = [*shown, (EMOJI_TEXT, human(EMOJI_TEXT, "Bob", 12))]
    with pytest.raises(UploadError, match="disagree"):
        resolve_unit("auto", ner, rows(), lambda: both)


# --- through the SDK ------------------------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKili]:
    yield from serve_for_sdk(monkeypatch)


def run_of(items: tuple[NerRow, ...]) -> RunData:
    return RunData(config_for(len(items)), items)


@pytest.mark.parametrize("unit", ["utf16", "codepoint"])
def test_an_upload_counts_in_the_unit_the_projects_human_labels_show(
    fake: FakeKili, unit: str
) -> None:
    fake.offset_unit = unit
    target = KiliTarget(api_key=fake.api_key, endpoint=fake.endpoint)
    run = run_of(rows())
    first = upload_run(run, target, UploadOptions(unit=unit))  # type: ignore[arg-type]
    assert fake.misplaced == [] and first.offset_unit == unit
    # A reviewer labels the emoji text in Kili's interface, and the predictions are gone.
    asset = next(a for a in fake.project_assets(first.project_id) if a["externalId"] == "emoji")
    fake.labels = []
    fake.add_human_label(asset["id"], human(EMOJI_TEXT, "Élise", 3 if unit == "utf16" else 2))

    again = upload_run(run, target)  # --offset-unit auto
    assert again.offset_unit == unit
    assert again.predictions_sent == 2 and fake.misplaced == []
    sent = [json.loads(lab["jsonResponse"]) for lab in fake.labels if lab["modelName"]]
    begins = sorted(a["beginOffset"] for r in sent for a in r[KILI_JOB]["annotations"])
    assert begins == ([0, 3, 8, 13] if unit == "utf16" else [0, 2, 8, 12])


def test_a_new_project_is_not_created_when_the_unit_would_be_a_guess(fake: FakeKili) -> None:
    target = KiliTarget(api_key=fake.api_key, endpoint=fake.endpoint)
    with pytest.raises(UploadError, match="--offset-unit"):
        upload_run(run_of(rows()), target)
    assert fake.projects == {} and fake.assets == [] and fake.labels == []
    # without an emoji the unit cannot matter: code points, no label read
    report = upload_run(run_of(rows(with_emoji=False)), target)
    assert report.offset_unit == "codepoint" and fake.calls["labels"] == 0


def test_the_cli_refuses_in_one_line_naming_the_flag(fake: FakeKili, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    items = rows()
    write_predictions_jsonl(folder / "predictions.jsonl", items)
    (folder / "run.json").write_text(config_for(len(items)).model_dump_json())
    env = {**os.environ, "KILI_API_KEY": fake.api_key, "KILI_API_ENDPOINT": fake.endpoint}
    done = subprocess.run(
        [sys.executable, "-m", "prelabel", "upload", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--offset-unit" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and fake.projects == {}
