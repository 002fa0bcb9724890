"""The producer: load a dataset, create a run, enqueue its shards, follow it, collect it."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records
    from producer.pipeline import RunOptions, RunOutcome, run_pipeline
    from producer.runs import check_endpoint, start_run

# Imported on first use (PEP 562), for start-up time: loading imports `datasets` and runs
# imports Celery and openai (seconds).
_WHERE = {
    **dict.fromkeys(("DatasetSpec", "LoadedDataset", "load_dataset_records"), "loading"),
    **dict.fromkeys(("RunOptions", "RunOutcome", "run_pipeline"), "pipeline"),
    **dict.fromkeys(("check_endpoint", "start_run"), "runs"),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"producer.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DatasetSpec",
    "LoadedDataset",
    "RunOptions",
    "RunOutcome",
    "check_endpoint",
    "load_dataset_records",
    "run_pipeline",
    "start_run",
]
