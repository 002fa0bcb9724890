"""prelabel: pre-label datasets with LLMs, at scale, overnight.

The shared core: the domain model (task types subclass it: `task_types`), settings, errors
and the Redis layout of a run.
The parts live beside it: `producer`, `workers`, `collector`, `evaluation`, `simulator`.
"""

from typing import TYPE_CHECKING

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
from prelabel.lazy import lazy_exports

#: The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.2.0"

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

# The model, the settings and the store are imported on first use, for start-up time:
# pydantic models and redis take a few hundred milliseconds, and `prelabel --help` needs neither.
__getattr__ = lazy_exports(
    __name__,
    {
        "model": ("ItemResult", "Label", "LabelSet", "Record", "RunConfig", "Usage"),
        "settings": ("Settings",),
        "store": ("RunStore",),
    },
)

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
