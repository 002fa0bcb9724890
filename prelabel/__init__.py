"""prelabel: pre-label datasets with LLMs, at scale, overnight.

The shared core: the domain model, settings, errors and the Redis layout of a run.
The parts live beside it: `producer`, `workers`, `collector`, `evaluation`, `simulator`.
"""

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
from prelabel.model import (
    CONLL_TYPES,
    PROMPT_VERSION,
    Entity,
    EntityType,
    ItemResult,
    Ontology,
    Record,
    RunConfig,
    Unaligned,
    Usage,
)
from prelabel.settings import Settings
from prelabel.store import RunStore

__all__ = [
    "CONLL_TYPES",
    "PROMPT_VERSION",
    "BrokerError",
    "ConfigError",
    "DatasetError",
    "EndpointError",
    "Entity",
    "EntityType",
    "ItemError",
    "ItemResult",
    "Ontology",
    "PrelabelError",
    "Record",
    "RunConfig",
    "RunError",
    "RunStore",
    "Settings",
    "Unaligned",
    "UploadError",
    "Usage",
]
