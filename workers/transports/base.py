"""The transport seam: what the labeler hands a transport, and what it gets back.

A transport turns one `ChatRequest` into one `Completion`, or raises an outcome the labeler
acts on: `CallFailed` (the request's items fail, with what the attempts spent), `EmptyAnswer`
(the model said nothing: a batch is tried again in halves), `SchemaRefused` (the endpoint
does not take `json_schema`: a run on `auto` asks again in JSON mode), `RunStopped` (the
endpoint refused for good: the run stops). It knows nothing of records, prompts or results;
the labeler knows nothing of HTTP, rate limits or retries.

Run-wide parameters (model, temperature, max tokens) are the transport's, given with the
run's config when it is made: a request carries only what changes from one call to the next.

A deferred transport (OpenAI's Batch API, half the price: `batch.BatchTransport`) answers
from the run's collected batches, and for a request that has no answer yet records it as a
line of the shard pass's batch file and raises `Deferred`: the labeler leaves those items
uncommitted, the shard submits its file when the pass ends, and the workers' poller
(`workers.batch_poller`) stores the answers when the batch is done and puts the shard back in
the queue. The next pass asks the same requests (the labeler replays a deferred shard from its
first batches, so that halves match what was submitted) and gets their answers; the labeler's
handling of each answer (parsing, halving, results) is unchanged. The budget settles when an
answer is used; the shared bucket has no part in it (the provider's enqueued-token limit, held
in Redis, replaces the rate caps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

# The outcomes live in the one exception tree (prelabel.errors); re-exported here, where the
# seam is drawn.
from prelabel.errors import CallFailed as CallFailed
from prelabel.errors import EmptyAnswer as EmptyAnswer
from prelabel.errors import RunStopped as RunStopped
from prelabel.errors import SchemaRefused as SchemaRefused
from prelabel.model import ITEM_IDS_HEADER

#: `finish_reason` of an answer cut off at max_tokens.
TRUNCATED = "length"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat request for the items `item_ids`.

    The last five fields are for measuring confidence (`RunConfig.confidence`); their
    defaults ask for one answer with the run's parameters, as before.
    """

    messages: list[dict[str, str]]
    #: The strict schema the answer must follow, or None for JSON mode.
    response_format: dict[str, Any] | None
    #: prelabel's estimate of the prompt's tokens: what the bucket and the budget reserve.
    prompt_tokens: int
    #: The items it asks about, in order (a local endpoint gets them in a header).
    item_ids: tuple[str, ...]
    #: Ask for the answer tokens' log-probabilities, with this many alternatives per token
    #: (`logprobs: true, top_logprobs: k`); None: not asked.
    logprobs: int | None = None
    #: Answers to sample in one call (the `n` parameter); each counts `max_tokens` against
    #: the caps and the budget.
    n: int = 1
    #: The sampling temperature, when not the run's (consistency samples).
    temperature: float | None = None
    #: The `seed` parameter (the N calls that stand in for `n` where an endpoint ignores it
    #: each get their own, so that neither the cache nor a seeded server gives one answer N
    #: times).
    seed: int | None = None
    #: The answer's `max_tokens`, when not the run's (a verification's short answer).
    max_tokens: int | None = None

    def answer_tokens(self, run_max_tokens: int) -> int:
        """The most its answers may take: `n` answers of its own `max_tokens`, else the run's
        (what the bucket and the budget reserve beside the prompt)."""
        return self.n * (self.max_tokens or run_max_tokens)

    def item_headers(self) -> dict[str, str]:
        """The header naming the request's items, for local endpoints only: it lets the
        simulator tell apart identical sentences whose gold labels differ."""
        return {ITEM_IDS_HEADER: json.dumps(list(self.item_ids))}


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One answer token and its log-probability, with the likeliest alternatives at its
    position (`(token, logprob)`, when asked)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    """One sampled answer of a completion."""

    content: str
    finish_reason: str = ""
    #: The answer's tokens in order, when the endpoint returned them (None: it did not).
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    simulated: bool
    #: "stop", or "length" when the answer was cut off at max_tokens ("" when not given).
    finish_reason: str = ""
    #: Attempts the endpoint received for this answer (retries included); 0 from the cache.
    requests: int = 1
    #: Every choice of the answer, the first being `content`'s (`()`: only `content`, with
    #: no log-probabilities). Usage counts them all.
    choices: tuple[Choice, ...] = ()
    #: Of `prompt_tokens`, those the provider took from its prompt cache and bills at its
    #: cached-input price (`usage.prompt_tokens_details.cached_tokens`; 0 when not given).
    cached_tokens: int = 0

    def all_choices(self) -> tuple[Choice, ...]:
        """The choices, at least the one `content` is."""
        return self.choices or (Choice(self.content, self.finish_reason),)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form (the answer cache's), read back by `from_json`."""
        return {
            "content": self.content,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "simulated": self.simulated,
            "finish_reason": self.finish_reason,
            "requests": self.requests,
            "cached_tokens": self.cached_tokens,
            "choices": [
                {
                    "content": c.content,
                    "finish_reason": c.finish_reason,
                    "logprobs": None
                    if c.logprobs is None
                    else [[t.token, t.logprob, [list(a) for a in t.top]] for t in c.logprobs],
                }
                for c in self.choices
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        """A completion from `to_json`'s form (an older cache entry, without choices, too)."""
        return cls(
            data["content"],
            data["prompt_tokens"],
            data["completion_tokens"],
            data["simulated"],
            data.get("finish_reason", ""),
            data.get("requests", 1),
            choices_from_json(data.get("choices")),
            data.get("cached_tokens", 0),
        )


def choices_from_json(items: Any) -> tuple[Choice, ...]:
    """`Completion.to_json`'s choices read back (`()` for none)."""
    return tuple(
        Choice(
            c["content"],
            c.get("finish_reason", ""),
            None
            if c.get("logprobs") is None
            else tuple(
                TokenLogprob(t[0], float(t[1]), tuple((a[0], float(a[1])) for a in t[2]))
                for t in c["logprobs"]
            ),
        )
        for c in items or ()
    )


@dataclass(frozen=True, slots=True)
class ContextWindow:
    """A window in tokens, and where it was learnt (for the failure reason of a long item)."""

    tokens: int
    source: str


class Transport(Protocol):
    """Where a run's requests go: `complete` answers one request, or raises an outcome."""

    async def complete(self, request: ChatRequest) -> Completion:
        """The model's answer; raises CallFailed (or a subclass) or RunStopped."""
        ...

    async def context_window(self) -> ContextWindow:
        """The context window one request gets at this transport's endpoint and model."""
        ...


def truncated_reason(max_tokens: int) -> str:
    """Why an answer cut off at `max_tokens` cannot be read, and what to do."""
    return (
        f"answer cut off at max_tokens ({max_tokens}) before its JSON closed: the model ran "
        "out of room, often by repeating itself; raise --max-tokens or lower --batch-size"
    )
