"""The names of a run's counters (the fields of `RunKeys.counters`), declared once.

Workers add to them (commit.lua moves `labeled`, `failed` and the task type's own as it
commits a result, the callers add the spend, pause.lua the pauses); `prelabel status`, the
metrics exporter, the follower and the collector read them. A counter a run has not touched
yet reads as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


class RunCounter:
    """The fields of a run's counters hash.

    Plain strings, not a StrEnum: the workers use them as dict keys on every call, and an
    enum member hashes in Python (bench_overhead measured 5% of a worker's CPU in `enum`).
    """

    #: Items committed as labeled, and as failed: their sum reaches the run's total at its end.
    LABELED: Final = "labeled"
    FAILED: Final = "failed"
    #: Requests the endpoint received (a 429 included), and the tokens it charged.
    REQUESTS: Final = "requests"
    PROMPT_TOKENS: Final = "prompt_tokens"
    COMPLETION_TOKENS: Final = "completion_tokens"
    #: Of the prompt tokens, those the provider served from its prompt cache (billed at the
    #: cached-input price; `usage.prompt_tokens_details.cached_tokens`).
    CACHED_PROMPT_TOKENS: Final = "cached_prompt_tokens"
    #: 429 answers, and retries of any kind.
    RATE_LIMITED: Final = "rate_limited"
    RETRIES: Final = "retries"
    #: Answers taken from the cache, and answers that came from prelabel's simulator.
    CACHE_HITS: Final = "cache_hits"
    SIMULATED: Final = "simulated"
    #: Batch API: batches created, polls of their state, and the lines (requests) and tokens
    #: their answers took, which the provider bills at its batch price (the realtime counters
    #: above count them too: these say which part was batched).
    BATCHES: Final = "batches"
    BATCH_POLLS: Final = "batch_polls"
    BATCH_REQUESTS: Final = "batch_requests"
    BATCH_PROMPT_TOKENS: Final = "batch_prompt_tokens"
    BATCH_COMPLETION_TOKENS: Final = "batch_completion_tokens"
    #: Of the batched prompt tokens, those served from the prompt cache.
    BATCH_CACHED_PROMPT_TOKENS: Final = "batch_cached_prompt_tokens"
    #: Milliseconds the calls waited in the shared bucket, added up.
    BUCKET_WAIT_MS: Final = "bucket_wait_ms"
    #: Milliseconds the run's 429s lengthened the account's pause, added up (pause.lua);
    #: beside them, the last pause's end (server time, ms) and the retry-after it asked for.
    PAUSED_MS: Final = "paused_ms"
    PAUSE_UNTIL_MS: Final = "pause_until_ms"
    PAUSE_ASKED_MS: Final = "pause_asked_ms"


#: The counters a new run starts with, at zero, besides its task type's own
#: (`Labeling.counters`); the others appear when first written.
NEW_RUN_COUNTERS = (
    RunCounter.LABELED,
    RunCounter.FAILED,
    RunCounter.REQUESTS,
    RunCounter.PROMPT_TOKENS,
    RunCounter.COMPLETION_TOKENS,
    RunCounter.RATE_LIMITED,
    RunCounter.RETRIES,
)


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """A counter of a task type's own (`Labeling.counters`), and how the run's figures show it.

    The run keeps its task type's specs beside its config (`RunStore.create`), so that
    `prelabel status` and the exporter show them without knowing any task type.
    """

    #: The field of the run's counters hash (a key of `ItemResult.counts`).
    name: str
    #: Shown after the run's progress (`· {label} N`); with underscores for spaces, the
    #: exporter's metric name (`prelabel_{label}`).
    label: str
    #: The exporter metric's help text.
    help: str

    @property
    def metric(self) -> str:
        return "prelabel_" + self.label.replace(" ", "_")
