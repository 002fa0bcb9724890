"""The base of prelabel's value types: immutable pydantic models that refuse unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A value: frozen (hashable, never changed in place), and strict about its fields, so
    that a misspelled field in a file or in Redis fails loudly rather than vanishing."""

    model_config = ConfigDict(frozen=True, extra="forbid")
