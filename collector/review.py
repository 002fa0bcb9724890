"""review.csv: a run's items in the order a human should review them, each with what makes
it doubtful. Collect writes it into the run folder whenever the run measured confidence;
`prelabel export --format review` writes it anywhere.

Order (`task_types.review.review_order`): failed items first, then labeled items whose
confidence was not measured, then from the least to the most confident; ties by item id.
Columns:

- `rank`: 1 for the item to review first;
- `id`, `confidence` (the item's, 3 decimals; empty where there is none), `method` (how it
  was measured: `--confidence` as the run spelt it, e.g. `consistency:5`);
- `doubt`: the proposal the model was least sure of, rejected ones included: `LOC "Paris"
  0.412` for a mention, `Sports 0.412` for a label, with `(rejected)` when the verification
  dropped it; `nothing proposed` when the item has no proposal (a failed item: empty);
- `status`, `error`; `predictions`, the item's predictions in short (NER: `PER: John; LOC:
  Paris`; classification: `joy; love`); `text`.

Spreadsheet-safe as predictions.csv is (`prelabel.spreadsheet`): UTF-8 with a byte order
mark, and a cell from the data that a spreadsheet would run as a formula starts with an
apostrophe.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from prelabel.model import RunConfig, Scored
from prelabel.spreadsheet import safe_cell, write_csv
from task_types import PredictionRow, TaskType
from task_types.review import least_sure, review_order

REVIEW_CSV = "review.csv"
HEADER = (
    "rank",
    "id",
    "confidence",
    "method",
    "doubt",
    "status",
    "error",
    "predictions",
    "text",
)
NOTHING_PROPOSED = "nothing proposed"


def doubt(row: PredictionRow) -> str:
    """The `doubt` cell of a row (module docstring)."""
    scored = least_sure(row.scores)
    if scored is None:
        return "" if row.status != "labeled" else NOTHING_PROPOSED
    return _proposal(scored)


def _proposal(scored: Scored) -> str:
    what = f'{scored.label} "{scored.text}"' if scored.text else scored.label
    rejected = " (rejected)" if not scored.kept else ""
    return f"{what} {_number(scored.confidence)}{rejected}"


def _number(confidence: float | None) -> str:
    return "" if confidence is None else f"{confidence:.3f}"


def review_lines(
    rows: Sequence[PredictionRow], config: RunConfig, task: TaskType
) -> Iterator[tuple[str, ...]]:
    """review.csv's rows after its header, in review order."""
    method = config.confidence.describe()
    for rank, row in enumerate(review_order(rows), start=1):
        predictions = task.review_predictions(row) if row.status == "labeled" else ""
        yield (
            str(rank),
            safe_cell(row.id),
            _number(row.confidence),
            method,
            safe_cell(doubt(row)),
            row.status,
            safe_cell(row.error or ""),
            safe_cell(predictions),
            safe_cell(row.text),
        )


def write_review(
    out_dir: Path, rows: Sequence[PredictionRow], config: RunConfig, task: TaskType
) -> tuple[Path, ...]:
    """Write review.csv into `out_dir` (the `review` export)."""
    path = out_dir / REVIEW_CSV
    write_csv(path, HEADER, review_lines(rows, config, task))
    return (path,)


__all__ = ["HEADER", "NOTHING_PROPOSED", "REVIEW_CSV", "doubt", "review_lines", "write_review"]
