"""Defaults that the model, the command line and the producer share, importable without
pydantic or typer (`prelabel --help` stays quick)."""

from __future__ import annotations

from typing import Final

#: Items per request by default: a request's instructions, schema and examples are shared by
#: its items, so that a CoNLL sentence costs 58 tokens (messages) at 10 where one alone costs
#: 219 (benchmarks/bench_tokens.py). Small local models label better one at a time (README).
DEFAULT_BATCH_SIZE: Final = 10
