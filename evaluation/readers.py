"""Read prelabel's predictions.jsonl (or a run folder) into a `Source` of its task type's
evaluation items, and tell which format a file is in: predictions.jsonl, or one of the task
type's own (`Reporting.input_formats`; NER: conlleval, Kili exports).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import task_types
from prelabel.errors import DatasetError
from prelabel.figures import RunFigures
from prelabel.model import DEFAULT_TASK, ConfidenceConfig
from prelabel.predictions import read_predictions_jsonl
from task_types import PredictionRow, Reporting, Source

PREDICTIONS = "predictions"


def detect_format(path: Path, task: Reporting[Any]) -> str:
    """The first of `task`'s own formats that recognises the file's beginning, else
    `predictions`."""
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; check the path") from exc
    first = head.lstrip()
    return next((name for name, f in task.input_formats.items() if f.detects(first)), PREDICTIONS)


def resolve_path(path: Path) -> Path:
    """The predictions file `path` names: itself, or the predictions.jsonl of a run folder."""
    if path.is_dir():
        inside = path / "predictions.jsonl"
        if not inside.exists():
            raise DatasetError(
                f"{path} is a folder without predictions.jsonl; point to a predictions file"
            )
        return inside
    if not path.exists():
        raise DatasetError(f"{path} does not exist; check the path")
    return path


# --- predictions.jsonl ----------------------------------------------------------------------


def _run_json(path: Path) -> dict[str, Any]:
    """The run.json next to the predictions file, its groups flattened ({} when there is none,
    or unreadable)."""
    run = path.parent / "run.json"
    if not run.exists():
        return {}
    try:
        config = json.loads(run.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict):
        return {}
    # RunConfig's fields are grouped (endpoint, labeling, ...) or, in older runs, flat.
    for group in ("endpoint", "labeling"):
        nested = config.get(group)
        config.update(nested if isinstance(nested, dict) else {})
    return config


def run_json_task(path: Path, config: dict[str, Any] | None = None) -> str:
    """The task type the run.json beside `path` names (NER when there is none, or it does
    not say); `config` is that run.json when already read."""
    name = (config if config is not None else _run_json(path)).get("task", DEFAULT_TASK)
    return name if isinstance(name, str) else DEFAULT_TASK


def _figures_beside(path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The run's figures from a report.json next to the predictions file, or from its
    run.json (`config`, already read)."""
    fields = set(RunFigures.model_fields)
    report = path.parent / "report.json"
    if report.exists():
        try:
            data = json.loads(report.read_text(encoding="utf-8")).get("figures", {})
        except (OSError, ValueError, AttributeError):
            data = {}
        if isinstance(data, dict) and data:
            kept = {k: v for k, v in data.items() if k in fields}
            # A report written before runs measured confidence: run.json still says.
            if not kept.get("confidence_method") and _confidence_method(config):
                kept["confidence_method"] = _confidence_method(config)
            return kept, str(report)
    keys = ("model", "prompt_version", "dataset", "split")
    found: dict[str, Any] = {k: config[k] for k in keys if isinstance(config.get(k), str)}
    method = _confidence_method(config)
    if method:
        found["confidence_method"] = method
    if found:
        return found, str(path.parent / "run.json")
    return {}, ""


def _confidence_method(config: dict[str, Any]) -> str:
    """The run's `--confidence` as run.json's `confidence` group spells it ("" when it has
    none, or it cannot be read)."""
    group = config.get("confidence")
    if not isinstance(group, dict):
        return ""
    try:
        return ConfidenceConfig.model_validate(group).describe()
    except ValidationError:
        return ""


def _figures_of_rows(rows: Sequence[PredictionRow], task: Reporting[Any]) -> dict[str, Any]:
    models = Counter(r.model for r in rows if r.model)
    prompts = Counter(r.prompt_version for r in rows if r.prompt_version)
    return {
        "items": len(rows),
        "labeled": sum(r.status == "labeled" for r in rows),
        "failed": sum(r.status == "failed" for r in rows),
        "requests": sum(r.usage.requests for r in rows),
        "prompt_tokens": sum(r.usage.prompt_tokens for r in rows),
        "completion_tokens": sum(r.usage.completion_tokens for r in rows),
        **task.figures(rows),
        "model": models.most_common(1)[0][0] if models else "",
        "prompt_version": prompts.most_common(1)[0][0] if prompts else "",
    }


def read_predictions_source(path: Path) -> Source:
    """prelabel's predictions.jsonl, as rows of the task type its run.json names (NER when
    there is none, or it does not say); the run's figures from a report.json or run.json
    beside it when there is one (they know the wall time, 429s, dataset and split).
    """
    config = _run_json(path)
    task = task_types.get(run_json_task(path, config))
    rows = read_predictions_jsonl(path, task)
    derived = _figures_of_rows(rows, task)
    beside, where = _figures_beside(path, config)
    try:
        figures = RunFigures(**{**derived, **beside})
    except ValidationError:
        figures, where = RunFigures(**derived), ""
    items = [task.item(r) for r in rows]
    return Source(path, PREDICTIONS, items, figures, where or str(path), task.name)


__all__ = [
    "PREDICTIONS",
    "detect_format",
    "read_predictions_source",
    "resolve_path",
    "run_json_task",
]
