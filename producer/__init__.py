"""The producer: load a dataset, create a run, enqueue its shards, follow it, collect it."""

from typing import TYPE_CHECKING

from prelabel.lazy import lazy_exports

if TYPE_CHECKING:
    from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records
    from producer.pipeline import RunOptions, RunOutcome, run_pipeline
    from producer.runs import check_endpoint, start_run

# Imported on first use, for start-up time: loading imports `datasets` and runs imports
# Celery and openai (seconds).
__getattr__ = lazy_exports(
    __name__,
    {
        "loading": ("DatasetSpec", "LoadedDataset", "load_dataset_records"),
        "pipeline": ("RunOptions", "RunOutcome", "run_pipeline"),
        "runs": ("check_endpoint", "start_run"),
    },
)

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
