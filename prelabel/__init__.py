"""prelabel: pre-label datasets with LLMs, at scale, overnight.

The shared core: the domain model (task types subclass it: `task_types`), settings, errors
and the Redis layout of a run.
The parts live beside it: `producer`, `workers`, `collector`, `evaluation`, `simulator`.
"""

from typing import TYPE_CHECKING, Any

from prelabel.errors import (
    BrokerError,
    ConfigError,
    DatasetError,
    EndpointError,
    ItemError,
    PrelabelError,
    RunError,
    UploadError,
)

if TYPE_CHECKING:
    from prelabel.model import (
        ItemResult,
        Label,
        LabelSet,
        Record,
        RunConfig,
        Usage,
    )
    from prelabel.settings import Settings
    from prelabel.store import RunStore

# The model, the settings and the store are imported on first use (PEP 562): pydantic
# models and redis take a few hundred milliseconds, and `prelabel --help` needs neither.
_WHERE = {
    **dict.fromkeys(
        (
            "ItemResult",
            "Label",
            "LabelSet",
            "Record",
            "RunConfig",
            "Usage",
        ),
        "prelabel.model",
    ),
    "Settings": "prelabel.settings",
    "RunStore": "prelabel.store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BrokerError",
    "ConfigError",
    "DatasetError",
    "EndpointError",
    "ItemError",
    "ItemResult",
    "Label",
    "LabelSet",
    "PrelabelError",
    "Record",
    "RunConfig",
    "RunError",
    "RunStore",
    "Settings",
    "UploadError",
    "Usage",
]
