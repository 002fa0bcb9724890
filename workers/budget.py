"""A run's spending limit, shared by every worker: reserve before a call, settle after."""

from __future__ import annotations

import math
from pathlib import Path

import redis.asyncio as aioredis

from prelabel.errors import BudgetReached
from prelabel.keys import RunKeys
from prelabel.model import RunConfig

_SCRIPT = (Path(__file__).parent / "lua" / "budget.lua").read_text()


class Budget:
    """Token and dollar budgets of one run; a no-op when the run has none."""

    def __init__(self, client: aioredis.Redis, config: RunConfig) -> None:
        self.key = RunKeys(config.run_id).budget
        self.max_tokens = config.spend.budget_tokens or 0
        self.max_musd = math.floor((config.spend.budget_usd or 0) * 1e6)
        self.price_in = config.spend.price_input or 0.0
        self.price_out = config.spend.price_output or 0.0
        self.enabled = bool(self.max_tokens or self.max_musd)
        self._script = client.register_script(_SCRIPT)

    def micro_usd(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in micro-dollars (prices are USD per million tokens, so µ$ = tokens × price)."""
        return math.ceil(prompt_tokens * self.price_in + completion_tokens * self.price_out)

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
        self, prompt_tokens: int, max_tokens: int, used_prompt: int, used_completion: int
    ) -> None:
        """Replace a reservation by what the call really cost (0, 0 for a call that failed)."""
        if not self.enabled:
            return
        tokens = used_prompt + used_completion - (prompt_tokens + max_tokens)
        musd = self.micro_usd(used_prompt, used_completion) - self.micro_usd(
            prompt_tokens, max_tokens
        )
        await self._call(tokens, musd, "settle")

    async def _call(self, tokens: int, musd: int, mode: str) -> bool:
        result = await self._script(
            keys=[self.key], args=[tokens, musd, self.max_tokens, self.max_musd, mode]
        )
        return bool(result)
