"""Names a package exports but imports on first use (PEP 562), for start-up time.

`prelabel --help` and `prelabel status` must start in a blink, while the modules behind a
package's public names may import pydantic, Celery, `datasets` or scikit-learn (seconds).
A package lists its names under `if TYPE_CHECKING:` as ordinary imports, for type checkers,
and hands the same names to `lazy_exports` for everyone else.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_exports(package: str, where: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports each name of `where` (module,
    relative to `package` -> the names it exports) from its module on first use."""
    modules = {name: module for module, names in where.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # imported once: next time, a plain lookup
        return value

    return __getattr__
