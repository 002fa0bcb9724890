"""Read what `prelabel evaluate` and `compare` are given, in whichever format it is: a run's
predictions.jsonl (or its folder), a conlleval file, or a Kili export with the dataset's gold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from prelabel.errors import DatasetError
from task_types.ner.model import NerRecord

from .kili_export import read_kili
from .readers import (
    FORMATS,
    Source,
    attach_gold,
    detect_format,
    read_conlleval,
    read_predictions_source,
    resolve_path,
)


def read_source(
    path: Path,
    *,
    fmt: str = "auto",
    gold: Sequence[NerRecord] | None = None,
    gold_name: str = "",
    split: str = "test",
    assets: Path | None = None,
) -> Source:
    """Read `path` (a predictions file, or a run folder holding predictions.jsonl) in its
    format, with gold from `gold` when given (the records of the dataset `gold_name`, `split`).
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = resolve_path(path)
    kind = detect_format(path) if fmt == "auto" else fmt
    records = gold
    if kind == "kili":
        if records is None:
            raise DatasetError(
                f"{path} is a Kili export, which holds predictions only; pass --gold SPEC "
                "(the dataset and --split the assets came from)"
            )
        source = read_kili(path, records, assets)
    elif kind == "predictions":
        source = read_predictions_source(path)
    else:
        source = read_conlleval(path)
    if records is not None:
        source = replace(source, items=attach_gold(source.items, records, str(path)))
        if not source.figures.dataset:
            figures = source.figures.model_copy(update={"dataset": gold_name, "split": split})
            source = replace(source, figures=figures)
    if not any(i.gold is not None and i.pred is not None for i in source.items):
        raise DatasetError(
            f"{path}: no item has both gold and predicted tags, so there is nothing to score; "
            "pass --gold SPEC with the dataset the predictions were made on"
        )
    return source
