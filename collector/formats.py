"""Exports of a run's predictions for other tools: Kili json_response JSONL, Label Studio
tasks, and a Hugging Face `datasets` folder. (prelabel's own JSONL is in exports.py; a task
type's own formats, such as NER's CoNLL, are its `formats`.) These are the frames: what a
row holds in each tool's terms is the task type's (`task_types.Reporting`).

Every writer first checks each row against its text (`Reporting.check_rows`), so that no
file leaves with an offset that is off, and each has offsets counted in the unit its tool counts:

- Kili: code points by default, what Kili's own code computes (its NER pre-annotation recipe
  and AutoML models slice Python strings; neither the SDK nor kili-formats converts units).
  Kili documents `beginOffset` only as a "character offset", and its interface is a web app
  whose strings count UTF-16 units, so an upload checks the target project's human labels
  when a text holds a character where the two differ (`collector.kili_offsets`); a file
  written here takes `--offset-unit utf16` where a project shows that;
- Label Studio: code points. Its editor is a web app, but Label Studio converts the browser's
  UTF-16 offsets to code points before storing them (label-studio-frontend PR 308, "store code
  points instead of js length", after issues 1008 and 1347 where offsets after an emoji were off
  by one), so Python offsets import as they are;
- Hugging Face: tokens and tags, no character offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prelabel.errors import ConfigError, DatasetError
from prelabel.files import atomic_dir, write_atomic
from prelabel.model import RunConfig
from prelabel.offsets import OffsetUnit
from task_types import PredictionRow, TaskType
from task_types.review import kili_priority, measured

#: How Kili counts `beginOffset`, unless told or shown otherwise (`collector.kili_offsets`).
KILI_OFFSET_UNIT: OffsetUnit = "codepoint"


# --- Kili -------------------------------------------------------------------------------


def kili_model_name(config: RunConfig) -> str:
    """The `model_name` of a run's predictions: the model and the prompt version.

    Predictions with the same model name replace each other on an asset, so a run uploaded
    again replaces its own, and so does a later run of the same model and prompt.
    """
    return f"{config.endpoint.model}@{config.labeling.prompt_version}"


def kili_prediction_lines(
    rows: Iterable[PredictionRow],
    task: TaskType,
    model_name: str,
    job: str,
    unit: OffsetUnit = KILI_OFFSET_UNIT,
) -> Iterator[str]:
    """One JSON line per labeled row: the arguments of `kili.create_predictions` for it."""
    for row in rows:
        if row.status != "labeled":
            continue
        line = {
            "external_id": row.id,
            "model_name": model_name,
            "json_response": task.kili.json_response(row, job, unit),
        }
        yield json.dumps(line, ensure_ascii=False) + "\n"


def write_kili(
    out_dir: Path,
    rows: Sequence[PredictionRow],
    config: RunConfig,
    task: TaskType,
    unit: OffsetUnit = KILI_OFFSET_UNIT,
) -> tuple[Path, ...]:
    """Write kili_predictions.jsonl and kili_interface.json (the project's json_interface),
    and where the run measured confidence kili_priorities.json (`{external_id: priority}`
    for every item, failed ones included: `task_types.review.kili_priority`).

    For a manual import: create a TEXT project with the interface, import the texts with
    their item ids as external ids, then for each line call
    `kili.create_predictions(project_id, external_id_array=[external_id],
    json_response_array=[json_response], model_name=model_name)`, and give each asset its
    priority (`kili.set_assets_priority(priority, external_ids=[...], project_id=...)`).
    """
    task.check_rows(rows)
    job = task.kili.default_job
    predictions = out_dir / "kili_predictions.jsonl"
    interface = out_dir / "kili_interface.json"
    write_atomic(predictions, kili_prediction_lines(rows, task, kili_model_name(config), job, unit))
    write_atomic(
        interface, json.dumps(task.kili.json_interface(task.labels(config), job), indent=2) + "\n"
    )
    if not measured(rows):
        return predictions, interface
    priorities = out_dir / "kili_priorities.json"
    write_atomic(
        priorities,
        json.dumps({r.id: kili_priority(r) for r in rows}, ensure_ascii=False, indent=1) + "\n",
    )
    return predictions, interface, priorities


# --- Label Studio -----------------------------------------------------------------------


def label_studio_task(row: PredictionRow, task: TaskType, model_version: str) -> dict[str, Any]:
    """One Label Studio task; a labeled row carries its labels as one prediction, whose
    `score` (what the Data Manager sorts tasks by) is the item's confidence where the run
    measured it."""
    ls_task: dict[str, Any] = {"data": {"text": row.text, "item_id": row.id}}
    if row.status == "labeled":
        prediction: dict[str, Any] = {
            "model_version": model_version,
            "result": task.label_studio_result(row),
        }
        if row.confidence is not None:
            prediction["score"] = row.confidence
        ls_task["predictions"] = [prediction]
    return ls_task


def write_label_studio(
    out_dir: Path, rows: Sequence[PredictionRow], config: RunConfig, task: TaskType
) -> tuple[Path, ...]:
    """Write tasks.json (every item, predictions on the labeled ones) and label_config.xml."""
    task.check_rows(rows)
    tasks = [label_studio_task(row, task, kili_model_name(config)) for row in rows]
    tasks_path = out_dir / "tasks.json"
    config_path = out_dir / "label_config.xml"
    write_atomic(tasks_path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    write_atomic(config_path, task.label_studio_config(task.labels(config)))
    return tasks_path, config_path


# --- Hugging Face datasets ----------------------------------------------------------------


def write_hf_dataset(
    out_dir: Path, rows: Sequence[PredictionRow], config: RunConfig, task: TaskType
) -> Path:
    """Save the rows as a `datasets` folder (`save_to_disk`) at `out_dir`, with the columns
    and features of the task type (`Reporting.hf_columns`)."""
    from datasets import Dataset

    from prelabel.hf_datasets import quiet_progress

    task.check_rows(rows)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "dataset_info.json").exists():
        raise ConfigError(
            f"{out_dir} exists and is not a datasets folder: choose an empty or new --out"
        )
    features, columns = task.hf_columns(rows, task.labels(config))
    dataset = Dataset.from_dict(columns, features=features)
    dataset.info.description = (
        f"prelabel run {config.run_id}: {config.endpoint.model} ({config.labeling.prompt_version}) "
        f"on {config.dataset} {config.split}"
    )
    # Saved beside, then swapped in, so that a reader never finds half a folder.
    try:
        with atomic_dir(out_dir) as tmp, quiet_progress():
            dataset.save_to_disk(str(tmp))
    except OSError as exc:
        raise DatasetError(f"cannot write the dataset folder {out_dir}: {exc}") from exc
    return out_dir


__all__ = [
    "KILI_OFFSET_UNIT",
    "kili_model_name",
    "kili_prediction_lines",
    "label_studio_task",
    "write_hf_dataset",
    "write_kili",
    "write_label_studio",
]
