"""prelabel's own file of a run's results: predictions.jsonl, one row per item, in the row
model of the run's task type (`task_types.Reporting.row_model`). Pure: the writer takes rows
and a path. The collector writes it and the evaluation reads it, so it lives in the core.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from prelabel.errors import DatasetError
from prelabel.files import write_atomic

RowT = TypeVar("RowT", bound=BaseModel)
RowT_co = TypeVar("RowT_co", bound=BaseModel, covariant=True)


class _Row(Protocol):
    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


class _Rows(Protocol[RowT_co]):
    """What reading needs of a task type (`task_types.Reporting`): its row model."""

    @property
    def row_model(self) -> type[RowT_co]: ...


def write_predictions_jsonl(path: Path, rows: Iterable[_Row]) -> int:
    """Write one JSON object per row (UTF-8, non-ASCII kept as is), atomically; return the count."""
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for row in rows:
            count += 1
            yield json.dumps(row.model_dump(mode="json"), ensure_ascii=False) + "\n"

    write_atomic(path, lines())
    return count


def read_predictions_jsonl(path: Path, task: _Rows[RowT]) -> list[RowT]:
    """Read predictions.jsonl back in `task`'s row model; blank lines are skipped, a bad line
    names its number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"predictions file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read predictions file {path}: {exc}") from exc
    rows: list[RowT] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(task.row_model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            raise DatasetError(
                f"{path}:{number}: not a prediction row ({where}: {first['msg']}); "
                "was it written by prelabel?"
            ) from exc
    return rows


__all__ = ["read_predictions_jsonl", "write_predictions_jsonl"]
