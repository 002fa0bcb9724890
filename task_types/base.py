"""The task-type protocol and its registry.

The protocol has two halves, so that each side of the pipeline sees only what it uses:
`Labeling` (producer, workers, simulator) and `Reporting` (collector, evaluation).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Labeling(Protocol):
    """What the producer, the workers and the simulator need from a task type."""

    #: The name a run's configuration carries (`RunConfig.task`) and `--task` takes.
    name: str
    #: Bumped whenever the messages change, so that cached answers are not reused.
    prompt_version: str


@runtime_checkable
class Reporting(Protocol):
    """What the collector and the evaluation need from a task type."""

    name: str


@runtime_checkable
class TaskType(Labeling, Reporting, Protocol):
    """A task type: both halves."""


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
        from prelabel.errors import ConfigError

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
    import task_types.ner  # noqa: F401
