"""Uploads to Kili through the real `kili` SDK (pinned, see README "Dependency pins") against
a fake Kili GraphQL server on 127.0.0.1 (tests/fake_kili.py), with KILI_SDK_SKIP_CHECKS set
so that the SDK skips the schema introspection the fake does not serve.

Runs come from real Redis (db PRELABEL_TEST_DB) and from run folders the real collector wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from collector.collect import collect
from collector.kili import KiliTarget, UploadOptions, project_title, read_predictions, upload_run
from collector.kili_client import connect
from collector.source import RunData, load_run_folder, load_run_redis
from prelabel import launch
from prelabel.errors import DatasetError, UploadError
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.predictions import read_predictions_jsonl, write_predictions_jsonl
from prelabel.store import RunStore
from task_types.ner import NER
from task_types.ner.kili import KILI_JOB, kili_json_interface
from task_types.ner.model import Entity, NerRecord, NerResult, from_tags
from task_types.ner.rows import NerRow
from tests.fake_kili import FakeKili
from tests.test_formats import make_rows

ONTOLOGY = from_tags(["PER", "ORG", "LOC", "MISC"])


#: The fake places annotations in UTF-16 units, as a browser counts: the unit these tests
#: upload in (the sample's texts hold emoji, where an upload will not guess).
UTF16 = UploadOptions(unit="utf16")


def config_for(n: int, run_id: str = "20260101-000000-kili01") -> RunConfig:
    return RunConfig(
        run_id=run_id,
        model="gpt-test",
        base_url="http://127.0.0.1:1/v1",
        dataset="conll-sample",
        split="test",
        labels=ONTOLOGY,
        total=n,
        shards=1,
        shard_size=max(n, 1),
    )


def sample_rows() -> list[NerRow]:
    """make_rows (emoji, repeated mention, no entity, a failure), plus texts the SDK would take
    for a URL or a file path if given as strings, and enough plain items for several batches."""
    rows = make_rows()
    url = NerRecord.from_tokens("t-url", ["http://example.com", "is", "down", "says", "Acme"], None)
    rows.append(
        NerRow.from_result(
            url,
            NerResult(
                id="t-url",
                status="labeled",
                entities=(Entity(type="ORG", start=32, end=36, text="Acme"),),
                tags=("O", "O", "O", "O", "B-ORG"),
            ),
        )
    )
    dot = NerRecord.from_tokens("t-dot", ["."], ["O"])
    rows.append(NerRow.from_result(dot, NerResult(id="t-dot", status="labeled", tags=("O",))))
    for i in range(6):
        rec = NerRecord.from_tokens(f"p-{i}", ["Berlin", "🇩🇪", "is", "in", "Germany"], None)
        rows.append(
            NerRow.from_result(
                rec,
                NerResult(
                    id=rec.id,
                    status="labeled",
                    entities=(
                        Entity(type="LOC", start=0, end=6, text="Berlin"),
                        Entity(type="LOC", start=16, end=23, text="Germany"),
                    ),
                    tags=("B-LOC", "O", "O", "O", "B-LOC"),
                ),
            )
        )
    return rows


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKili]:
    """A fake Kili; the SDK's rate limiter (500 calls/min, one per process) starts fresh, as
    it does in each `prelabel upload` process, so that the tests before do not slow this one."""
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


@pytest.fixture
def run() -> RunData:
    rows = sample_rows()
    return RunData(config_for(len(rows)), tuple(rows))


def store_run(client: redis.Redis, rows: list[NerRow], config: RunConfig) -> RunStore:
    """Write a run as the producer and the workers leave it in Redis."""
    store = RunStore(client)
    records = [NerRecord.from_tokens(r.id, r.tokens, r.gold_tags) for r in rows]
    store.create(config, [records])
    results = {
        r.id: NerResult(
            id=r.id,
            status=r.status,
            entities=r.entities,
            tags=r.tags,
            error=r.error,
            model=config.endpoint.model,
        ).model_dump_json()
        for r in rows
    }
    client.hset(RunKeys(config.run_id).results, mapping=results)
    return store


def labeled_entities(
    rows: list[NerRow] | tuple[NerRow, ...],
) -> dict[str, list[Entity]]:
    return {r.id: list(r.entities) for r in rows if r.status == "labeled"}


def read_back(
    fake: FakeKili, project_id: str, rows: tuple[NerRow, ...] | list[NerRow]
) -> dict[str, list[list[Entity]]]:
    kili = connect(fake.api_key, fake.endpoint)
    return read_predictions(
        kili, project_id, "gpt-test@ner-v3", {r.id: r.text for r in rows}, NER.kili, unit="utf16"
    )


def assert_kili_holds_exactly(
    fake: FakeKili, project_id: str, rows: list[NerRow] | tuple[NerRow, ...]
) -> None:
    """One asset per item with a text, holding that text and the run's metadata; one prediction
    per labeled item, equal to the row's entities to the character; none for failed items."""
    assets = fake.project_assets(project_id)
    by_external = {a["externalId"]: a for a in assets}
    with_text = [r for r in rows if r.text]
    # each item's asset exactly once: no duplicate, none missing
    assert sorted(a["externalId"] for a in assets) == sorted(r.id for r in with_text)
    for row in with_text:
        asset = by_external[row.id]
        assert fake.text_of(asset) == row.text
        assert json.loads(asset["jsonMetadata"]) == {
            "run": "20260101-000000-kili01",
            "dataset": "conll-sample",
            "split": "test",
        }
    back = read_back(fake, project_id, rows)
    assert back == {k: [v] for k, v in labeled_entities(rows).items()}
    assert fake.misplaced == []


# --- upload, read back, re-upload --------------------------------------------------------------


def test_upload_from_redis_reads_back_equal_to_predictions_jsonl(
    fake: FakeKili,
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from collector.cli import OffsetUnitName, Platform, upload_command

    rows = sample_rows()
    config = config_for(len(rows))
    store = store_run(redis_client, rows, config)
    collect(store, config.run_id, tmp_path / "run", wall_seconds=1.0)
    written = read_predictions_jsonl(tmp_path / "run" / "predictions.jsonl", NER)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run_id"] == config.run_id

    monkeypatch.setenv("KILI_API_KEY", fake.api_key)
    monkeypatch.setenv("KILI_API_ENDPOINT", fake.endpoint)
    upload_command(
        config.run_id,
        to=Platform.kili,
        from_dir=None,
        kili_project_id=None,
        kili_job=KILI_JOB,
        batch_size=4,
        offset_unit=OffsetUnitName.utf16,
        dry_run=False,
        out=None,
        redis_url=redis_url,
    )
    out = capsys.readouterr().out
    assert "predictions sent" in out and "/label/projects/project-" in out

    (project,) = fake.projects.values()
    assert project["title"] == project_title(config) and project["inputType"] == "TEXT"
    assert json.loads(project["jsonInterface"]) == kili_json_interface(ONTOLOGY)
    assert_kili_holds_exactly(fake, project["id"], written)
    # batches of at most the size asked for, and every label a PREDICTION of the run's model
    assert max(fake.batches["appendManyAssets"]) <= 4 and max(fake.batches["appendManyLabels"]) <= 4
    assert {(lab["labelType"], lab["modelName"]) for lab in fake.labels} == {
        ("PREDICTION", "gpt-test@ner-v3")
    }


def test_reupload_sends_nothing_and_duplicates_nothing(
    fake: FakeKili, target: KiliTarget, run: RunData
) -> None:
    first = upload_run(run, target, UploadOptions(batch_size=5, unit="utf16"))
    labeled = sum(r.status == "labeled" for r in run.rows)
    assert first.project_created and first.assets_created == len(run.rows)
    assert first.predictions_sent == labeled
    calls_before = dict(fake.calls)

    second = upload_run(run, target, UploadOptions(batch_size=5, unit="utf16"))
    assert second.project_id == first.project_id and not second.project_created
    assert (second.assets_created, second.assets_present) == (0, len(run.rows))
    assert (second.predictions_sent, second.predictions_unchanged) == (0, labeled)
    for mutation in ("createProject", "appendManyAssets", "appendManyLabels", "deleteLabels"):
        assert fake.calls[mutation] == calls_before.get(mutation, 0), mutation
    assert len(fake.projects) == 1
    assert_kili_holds_exactly(fake, first.project_id, run.rows)


def test_reupload_replaces_changed_predictions_and_deletes_those_of_failed_items(
    fake: FakeKili, target: KiliTarget, run: RunData
) -> None:
    first = upload_run(run, target, UTF16)
    rows = list(run.rows)
    # p-0 loses an entity, p-1 gains a type change, p-2 now failed
    rows[-6] = rows[-6].model_copy(update={"entities": rows[-6].entities[:1]})
    rows[-5] = rows[-5].model_copy(
        update={"entities": (Entity(type="ORG", start=0, end=6, text="Berlin"),)}
    )
    rows[-4] = NerRow.from_result(
        NerRecord.from_tokens(rows[-4].id, rows[-4].tokens, None),
        NerResult(id=rows[-4].id, status="failed", error="timeout"),
    )
    second = upload_run(RunData(run.config, tuple(rows)), target, UTF16)
    assert second.predictions_sent == 2
    assert second.predictions_deleted == 1
    assert second.predictions_unchanged == sum(r.status == "labeled" for r in rows) - 2
    assert_kili_holds_exactly(fake, first.project_id, rows)


def test_codepoint_offsets_would_land_wrong_after_emoji(
    fake: FakeKili, target: KiliTarget, run: RunData
) -> None:
    """The fake places annotations in UTF-16 units, like a browser: sending Python's code-point
    offsets puts every span after an emoji one unit early. The default unit does not."""
    upload_run(run, target, UploadOptions(unit="codepoint"))
    shifted = {m["content"] for m in fake.misplaced}
    assert shifted == {"Élise", "Zürich", "Germany"}  # each after an emoji, and only those
    assert not any(
        m["content"] in ("Paris Saint-Germain", "Acme", "Berlin") for m in fake.misplaced
    )


def test_batches_over_a_megabyte_arrive_gzipped_and_land(
    fake: FakeKili, target: KiliTarget
) -> None:
    long_name = "Grand Duchy of " + "Ünterwald-🏔-" * 6000  # ~80 kB, astral characters inside
    rows = []
    for i in range(16):
        record = NerRecord.from_tokens(f"big-{i}", ["🎉", "The", long_name, "treaty"], None)
        start = record.text.index(long_name)
        entity = Entity(type="LOC", start=start, end=start + len(long_name), text=long_name)
        result = NerResult(
            id=record.id, status="labeled", entities=(entity,), tags=("O", "O", "B-LOC", "O")
        )
        rows.append(NerRow.from_result(record, result))
    upload_run(RunData(config_for(len(rows)), tuple(rows)), target, UTF16)
    assert fake.gzipped >= 1  # the prediction batch: 16 json_responses of ~100 kB
    (project_id,) = fake.projects
    assert_kili_holds_exactly(fake, project_id, rows)


# --- limits and interruptions ----------------------------------------------------------------


def test_a_429_mid_upload_is_waited_out(fake: FakeKili, target: KiliTarget, run: RunData) -> None:
    fake.throttle(after=12, count=2, retry_after="1")
    report = upload_run(run, target, UploadOptions(batch_size=5, unit="utf16"))
    assert fake.throttled == 2
    assert report.predictions_sent == sum(r.status == "labeled" for r in run.rows)
    assert_kili_holds_exactly(fake, report.project_id, run.rows)


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "not-applied"])
def test_an_interrupted_asset_upload_resumes(
    fake: FakeKili, target: KiliTarget, run: RunData, applied: bool
) -> None:
    fake.fail_once("appendManyAssets", after=1, apply=applied)
    with pytest.raises(
        UploadError, match=r"5 of 13 assets were in Kili.*run the same command again"
    ):
        upload_run(run, target, UploadOptions(batch_size=5, unit="utf16"))
    (project_id,) = fake.projects
    present = len(fake.project_assets(project_id))
    assert present == (10 if applied else 5)

    report = upload_run(run, target, UploadOptions(batch_size=5, unit="utf16"))
    assert report.project_id == project_id and not report.project_created
    assert (report.assets_present, report.assets_created) == (present, len(run.rows) - present)
    assert_kili_holds_exactly(fake, project_id, run.rows)


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "not-applied"])
def test_an_interrupted_prediction_upload_resumes(
    fake: FakeKili, target: KiliTarget, run: RunData, applied: bool
) -> None:
    labeled = sum(r.status == "labeled" for r in run.rows)
    fake.fail_once("appendManyLabels", after=1, apply=applied)
    with pytest.raises(UploadError, match=r"4 of 12 predictions were in Kili.*resumes"):
        upload_run(run, target, UploadOptions(batch_size=4, unit="utf16"))
    (project_id,) = fake.projects
    held = len(fake.project_labels(project_id))
    assert held == (8 if applied else 4)

    report = upload_run(run, target, UploadOptions(batch_size=4, unit="utf16"))
    assert (report.predictions_unchanged, report.predictions_sent) == (held, labeled - held)
    assert report.assets_created == 0
    assert_kili_holds_exactly(fake, project_id, run.rows)


def test_a_killed_upload_process_resumes(fake: FakeKili, tmp_path: Path, run: RunData) -> None:
    """SIGKILL the `prelabel upload` process once it has sent a prediction batch; run again."""
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", run.rows)
    (folder / "run.json").write_text(run.config.model_dump_json())
    env = {
        **os.environ,
        "KILI_API_KEY": fake.api_key,
        "KILI_API_ENDPOINT": fake.endpoint,
        "KILI_SDK_SKIP_CHECKS": "1",
    }
    fake.stall_after("appendManyLabels", 1)  # the second batch never gets an answer
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prelabel",
            "upload",
            str(folder),
            "--batch-size",
            "4",
            "--offset-unit",
            "utf16",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert fake.stalled.wait(timeout=60), "the upload never reached its second batch"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    fake.release()
    assert proc.returncode == -9
    (project_id,) = fake.projects
    held = len(fake.project_labels(project_id))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prelabel",
            "upload",
            str(folder),
            "--batch-size",
            "4",
            "--offset-unit",
            "utf16",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert_kili_holds_exactly(fake, project_id, run.rows)
    assert len(fake.projects) == 1
    assert held == 4  # the first batch, answered before the kill


# --- projects ------------------------------------------------------------------------------------


def test_an_existing_project_is_checked_then_used(
    fake: FakeKili, target: KiliTarget, run: RunData
) -> None:
    from kili.client import Kili

    kili = Kili(api_key=fake.api_key, api_endpoint=fake.endpoint, disable_tqdm=True)
    lacking = kili.create_project(
        title="mine",
        input_type="TEXT",
        json_interface=kili_json_interface(from_tags(["PER", "ORG"])),
    )["id"]
    other_job = kili.create_project(
        title="other", input_type="TEXT", json_interface=kili_json_interface(ONTOLOGY, "NER_JOB")
    )["id"]
    images = kili.create_project(
        title="img", input_type="IMAGE", json_interface=kili_json_interface(ONTOLOGY)
    )["id"]
    good = kili.create_project(
        title="good", input_type="TEXT", json_interface=kili_json_interface(ONTOLOGY)
    )["id"]

    def upload_to(project_id: str, job: str = KILI_JOB) -> object:
        return upload_run(run, KiliTarget(fake.api_key, fake.endpoint, project_id, job), UTF16)

    with pytest.raises(
        UploadError,
        match=rf"job {KILI_JOB} of Kili project {lacking} lacks the categories LOC, MISC",
    ):
        upload_to(lacking)
    with pytest.raises(
        UploadError, match=rf"Kili project {other_job} has no job {KILI_JOB} \(its jobs: NER_JOB\)"
    ):
        upload_to(other_job)
    with pytest.raises(UploadError, match="holds IMAGE assets, not TEXT"):
        upload_to(images)
    with pytest.raises(UploadError, match="project-999 does not exist"):
        upload_to("project-999")
    assert fake.calls["appendManyAssets"] == 0

    report = upload_to(other_job, "NER_JOB")
    assert report.project_id == other_job and not report.project_created
    report = upload_to(good)
    assert report.project_id == good and len(fake.projects) == 4
    assert_kili_holds_exactly(fake, good, run.rows)


def test_assets_of_other_data_with_the_same_ids_are_refused(
    fake: FakeKili, target: KiliTarget, run: RunData
) -> None:
    report = upload_run(run, target, UTF16)
    other = RunData(run.config.model_copy(update={"dataset": "other-data"}), run.rows)
    with pytest.raises(
        UploadError, match=r"comes from dataset 'conll-sample' split 'test', not 'other-data'"
    ):
        upload_run(other, KiliTarget(fake.api_key, fake.endpoint, report.project_id), UTF16)


# --- checks before anything is sent ---------------------------------------------------------------


def test_offsets_are_checked_before_anything_is_sent(
    fake: FakeKili, target: KiliTarget, run: RunData
) -> None:
    rows = list(run.rows)
    rows[0] = rows[0].model_copy(
        update={"entities": (Entity.model_construct(type="PER", start=3, end=8, text="Élise"),)}
    )
    with pytest.raises(DatasetError, match=r"item 't-0', entity 0"):
        upload_run(RunData(run.config, tuple(rows)), target, UTF16)
    assert sum(fake.calls.values()) == 0


def test_dry_run_writes_the_payloads_and_sends_nothing(
    fake: FakeKili, tmp_path: Path, run: RunData
) -> None:
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", run.rows)
    (folder / "run.json").write_text(run.config.model_dump_json())
    env = {**os.environ, "KILI_API_KEY": fake.api_key, "KILI_API_ENDPOINT": fake.endpoint}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prelabel",
            "upload",
            "--from",
            str(folder),
            "--to",
            "kili",
            "--dry-run",
            "--offset-unit",
            "utf16",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert fake.calls == {} and fake._total == 0
    out = folder / "kili-dry-run"
    project = json.loads((out / "project.json").read_text())
    assert project["create_project"]["json_interface"] == kili_json_interface(ONTOLOGY)
    assert project["offset_unit"] == "utf16" and project["model_name"] == "gpt-test@ner-v3"
    assets = [json.loads(line) for line in (out / "assets.jsonl").read_text().splitlines()]
    assert [(a["external_id"], a["content"]) for a in assets] == [(r.id, r.text) for r in run.rows]
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert [p["external_id"] for p in predictions] == [
        r.id for r in run.rows if r.status == "labeled"
    ]
    élise = predictions[0]["json_response"][KILI_JOB]["annotations"][0]
    assert (élise["beginOffset"], élise["content"]) == (3, "Élise")  # after "🎉 ", in UTF-16 units


# --- errors: one line each ----------------------------------------------------------------------


def prelabel_upload(folder: Path, env_over: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILI_")}
    env.update({"KILI_SDK_SKIP_CHECKS": "1", **env_over})
    return subprocess.run(
        [sys.executable, "-m", "prelabel", "upload", str(folder), "--offset-unit", "utf16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("bad key", "refused KILI_API_KEY (HTTP 401)"),
        ("no key", "KILI_API_KEY is not set"),
        ("unreachable", "cannot be reached (ConnectionError)"),
        ("not kili", "not like a Kili GraphQL endpoint"),
        ("no license", "does not allow uploading local data"),
    ],
)
def test_errors_are_one_clear_line(
    fake: FakeKili, tmp_path: Path, run: RunData, case: str, needle: str
) -> None:
    folder = tmp_path / "run"
    write_predictions_jsonl(folder / "predictions.jsonl", run.rows)
    (folder / "run.json").write_text(run.config.model_dump_json())
    env = {"KILI_API_KEY": fake.api_key, "KILI_API_ENDPOINT": fake.endpoint}
    if case == "bad key":
        env["KILI_API_KEY"] = "sk-wrong-secret-1234"
    elif case == "no key":
        del env["KILI_API_KEY"]
    elif case == "unreachable":
        env["KILI_API_ENDPOINT"] = f"http://127.0.0.1:{launch.free_port()}/api/label/v2/graphql"
    elif case == "not kili":
        env["KILI_API_ENDPOINT"] = fake.base_url + "/not/graphql"
    else:
        fake.upload_local_data = False
    proc = prelabel_upload(folder, env)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "sk-wrong-secret" not in proc.stderr + proc.stdout
    assert fake.projects == {} and fake.assets == []


def test_a_run_folder_outlives_its_redis_data(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A run id that is no longer in Redis gives one line; its folder still uploads (above)."""
    from prelabel.errors import RunError

    with pytest.raises(RunError, match="20260101-000000-gone' is not in Redis"):
        load_run_redis(RunStore(redis_client), "20260101-000000-gone")
    rows = sample_rows()
    config = config_for(len(rows))
    store = store_run(redis_client, rows, config)
    collect(store, config.run_id, tmp_path / "run", wall_seconds=1.0)
    redis_client.flushdb()
    data = load_run_folder(tmp_path / "run")
    assert data.config == config and [r.id for r in data.rows] == [r.id for r in rows]


@pytest.mark.slow
def test_run_with_upload_kili_uploads_what_it_collected(
    fake: FakeKili, fleet_env: dict[str, str], simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    """`prelabel run --upload kili`: real workers label through the simulator, the collector
    writes the run folder, and the upload sends it to (fake) Kili."""
    out = tmp_path / "out"
    env = {
        **fleet_env,
        "KILI_API_KEY": fake.api_key,
        "KILI_API_ENDPOINT": fake.endpoint,
        "KILI_SDK_SKIP_CHECKS": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prelabel",
            "run",
            "--dataset",
            str(gold_path),
            "--limit",
            "12",
            "--model",
            "gpt-kili-e2e",
            "--base-url",
            simulator_url,
            "--out",
            str(out),
            "--upload",
            "kili",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = read_predictions_jsonl(out / "predictions.jsonl", NER)
    assert len(rows) == 12 and all(r.status == "labeled" for r in rows)
    (project_id,) = fake.projects
    assets = fake.project_assets(project_id)
    assert sorted(a["externalId"] for a in assets) == sorted(r.id for r in rows)
    kili = connect(fake.api_key, fake.endpoint)
    config = load_run_folder(out).config
    back = read_predictions(
        kili,
        project_id,
        f"gpt-kili-e2e@{config.labeling.prompt_version}",
        {r.id: r.text for r in rows},
        NER.kili,
    )
    assert back == {r.id: [list(r.entities)] for r in rows}
    assert "predictions sent" in proc.stdout
