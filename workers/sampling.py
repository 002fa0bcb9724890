"""What one worker process learns of endpoints' sampling: which ignore `n` (llama.cpp answers
one choice), and which return no log-probabilities. Like `json_mode.SchemaRefusals`, the
worker's context holds one for as long as it lives, so that each shard of a run, and each
run on the same endpoint, is spared asking again."""

from __future__ import annotations

import logging

from prelabel.model import RunConfig

log = logging.getLogger(__name__)


class SamplingMemory:
    """Endpoints (base URL and model) that ignored `n`, or gave no log-probabilities."""

    def __init__(self) -> None:
        self._ignore_n: set[tuple[str, str]] = set()
        self._no_logprobs: set[tuple[str, str]] = set()

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


def _endpoint(config: RunConfig) -> tuple[str, str]:
    return (config.endpoint.base_url, config.endpoint.model)
