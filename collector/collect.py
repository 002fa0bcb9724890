"""Gather a run's committed results into files a user can open, and evaluate them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prelabel.counters import RunCounter
from prelabel.errors import failure_kind
from prelabel.files import write_atomic
from prelabel.pricing import run_price

# Imported when collecting, not with the package: the collector's models, Redis and the
# scoring (scikit-learn, seqeval) take a second or more, and `prelabel --help` imports this
# package for its command signatures.
if TYPE_CHECKING:
    from collector.exports import PredictionRow
    from evaluation import Evaluation, Item
    from prelabel.model import ItemResult, RunConfig
    from prelabel.store import RunStore


@dataclass(frozen=True)
class Collected:
    """What `collect` wrote, and the evaluation it computed."""

    out_dir: Path
    files: tuple[Path, ...]
    evaluation: Evaluation
    missing: int


def collect(store: RunStore, run_id: str, out_dir: Path, *, wall_seconds: float) -> Collected:
    """Write predictions.jsonl, predictions.conll, run.json, and the evaluation's reports:
    report.json, report.md, report.html and its charts (f1_by_type.png, confusion.png).

    Items with no committed result (a run that stopped early) are written as failed with the
    reason "not labeled", so that every item of the run appears exactly once.
    """
    from collector.exports import PredictionRow, write_conll, write_predictions_jsonl
    from evaluation import RunFigures, evaluate_items

    config = store.config(run_id)
    results = store.results(run_id)
    counters = store.counters(run_id)
    rows: list[PredictionRow] = []
    missing = 0
    for record in store.records(run_id):
        result = results.get(record.id)
        if result is None:
            missing += 1
            result = _not_labeled(record.id, config)
        rows.append(PredictionRow.from_result(record, result))

    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "predictions.jsonl"
    conll = out_dir / "predictions.conll"
    write_predictions_jsonl(jsonl, rows)
    write_conll(conll, rows)
    # The run's config beside its predictions, so that uploads and exports of this folder
    # still work once the run's data in Redis has expired.
    run_json = out_dir / "run.json"
    write_atomic(run_json, config.model_dump_json(indent=2) + "\n")

    figures = RunFigures(
        items=len(rows),
        labeled=sum(r.status == "labeled" for r in rows),
        failed=sum(r.status == "failed" for r in rows),
        requests=counters.get(RunCounter.REQUESTS, 0),
        prompt_tokens=counters.get(RunCounter.PROMPT_TOKENS, 0),
        completion_tokens=counters.get(RunCounter.COMPLETION_TOKENS, 0),
        rate_limited=counters.get(RunCounter.RATE_LIMITED, 0),
        retries=counters.get(RunCounter.RETRIES, 0),
        unaligned_mentions=sum(len(r.unaligned) for r in rows),
        mentions_proposed=sum(len(r.entities) + len(r.unaligned) for r in rows),
        unfinished=missing,
        skipped=len(store.skipped(run_id)),
        failure_reasons=_reasons(r.error for r in rows if r.status == "failed"),
        cache_hits=counters.get(RunCounter.CACHE_HITS, 0),
        cost_usd=run_cost(config, counters),
        wall_seconds=wall_seconds,
        model=config.model,
        prompt_version=config.prompt_version,
        dataset=config.dataset,
        split=config.split,
        simulator=counters.get(RunCounter.SIMULATED, 0) > 0,
    )
    evaluation = evaluate_items([_item(r) for r in rows], figures)
    # Imported here: the charts need matplotlib, which nothing else on import paths does.
    from evaluation.outputs import write_reports

    files = (jsonl, conll, run_json, *write_reports(evaluation, out_dir))
    return Collected(out_dir, files, evaluation, missing)


def _item(row: PredictionRow) -> Item:
    from evaluation import Item

    # The same reading as evaluation.readers.item_of_row (which cannot be imported here:
    # it reads predictions.jsonl through this package).
    return Item(
        id=row.id,
        tokens=row.tokens,
        gold=row.gold_tags,
        pred=row.tags if row.status == "labeled" else None,
        error=row.error,
        unaligned=row.unaligned,
    )


def run_cost(config: RunConfig, counters: dict[str, int]) -> float | None:
    """What the run's tokens cost in USD (`prelabel.pricing.run_price`); None when the model's
    price is unknown."""
    price = run_price(config)
    if price is None:
        return None
    return price.cost(
        counters.get(RunCounter.PROMPT_TOKENS, 0), counters.get(RunCounter.COMPLETION_TOKENS, 0)
    )


def _not_labeled(item_id: str, config: RunConfig) -> ItemResult:
    from prelabel.model import ItemResult

    return ItemResult(
        id=item_id,
        status="failed",
        error="not labeled: the run stopped before this item was done",
        model=config.model,
        prompt_version=config.prompt_version,
    )


def _reasons(errors: Iterable[str | None]) -> dict[str, int]:
    """Failure reasons grouped by kind (`prelabel.errors.failure_kind`)."""
    counts = Counter(failure_kind(e) for e in errors)
    return dict(counts.most_common())
