"""The transport seam: what the labeler hands a transport, and what it gets back.

A transport turns one `ChatRequest` into one `Completion`, or raises an outcome the labeler
acts on: `CallFailed` (the request's items fail, with what the attempts spent), `EmptyAnswer`
(the model said nothing: a batch is tried again in halves), `SchemaRefused` (the endpoint
does not take `json_schema`: a run on `auto` asks again in JSON mode), `RunStopped` (the
endpoint refused for good: the run stops). It knows nothing of records, prompts or results;
the labeler knows nothing of HTTP, rate limits or retries.

Run-wide parameters (model, temperature, max tokens) are the transport's, given with the
run's config when it is made: a request carries only what changes from one call to the next.

A deferred transport (OpenAI's Batch API, half the price) is meant to sit behind the same
values, with two steps where `complete` has one:

- `submit(requests) -> handle`: each request a JSONL line (`chat.chat_body` for its body,
  its `item_ids` for its `custom_id`), at most 50,000 a file and one model; the handle
  (the batch's id) is kept in Redis with the run, since a worker may die before the answer
  comes (24 hours at most);
- `collect(handle) -> {custom_id: Completion | CallFailed}`: once the batch is done, its output
  lines by `custom_id` (`chat.read_answer` reads a line's `response.body`; an error line, or
  one left out by an expired batch, is a `CallFailed` for its items).

The labeler's handling of each answer (parsing, halving, results) then stays as it is: the
items a collected answer leaves go out in the next batch. The budget reserves at submit and
settles at collect; the shared bucket has no part in it (the provider's batch queue limit
replaces the rate caps).
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
    """One chat request for the items `item_ids`."""

    messages: list[dict[str, str]]
    #: The strict schema the answer must follow, or None for JSON mode.
    response_format: dict[str, Any] | None
    #: prelabel's estimate of the prompt's tokens: what the bucket and the budget reserve.
    prompt_tokens: int
    #: The items it asks about, in order (a local endpoint gets them in a header).
    item_ids: tuple[str, ...]

    def item_headers(self) -> dict[str, str]:
        """The header naming the request's items, for local endpoints only: it lets the
        simulator tell apart identical sentences whose gold labels differ."""
        return {ITEM_IDS_HEADER: json.dumps(list(self.item_ids))}


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
