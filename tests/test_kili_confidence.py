"""Confidence in Kili uploads (issue 18), through the real `kili` SDK against the fake Kili
server (tests/fake_kili.py): asset priorities from confidence (least sure first, failed
items highest), set after the assets are created and updated only where they changed;
category `confidence` (0-100) on each NER annotation and classification category; re-uploads
that send nothing when nothing changed; and nothing of it for a run without confidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.kili import KiliTarget, UploadOptions, dry_run, upload_run
from collector.kili_client import connect
from collector.source import RunData
from task_types.classify.kili import KILI_JOB as CLASSIFY_JOB
from task_types.ner.kili import KILI_JOB as NER_JOB
from task_types.review import kili_priority
from tests.fake_kili import FakeKili, serve_for_sdk
from tests.test_review import classify_config, classify_rows, ner_config, ner_rows

#: The fake places annotations in UTF-16 units; the rows' texts hold emoji, where an upload
#: will not guess the unit.
UTF16 = UploadOptions(unit="utf16")
MUTATIONS = ("createProject", "appendManyAssets", "appendManyLabels", "deleteLabels")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKili]:
    yield from serve_for_sdk(monkeypatch)


@pytest.fixture
def target(fake: FakeKili) -> KiliTarget:
    return KiliTarget(api_key=fake.api_key, endpoint=fake.endpoint)


def ner_run() -> RunData:
    rows = ner_rows()
    return RunData(ner_config().model_copy(update={"total": len(rows)}), tuple(rows))


def classify_run(multi: bool) -> RunData:
    rows = classify_rows(multi)
    return RunData(classify_config(multi).model_copy(update={"total": len(rows)}), tuple(rows))


def priorities_in_kili(fake: FakeKili, project_id: str) -> dict[str, int]:
    """Each asset's priority, read through the SDK."""
    kili = connect(fake.api_key, fake.endpoint)
    assets = kili.assets(project_id, fields=["externalId", "priority"], disable_tqdm=True)
    return {a["externalId"]: a["priority"] for a in assets}


def responses_in_kili(fake: FakeKili, project_id: str) -> dict[str, dict[str, Any]]:
    """Each asset's prediction json_response, read through the SDK."""
    kili = connect(fake.api_key, fake.endpoint)
    labels = kili.predictions(
        project_id, fields=["jsonResponse", "labelOf.externalId"], disable_tqdm=True
    )
    return {lab["labelOf"]["externalId"]: lab["jsonResponse"] for lab in labels}


def test_ner_upload_sets_priorities_and_category_confidence(
    fake: FakeKili, target: KiliTarget
) -> None:
    run = ner_run()
    report = upload_run(run, target, UploadOptions(batch_size=3, unit="utf16"))
    assert report.confidence
    assert priorities_in_kili(fake, report.project_id) == {r.id: kili_priority(r) for r in run.rows}
    # the failed item and the unmeasured one first, then from the least sure
    assert priorities_in_kili(fake, report.project_id)["n-failed"] == 101
    assert (report.priorities_set, report.priorities_unchanged) == (len(run.rows), 0)
    # one call per priority (and batch), the least sure first
    sent = [p for p, _ in fake.priority_calls]
    assert sent == sorted(sent, reverse=True) and max(fake.batches["setAssetsPriority"]) <= 3

    responses = responses_in_kili(fake, report.project_id)
    annotations = responses["n-unsure"][NER_JOB]["annotations"]
    assert [(a["content"], a["categories"]) for a in annotations] == [
        ("Acme", [{"name": "ORG", "confidence": 40}]),
        ("Zürich", [{"name": "LOC", "confidence": 90}]),
    ]
    assert responses["n-rejected"][NER_JOB]["annotations"][0]["categories"] == [
        {"name": "PER", "confidence": 80}
    ]
    assert responses["n-unmeasured"][NER_JOB]["annotations"][0]["categories"] == [{"name": "PER"}]
    assert fake.bad_confidences == [] and fake.misplaced == []


def test_reupload_sends_nothing_then_only_what_changed(fake: FakeKili, target: KiliTarget) -> None:
    run = ner_run()
    first = upload_run(run, target, UTF16)
    calls = dict(fake.calls)
    second = upload_run(run, target, UTF16)
    assert (second.priorities_set, second.priorities_unchanged) == (0, len(run.rows))
    assert second.predictions_sent == 0
    for mutation in (*MUTATIONS, "setAssetsPriority"):
        assert fake.calls[mutation] == calls.get(mutation, 0), mutation

    # n-sure becomes unsure: a new priority and a new confidence on one annotation
    rows = list(run.rows)
    sure = rows[0]
    rows[0] = sure.model_copy(
        update={
            "confidence": 0.2,
            "scores": (sure.scores[0].model_copy(update={"confidence": 0.2}), sure.scores[1]),
        }
    )
    third = upload_run(RunData(run.config, tuple(rows)), target, UTF16)
    assert (third.priorities_set, third.priorities_unchanged) == (1, len(rows) - 1)
    assert (third.predictions_sent, third.predictions_unchanged) == (
        1,
        sum(r.status == "labeled" for r in rows) - 1,
    )
    assert fake.priority_calls[-1][0] == 80
    assert priorities_in_kili(fake, first.project_id)["n-sure"] == 80
    response = responses_in_kili(fake, first.project_id)["n-sure"]
    assert [a["categories"][0]["confidence"] for a in response[NER_JOB]["annotations"]] == [20, 95]
    assert len(fake.project_labels(first.project_id)) == sum(r.status == "labeled" for r in rows)


def test_a_busy_asset_declines_its_priority_and_is_counted(
    fake: FakeKili, target: KiliTarget
) -> None:
    run = ner_run()
    first = upload_run(run, target, UTF16)
    rows = [r.model_copy(update={"confidence": 0.01}) if r.id == "n-sure" else r for r in run.rows]
    by_external = {a["externalId"]: a["id"] for a in fake.project_assets(first.project_id)}
    fake.busy.add(by_external["n-sure"])  # a labeler has it open
    again = upload_run(RunData(run.config, tuple(rows)), target, UTF16)
    assert (again.priorities_set, again.priorities_declined) == (0, 1)
    assert priorities_in_kili(fake, first.project_id)["n-sure"] == 5  # as it was


@pytest.mark.parametrize("multi", [False, True])
def test_classification_upload_sets_priorities_and_category_confidence(
    fake: FakeKili, target: KiliTarget, multi: bool
) -> None:
    run = classify_run(multi)
    report = upload_run(run, target, UTF16)
    assert priorities_in_kili(fake, report.project_id) == {r.id: kili_priority(r) for r in run.rows}
    responses = responses_in_kili(fake, report.project_id)
    if multi:
        assert responses["g1"][CLASSIFY_JOB]["categories"] == [
            {"name": "joy", "confidence": 90},
            {"name": "love", "confidence": 60},
        ]
        assert responses["g3"][CLASSIFY_JOB]["categories"] == []
    else:
        assert responses["a2"][CLASSIFY_JOB]["categories"] == [
            {"name": "Business", "confidence": 55}
        ]
    assert fake.bad_confidences == [] and fake.miscategorised == []
    calls = dict(fake.calls)
    upload_run(run, target, UTF16)
    for mutation in (*MUTATIONS, "setAssetsPriority"):
        assert fake.calls[mutation] == calls.get(mutation, 0), mutation


def test_a_run_without_confidence_leaves_priorities_alone(
    fake: FakeKili, target: KiliTarget
) -> None:
    rows = [r.model_copy(update={"confidence": None, "scores": ()}) for r in ner_rows()]
    run = RunData(ner_config("none"), tuple(rows))
    report = upload_run(run, target, UTF16)
    assert not report.confidence and report.priorities_set == 0
    assert fake.calls["setAssetsPriority"] == 0
    assert set(priorities_in_kili(fake, report.project_id).values()) == {0}
    assert all("confidence" not in lab["jsonResponse"] for lab in fake.labels)


def test_dry_run_lists_each_assets_priority(tmp_path: Path) -> None:
    run = ner_run()
    nowhere = KiliTarget(api_key=None, endpoint=None)
    _, assets, predictions = dry_run(run, nowhere, tmp_path, UTF16)
    lines = [json.loads(line) for line in assets.read_text("utf-8").splitlines()]
    assert {line["external_id"]: line["priority"] for line in lines} == {
        r.id: kili_priority(r) for r in run.rows
    }
    first = json.loads(predictions.read_text("utf-8").splitlines()[0])
    assert first["json_response"][NER_JOB]["annotations"][0]["categories"] == [
        {"name": "PER", "confidence": 97}
    ]
    plain = RunData(
        run.config,
        tuple(r.model_copy(update={"confidence": None, "scores": ()}) for r in run.rows),
    )
    _, assets, _ = dry_run(plain, nowhere, tmp_path / "plain", UTF16)
    assert all("priority" not in json.loads(x) for x in assets.read_text("utf-8").splitlines())


def test_upload_command_prints_the_priorities(
    fake: FakeKili,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from collector.cli import OffsetUnitName, Platform, upload_command
    from prelabel.predictions import write_predictions_jsonl

    run = ner_run()
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", run.rows)
    (folder / "run.json").write_text(run.config.model_dump_json(), encoding="utf-8")
    monkeypatch.setenv("KILI_API_KEY", fake.api_key)
    monkeypatch.setenv("KILI_API_ENDPOINT", fake.endpoint)

    def upload() -> str:
        upload_command(
            str(folder),
            to=Platform.kili,
            from_dir=None,
            kili_project_id=None,
            kili_job=None,
            batch_size=100,
            offset_unit=OffsetUnitName.utf16,
            dry_run=False,
            out=None,
            redis_url=None,
        )
        table = capsys.readouterr().out.replace("│", " ")
        return " ".join(table.split())

    first = upload()
    assert f"priorities set (least sure first) {len(run.rows)}" in first
    assert "priorities already there 0" in first
    assert f"priorities already there {len(run.rows)}" in upload()
