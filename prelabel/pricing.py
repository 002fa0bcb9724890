"""What tokens cost: a built-in price table per model, extendable by a file.

Prices are USD per million tokens, input (prompt), output (completion) and cached input
(prompt tokens the provider served from its prompt cache, `cached_input`; none given: they
cost `input`), at OpenAI's standard tier. Tokens that went through the Batch API cost half
of their category's price (`BATCH_DISCOUNT`, cached input included): a run's BATCH_*
counters say which part that was. `Bill` is the one place tokens become dollars.
The built-in table was copied from OpenAI's pricing page as of 2025-08; prices
change, so check them before relying on an estimate. A file named by `PRELABEL_PRICES` (JSON
or TOML) adds models or overrides these:

    # prices.toml                          // prices.json
    [models."my-vllm-model"]               {"models": {"my-vllm-model":
    input = 0.0                                {"input": 0.0, "output": 0.0}}}
    output = 0.0
    cached_input = 0.0                     # optional

A model is looked up by its exact name, then by the longest known name it starts with, so
that dated snapshots (`gpt-4o-mini-2024-07-18`) get their family's price.

A run's price is resolved once, when it is created, and stored with it (`RunConfig`'s
`price_input`, `price_output` and `price_cached_input`). Whatever shows what a run cost
(`prelabel status`, the metrics exporter, the collected report) goes through `run_price`
and `Bill`, so that all of them show the same cost as `run.json`, whatever the price table
says later.
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
class Tokens:
    """Token counts as a run's counters keep them: `cached` is part of `prompt`, and the
    `batch_*` counts are the part of each that went through the Batch API."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    batch_prompt: int = 0
    batch_completion: int = 0
    batch_cached: int = 0

    @classmethod
    def from_counters(cls, counters: Mapping[str, int]) -> Tokens:
        """The token counters of a run (`RunKeys.counters`)."""

        def get(name: str) -> int:
            return int(counters.get(name, 0))

        return cls(
            prompt=get(RunCounter.PROMPT_TOKENS),
            completion=get(RunCounter.COMPLETION_TOKENS),
            cached=get(RunCounter.CACHED_PROMPT_TOKENS),
            batch_prompt=get(RunCounter.BATCH_PROMPT_TOKENS),
            batch_completion=get(RunCounter.BATCH_COMPLETION_TOKENS),
            batch_cached=get(RunCounter.BATCH_CACHED_PROMPT_TOKENS),
        )


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens, and per million
    prompt tokens served from the provider's prompt cache (None: no discount, they cost
    `input`)."""

    input: float
    output: float
    cached_input: float | None = None

    @property
    def cached(self) -> float:
        """USD per million cached prompt tokens (`input` when the model has no discount)."""
        return self.input if self.cached_input is None else self.cached_input

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached: int = 0,
        batch_prompt: int = 0,
        batch_completion: int = 0,
        batch_cached: int = 0,
    ) -> float:
        """USD for that many tokens, of which `cached` prompt tokens (part of them) at the
        cached-input price, and `batch_*` (a part of each, as the BATCH_* counters are of the
        run's token counters) through the Batch API, at `BATCH_DISCOUNT` of their price."""
        tokens = Tokens(
            prompt_tokens, completion_tokens, cached, batch_prompt, batch_completion, batch_cached
        )
        return Bill.of(self, tokens).total

    def batch_cost(self, prompt_tokens: int, completion_tokens: int, cached: int = 0) -> float:
        """USD for that many tokens, all through the Batch API."""
        return self.cost(
            prompt_tokens,
            completion_tokens,
            cached=cached,
            batch_prompt=prompt_tokens,
            batch_completion=completion_tokens,
            batch_cached=cached,
        )


@dataclass(frozen=True, slots=True)
class Bill:
    """What tokens cost, in USD: uncached input, cached input and output, each split into
    realtime and Batch API. The one place prelabel turns tokens into dollars: `prelabel
    status`, the exporter, the collected report, `estimate` and the budget all use it."""

    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0
    batch_input: float = 0.0
    batch_cached_input: float = 0.0
    batch_output: float = 0.0

    @classmethod
    def of(cls, price: Price, tokens: Tokens) -> Bill:
        """The bill for `tokens` at `price` (impossible counts, such as more cached tokens
        than prompt tokens, are clamped rather than billed negative)."""
        batch_prompt = max(tokens.batch_prompt, 0)
        batch_cached = min(max(tokens.batch_cached, 0), batch_prompt)
        prompt = max(tokens.prompt - batch_prompt, 0)
        cached = min(max(tokens.cached - batch_cached, 0), prompt)
        completion = max(tokens.completion - max(tokens.batch_completion, 0), 0)
        batch_completion = max(tokens.batch_completion, 0)
        million = 1_000_000
        return cls(
            input=(prompt - cached) * price.input / million,
            cached_input=cached * price.cached / million,
            output=completion * price.output / million,
            batch_input=BATCH_DISCOUNT * (batch_prompt - batch_cached) * price.input / million,
            batch_cached_input=BATCH_DISCOUNT * batch_cached * price.cached / million,
            batch_output=BATCH_DISCOUNT * batch_completion * price.output / million,
        )

    @classmethod
    def of_counters(cls, price: Price, counters: Mapping[str, int]) -> Bill:
        """The bill of a run's counters (`RunKeys.counters`) at `price`."""
        return cls.of(price, Tokens.from_counters(counters))

    @property
    def uncached_input_usd(self) -> float:
        return self.input + self.batch_input

    @property
    def cached_input_usd(self) -> float:
        return self.cached_input + self.batch_cached_input

    @property
    def output_usd(self) -> float:
        return self.output + self.batch_output

    @property
    def realtime_usd(self) -> float:
        return self.input + self.cached_input + self.output

    @property
    def batch_usd(self) -> float:
        return self.batch_input + self.batch_cached_input + self.batch_output

    @property
    def total(self) -> float:
        return self.realtime_usd + self.batch_usd

    @property
    def used_batch(self) -> bool:
        """Whether any of it went through the Batch API."""
        return self.batch_usd > 0

    def realtime_part(self) -> Bill:
        """The realtime part alone (the Batch API's parts at zero)."""
        return Bill(self.input, self.cached_input, self.output)

    def batch_part(self) -> Bill:
        """The Batch API's part alone, in the realtime fields (so that its `total` and
        category figures read as any bill's)."""
        return Bill(self.batch_input, self.batch_cached_input, self.batch_output)

    def scaled(self, factor: float) -> Bill:
        """Every part times `factor`."""
        return Bill(*(factor * getattr(self, f) for f in _BILL_FIELDS))

    def per_thousand(self, items: int) -> Bill | None:
        """The bill per 1,000 items, for `items` done (labeled + failed); None before any."""
        return self.scaled(1000 / items) if items > 0 else None


_BILL_FIELDS = (
    "input",
    "cached_input",
    "output",
    "batch_input",
    "batch_cached_input",
    "batch_output",
)


def counters_cost(price: Price, counters: Mapping[str, int]) -> float:
    """What a run's counters (`RunKeys.counters`) cost at `price`: its batched tokens at the
    Batch API's price, the rest at the list price, cached prompt tokens at the cached-input
    price."""
    return Bill.of_counters(price, counters).total


#: OpenAI standard-tier prices, USD per 1M tokens, as listed on 2025-08 (input, output,
#: cached input; None where the model has no cached-input discount).
BUILTIN: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
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
            or not {"input", "output"} <= set(entry) <= {"input", "output", "cached_input"}
            or not all(_non_negative(entry[k]) for k in entry)
        ):
            raise ConfigError(
                f"{PRICES_ENV}={path}: model {name!r} needs input and output (and optionally "
                "cached_input), USD per million tokens (numbers >= 0)"
            )
        cached = entry.get("cached_input")
        prices[str(name)] = Price(
            float(entry["input"]),
            float(entry["output"]),
            float(cached) if cached is not None else None,
        )
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
    return Price(
        config.spend.price_input, config.spend.price_output, config.spend.price_cached_input
    )


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
