"""Transports: how a run's chat requests reach a model, behind one seam (`Transport`).

- `base`: the seam's values (`ChatRequest`, `Completion`, `ContextWindow`), the `Transport`
  protocol and the outcomes a transport raises (`CallFailed`, `EmptyAnswer`, `SchemaRefused`,
  `RunStopped`);
- `chat`: a chat completion's request body and what is read from its answer, shared by any
  transport of chat completions;
- `realtime`: `RealtimeTransport`, one HTTP call per request through the account's shared
  token bucket, with retries, 429 pauses and rate-limit header resync;
- `batch`: `BatchTransport`, OpenAI's Batch API: a shard pass's requests in one batch file,
  labeled from the collected answers in a later pass;
- `window`: the context window a server serves.

The answer cache and the run's budget wrap any transport (`workers.calls`).
"""

from workers.transports.base import (
    TRUNCATED,
    CallFailed,
    ChatRequest,
    Choice,
    Completion,
    ContextWindow,
    EmptyAnswer,
    RunStopped,
    SchemaRefused,
    TokenLogprob,
    Transport,
    truncated_reason,
)
from workers.transports.batch import BatchTransport, Submission
from workers.transports.chat import request_params
from workers.transports.realtime import PauseLimits, RealtimeTransport

__all__ = [
    "TRUNCATED",
    "BatchTransport",
    "CallFailed",
    "ChatRequest",
    "Choice",
    "Completion",
    "ContextWindow",
    "EmptyAnswer",
    "PauseLimits",
    "RealtimeTransport",
    "RunStopped",
    "SchemaRefused",
    "Submission",
    "TokenLogprob",
    "Transport",
    "request_params",
    "truncated_reason",
]
