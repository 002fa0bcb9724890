"""What tokens cost: a built-in price table per model, extendable by a file.

Prices are USD per million tokens, input (prompt) and output (completion), at OpenAI's
standard tier. Tokens that went through the Batch API cost half of it (`BATCH_DISCOUNT`):
a run's BATCH_PROMPT_TOKENS and BATCH_COMPLETION_TOKENS counters say which part that was.
The built-in table was copied from OpenAI's pricing page as of 2025-08; prices
change, so check them before relying on an estimate. A file named by `PRELABEL_PRICES` (JSON
or TOML) adds models or overrides these:

    # prices.toml                          // prices.json
    [models."my-vllm-model"]               {"models": {"my-vllm-model":
    input = 0.0                                {"input": 0.0, "output": 0.0}}}
    output = 0.0

A model is looked up by its exact name, then by the longest known name it starts with, so
that dated snapshots (`gpt-4o-mini-2024-07-18`) get their family's price.

A run's price is resolved once, when it is created, and stored with it (`RunConfig`'s
`price_input` and `price_output`). Whatever shows what a run cost (`prelabel status`, the
metrics exporter, the collected report) goes through `run_price`, so that all of them show
the same cost as `run.json`, whatever the price table says later.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prelabel.counters import RunCounter
from prelabel.errors import ConfigError
from prelabel.files import read_toml_or_json

if TYPE_CHECKING:
    from prelabel.model import RunConfig

#: The environment variable naming a price file.
PRICES_ENV = "PRELABEL_PRICES"


#: What the Batch API charges for a token, as a share of the list price (OpenAI: half).
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens."""

    input: float
    output: float

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        batch_prompt: int = 0,
        batch_completion: int = 0,
    ) -> float:
        """USD for that many tokens, of which `batch_prompt` and `batch_completion` (a part
        of them, as the BATCH_* counters are of the run's token counters) went through the
        Batch API, at `BATCH_DISCOUNT` of the list price."""
        listed = (prompt_tokens - batch_prompt) * self.input + (
            completion_tokens - batch_completion
        ) * self.output
        batched = batch_prompt * self.input + batch_completion * self.output
        return (listed + BATCH_DISCOUNT * batched) / 1_000_000

    def batch_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for that many tokens, all through the Batch API."""
        return self.cost(
            prompt_tokens,
            completion_tokens,
            batch_prompt=prompt_tokens,
            batch_completion=completion_tokens,
        )


def counters_cost(price: Price, counters: Mapping[str, int]) -> float:
    """What a run's counters (`RunKeys.counters`) cost at `price`: its batched tokens at the
    Batch API's price, the rest at the list price."""
    return price.cost(
        int(counters.get(RunCounter.PROMPT_TOKENS, 0)),
        int(counters.get(RunCounter.COMPLETION_TOKENS, 0)),
        batch_prompt=int(counters.get(RunCounter.BATCH_PROMPT_TOKENS, 0)),
        batch_completion=int(counters.get(RunCounter.BATCH_COMPLETION_TOKENS, 0)),
    )


#: OpenAI standard-tier prices, USD per 1M tokens, as listed on 2025-08 (input, output).
BUILTIN: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "o1": Price(15.00, 60.00),
    "o1-mini": Price(1.10, 4.40),
}


def load_prices(path: Path) -> dict[str, Price]:
    """The models and prices in a price file (see the module docstring for its shape)."""
    data = read_toml_or_json(path, f"{PRICES_ENV}={path}")
    if (
        not isinstance(data, dict)
        or set(data) != {"models"}
        or not isinstance(data["models"], dict)
    ):
        raise ConfigError(f"{PRICES_ENV}={path}: expected one table, models, of name -> prices")
    models: dict[str, object] = data["models"]
    prices: dict[str, Price] = {}
    for name, entry in models.items():
        if (
            not isinstance(entry, dict)
            or set(entry) != {"input", "output"}
            or not all(_non_negative(entry[k]) for k in ("input", "output"))
        ):
            raise ConfigError(
                f"{PRICES_ENV}={path}: model {name!r} needs input and output, "
                "USD per million tokens (numbers >= 0)"
            )
        prices[str(name)] = Price(float(entry["input"]), float(entry["output"]))
    return prices


def price_table(environ: Mapping[str, str] | None = None) -> dict[str, Price]:
    """The built-in table, extended by the file in `PRELABEL_PRICES` when it is set."""
    env = os.environ if environ is None else environ
    table = dict(BUILTIN)
    path = env.get(PRICES_ENV)
    if path:
        table.update(_file_prices(Path(path).expanduser()))
    return table


def stored_price(config: RunConfig) -> Price | None:
    """The price resolved (`price_for`) when the run was created and stored with it, if any."""
    if config.spend.price_input is None or config.spend.price_output is None:
        return None
    return Price(config.spend.price_input, config.spend.price_output)


def run_price(config: RunConfig) -> Price | None:
    """What a run's tokens cost: the price stored with it, else (a run created when its
    model had no known price) the price table's; None when neither knows the model."""
    stored = stored_price(config)
    return stored if stored is not None else price_for(config.endpoint.model)


def price_for(model: str, table: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`: exact name, else the longest known prefix, else None."""
    prices = price_table() if table is None else table
    if model in prices:
        return prices[model]
    family = max((name for name in prices if model.startswith(name + "-")), key=len, default=None)
    return prices[family] if family is not None else None


def _file_prices(path: Path) -> dict[str, Price]:
    # Read once per version of the file, not at every redraw of `status --watch` or scrape.
    try:
        stat = path.stat()
    except OSError:
        return load_prices(path)  # which says why it cannot be read
    return dict(_read_prices(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _read_prices(path: Path, mtime_ns: int, size: int) -> dict[str, Price]:
    return load_prices(path)


def _non_negative(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
