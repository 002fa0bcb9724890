"""What a run keeps of its OpenAI Batch API batches (`RunKeys.batches`), and the `custom_id`
of a batch line.

The workers write these records (`workers.transports.batch` when a shard's requests go into a
batch, `workers.batch_poller` as the batch moves on); `prelabel status`, the exporter, `cancel`
and the report read them. A record is JSON in the run's `batches` hash, by batch id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from urllib.parse import quote, unquote

from pydantic import Field

from prelabel.frozen import Frozen

#: The API's batch states, and `collected` once prelabel stored a final batch's lines.
BatchStatus = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
    "collected",
]
#: The states after which the API changes nothing more about a batch.
FINAL: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled", "collected"})
#: The API's caps on one input file: requests, and bytes.
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024


class BatchRecord(Frozen):
    """One batch of a run, as the fleet knows it."""

    batch_id: str
    #: The shard whose requests it holds, and the submission key (a digest of its lines'
    #: custom_ids): a shard task that runs again finds the batch it already created.
    shard: int
    key: str
    status: BatchStatus
    #: Requests (lines) and items in it; prelabel's count of its prompt tokens, held against
    #: the fleet's enqueued-token limit until the batch is final.
    requests: int = Field(ge=0)
    items: int = Field(ge=0)
    prompt_tokens: int = Field(0, ge=0)
    input_file_id: str = ""
    output_file_id: str | None = None
    error_file_id: str | None = None
    #: Lines answered and failed, as the API's `request_counts` last said.
    completed: int = 0
    failed: int = 0
    created_at: float = 0.0
    #: When the poller looks at it next (Unix time), and how often it has.
    next_poll_at: float = 0.0
    polls: int = 0
    #: The run's budget held for it at submission (tokens, micro-dollars at the batch price:
    #: prompt tokens + requests × max_tokens); the poller replaces it by what its lines used
    #: when it collects it, or gives it back when it fails. 0 for none (no budget).
    reserved_tokens: int = Field(0, ge=0)
    reserved_musd: int = Field(0, ge=0)
    #: Why it failed, as the API said (`token_limit_exceeded`: submitted again later).
    error: str = ""


def custom_id(run_id: str, shard: str | int, item_ids: Sequence[str]) -> str:
    """A batch line's `custom_id` that names its items: `RUN:SHARD:ITEM1,ITEM2,...`.

    Each part is percent-encoded (`:`, `,` and `%` included), so any run id, shard label and
    item id round-trips. Unique in a batch as long as no shard asks about the same items
    twice in it (the shard part can say which request it is, e.g. `12.a1b2c3`).
    """
    items = ",".join(quote(str(i), safe="") for i in item_ids)
    return f"{quote(run_id, safe='')}:{quote(str(shard), safe='')}:{items}"


def custom_id_items(value: str) -> list[str]:
    """The item ids a `custom_id()` names; [] for any other form (lenient on purpose: an
    unknown form only means the simulator's oracle answers by text, as it does with no
    header)."""
    parts = value.split(":")
    if len(parts) != 3 or not parts[2]:
        return []
    return [unquote(part) for part in parts[2].split(",")]
