"""A user's system-prompt template (`--prompt-file`), read the same way for every task type:
a TOML or JSON file with one key, `system`, holding the placeholders its task type fills."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from prelabel.errors import ConfigError
from prelabel.files import read_toml_or_json
from task_types.base import PromptTemplate

_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


def read_template(
    path: Path, *, prompt_version: str, placeholders: Sequence[str], required: Sequence[str]
) -> PromptTemplate:
    """The template in `path`; ConfigError naming the file and the fix when it is unusable.

    Its version is `<prompt_version>+custom-<first 8 hex of the template's SHA-256>`, so that
    every prediction says which prompt made it.
    """
    data = read_toml_or_json(path, f"--prompt-file {path}")
    if not isinstance(data, dict) or set(data) != {"system"} or not isinstance(data["system"], str):
        raise ConfigError(
            f'--prompt-file {path}: expected exactly one key, system = "..." (a string)'
        )
    system = data["system"]
    where = f"--prompt-file {path}"
    for needed in required:
        if needed not in system:
            raise ConfigError(f"{where}: the system template needs {needed}")
    unknown = sorted(set(_PLACEHOLDER.findall(system)) - set(placeholders))
    if unknown:
        raise ConfigError(
            f"{where}: unknown placeholder(s) {', '.join(unknown)}; use {', '.join(placeholders)}"
        )
    digest = hashlib.sha256(system.encode("utf-8")).hexdigest()[:8]
    return PromptTemplate(system=system, version=f"{prompt_version}+custom-{digest}")
