"""Classification's reporting half: its predictions.jsonl row, evaluation, report sections,
exports and Kili job (`task_types.Reporting`), for one label per text or a set of labels.

The pieces live beside it: `rows.py` (the row and its checks), `evaluation.py` (the scores,
intervals, headline, repairs and losses), `report.py`, `html.py` and `charts.py` (the
report's sections and chart data, from the rows of `tables.py`), `compare.py` (two runs
compared), `exports.py` (CSV, Label Studio, Hugging Face) and `kili.py` (the Kili job).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from prelabel.errors import DatasetError
from prelabel.figures import RunFigures
from prelabel.model import LabelSet, Record
from task_types.base import Compared, ItemsFormat, KiliJob, Report, RowsWriter, Source
from task_types.classify import exports
from task_types.classify.kili import ClassifyKiliJob
from task_types.classify.model import ClassifyRecord, ClassifyResult, Item
from task_types.classify.rows import ClassifyRow, check_rows, item_of_row

if TYPE_CHECKING:
    from task_types.classify.evaluation import Evaluation


class ClassifyReporting:
    """Classification's `Reporting`; `multi_label` (set by `Classify`) picks the shapes."""

    name: str
    multi_label: bool
    row_model = ClassifyRow
    #: No predictions format of its own to read besides predictions.jsonl.
    input_formats: Mapping[str, ItemsFormat] = {}

    @property
    def formats(self) -> Mapping[str, RowsWriter[ClassifyRow]]:
        """predictions.csv, for a spreadsheet (`exports.write_csv`)."""
        return {"csv": partial(exports.csv_format, multi_label=self.multi_label)}

    @property
    def kili(self) -> KiliJob[ClassifyRow]:
        return ClassifyKiliJob(multi_label=self.multi_label)

    def row(self, record: ClassifyRecord, result: ClassifyResult) -> ClassifyRow:
        return ClassifyRow.from_result(record, result)

    def check_rows(self, rows: Iterable[ClassifyRow]) -> None:
        check_rows(rows, multi_label=self.multi_label)

    def figures(self, rows: Sequence[ClassifyRow]) -> dict[str, int]:
        """None of its own: repairs are counted by the evaluation, from the rows."""
        return {}

    # The evaluation's modules are imported when used: they load numpy and scikit-learn
    # (seconds), and the CLI and the workers import this task type.

    @property
    def report(self) -> Report[Evaluation]:
        from task_types.classify.report import ClassifyReport  # for start-up time (see above)

        return ClassifyReport()

    @property
    def evaluation_model(self) -> type[Evaluation]:
        from task_types.classify.evaluation import model_for  # for start-up time

        return model_for(self.multi_label)

    def item(self, row: ClassifyRow) -> Item:
        return item_of_row(row)

    def evaluate(
        self, items: Sequence[Item], figures: RunFigures, *, resamples: int, seed: int
    ) -> Evaluation:
        from task_types.classify.evaluation import evaluate_items  # for start-up time

        return evaluate_items(
            items, figures, multi_label=self.multi_label, resamples=resamples, seed=seed
        )

    def attach_gold(self, items: Sequence[Item], gold: Sequence[Record], where: str) -> list[Item]:
        """Each item with the gold of the record of its id (a classification item's id is its
        dataset row's); an item with no such record is a user mistake."""
        by_id = {r.id: r for r in gold if isinstance(r, ClassifyRecord)}
        out = []
        for item in items:
            record = by_id.get(item.id)
            if record is None:
                raise DatasetError(
                    f"{where}: item {item.id!r} is in no gold record; is --gold the dataset "
                    "and split these predictions were made on (with the same --id-field)?"
                )
            out.append(replace(item, gold=record.gold))
        return out

    def can_score(self, items: Sequence[Item]) -> bool:
        return any(i.gold is not None and i.pred is not None for i in items)

    def compare(self, a: Source, b: Source, *, resamples: int, seed: int) -> Compared:
        from task_types.classify.compare import compare_sources  # for start-up time

        return compare_sources(a, b, multi_label=self.multi_label, resamples=resamples, seed=seed)

    def label_studio_config(self, labels: LabelSet) -> str:
        return exports.label_studio_config(labels, multi_label=self.multi_label)

    def label_studio_result(self, row: ClassifyRow) -> list[dict[str, Any]]:
        return exports.label_studio_result(row)

    def review_predictions(self, row: ClassifyRow) -> str:
        return exports.review_predictions(row)

    def hf_columns(
        self, rows: Sequence[ClassifyRow], labels: LabelSet
    ) -> tuple[Any, dict[str, list[Any]]]:
        return exports.hf_columns(rows, labels, multi_label=self.multi_label)


__all__ = ["ClassifyReporting"]
