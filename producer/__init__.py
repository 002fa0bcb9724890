"""The producer: load a dataset, create a run, enqueue its shards, follow it, collect it."""

from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records
from producer.pipeline import RunOptions, RunOutcome, run_pipeline
from producer.runs import check_endpoint, enqueue, start_run

__all__ = [
    "DatasetSpec",
    "LoadedDataset",
    "RunOptions",
    "RunOutcome",
    "check_endpoint",
    "enqueue",
    "load_dataset_records",
    "run_pipeline",
    "start_run",
]
