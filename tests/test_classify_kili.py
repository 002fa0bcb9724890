"""Classification uploads to Kili through the real `kili` SDK against the fake Kili server
(tests/fake_kili.py), single choice (`classify`) and multiple choice (`classify-multi`): the
project's CLASSIFICATION job, assets with external ids, predictions with the model name read
back equal to the rows, idempotent re-upload, replaced predictions, and a dry run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.kili import KiliTarget, UploadOptions, read_predictions, upload_run
from collector.kili_client import connect
from collector.source import RunData
from prelabel.errors import DatasetError, UploadError
from prelabel.model import Label, LabelSet, RunConfig
from prelabel.predictions import write_predictions_jsonl
from task_types.classify import CLASSIFY, CLASSIFY_MULTI
from task_types.classify.kili import KILI_JOB, ML_TASK, kili_json_interface
from task_types.classify.model import ClassifyRecord, ClassifyResult
from task_types.classify.rows import ClassifyRow
from tests.fake_kili import FakeKili

AG = LabelSet(
    labels=(
        Label(name="World", tag="World"),
        Label(name="Sports", tag="Sports"),
        Label(name="Business", tag="Business"),
        Label(name="Science and technology", tag="Sci/Tech"),
    )
)
EMOTIONS = LabelSet(labels=tuple(Label(name=n, tag=n) for n in ("anger", "joy", "love", "neutral")))
MODEL_NAME = "gpt-test@classify-v1"


def config_for(multi: bool, n: int) -> RunConfig:
    return RunConfig(
        run_id="20260101-000000-clskil",
        model="gpt-test",
        base_url="http://127.0.0.1:1/v1",
        dataset="goemotions" if multi else "ag_news",
        split="test",
        labels=EMOTIONS if multi else AG,
        task="classify-multi" if multi else "classify",
        prompt_version="classify-v1",
        total=n,
        shards=1,
        shard_size=max(n, 1),
    )


def make_row(item_id: str, text: str, labels: tuple[str, ...] | None) -> ClassifyRow:
    record = ClassifyRecord(id=item_id, text=text, gold=None)
    result = ClassifyResult(
        id=item_id,
        status="failed" if labels is None else "labeled",
        labels=labels or (),
        error="unreadable answer" if labels is None else None,
        model="gpt-test",
    )
    return ClassifyRow.from_result(record, result)


def sample_rows(multi: bool) -> list[ClassifyRow]:
    """Texts with emoji and quotes, a failed item, a URL-like text (the SDK would fetch a URL
    given as a string) and, multi-label, an item labeled with no label."""
    if multi:
        rows = [
            make_row("g1", "I love this 😍 so much", ("joy", "love")),
            make_row("g2", 'He said "no" again', ("anger",)),
            make_row("g3", "ok", ()),
            make_row("g4", "???", None),
        ]
    else:
        rows = [
            make_row("a1", "Zürich wins the cup 🏆", ("Sports",)),
            make_row("a2", "http://example.com is down, says Acme", ("Sci/Tech",)),
            make_row("a3", "Markets fall", None),
        ]
    tags = ["anger", "joy", "love"] if multi else ["World", "Business", "Sci/Tech"]
    rows += [make_row(f"p{i}", f"plain text {i}", (tags[i % 3],)) for i in range(7)]
    return rows


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKili]:
    """A fake Kili, with the SDK's per-process rate limiter fresh (see tests/test_kili.py)."""
    from kili.core.constants import MAX_CALLS_PER_MINUTE
    from kili.core.graphql import graphql_client
    from pyrate_limiter import Duration, Limiter, Rate

    fresh = Limiter(Rate(MAX_CALLS_PER_MINUTE, Duration.MINUTE), max_delay=120 * 1000)
    monkeypatch.setattr(graphql_client, "_limiter", fresh)
    monkeypatch.setenv("KILI_SDK_SKIP_CHECKS", "1")
    server = FakeKili().start()
    yield server
    server.stop()


@pytest.fixture
def target(fake: FakeKili) -> KiliTarget:
    return KiliTarget(api_key=fake.api_key, endpoint=fake.endpoint)


def run_of(multi: bool, rows: list[ClassifyRow] | None = None) -> RunData:
    rows = rows if rows is not None else sample_rows(multi)
    return RunData(config_for(multi, len(rows)), tuple(rows))


def assert_kili_holds_exactly(fake: FakeKili, project_id: str, run: RunData) -> None:
    """One asset per item with its text and external id; one prediction per labeled item,
    whose categories are the row's labels; none for failed items; every category one of the
    job's, and one at most in a single-choice job."""
    assets = fake.project_assets(project_id)
    assert sorted(a["externalId"] for a in assets) == sorted(r.id for r in run.rows)
    by_external = {a["externalId"]: a for a in assets}
    for row in run.rows:
        assert fake.text_of(by_external[row.id]) == row.text
    kili = connect(fake.api_key, fake.endpoint)
    back = read_predictions(
        kili, project_id, MODEL_NAME, {r.id: r.text for r in run.rows}, run.task.kili
    )
    assert back == {r.id: [r.labels] for r in run.rows if r.status == "labeled"}
    assert fake.miscategorised == []


@pytest.mark.parametrize("multi", [False, True])
def test_upload_creates_a_classification_project_and_reads_back_equal(
    fake: FakeKili, target: KiliTarget, multi: bool
) -> None:
    run = run_of(multi)
    report = upload_run(run, target, UploadOptions(batch_size=4))
    labeled = sum(r.status == "labeled" for r in run.rows)
    assert report.project_created and report.assets_created == len(run.rows)
    assert (report.predictions_sent, report.items_failed) == (labeled, 1)
    project = fake.projects[report.project_id]
    interface = json.loads(project["jsonInterface"])
    assert interface == kili_json_interface(run.config.labeling.labels, multi_label=multi)
    job = interface["jobs"][KILI_JOB]
    assert job["mlTask"] == ML_TASK == "CLASSIFICATION"
    assert job["content"]["input"] == ("checkbox" if multi else "radio")
    labels = run.config.labeling.labels.labels
    assert list(job["content"]["categories"]) == [t.tag for t in labels]  # keys: the tags
    assert [c["name"] for c in job["content"]["categories"].values()] == [t.name for t in labels]
    assert_kili_holds_exactly(fake, report.project_id, run)
    assert {(lab["labelType"], lab["modelName"]) for lab in fake.labels} == {
        ("PREDICTION", MODEL_NAME)
    }
    first = json.loads(fake.labels[0]["jsonResponse"])
    assert first == {KILI_JOB: {"categories": [{"name": t} for t in run.rows[0].labels]}}
    if multi:  # labeled with no label: an empty category list, not a missing prediction
        (empty,) = [
            lab
            for lab in fake.labels
            if json.loads(lab["jsonResponse"])[KILI_JOB]["categories"] == []
        ]
        assert empty["assetId"] in {a["id"] for a in fake.project_assets(report.project_id)}


@pytest.mark.parametrize("multi", [False, True])
def test_reupload_sends_nothing_then_replaces_only_what_changed(
    fake: FakeKili, target: KiliTarget, multi: bool
) -> None:
    run = run_of(multi)
    first = upload_run(run, target)
    labeled = sum(r.status == "labeled" for r in run.rows)
    calls = dict(fake.calls)
    second = upload_run(run, target)
    assert second.project_id == first.project_id and not second.project_created
    assert (second.assets_created, second.assets_present) == (0, len(run.rows))
    assert (second.predictions_sent, second.predictions_unchanged) == (0, labeled)
    for mutation in ("createProject", "appendManyAssets", "appendManyLabels", "deleteLabels"):
        assert fake.calls[mutation] == calls.get(mutation, 0), mutation

    # the same labels in another order are the same prediction; other labels replace it
    rows = list(run.rows)
    if multi:
        rows[0] = make_row(rows[0].id, rows[0].text, tuple(reversed(rows[0].labels)))
    rows[-1] = make_row(rows[-1].id, rows[-1].text, ("neutral",) if multi else ("Sports",))
    changed = run_of(multi, rows)
    third = upload_run(changed, target)
    assert (third.predictions_sent, third.predictions_unchanged) == (1, labeled - 1)
    assert len(fake.labels) == labeled  # replaced, not added
    kili = connect(fake.api_key, fake.endpoint)
    back = read_predictions(
        kili, first.project_id, MODEL_NAME, {r.id: r.text for r in rows}, changed.task.kili
    )
    assert back[rows[-1].id] == [rows[-1].labels]


def test_a_multi_label_run_is_refused_by_a_single_choice_project(
    fake: FakeKili, target: KiliTarget
) -> None:
    from kili.client import Kili

    kili = Kili(api_key=fake.api_key, api_endpoint=fake.endpoint, disable_tqdm=True)
    radio = kili.create_project(
        title="radio", input_type="TEXT", json_interface=kili_json_interface(EMOTIONS)
    )["id"]
    checkbox = kili.create_project(
        title="checkbox",
        input_type="TEXT",
        json_interface=kili_json_interface(AG, multi_label=True),
    )["id"]
    with pytest.raises(UploadError, match=rf"job {KILI_JOB} of Kili project {radio} takes one"):
        upload_run(run_of(True), KiliTarget(fake.api_key, fake.endpoint, radio))
    assert fake.calls["appendManyAssets"] == 0
    # what the check spares Kili: the fake, like a single-choice job, takes one category
    kili.append_many_to_dataset(radio, content_array=["x"], external_id_array=["x"])
    kili.create_predictions(
        radio,
        external_id_array=["x"],
        json_response_array=[{KILI_JOB: {"categories": [{"name": "joy"}, {"name": "love"}]}}],
        model_name=MODEL_NAME,
    )
    assert [m["names"] for m in fake.miscategorised] == [["joy", "love"]]
    fake.miscategorised.clear()
    # one label per item fits a multiple-choice job
    report = upload_run(run_of(False), KiliTarget(fake.api_key, fake.endpoint, checkbox))
    assert report.project_id == checkbox and not report.project_created
    assert_kili_holds_exactly(fake, checkbox, run_of(False))


def test_a_single_label_run_with_a_set_is_refused_before_anything_is_sent(
    fake: FakeKili, target: KiliTarget
) -> None:
    rows = [*sample_rows(False), make_row("x", "two labels", ("World", "Sports"))]
    with pytest.raises(DatasetError, match=r"item 'x' is labeled with 2 labels"):
        upload_run(run_of(False, rows), target)
    assert sum(fake.calls.values()) == 0


@pytest.mark.parametrize("multi", [False, True])
def test_dry_run_writes_the_payloads_and_sends_nothing(
    fake: FakeKili, tmp_path: Path, multi: bool
) -> None:
    run = run_of(multi)
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", run.rows)
    (folder / "run.json").write_text(run.config.model_dump_json())
    env = {**os.environ, "KILI_API_KEY": fake.api_key, "KILI_API_ENDPOINT": fake.endpoint}
    proc = subprocess.run(
        [sys.executable, "-m", "prelabel", "upload", "--from", str(folder), "--to", "kili",
         "--dry-run"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert fake.calls == {} and fake._total == 0
    out = folder / "kili-dry-run"
    project = json.loads((out / "project.json").read_text())
    interface = project["create_project"]["json_interface"]
    assert interface == kili_json_interface(run.config.labeling.labels, multi_label=multi)
    assert project["model_name"] == MODEL_NAME
    assets = [json.loads(line) for line in (out / "assets.jsonl").read_text().splitlines()]
    assert [(a["external_id"], a["content"]) for a in assets] == [(r.id, r.text) for r in run.rows]
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    labeled = [r for r in run.rows if r.status == "labeled"]
    assert [p["external_id"] for p in predictions] == [r.id for r in labeled]
    assert [p["json_response"] for p in predictions] == [
        {KILI_JOB: {"categories": [{"name": t} for t in r.labels]}} for r in labeled
    ]


def test_kili_jsonl_export_of_both_tasks(tmp_path: Path) -> None:
    from collector.formats import write_kili

    for multi, task in ((False, CLASSIFY), (True, CLASSIFY_MULTI)):
        run = run_of(multi)
        predictions, interface = write_kili(tmp_path / task.name, list(run.rows), run.config, task)
        lines = [json.loads(x) for x in predictions.read_text(encoding="utf-8").splitlines()]
        assert lines[0] == {
            "external_id": run.rows[0].id,
            "model_name": MODEL_NAME,
            "json_response": {KILI_JOB: {"categories": [{"name": t} for t in run.rows[0].labels]}},
        }
        assert len(lines) == sum(r.status == "labeled" for r in run.rows)
        job = json.loads(interface.read_text())["jobs"][KILI_JOB]
        assert job["content"]["input"] == ("checkbox" if multi else "radio")
