"""Optional parts and the extras that install them.

A worker needs none of Kili, Flower, matplotlib, the simulator's web server or the demo's
private Redis: each comes with an extra (`pip install 'prelabel[kili]'`), and the code that
needs one imports it through `require`, which fails with one line naming the extra.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from prelabel.errors import ConfigError

#: What each extra is for, by name (pyproject.toml's `[project.optional-dependencies]`).
EXTRAS: dict[str, str] = {
    "kili": "uploading to Kili (`prelabel upload`, `--upload kili`)",
    "plots": "the reports' charts",
    "flower": "`prelabel flower`",
    "simulator": "the simulator (`prelabel simulate`, `prelabel demo`)",
    "demo": "a private Redis for `prelabel demo` when none answers",
    "otel": "OpenTelemetry tracing",
}


class MissingExtra(ConfigError):
    """An optional part is used without the extra that installs it."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{EXTRAS.get(extra, extra)} needs the {extra!r} extra ({module} is not installed): "
            f"pip install 'prelabel[{extra}]'"
        )


def require(module: str, extra: str) -> ModuleType:
    """`module`, imported; MissingExtra naming `extra` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the module is there, and something it imports is not: a real bug
        raise MissingExtra(extra, module) from None


def installed(extra_module: str) -> bool:
    """Whether a top-level module is importable (without importing it)."""
    try:
        return importlib.util.find_spec(extra_module) is not None
    except ModuleNotFoundError:
        return False


__all__ = ["EXTRAS", "MissingExtra", "installed", "require"]
