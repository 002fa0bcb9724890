"""The producer's whole job for `prelabel run`: load, create, enqueue, follow, collect."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from collector import Collected, collect
from prelabel.connections import connect
from prelabel.errors import ConfigError
from prelabel.files import write_atomic
from prelabel.model import Ontology
from prelabel.settings import Settings
from prelabel.store import RunStatus, RunStore
from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records
from producer.progress import follow
from producer.runs import check_endpoint, start_run


@dataclass(frozen=True)
class RunOptions:
    """How to label: the model, its endpoint and caps, and how to cut the work."""

    model: str
    base_url: str
    rpm: int | None = None
    tpm: int | None = None
    shard_size: int = 50
    batch_size: int = 1
    max_tokens: int = 512


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: RunStatus
    error: str | None
    collected: Collected
    dataset: LoadedDataset


def run_pipeline(
    settings: Settings,
    spec: DatasetSpec,
    options: RunOptions,
    out_dir: Path | None,
    console: Console,
) -> RunOutcome:
    """Label `spec` with `options` through the workers, and collect it into `out_dir`."""
    store = RunStore(connect(settings.redis_url))
    dataset = load_dataset_records(spec)
    if not dataset.entity_tags:
        raise ConfigError(
            f"{dataset.source} declares no entity types: pass --entity-types (e.g. PER,ORG,LOC)"
        )
    check_endpoint(settings, options.base_url)
    console.print(
        f"[bold]{len(dataset.records)}[/] items from {dataset.source}"
        + (f", [yellow]{len(dataset.skipped)} skipped[/]" if dataset.skipped else "")
    )
    started = time.monotonic()
    config = start_run(
        settings,
        store,
        dataset.records,
        model=options.model,
        base_url=options.base_url,
        ontology=Ontology.from_tags(dataset.entity_tags),
        dataset=dataset.source,
        split=dataset.split,
        rpm=options.rpm,
        tpm=options.tpm,
        shard_size=options.shard_size,
        batch_size=options.batch_size,
        max_tokens=options.max_tokens,
    )
    console.print(
        f"run [bold]{config.run_id}[/]: {config.total} items in {config.shards} shards, "
        f"model {config.model} at {config.base_url}"
    )
    status, error = follow(store, config, console, settings)
    out = out_dir or Path("runs") / config.run_id
    collected = collect(store, config.run_id, out, wall_seconds=time.monotonic() - started)
    if dataset.skipped:
        write_atomic(
            out / "skipped.jsonl",
            (
                json.dumps({"item": where, "reason": reason}, ensure_ascii=False) + "\n"
                for where, reason in dataset.skipped
            ),
        )
    return RunOutcome(config.run_id, status, error, collected, dataset)
