"""JSON mode as the fallback of a run on `auto` whose endpoint refuses `json_schema`.

The transport says so with a typed outcome (`SchemaRefused`); what the process learns from
it lives in a `SchemaRefusals`, which the worker's context holds for as long as it lives.
"""

from __future__ import annotations

import logging

from prelabel.model import RunConfig

log = logging.getLogger(__name__)


class SchemaRefusals:
    """The endpoints (base URL and model) that refused `json_schema`, as one worker process
    has seen: a run on `auto` asks them in JSON mode from then on, so that each shard of a
    run, and each run on the same endpoint, is spared the refusal."""

    def __init__(self) -> None:
        self._endpoints: set[tuple[str, str]] = set()

    def refused(self, config: RunConfig) -> bool:
        """True when `config`'s endpoint refused the schema before."""
        return (config.endpoint.base_url, config.endpoint.model) in self._endpoints

    def fall_back(self, config: RunConfig) -> bool:
        """True (and JSON mode from now on) when `config`'s run may meet its endpoint's refusal
        of the schema by asking again in JSON mode; says so once per endpoint.

        Only with `auto`: a run that asked for `json_schema` explicitly fails instead.
        """
        if config.endpoint.response_format != "auto":
            return False
        endpoint = (config.endpoint.base_url, config.endpoint.model)
        if endpoint not in self._endpoints:
            self._endpoints.add(endpoint)
            log.warning("%s refused json_schema: JSON mode from now on", config.endpoint.base_url)
        return True
