"""Read what `prelabel evaluate` and `compare` are given, in whichever format it is: a run's
predictions.jsonl (or its folder), or a format of the task type's own (NER: a conlleval
file, a Kili export with the dataset's gold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import task_types
from prelabel.errors import DatasetError
from prelabel.model import DEFAULT_TASK, Record
from task_types import Source

from .readers import (
    PREDICTIONS,
    detect_format,
    read_predictions_source,
    resolve_path,
    run_json_task,
)


def file_task(path: Path, fmt: str = "auto") -> str:
    """The task type whose predictions `path` holds: the one the run.json beside a
    predictions.jsonl names, else the default (a file in another format does not say)."""
    default = task_types.get(DEFAULT_TASK)
    path = resolve_path(path)
    kind = detect_format(path, default) if fmt == "auto" else fmt
    return run_json_task(path) if kind == PREDICTIONS else DEFAULT_TASK


def read_source(
    path: Path,
    *,
    fmt: str = "auto",
    gold: Sequence[Record] | None = None,
    gold_name: str = "",
    split: str = "test",
    assets: Path | None = None,
) -> Source:
    """Read `path` (a predictions file, or a run folder holding predictions.jsonl) in its
    format, with gold from `gold` when given (the records of the dataset `gold_name`, `split`).

    A predictions.jsonl names its task type in the run.json beside it; a file in another
    format is read by the default task type's formats, since it does not say.
    """
    default = task_types.get(DEFAULT_TASK)
    known = ("auto", PREDICTIONS, *default.input_formats)
    if fmt not in known:
        raise DatasetError(f"unknown format {fmt!r}; use one of {', '.join(known)}")
    path = resolve_path(path)
    kind = detect_format(path, default) if fmt == "auto" else fmt
    if kind == PREDICTIONS:
        source = read_predictions_source(path)
    else:
        source = default.input_formats[kind].read(path, gold, assets)
    task = task_types.get(source.task)
    if gold is not None:
        source = replace(source, items=task.attach_gold(source.items, gold, str(path)))
        if not source.figures.dataset:
            figures = source.figures.model_copy(update={"dataset": gold_name, "split": split})
            source = replace(source, figures=figures)
    if not task.can_score(source.items):
        raise DatasetError(
            f"{path}: no item has both gold and predicted tags, so there is nothing to score; "
            "pass --gold SPEC with the dataset the predictions were made on"
        )
    return source
