"""What one worker process learns of endpoints' parameters: which ignore `n` (llama.cpp
answers one choice), which return no log-probabilities, and which refuse `prompt_cache_key`.
Like `json_mode.SchemaRefusals`, the worker's context holds one for as long as it lives, so
that each shard of a run, and each run on the same endpoint, is spared asking again."""

from __future__ import annotations

import logging

from prelabel.model import RunConfig

log = logging.getLogger(__name__)


class SamplingMemory:
    """Endpoints (base URL and model) that ignored `n`, gave no log-probabilities, or refused
    `prompt_cache_key`."""

    def __init__(self) -> None:
        self._ignore_n: set[tuple[str, str]] = set()
        self._no_logprobs: set[tuple[str, str]] = set()
        self._no_cache_key: set[tuple[str, str]] = set()

    def ignores_n(self, config: RunConfig) -> bool:
        """True when `config`'s endpoint answered fewer choices than `n` asked before: its
        samples are asked as separate calls, each with its own seed."""
        return _endpoint(config) in self._ignore_n

    def note_ignored_n(self, config: RunConfig, asked: int, got: int) -> None:
        endpoint = _endpoint(config)
        if endpoint not in self._ignore_n:
            self._ignore_n.add(endpoint)
            log.warning(
                "%s answered %d choice(s) where n=%d asked: samples go as %d calls from now on",
                config.endpoint.base_url,
                got,
                asked,
                asked,
            )

    def gives_logprobs(self, config: RunConfig) -> bool:
        """False once `config`'s endpoint answered without the log-probabilities asked."""
        return _endpoint(config) not in self._no_logprobs

    def note_no_logprobs(self, config: RunConfig) -> None:
        self._no_logprobs.add(_endpoint(config))

    def takes_cache_key(self, config: RunConfig) -> bool:
        """False once `config`'s endpoint refused `prompt_cache_key` (a 400 naming it)."""
        return _endpoint(config) not in self._no_cache_key

    def note_refused_cache_key(self, config: RunConfig) -> None:
        endpoint = _endpoint(config)
        if endpoint not in self._no_cache_key:
            self._no_cache_key.add(endpoint)
            log.warning(
                "%s refused prompt_cache_key: requests go without it from now on",
                config.endpoint.base_url,
            )


def _endpoint(config: RunConfig) -> tuple[str, str]:
    return (config.endpoint.base_url, config.endpoint.model)
