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
from prelabel.pricing import Bill, run_price

# Imported when collecting, not with the package: the collector's models, Redis and the
# task type's scoring (NER: scikit-learn, seqeval) take a second or more, and
# `prelabel --help` imports this package for its command signatures.
if TYPE_CHECKING:
    from prelabel.model import ItemResult, RunConfig
    from prelabel.store import RunStore
    from task_types import Evaluated, PredictionRow


@dataclass(frozen=True)
class Collected:
    """What `collect` wrote, and the evaluation it computed."""

    out_dir: Path
    files: tuple[Path, ...]
    evaluation: Evaluated
    missing: int


def collect(store: RunStore, run_id: str, out_dir: Path, *, wall_seconds: float) -> Collected:
    """Write predictions.jsonl, the task type's own formats (NER: predictions.conll),
    review.csv when the run measured confidence (collector/review.py), run.json, and the
    task type's evaluation with its reports: report.json, report.md, report.html and its
    charts (NER: f1_by_type.png, confusion.png).

    Items with no committed result (a run that stopped early) are written as failed with the
    reason "not labeled", so that every item of the run appears exactly once.
    """
    from collector.review import write_review
    from collector.source import task_of
    from prelabel.figures import RunFigures
    from prelabel.predictions import write_predictions_jsonl
    from task_types.bootstrap import RESAMPLES
    from task_types.review import measured

    config = store.config(run_id)
    task = task_of(config)
    results = store.results(run_id, task.result_model)
    counters = store.counters(run_id)
    rows: list[PredictionRow] = []
    missing = 0
    for record in store.records(run_id, task.record_model):
        result = results.get(record.id)
        if result is None:
            missing += 1
            result = _not_labeled(task.result_model, record.id, config)
        rows.append(task.row(record, result))

    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "predictions.jsonl"
    write_predictions_jsonl(jsonl, rows)
    own = tuple(path for write in task.formats.values() for path in write(out_dir, rows))
    if measured(rows):
        own += write_review(out_dir, rows, config, task)
    # The run's config beside its predictions, so that uploads and exports of this folder
    # still work once the run's data in Redis has expired.
    run_json = out_dir / "run.json"
    write_atomic(run_json, config.model_dump_json(indent=2) + "\n")

    bill = run_bill(config, counters)
    figures = RunFigures(
        items=len(rows),
        labeled=sum(r.status == "labeled" for r in rows),
        failed=sum(r.status == "failed" for r in rows),
        requests=counters.get(RunCounter.REQUESTS, 0),
        prompt_tokens=counters.get(RunCounter.PROMPT_TOKENS, 0),
        completion_tokens=counters.get(RunCounter.COMPLETION_TOKENS, 0),
        rate_limited=counters.get(RunCounter.RATE_LIMITED, 0),
        retries=counters.get(RunCounter.RETRIES, 0),
        unfinished=missing,
        skipped=len(store.skipped(run_id)),
        failure_reasons=_reasons(r.error for r in rows if r.status == "failed"),
        cache_hits=counters.get(RunCounter.CACHE_HITS, 0),
        batches=counters.get(RunCounter.BATCHES, 0),
        batch_requests=counters.get(RunCounter.BATCH_REQUESTS, 0),
        batch_prompt_tokens=counters.get(RunCounter.BATCH_PROMPT_TOKENS, 0),
        batch_completion_tokens=counters.get(RunCounter.BATCH_COMPLETION_TOKENS, 0),
        cached_prompt_tokens=counters.get(RunCounter.CACHED_PROMPT_TOKENS, 0),
        batch_cached_prompt_tokens=counters.get(RunCounter.BATCH_CACHED_PROMPT_TOKENS, 0),
        cost_usd=bill.total if bill is not None else None,
        bill=bill,
        wall_seconds=wall_seconds,
        model=config.endpoint.model,
        prompt_version=config.labeling.prompt_version,
        dataset=config.dataset,
        split=config.split,
        simulator=counters.get(RunCounter.SIMULATED, 0) > 0,
        confidence_method=config.confidence.describe(),
        **task.figures(rows),
    )
    evaluation = task.evaluate([task.item(r) for r in rows], figures, resamples=RESAMPLES, seed=0)
    # Imported here: the charts need matplotlib, which nothing else on import paths does.
    from evaluation.outputs import write_reports

    files = (jsonl, *own, run_json, *write_reports(evaluation, out_dir))
    return Collected(out_dir, files, evaluation, missing)


def run_bill(config: RunConfig, counters: dict[str, int]) -> Bill | None:
    """What the run's tokens cost in USD, by part and transport (`prelabel.pricing.run_price`
    and `Bill`); None when the model's price is unknown."""
    price = run_price(config)
    if price is None:
        return None
    return Bill.of_counters(price, counters)


def run_cost(config: RunConfig, counters: dict[str, int]) -> float | None:
    """What the run's tokens cost in USD (`run_bill`'s total); None when unpriced."""
    bill = run_bill(config, counters)
    return bill.total if bill is not None else None


def _not_labeled(model: type[ItemResult], item_id: str, config: RunConfig) -> ItemResult:
    return model(
        id=item_id,
        status="failed",
        error="not labeled: the run stopped before this item was done",
        model=config.endpoint.model,
        prompt_version=config.labeling.prompt_version,
    )


def _reasons(errors: Iterable[str | None]) -> dict[str, int]:
    """Failure reasons grouped by kind (`prelabel.errors.failure_kind`)."""
    counts = Counter(failure_kind(e) for e in errors)
    return dict(counts.most_common())
