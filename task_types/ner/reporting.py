"""NER's reporting half: its predictions.jsonl row, evaluation, report sections, exports
and Kili job (`task_types.Reporting`).

The pieces live beside it: `rows.py` (the row and its offset check), `evaluation.py` (the
scores, error analysis and losses), `report.py`, `html.py` and `charts.py` (the report's
sections and chart data, from the rows of `tables.py`), `inputs.py` and `kili_export.py`
(the conlleval and Kili-export files `evaluate` reads, gold attachment and item pairing),
`compare.py` (two runs compared), `exports.py` (CoNLL, Label Studio, Hugging Face) and
`kili.py` (the Kili job).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prelabel.figures import RunFigures
from prelabel.model import Record
from task_types.base import Compared, ItemsFormat, KiliJob, Report, RowsWriter, Source
from task_types.ner import exports
from task_types.ner.inputs import Conlleval, attach_gold
from task_types.ner.kili import NerKiliJob
from task_types.ner.kili_export import KiliExport
from task_types.ner.model import Item, NerRecord, NerResult, Ontology
from task_types.ner.rows import NerRow, check_rows

if TYPE_CHECKING:
    from task_types.ner.evaluation import Evaluation


class NerReporting:
    name = "ner"
    row_model = NerRow
    formats: Mapping[str, RowsWriter[NerRow]] = {"conll": exports.conll_format}
    kili: KiliJob[NerRow] = NerKiliJob()
    input_formats: Mapping[str, ItemsFormat] = {"conll": Conlleval(), "kili": KiliExport()}

    def row(self, record: NerRecord, result: NerResult) -> NerRow:
        return NerRow.from_result(record, result)

    def check_rows(self, rows: Iterable[NerRow]) -> None:
        check_rows(rows)

    def figures(self, rows: Sequence[NerRow]) -> dict[str, int]:
        """Mentions the aligner could not place, and all the model proposed (placed or not):
        the unalignable rate is their ratio, an alignment figure, not a model error."""
        return {
            "unaligned_mentions": sum(len(r.unaligned) for r in rows),
            "mentions_proposed": sum(len(r.entities) + len(r.unaligned) for r in rows),
        }

    # The evaluation's modules are imported when used: they load numpy, seqeval and
    # scikit-learn (seconds), and the CLI and the workers import this task type.

    @property
    def report(self) -> Report[Evaluation]:
        from task_types.ner.report import NerReport  # for start-up time (see above)

        return NerReport()

    @property
    def evaluation_model(self) -> type[Evaluation]:
        from task_types.ner.evaluation import Evaluation  # for start-up time

        return Evaluation

    def item(self, row: NerRow) -> Item:
        from task_types.ner.evaluation import item_of_row  # for start-up time

        return item_of_row(row)

    def evaluate(
        self, items: Sequence[Item], figures: RunFigures, *, resamples: int, seed: int
    ) -> Evaluation:
        from task_types.ner.evaluation import evaluate_items  # for start-up time

        return evaluate_items(items, figures, resamples=resamples, seed=seed)

    def attach_gold(self, items: Sequence[Item], gold: Sequence[Record], where: str) -> list[Item]:
        return attach_gold(items, [r for r in gold if isinstance(r, NerRecord)], where)

    def can_score(self, items: Sequence[Item]) -> bool:
        return any(i.gold is not None and i.pred is not None for i in items)

    def compare(self, a: Source, b: Source, *, resamples: int, seed: int) -> Compared:
        from task_types.ner.compare import compare_sources  # for start-up time

        return compare_sources(a, b, resamples=resamples, seed=seed)

    def label_studio_config(self, labels: Ontology) -> str:
        return exports.label_studio_config(labels)

    def label_studio_result(self, row: NerRow) -> list[dict[str, Any]]:
        return exports.label_studio_result(row)

    def review_predictions(self, row: NerRow) -> str:
        return exports.review_predictions(row)

    def hf_columns(
        self, rows: Sequence[NerRow], labels: Ontology
    ) -> tuple[Any, dict[str, list[Any]]]:
        return exports.hf_columns(rows, labels)
