"""The task types a run can name (`RunConfig.labeling.task`), by name."""

from __future__ import annotations

from prelabel.errors import ConfigError
from task_types.base import TaskType

_REGISTRY: dict[str, TaskType] = {}


def register(task: TaskType) -> TaskType:
    """Make `task` available by its name; returns it (usable as a one-line registration)."""
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise ValueError(f"task type {task.name!r} is registered twice")
    _REGISTRY[task.name] = task
    return task


def get(name: str) -> TaskType:
    """The task type called `name`; raises ConfigError naming the known ones."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown task type {name!r}: use one of {', '.join(sorted(_REGISTRY))}"
        ) from None


def names() -> list[str]:
    """The registered task types' names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # The built-in task types register themselves when imported. Imported here, on first
    # lookup, so that importing the protocol does not import every task type's dependencies.
    import task_types.classify  # first use
    import task_types.ner  # noqa: F401  (first use)
