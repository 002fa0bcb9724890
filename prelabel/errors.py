"""One exception tree for prelabel. Every message is one line a user can act on.

PrelabelError                 base; the CLI prints it as one red line, exit code 2
 ├── ConfigError              a flag, setting or environment variable is wrong or missing
 ├── DatasetError             a dataset cannot be found, read or parsed, or a split is unknown
 ├── BrokerError              Redis does not answer, or answered with an error
 ├── EndpointError            the LLM endpoint cannot be reached or refuses the key
 ├── RunError                 a run is unknown, or stopped (quota, auth, cancel)
 │    ├── RunStopped          the endpoint refused for good: the worker stops the whole run
 │    └── BudgetReached       the run's budget cannot cover another call: the run stops
 ├── UploadError              a labeling platform (Kili) refused an upload, or it was cut off
 └── ItemError                one item could not be labeled; recorded with the item, never raised
      │                       past the worker
      └── CallFailed          a call gave no answer for its items (with what it spent)
           ├── EmptyAnswer    the model answered with no content
           └── SchemaRefused  the endpoint rejected the json_schema response format
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prelabel.model import Usage


class PrelabelError(Exception):
    """Base of every error prelabel raises on purpose."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PrelabelError):
    """A flag, setting or environment variable is wrong or missing."""


class DatasetError(PrelabelError):
    """A dataset cannot be found, read or parsed."""


class BrokerError(PrelabelError):
    """Redis does not answer, or answered with an error."""


class EndpointError(PrelabelError):
    """The LLM endpoint cannot be reached, or refused the request for good."""


class RunError(PrelabelError):
    """A run is unknown, or stopped before all of its items were done."""


class RunStopped(RunError):
    """The endpoint refused for good (quota, key, permissions, model): stop the whole run."""


class BudgetReached(RunError):
    """The run's budget cannot cover another call: the run stops as "stopped: budget"."""

    def __init__(self, message: str = "budget reached: no more calls are admitted") -> None:
        super().__init__(message)


class UploadError(PrelabelError):
    """Kili refused the key, the project or the upload, or the upload was cut off midway."""


class Deferred(PrelabelError):
    """A deferred transport (the Batch API) took the request into a batch: its answer comes
    later, and the shard is labeled again then. Its items stay uncommitted, neither labeled
    nor failed."""


class ItemError(PrelabelError):
    """One item could not be labeled. Its message becomes the item's `error` field."""


class CallFailed(ItemError):
    """A call that cannot give an answer for its items, with what it spent on the way."""

    def __init__(self, message: str, spent: Usage | None = None) -> None:
        super().__init__(message)
        # Imported here for start-up time: the model needs pydantic, and the CLI imports this
        # module before it knows whether any command needs pydantic.
        from prelabel.model import Usage

        self.spent = spent or Usage()


class EmptyAnswer(CallFailed):
    """The model answered with no content (a refusal under structured outputs, say)."""


class SchemaRefused(CallFailed):
    """The endpoint rejected the request's `json_schema` response format (a 400 about it):
    the same request in JSON mode may well be answered."""


_LINE = re.compile(r"^line \d+: ")
_LARGE_NUMBER = re.compile(r"\d[\d,]{3,}")
#: The longest failure kind kept (the reason itself is kept whole with its item).
_KIND_CHARS = 120


def failure_kind(reason: str | None) -> str:
    """What kind of failure an item's reason is, to group reasons by.

    Reasons say what happened first and the item's detail after a colon (the answer's
    start, the endpoint's message); a batch line's prefix ("line 3: ") and large numbers
    (token counts, lengths) vary from item to item and are left out.
    """
    if not reason:
        return "no reason recorded"
    head = _LINE.sub("", reason).split(": ", 1)[0].strip()
    return _LARGE_NUMBER.sub("N", head)[:_KIND_CHARS]
