"""Defaults that the model, the command line and the producer share, importable without
pydantic or typer (`prelabel --help` stays quick)."""

from __future__ import annotations

from typing import Final

#: Items per request by default for OpenAI's models: a request's instructions, schema and
#: examples are shared by its items, so that a CoNLL sentence costs 55 tokens (messages) at 10
#: where one alone costs 217 (benchmarks/bench_tokens.py).
DEFAULT_BATCH_SIZE: Final = 10


def default_batch_size(model: str) -> int:
    """`--batch-size` when not given: `DEFAULT_BATCH_SIZE` for OpenAI's models (those in the
    built-in price table, dated snapshots and gateway names like `openai/gpt-4o-mini`
    included), 1 for any other. A local or self-hosted model is often small, and a small
    model loses most of its F1 in batches: Gemma 3 270M fell from 33.3 to 8.6 at batch 10
    (README, "Dollars per item")."""
    from prelabel.pricing import BUILTIN, price_for  # not at `prelabel --help`

    name = model.rsplit("/", 1)[-1]
    return DEFAULT_BATCH_SIZE if price_for(name, BUILTIN) is not None else 1
