"""A run's spending limit, shared by every worker: reserve before a call, settle after."""

from __future__ import annotations

import math
from pathlib import Path

import redis.asyncio as aioredis

from prelabel.errors import BudgetReached
from prelabel.keys import RunKeys
from prelabel.model import RunConfig
from prelabel.pricing import BATCH_DISCOUNT, Bill, Price, Tokens

_SCRIPT = (Path(__file__).parent / "lua" / "budget.lua").read_text()


def budget_enabled(config: RunConfig) -> bool:
    """Whether the run has a token or a dollar budget."""
    return bool(config.spend.budget_tokens or math.floor((config.spend.budget_usd or 0) * 1e6))


def micro_usd(
    config: RunConfig,
    prompt_tokens: int,
    completion_tokens: int,
    discount: float = 1.0,
    cached: int = 0,
) -> int:
    """Cost in micro-dollars (`prelabel.pricing.Bill`, `cached` of the prompt tokens at the
    cached-input price), times `discount` (`BATCH_DISCOUNT` for the Batch API), rounded up."""
    spend = config.spend
    price = Price(spend.price_input or 0.0, spend.price_output or 0.0, spend.price_cached_input)
    usd = Bill.of(price, Tokens(prompt_tokens, completion_tokens, cached)).total
    # Rounded to a millionth of a µ$ first: the float noise of the division must not round up.
    return math.ceil(round(usd * 1_000_000 * discount, 6))


class Budget:
    """Token and dollar budgets of one run; a no-op when the run has none.

    `discount` prices its calls at that share of the list price (`for_batch`: the Batch
    API's `BATCH_DISCOUNT`); the token budget counts tokens whatever they cost."""

    def __init__(self, client: aioredis.Redis, config: RunConfig, discount: float = 1.0) -> None:
        self.config = config
        self.key = RunKeys(config.run_id).budget
        self.max_tokens = config.spend.budget_tokens or 0
        self.max_musd = math.floor((config.spend.budget_usd or 0) * 1e6)
        self.discount = discount
        self.enabled = budget_enabled(config)
        self._script = client.register_script(_SCRIPT)

    @classmethod
    def for_batch(cls, client: aioredis.Redis, config: RunConfig) -> Budget:
        """The run's budget, its calls priced as Batch API lines (half the list price)."""
        return cls(client, config, discount=BATCH_DISCOUNT)

    def micro_usd(self, prompt_tokens: int, completion_tokens: int, cached: int = 0) -> int:
        """Cost in micro-dollars, at this budget's discount."""
        return micro_usd(self.config, prompt_tokens, completion_tokens, self.discount, cached)

    async def reserve(self, prompt_tokens: int, max_tokens: int) -> None:
        """Hold the most a call can cost; raises BudgetReached when that would overshoot."""
        if not self.enabled:
            return
        ok = await self._call(
            prompt_tokens + max_tokens, self.micro_usd(prompt_tokens, max_tokens), "reserve"
        )
        if not ok:
            raise BudgetReached()

    async def settle(
        self,
        prompt_tokens: int,
        max_tokens: int,
        used_prompt: int,
        used_completion: int,
        used_cached: int = 0,
    ) -> None:
        """Replace a reservation by what the call really cost (0, 0 for a call that failed),
        `used_cached` of its prompt tokens at the cached-input price."""
        if not self.enabled:
            return
        tokens = used_prompt + used_completion - (prompt_tokens + max_tokens)
        musd = self.micro_usd(used_prompt, used_completion, used_cached) - self.micro_usd(
            prompt_tokens, max_tokens
        )
        await self._call(tokens, musd, "settle")

    async def _call(self, tokens: int, musd: int, mode: str) -> bool:
        result = await self._script(
            keys=[self.key], args=[tokens, musd, self.max_tokens, self.max_musd, mode]
        )
        return bool(result)
