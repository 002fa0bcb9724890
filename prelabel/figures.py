"""What a run cost and how it went, as the reports show it beside the scores, and what its
quality cost. In the core: the collector fills it, every task type's report shows it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, computed_field, model_validator

from prelabel.frozen import Frozen
from prelabel.pricing import Bill


class RunFigures(Frozen):
    """What a run cost and how it went; `failed` items are not in the scores."""

    items: int = 0
    labeled: int = 0
    failed: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0
    retries: int = 0
    unaligned_mentions: int = 0
    #: Mentions the model proposed for labeled items, placed or not: the unalignable rate is
    #: `unaligned_mentions / mentions_proposed`, an alignment figure, not a model error.
    mentions_proposed: int = 0
    #: Items no worker finished because the run stopped first (a partial collect); they are
    #: among `failed` as "not labeled", and not in `items_per_second`.
    unfinished: int = 0
    #: Input items that could not be read (listed in skipped.jsonl with their reasons).
    skipped: int = 0
    #: Failed items by reason (the reason's first clause), most frequent first.
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    #: Answers reused from the cache instead of paid for.
    cache_hits: int = 0
    #: Batch API batches the run created, and the part of `requests`, `prompt_tokens` and
    #: `completion_tokens` they answered (billed at half the list price; the rest were
    #: realtime calls).
    batches: int = 0
    batch_requests: int = 0
    batch_prompt_tokens: int = 0
    batch_completion_tokens: int = 0
    #: Of `prompt_tokens` (and of `batch_prompt_tokens`), those the provider served from
    #: its prompt cache, billed at the cached-input price.
    cached_prompt_tokens: int = 0
    batch_cached_prompt_tokens: int = 0
    wall_seconds: float = 0.0
    #: What the run cost in US dollars, when known (None: unknown, shown as "n/a").
    cost_usd: float | None = None
    #: The same cost by part (uncached input, cached input, output) and transport
    #: (`prelabel.pricing.Bill`; None when unknown).
    bill: Bill | None = None
    model: str = ""
    prompt_version: str = ""
    dataset: str = ""
    split: str = ""
    simulator: bool = False
    #: How the run measured confidence, as `--confidence` spells it (`consistency:5`;
    #: `RunConfig.confidence.describe()`); "" when unknown.
    confidence_method: str = ""

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # `items_per_second` is written to JSON for readers but is derived, so a round trip
        # through `model_dump` must not trip `extra="forbid"`.
        if isinstance(data, dict) and "items_per_second" in data:
            data = {k: v for k, v in data.items() if k != "items_per_second"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def items_per_second(self) -> float:
        """Items the workers finished (labeled or failed) per second of wall time; 0 when not
        timed. Items a stopped run never reached are not counted."""
        done = self.labeled + self.failed - self.unfinished
        return done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def done(self) -> int:
        """Items the workers finished, labeled or failed (what the run paid for)."""
        return max(self.labeled + self.failed - self.unfinished, 0)

    @property
    def per_thousand(self) -> Bill | None:
        """The bill per 1,000 items the workers finished; None when unknown or none were."""
        return self.bill.per_thousand(self.done) if self.bill is not None else None

    @property
    def realtime_requests(self) -> int:
        """Requests answered by realtime calls (those not in a batch)."""
        return max(self.requests - self.batch_requests, 0)

    @property
    def realtime_tokens(self) -> int:
        """Tokens of the realtime calls, prompt and completion."""
        batched = self.batch_prompt_tokens + self.batch_completion_tokens
        return max(self.prompt_tokens + self.completion_tokens - batched, 0)

    @property
    def batch_tokens(self) -> int:
        """Tokens of the Batch API's answers, prompt and completion."""
        return self.batch_prompt_tokens + self.batch_completion_tokens

    def transport_line(self) -> str:
        """Which transport answered how many requests and tokens, in one line; "" for a run
        that used no batch."""
        if not (self.batches or self.batch_requests):
            return ""
        return (
            f"Batch API {_count(self.batch_requests, 'request')}, {self.batch_tokens:,} tokens "
            f"(half price; {_count(self.batches, 'batch')}) · realtime "
            f"{_count(self.realtime_requests, 'request')}, {self.realtime_tokens:,} tokens"
        )


def _count(n: int, noun: str) -> str:
    """`1 batch`, `2 batches`, `1,000 requests`."""
    plural = noun + ("es" if noun.endswith(("s", "ch")) else "s")
    return f"{n:,} {noun if n == 1 else plural}"


class CostQuality(Frozen):
    """Quality against spend: micro F1 points per dollar and per thousand tokens."""

    f1_points: float
    tokens: int
    cost_usd: float | None
    f1_per_dollar: float | None
    f1_per_1k_tokens: float | None


def cost_quality(f1: float, figures: RunFigures) -> CostQuality:
    """Micro F1 (in points) per dollar and per 1,000 tokens; None where the cost is unknown."""
    points = 100 * f1
    tokens = figures.prompt_tokens + figures.completion_tokens
    cost = figures.cost_usd
    return CostQuality(
        f1_points=points,
        tokens=tokens,
        cost_usd=cost,
        f1_per_dollar=points / cost if cost else None,
        f1_per_1k_tokens=points / (tokens / 1000) if tokens else None,
    )


__all__ = ["CostQuality", "RunFigures", "cost_quality"]
