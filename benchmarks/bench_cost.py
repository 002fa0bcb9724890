"""Dollars per 1,000 sentences: the public recipe against prelabel's settings, with the prompt
cache and the Batch API.

Every CoNLL-2003 test sentence (3,453) is labeled through `prelabel run` (the CLI, two real
workers, the simulator answering gold, the answer cache off) once per setting:

- `default`: `prelabel run` with no flags;
- `recommended`: the cheapest setting the README recommends;
- `+ cache`: the recommended batch with 24 fixed examples (`--few-shot-strategy fixed`), so
  that the stable prefix (schema, system prompt, examples) passes the 1,024 tokens from which
  OpenAI caches a prompt: more examples, for less than their list price;
- `+ Batch API`: the recommended setting and the cache setting through the Batch API.

The tokens are what the simulator bills, as OpenAI does: the messages, the response format's
schema (its compact JSON in o200k, an estimate: OpenAI does not publish how it renders it),
of those prompt tokens the ones served from its prompt cache (a prefix of at least 1,024
tokens seen in the last 10 minutes, in steps of 128), and the answers. They are priced, by
the run's own `Bill`, at the list prices of gpt-4o-mini and gpt-5-mini (cached input at half
and a tenth of the input price; the Batch API at half of every price). gpt-5-mini's reasoning
tokens are not counted: they come on top of the answer (keep them near 0 with
`--reasoning-effort minimal`).

The public recipe (a one-paragraph prompt naming the four types, one sentence per request,
answering a JSON object of every type) costs 104 prompt + 41 answer tokens a sentence, the
figures of the issue that asked for this benchmark; the seed's short prompt, measured exactly
(benchmarks/seed.py, as bench_tokens.py does), is shown beside it. Targets: the default at
most the recipe's 144 tokens a sentence, the recommended setting at most 35% of them, and the
cheapest path at most 20% of the recipe's realtime dollars, for both models, with oracle F1
100%.

    python benchmarks/bench_cost.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from common import CONLL, console, logs_dir, run_conll, table, write_results

from prelabel.pricing import BUILTIN, Bill, Price, Tokens
from producer.loading import DatasetSpec, load_dataset_records
from workers.tokens import count_message_tokens, count_tokens

#: The models priced, at their list prices (prelabel.pricing.BUILTIN).
MODELS = ("gpt-4o-mini", "gpt-5-mini")
#: The public recipe's tokens per sentence (prompt, answer), as the issue measured them.
RECIPE = (104, 41)
TOKENS_TARGET_DEFAULT = 1.0
TOKENS_TARGET_RECOMMENDED = 0.35
DOLLARS_TARGET = 0.20

RECOMMENDED = ("--batch-size", "25")
CACHED = ("--batch-size", "25", "--few-shot", "24", "--few-shot-strategy", "fixed")
BATCH = ("--transport", "batch")
SETTINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default", ()),
    ("recommended", RECOMMENDED),
    ("recommended + cache", CACHED),
    ("recommended + Batch API", (*RECOMMENDED, *BATCH)),
    ("recommended + cache + Batch API", (*CACHED, *BATCH)),
)


@dataclass
class Row:
    """One setting's tokens, as billed, over its sentences."""

    name: str
    flags: tuple[str, ...]
    sentences: int
    requests: int
    tokens: Tokens
    #: Of the prompt tokens, the response format's schema (the simulator's count).
    schema: int = 0
    f1: float | None = None
    failed: int = 0
    seconds: float = 0.0

    @property
    def messages_per_sentence(self) -> float:
        """Prompt and answer tokens a sentence, messages only (the schema apart)."""
        t = self.tokens
        return (t.prompt - self.schema + t.completion) / self.sentences

    def per_sentence(self, count: int) -> float:
        return count / self.sentences

    def per_1k(self, price: Price) -> Bill:
        bill = Bill.of(price, self.tokens).per_thousand(self.sentences)
        assert bill is not None
        return bill


def recipe_row(sentences: int) -> Row:
    prompt, answer = RECIPE
    tokens = Tokens(prompt=prompt * sentences, completion=answer * sentences)
    return Row("public recipe (104 + 41 tokens)", (), sentences, sentences, tokens)


def seed_short_row(limit: int | None) -> Row:
    """The seed's short prompt, one sentence a request, its answers as the oracle gives them
    in the seed's keys: counted exactly in o200k (no schema: the seed used JSON mode)."""
    import seed

    test = load_dataset_records(DatasetSpec(source=str(CONLL), split="test", limit=limit))
    names = {v: k for k, v in seed.SEED_TYPES.items()}
    prompt = completion = 0
    for record in test.records:
        prompt += count_message_tokens(
            seed.seed_messages(record.text, seed.SHORT_PROMPT), MODELS[0]
        )
        answer = {key: [] for key in seed.SEED_TYPES}
        for tag, text in _gold_mentions(record.tokens, record.gold_tags or ()):
            answer[names[tag]].append(text)
        completion += count_tokens(json.dumps(answer), MODELS[0])
    n = len(test.records)
    tokens = Tokens(prompt=prompt, completion=completion)
    return Row("seed's short prompt (measured)", (), n, n, tokens)


def _gold_mentions(tokens: Any, tags: Any) -> list[tuple[str, str]]:
    """(tag, text) of each IOB2 gold mention, in order."""
    found: list[tuple[str, list[str]]] = []
    for token, tag in zip(tokens, tags, strict=True):
        if tag.startswith("B-") or (
            tag.startswith("I-") and (not found or found[-1][0] != tag[2:])
        ):
            found.append((tag[2:], [token]))
        elif tag.startswith("I-"):
            found[-1][1].append(token)
    return [(tag, " ".join(words)) for tag, words in found]


def prelabel_row(name: str, flags: tuple[str, ...], limit: int | None, logs: Any) -> Row:
    run = run_conll(
        name.replace(" ", "-").replace("+", ""),
        flags,
        logs,
        limit=limit,
        simulator_options=("--latency-ms", "0", "--batch-seconds", "2"),
        env={"PRELABEL_BATCH_POLL_SECONDS": "0.5"},
    )
    f = run.figures
    tokens = Tokens(
        prompt=f["prompt_tokens"],
        completion=f["completion_tokens"],
        cached=f["cached_prompt_tokens"],
        batch_prompt=f["batch_prompt_tokens"],
        batch_completion=f["batch_completion_tokens"],
        batch_cached=f["batch_cached_prompt_tokens"],
    )
    return Row(
        name,
        flags,
        len(run.rows),
        int(f["requests"]),
        tokens,
        schema=int(run.stats["schema_tokens"]),
        f1=run.report["entity"]["micro"]["f1"],
        failed=int(f["failed"]),
        seconds=run.seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences only")
    args = parser.parse_args()
    if not (CONLL / "test.txt").exists():
        console.print(f"[yellow]skipped:[/] CoNLL-2003 not found in {CONLL}")
        return
    started = time.monotonic()
    rows: list[Row] = []
    with logs_dir("bench-cost") as logs:
        for name, flags in SETTINGS:
            rows.append(prelabel_row(name, flags, args.limit, logs))
            console.print(f"  {name}: done in {rows[-1].seconds:.0f} s", style="dim")
    n = rows[0].sentences
    rows = [recipe_row(n), seed_short_row(args.limit), *rows]
    prices = {model: BUILTIN[model] for model in MODELS}
    recipe = rows[0]
    base_tokens = recipe.messages_per_sentence
    base_usd = {m: recipe.per_1k(prices[m]).total for m in MODELS}

    def usd(row: Row, model: str) -> str:
        bill = row.per_1k(prices[model])
        return (
            f"{bill.total:.4f} ({100 * bill.total / base_usd[model]:.0f}%) = "
            f"{bill.uncached_input_usd:.4f} + {bill.cached_input_usd:.4f} + {bill.output_usd:.4f}"
        )

    out_rows = [
        [
            row.name,
            row.requests,
            f"{row.messages_per_sentence:.1f}",
            f"{100 * row.messages_per_sentence / base_tokens:.0f}%",
            f"{row.per_sentence(row.schema):.1f}",
            f"{row.per_sentence(row.tokens.cached):.1f}",
            *(usd(row, m) for m in MODELS),
            "" if row.f1 is None else f"{100 * row.f1:.2f}",
            row.failed,
        ]
        for row in rows
    ]
    title = f"Dollars per 1,000 CoNLL-2003 test sentences ({n:,} sentences), list prices"
    columns = [
        "setting",
        "requests",
        "messages / sent.",
        "of recipe",
        "schema / sent.",
        "cached / sent.",
        *(f"$ / 1k, {m}: total (of recipe) = input + cached + output" for m in MODELS),
        "F1 % (oracle)",
        "failed",
    ]
    console.print(table(title, columns, out_rows))
    by_name = {r.name: r for r in rows}
    cheapest = {m: min(rows[2:], key=lambda r: r.per_1k(prices[m]).total) for m in MODELS}
    shares = {
        "default, messages": by_name["default"].messages_per_sentence / base_tokens,
        "recommended, messages": by_name["recommended"].messages_per_sentence / base_tokens,
        **{
            f"cheapest ({cheapest[m].name}), {m} dollars": cheapest[m].per_1k(prices[m]).total
            / base_usd[m]
            for m in MODELS
        },
    }
    targets = [TOKENS_TARGET_DEFAULT, TOKENS_TARGET_RECOMMENDED, DOLLARS_TARGET, DOLLARS_TARGET]
    for (what, share), target in zip(shares.items(), targets, strict=True):
        met = "meets" if share <= target else "misses"
        console.print(f"{what}: {100 * share:.1f}% of the recipe ({met} the ≤ {100 * target:.0f}%)")
    write_results(
        "cost",
        {
            "sentences": n,
            "prices": {m: asdict(prices[m]) for m in MODELS},
            "rows": [
                {
                    "name": r.name,
                    "flags": list(r.flags),
                    "requests": r.requests,
                    "tokens": asdict(r.tokens),
                    "schema_tokens": r.schema,
                    "messages_per_sentence": r.messages_per_sentence,
                    "usd_per_1k": {m: asdict(r.per_1k(prices[m])) for m in MODELS},
                    "f1": r.f1,
                    "failed": r.failed,
                    "seconds": r.seconds,
                }
                for r in rows
            ],
            "shares": shares,
            "seconds": time.monotonic() - started,
        },
    )


if __name__ == "__main__":
    main()
