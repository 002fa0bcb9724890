"""A finished run's predictions and configuration, read from Redis or from its run folder.

Uploads and exports take either: a run id while the run's data is still in Redis, or the
folder `prelabel run` wrote (predictions.jsonl beside run.json), which outlives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

import task_types
from prelabel.errors import DatasetError
from prelabel.model import RunConfig
from prelabel.predictions import read_predictions_jsonl
from prelabel.store import RunStore
from task_types import PredictionRow, TaskType


def task_of(config: RunConfig) -> TaskType:
    """The task type of a run."""
    return task_types.get(config.labeling.task)


@dataclass(frozen=True)
class RunData:
    """A run's configuration and one prediction row per item, in the run's order."""

    config: RunConfig
    rows: tuple[PredictionRow, ...]
    #: The run folder the rows were read from, None when they came from Redis.
    folder: Path | None = None

    @property
    def task(self) -> TaskType:
        """The run's task type, whose rows these are."""
        return task_of(self.config)


def load_run_folder(folder: Path) -> RunData:
    """Read `folder`/run.json and `folder`/predictions.jsonl."""
    run_json = folder / "run.json"
    try:
        config = RunConfig.model_validate_json(run_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{run_json} does not exist: point to a folder written by `prelabel run` "
            "(runs collected before run.json existed can be uploaded by run id from Redis)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {run_json}: {exc}") from None
    except ValidationError as exc:
        raise DatasetError(
            f"{run_json} is not a prelabel run configuration ({exc.errors()[0]['msg']})"
        ) from None
    rows = read_predictions_jsonl(folder / "predictions.jsonl", task_of(config))
    return RunData(config, tuple(rows), folder)


def load_run_redis(store: RunStore, run_id: str) -> RunData:
    """Rebuild the rows from the run's records and committed results in Redis.

    Items without a result are rows of status "failed", as the collector writes them.
    """
    config = store.config(run_id)
    task = task_of(config)
    results = store.results(run_id, task.result_model)
    rows = []
    for record in store.records(run_id, task.record_model):
        result = results.get(record.id) or task.result_model(
            id=record.id,
            status="failed",
            error="not labeled: the run stopped before this item was done",
            model=config.endpoint.model,
            prompt_version=config.labeling.prompt_version,
        )
        rows.append(task.row(record, result))
    return RunData(config, tuple(rows))


__all__ = ["RunData", "load_run_folder", "load_run_redis", "task_of"]
