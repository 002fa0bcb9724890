"""Gather a run's committed results into files a user can open, and evaluate them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.exports import PredictionRow, write_conll, write_predictions_jsonl
from evaluation import Evaluation, RunFigures, evaluate, write_report_json, write_report_md
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
    """Write predictions.jsonl, predictions.conll, report.json and report.md into `out_dir`.

    Items with no committed result (a run that stopped early) are written as failed with the
    reason "not labeled", so that every item of the run appears exactly once.
    """
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

    scored = [r for r in rows if r.status == "labeled" and r.gold_tags is not None]
    figures = RunFigures(
        items=len(rows),
        labeled=sum(r.status == "labeled" for r in rows),
        failed=sum(r.status == "failed" for r in rows),
        requests=counters.get("requests", 0),
        prompt_tokens=counters.get("prompt_tokens", 0),
        completion_tokens=counters.get("completion_tokens", 0),
        rate_limited=counters.get("rate_limited", 0),
        retries=counters.get("retries", 0),
        unaligned_mentions=sum(len(r.unaligned) for r in rows),
        wall_seconds=wall_seconds,
        model=config.model,
        prompt_version=config.prompt_version,
        dataset=config.dataset,
        split=config.split,
        simulator=counters.get("simulated", 0) > 0,
    )
    evaluation = evaluate(
        [list(r.gold_tags or ()) for r in scored], [list(r.tags) for r in scored], figures
    )
    report_json = out_dir / "report.json"
    report_md = out_dir / "report.md"
    write_report_json(evaluation, report_json)
    write_report_md(evaluation, report_md)
    return Collected(out_dir, (jsonl, conll, report_json, report_md), evaluation, missing)


def _not_labeled(item_id: str, config: RunConfig) -> ItemResult:
    return ItemResult(
        id=item_id,
        status="failed",
        error="not labeled: the run stopped before this item was done",
        model=config.model,
        prompt_version=config.prompt_version,
    )
