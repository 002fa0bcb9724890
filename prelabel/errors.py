"""One exception tree for prelabel. Every message is one line a user can act on.

PrelabelError                 base; the CLI prints it as one red line, exit code 2
 ├── ConfigError              a flag, setting or environment variable is wrong or missing
 ├── DatasetError             a dataset cannot be found, read or parsed, or a split is unknown
 ├── BrokerError              Redis does not answer, or answered with an error
 ├── EndpointError            the LLM endpoint cannot be reached or refuses the key
 ├── RunError                 a run is unknown, or stopped (quota, auth, cancel)
 ├── UploadError              a labeling platform (Kili) refused an upload, or it was cut off
 └── ItemError                one item could not be labeled; recorded with the item, never raised
                              past the worker
"""

from __future__ import annotations

import re


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


class UploadError(PrelabelError):
    """Kili refused the key, the project or the upload, or the upload was cut off midway."""


class ItemError(PrelabelError):
    """One item could not be labeled. Its message becomes the item's `error` field."""


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
