"""What the parts share about Hugging Face `datasets` (imported on first use: it takes
seconds, and most commands never need it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Without `datasets`' own progress bars: a local file loads (or a dataset is saved) in
    moments, and prelabel shows its own progress."""
    import datasets  # lazy, for start-up time

    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
