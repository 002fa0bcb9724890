"""Classification's own export (predictions.csv, for a spreadsheet), and its shapes in the
other tools' formats: Label Studio's `Choices`, a Hugging Face dataset of `ClassLabel` (or
`Sequence(ClassLabel)`) columns. The frames that write them are in collector/formats.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from prelabel.model import LabelSet
from prelabel.spreadsheet import BOM, safe_cell
from prelabel.spreadsheet import csv_text as spreadsheet_text
from prelabel.spreadsheet import write_csv as write_spreadsheet
from task_types.classify.rows import ClassifyRow
from task_types.review import label_confidence

#: How a multi-label row's labels are joined in one CSV cell (no AG News or GoEmotions tag
#: holds it; a comma would, in "2,15"-style gold, and is what spreadsheets split on).
JOIN = "; "
CSV_NAME = "predictions.csv"


def csv_header(*, multi_label: bool) -> tuple[str, ...]:
    return ("id", "text", "labels" if multi_label else "label", "gold", "status", "error")


def csv_text(rows: Iterable[ClassifyRow], *, multi_label: bool) -> str:
    """The CSV's text, without the byte order mark: RFC 4180 (CRLF line ends, a field quoted
    when it holds a comma, a quote or a line break, quotes doubled). A text or error that a
    spreadsheet would run as a formula (`=HYPERLINK(...)` in a scraped comment) starts with an
    apostrophe, which spreadsheets show as text and hide; predictions.jsonl keeps it as is."""
    return spreadsheet_text(csv_header(multi_label=multi_label), _csv_rows(rows))


def _csv_rows(rows: Iterable[ClassifyRow]) -> Iterator[tuple[str, ...]]:
    for row in rows:
        yield (
            safe_cell(row.id),
            safe_cell(row.text),
            JOIN.join(row.labels),
            JOIN.join(row.gold) if row.gold is not None else "",
            row.status,
            safe_cell(row.error or ""),
        )


def write_csv(path: Path, rows: Iterable[ClassifyRow], *, multi_label: bool) -> None:
    """Write predictions.csv atomically, in UTF-8 with a byte order mark (for Excel:
    `prelabel.spreadsheet`). Gold is empty where the item has none; labels are empty for a
    failed item (its error says why); a multi-label row's labels are joined with "; ".
    """
    write_spreadsheet(path, csv_header(multi_label=multi_label), _csv_rows(rows))


def csv_format(
    out_dir: Path, rows: Sequence[ClassifyRow], *, multi_label: bool
) -> tuple[Path, ...]:
    """The `csv` export: predictions.csv in `out_dir`."""
    path = out_dir / CSV_NAME
    write_csv(path, rows, multi_label=multi_label)
    return (path,)


# --- Label Studio -----------------------------------------------------------------------


def label_studio_config(labels: LabelSet, *, multi_label: bool) -> str:
    """A Label Studio labeling config: one Choices control (single or multiple choice) over
    one Text object, a Choice per label tag."""
    choices = "\n".join(f"    <Choice value={quoteattr(t.tag)}/>" for t in labels.labels)
    choice = "multiple" if multi_label else "single"
    return (
        "<View>\n"
        '  <Text name="text" value="$text"/>\n'
        f'  <Choices name="label" toName="text" choice="{choice}" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def label_studio_result(row: ClassifyRow) -> list[dict[str, Any]]:
    """A labeled row's labels as one Label Studio choices result (none for an empty set).

    Where the run measured confidence the result carries a `score`: its label's confidence,
    or for a set of labels (one result holds every choice of a control) the least of theirs.
    """
    if not row.labels:
        return []
    result: dict[str, Any] = {
        "id": f"{row.id}#0",
        "from_name": "label",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": list(row.labels)},
    }
    confidences = [label_confidence(row.scores, tag) for tag in row.labels]
    known = [c for c in confidences if c is not None]
    if known:
        result["score"] = min(known)
    return [result]


def review_predictions(row: ClassifyRow) -> str:
    """A row's labels in short, for review.csv: `joy; love`."""
    return JOIN.join(row.labels)


# --- Hugging Face datasets ----------------------------------------------------------------


def class_names(labels: LabelSet, rows: Iterable[ClassifyRow]) -> list[str]:
    """ClassLabel names: the label set's tags in order, then any other tag the rows hold."""
    names = [t.tag for t in labels.labels]
    known = set(names)
    extra = {t for row in rows for t in (*row.labels, *(row.gold or ())) if t not in known}
    return names + sorted(extra)


def hf_columns(
    rows: Sequence[ClassifyRow], labels: LabelSet, *, multi_label: bool
) -> tuple[Any, dict[str, list[Any]]]:
    """Features and columns: id, text, the predicted label (`label`, a ClassLabel; None for
    a failed item) or labels (`labels`, a list of ClassLabel; None for a failed item, `[]`
    for an item labeled with none), `gold` the same way (None without gold), status and
    error. Predictions and gold share one ClassLabel, so both read as ints with the same
    names."""
    from datasets import ClassLabel, Features, List, Value  # seconds to import: on use only

    label = ClassLabel(names=class_names(labels, rows))
    column = List(label) if multi_label else label
    name = "labels" if multi_label else "label"

    def value(tags: Sequence[str] | None) -> Any:
        if tags is None:
            return None
        return list(tags) if multi_label else (tags[0] if tags else None)

    features = Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            name: column,
            "gold": column,
            "status": Value("string"),
            "error": Value("string"),
        }
    )
    columns: dict[str, list[Any]] = {
        "id": [r.id for r in rows],
        "text": [r.text for r in rows],
        name: [value(r.labels) if r.status == "labeled" else None for r in rows],
        "gold": [value(r.gold) for r in rows],
        "status": [r.status for r in rows],
        "error": [r.error for r in rows],
    }
    return features, columns


__all__ = [
    "BOM",
    "CSV_NAME",
    "JOIN",
    "class_names",
    "csv_format",
    "csv_header",
    "csv_text",
    "hf_columns",
    "label_studio_config",
    "label_studio_result",
    "review_predictions",
    "write_csv",
]
