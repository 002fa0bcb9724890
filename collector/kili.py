"""Upload a run's predictions to Kili, for labelers to review: safe to repeat, resumable.

One upload does, in order:

1. checks every row against its text (the task type's `check_rows`) before anything is sent;
2. finds its project: the one given (`--kili-project-id`), whose interface must hold the task
   type's job and every category of the run, or else the one it created for this run on an
   earlier upload (found by title), or else creates it (TEXT, the task type's job
   (`task_types.KiliJob`), the labels as its categories);
3. uploads the texts as assets, external id = item id, metadata = run, dataset, split; assets
   already in the project are skipped;
4. where the run measured confidence, gives each asset its priority, so that Kili serves the
   least sure items first (`task_types.review.kili_priority`: failed items highest, then
   `round((1 - confidence) * 100)`). The SDK's `append_many_to_dataset` takes no priority
   (kili 26.2), so new assets get theirs right after they are created, by
   `set_assets_priority` (one priority per call: assets are grouped by it), which also
   says which assets Kili declined (one in progress, done or skipped); the older
   `update_properties_in_assets(priorities=...)` is deprecated and reports no declines;
5. uploads one prediction per labeled item, `model_name` = model@prompt version, with
   `overwrite`, so that Kili replaces the item's earlier predictions of that model name rather
   than adding to them (each category with the proposal's confidence, 0-100, where the run
   measured it); a failed item's earlier predictions of that model name are deleted.

Where an upload stands is read from Kili itself, not kept on the side: which external ids
already have an asset and with which priority, and which assets already hold exactly the
prediction this run would send (its categories, spans and confidences). An upload cut off
anywhere (a lost answer, a killed process, an expired Redis) resumes where it stopped when
run again, and sends only what is missing or changed; a complete upload run again sends
nothing. Batches hold at most 100 items, the SDK's own cap; the SDK paces its calls
(500/min) and waits out 429s as Kili's Retry-After asks.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from collector.formats import KILI_OFFSET_UNIT, kili_model_name, kili_prediction_lines
from collector.kili_client import connect, sdk_errors
from collector.kili_offsets import OffsetChoice, human_labels, resolve_unit
from collector.kili_project import find_or_create_project, project_title, project_url
from collector.source import RunData
from prelabel.errors import ConfigError, UploadError
from prelabel.files import write_atomic
from prelabel.model import RunConfig
from prelabel.offsets import OffsetUnit
from task_types import KiliJob, PredictionRow
from task_types.review import kili_priority, measured

if TYPE_CHECKING:
    from kili.client import Kili

T = TypeVar("T")

#: Kili's own cap on items per batched mutation.
MAX_BATCH = 100
#: External ids per asset query (`externalIdStrictlyIn`), as the SDK batches them.
ID_QUERY_BATCH = 1000
ANNOTATION_FIELDS = ("id", "modelName", "jsonResponse", "labelOf.id", "labelOf.externalId")
ASSET_FIELDS = ("id", "externalId", "jsonMetadata", "priority")


@dataclass(frozen=True)
class KiliTarget:
    """Where to upload: the account (key, endpoint), optionally an existing project, and the
    name of the job in it (None: the task type's own, `KiliJob.default_job`)."""

    api_key: str | None
    endpoint: str | None
    project_id: str | None = None
    job: str | None = None

    def __repr__(self) -> str:  # never the key
        return f"KiliTarget(endpoint={self.endpoint!r}, project_id={self.project_id!r})"


@dataclass(frozen=True)
class UploadOptions:
    """How to send: assets or predictions per call (Kili takes at most 100), and the unit
    `beginOffset` counts in (see collector/formats.py)."""

    batch_size: int = MAX_BATCH
    unit: OffsetChoice = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ConfigError(f"--batch-size must be between 1 and {MAX_BATCH} (Kili's cap)")


@dataclass
class UploadReport:
    """What an upload found and did."""

    project_id: str
    project_created: bool
    model_name: str
    #: The unit `beginOffset` was sent in (`collector.kili_offsets`).
    offset_unit: OffsetUnit = KILI_OFFSET_UNIT
    assets_created: int = 0
    assets_present: int = 0
    predictions_sent: int = 0
    predictions_unchanged: int = 0
    predictions_deleted: int = 0
    #: failed items (no prediction) and items with an empty text (no asset)
    items_failed: int = 0
    items_empty: int = 0
    #: whether the run measured confidence (else priorities are left as they are)
    confidence: bool = False
    priorities_set: int = 0
    priorities_unchanged: int = 0
    #: assets Kili would not reprioritise (in progress, done or skipped), or failed to
    priorities_declined: int = 0


def asset_metadata(config: RunConfig) -> dict[str, str]:
    """What each asset carries besides its text: where it comes from."""
    return {"run": config.run_id, "dataset": config.dataset, "split": config.split}


def upload_run(
    run: RunData,
    target: KiliTarget,
    options: UploadOptions | None = None,
    console: Console | None = None,
) -> UploadReport:
    """Upload `run` to Kili (module docstring); return what was done. Raises UploadError."""
    options = options or UploadOptions()
    console = console or Console(stderr=True)
    config, rows, task = run.config, run.rows, run.task
    task.check_rows(rows)
    job = target.job or task.kili.default_job
    items = [r for r in rows if r.text]
    kili = connect(target.api_key, target.endpoint)
    # A new project holds no human label to show the offset unit: refuse before creating it.
    new_project_unit = partial(resolve_unit, options.unit, task.kili.ml_task, items, list)
    with sdk_errors(kili.api_endpoint, "finding or creating the project"):
        project_id, created = find_or_create_project(
            kili, target.project_id, task, job, config, new_project_unit
        )
    texts = {r.id: r.text for r in items}
    with sdk_errors(kili.api_endpoint, "reading the project's human labels"):
        unit = resolve_unit(
            options.unit,
            task.kili.ml_task,
            items,
            lambda: [] if created else human_labels(kili, project_id, texts),
        )
    options = replace(options, unit=unit)
    report = UploadReport(project_id, created, kili_model_name(config), offset_unit=unit)
    report.items_empty = len(rows) - len(items)
    report.items_failed = sum(r.status != "labeled" for r in items)
    report.confidence = measured(items)

    with _progress(console) as progress:
        assets = _sync_assets(kili, project_id, items, config, options, report, progress)
        if report.confidence:
            _sync_priorities(kili, items, assets, options, report, progress)
        asset_ids = {external_id: asset["id"] for external_id, asset in assets.items()}
        _sync_predictions(
            kili, project_id, items, asset_ids, task.kili, job, options, report, progress
        )
    return report


def dry_run(
    run: RunData, target: KiliTarget, out_dir: Path, options: UploadOptions | None = None
) -> tuple[Path, ...]:
    """Write what an upload to a new project would send, and send nothing.

    project.json (the project to create, or the project and categories to check),
    assets.jsonl (one `append_many_to_dataset` item per line, with the asset's priority
    where the run measured confidence) and predictions.jsonl (one `create_predictions`
    item per line). An upload to a project that already holds some of
    it sends less: this is the whole of it.
    """
    options = options or UploadOptions()
    config, rows, task = run.config, run.rows, run.task
    task.check_rows(rows)
    job = target.job or task.kili.default_job
    items = [r for r in rows if r.text]
    if target.project_id:
        project: dict[str, Any] = {
            "use_project_id": target.project_id,
            "requires_job": job,
            "requires_categories": [t.tag for t in task.labels(config).labels],
        }
    else:
        project = {
            "create_project": {
                "title": project_title(config),
                "input_type": "TEXT",
                "json_interface": task.kili.json_interface(task.labels(config), job),
            }
        }
    # What a new project would get: it has no human labels to show another unit.
    unit = resolve_unit(options.unit, task.kili.ml_task, items, list)
    project["offset_unit"] = unit
    project["model_name"] = kili_model_name(config)
    paths = (out_dir / "project.json", out_dir / "assets.jsonl", out_dir / "predictions.jsonl")
    write_atomic(paths[0], json.dumps(project, indent=2, ensure_ascii=False) + "\n")
    write_atomic(
        paths[1],
        (json.dumps(line, ensure_ascii=False) + "\n" for line in _asset_lines(items, config)),
    )
    write_atomic(paths[2], kili_prediction_lines(items, task, kili_model_name(config), job, unit))
    return paths


def _asset_lines(items: Sequence[PredictionRow], config: RunConfig) -> Iterator[dict[str, Any]]:
    """What a dry run's assets.jsonl holds of each item: its asset, and its priority where
    the run measured confidence."""
    priorities = measured(items)
    for row in items:
        line: dict[str, Any] = {
            "external_id": row.id,
            "content": row.text,
            "json_metadata": asset_metadata(config),
        }
        if priorities:
            line["priority"] = kili_priority(row)
        yield line


def read_predictions(
    kili: Kili,
    project_id: str,
    model_name: str,
    texts: Mapping[str, str],
    kili_job: KiliJob[Any],
    job: str | None = None,
    unit: OffsetUnit = KILI_OFFSET_UNIT,
) -> dict[str, list[Any]]:
    """Read back the predictions of `model_name` (via `kili.predictions`) in the task type's
    terms (`KiliJob.read_response`; NER: code-point entities), by external id; `texts` gives
    each external id's text. One per label."""
    job = job or kili_job.default_job
    out: dict[str, list[Any]] = {}
    for external_id, labels in _predictions_by_external_id(kili, project_id, model_name).items():
        for label in labels:
            read = kili_job.read_response(label["jsonResponse"], texts[external_id], job, unit)
            out.setdefault(external_id, []).append(read)
    return out


# --- steps ------------------------------------------------------------------------------


def _sync_assets(
    kili: Kili,
    project_id: str,
    items: Sequence[PredictionRow],
    config: RunConfig,
    options: UploadOptions,
    report: UploadReport,
    progress: Progress,
) -> dict[str, dict[str, Any]]:
    """Upload the items Kili does not hold yet; return every item's asset (`ASSET_FIELDS`)."""
    endpoint = kili.api_endpoint
    with sdk_errors(endpoint, "listing the project's assets"):
        present = _assets_by_external_id(kili, project_id, [r.id for r in items])
    _check_assets_are_ours(present, config, project_id)
    missing = [r for r in items if r.id not in present]
    report.assets_present = len(items) - len(missing)
    task = progress.add_task("assets", total=len(items), completed=report.assets_present)
    for batch in _chunks(missing, options.batch_size):
        hint = _resume_hint("assets", report.assets_present + report.assets_created, items)
        with sdk_errors(endpoint, "uploading assets", hint):
            _append_assets(kili, project_id, batch, config)
        report.assets_created += len(batch)
        progress.advance(task, len(batch))
    if missing:
        with sdk_errors(endpoint, "listing the project's assets"):
            present = _assets_by_external_id(kili, project_id, [r.id for r in items])
        _check_assets_are_ours(present, config, project_id)
    return {external_id: assets[0] for external_id, assets in present.items()}


def _sync_priorities(
    kili: Kili,
    items: Sequence[PredictionRow],
    assets: Mapping[str, Mapping[str, Any]],
    options: UploadOptions,
    report: UploadReport,
    progress: Progress,
) -> None:
    """Give each asset the priority of its item's confidence, where it has another one."""
    endpoint = kili.api_endpoint
    by_priority: dict[int, list[str]] = {}
    for row in items:
        wanted = kili_priority(row)
        asset = assets[row.id]
        if asset.get("priority") == wanted:
            report.priorities_unchanged += 1
        else:
            by_priority.setdefault(wanted, []).append(asset["id"])
    task = progress.add_task("priorities", total=len(items), completed=report.priorities_unchanged)
    # the least sure first, so that an upload cut off midway has ordered those
    for priority in sorted(by_priority, reverse=True):
        for batch in _chunks(by_priority[priority], options.batch_size):
            with sdk_errors(endpoint, "setting the assets' priorities", _PRIORITIES_AGAIN):
                outcome = kili.set_assets_priority(priority=priority, asset_ids=list(batch))
            refused = len(outcome.get("declined", [])) + len(outcome.get("failed", []))
            report.priorities_declined += refused
            report.priorities_set += len(batch) - refused
            progress.advance(task, len(batch))


def _sync_predictions(
    kili: Kili,
    project_id: str,
    items: Sequence[PredictionRow],
    asset_ids: Mapping[str, str],
    kili_job: KiliJob[Any],
    job: str,
    options: UploadOptions,
    report: UploadReport,
    progress: Progress,
) -> None:
    """Send the predictions Kili does not hold as this run has them; delete failed items'."""
    endpoint = kili.api_endpoint
    with sdk_errors(endpoint, "listing the project's predictions"):
        current = _predictions_by_external_id(kili, project_id, report.model_name)
    labeled = [r for r in items if r.status == "labeled"]
    to_send = []
    for row in labeled:
        response = kili_job.json_response(row, job, report.offset_unit)
        held = current.get(row.id, [])
        if len(held) == 1 and kili_job.response_key(
            held[0]["jsonResponse"], job
        ) == kili_job.response_key(response, job):
            report.predictions_unchanged += 1
        else:
            to_send.append((asset_ids[row.id], response))
    task = progress.add_task(
        "predictions", total=len(labeled), completed=report.predictions_unchanged
    )
    for pairs in _chunks(to_send, options.batch_size):
        done = report.predictions_unchanged + report.predictions_sent
        with sdk_errors(
            endpoint, "uploading predictions", _resume_hint("predictions", done, labeled)
        ):
            kili.create_predictions(
                project_id,
                asset_id_array=[asset_id for asset_id, _ in pairs],
                json_response_array=[response for _, response in pairs],
                model_name=report.model_name,
                overwrite=True,
                disable_tqdm=True,
            )
        report.predictions_sent += len(pairs)
        progress.advance(task, len(pairs))
    stale = [lab["id"] for r in items if r.status != "labeled" for lab in current.get(r.id, [])]
    if stale:
        with sdk_errors(endpoint, "deleting the predictions of failed items"):
            kili.delete_labels(stale, disable_tqdm=True)
        report.predictions_deleted = len(stale)


_PRIORITIES_AGAIN = "run the same command again: it sets the priorities still to set"


def _assets_by_external_id(
    kili: Kili, project_id: str, external_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(list(external_ids), ID_QUERY_BATCH):
        for asset in kili.assets(
            project_id,
            fields=list(ASSET_FIELDS),
            external_id_strictly_in=chunk,
            disable_tqdm=True,
        ):
            out.setdefault(asset["externalId"], []).append(asset)
    return out


def _check_assets_are_ours(
    present: Mapping[str, list[dict[str, Any]]], config: RunConfig, project_id: str
) -> None:
    """An asset of the same external id from other data would put the offsets on another text."""
    for external_id, assets in present.items():
        if len(assets) > 1:
            raise UploadError(
                f"Kili project {project_id} holds {len(assets)} assets with external id "
                f"{external_id!r}: delete the extra ones in Kili, then run again"
            )
        meta = assets[0].get("jsonMetadata") or {}
        if (meta.get("dataset"), meta.get("split")) != (config.dataset, config.split):
            origin = (
                f"dataset {meta.get('dataset')!r} split {meta.get('split')!r}"
                if "dataset" in meta
                else "outside prelabel"
            )
            raise UploadError(
                f"asset {external_id!r} of Kili project {project_id} comes from {origin}, not "
                f"{config.dataset!r} {config.split!r}: its text may differ, so upload this run "
                "to another project"
            )


def _append_assets(
    kili: Kili, project_id: str, rows: Sequence[PredictionRow], config: RunConfig
) -> None:
    # Each text goes through a .txt file: given as a string, the SDK would take a text that
    # looks like a URL for a URL to fetch, and one that names an existing path for that file.
    with tempfile.TemporaryDirectory(prefix="prelabel-kili-") as tmp:
        paths = []
        for n, row in enumerate(rows):
            path = Path(tmp) / f"{n}.txt"
            path.write_text(row.text, encoding="utf-8", newline="")
            paths.append(str(path))
        kili.append_many_to_dataset(
            project_id,
            content_array=paths,
            external_id_array=[r.id for r in rows],
            json_metadata_array=[asset_metadata(config) for _ in rows],
            disable_tqdm=True,
        )


def _predictions_by_external_id(
    kili: Kili, project_id: str, model_name: str
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for label in kili.predictions(project_id, fields=ANNOTATION_FIELDS, disable_tqdm=True):
        if label.get("modelName") == model_name:
            out.setdefault(label["labelOf"]["externalId"], []).append(label)
    return out


def _resume_hint(what: str, done: int, of: Sequence[object]) -> str:
    return (
        f"{done} of {len(of)} {what} were in Kili before that batch; run the same command "
        "again: it resumes where it stopped"
    )


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


__all__ = [
    "KiliTarget",
    "UploadOptions",
    "UploadReport",
    "asset_metadata",
    "dry_run",
    "project_title",
    "project_url",
    "read_predictions",
    "upload_run",
]
