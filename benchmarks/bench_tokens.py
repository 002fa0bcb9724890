"""Tokens per labelled sentence: the seed's prompt against prelabel's, batched and few-shot.

Over the whole CoNLL-2003 test split, for every setting: the real messages are built
(`workers.requests.RequestBuilder`, as the workers build them, shard by shard and batch by
batch), their prompt tokens counted exactly in o200k (`gpt-4o-mini`'s encoding, with OpenAI's
per-message overhead), the simulator's oracle answers them in-process, and its answers'
completion tokens are counted the same way. Tokens per sentence = (prompt + completion) / N.

Beside each row, the oracle's entity-level F1 through the real batched path: `parse_answer`
or `parse_batch_answer`, a batch whose answer is partly unusable split in halves and retried
(as `ShardLabeler._attempt` does), then `align`. At zero noise it must be 100.00% for every
row; at 20% noise (mentions dropped or relabelled, seeded per sentence, so the same answers
whatever the batch) it must not fall as batches grow. The seed rows are scored the seed's
way (token-string tags, benchmarks/seed.py).

"completion est." is `prelabel estimate`'s guess for the same requests, to show how far the
estimate is from what the oracle actually answered. "schema/sent." is the response format's
JSON schema, which structured outputs bill as input (`workers.tokens.count_schema_tokens`,
an estimate), per sentence: not in "tokens/sent.", which counts messages only. "> max_tokens"
counts answers longer than `prelabel run`'s default `--max-tokens` for the batch
(`default_max_tokens`): a real endpoint would cut them off, and the batch be split.

Few-shot examples come from the CoNLL-2003 train split (TF-IDF nearest neighbours, a
seeded random set, or the same set for every request when `fixed` exists). The seed's
answers list every type, as its prompt asks; prelabel's are compact (ner-v3).

The targets (issue 20), against the public recipe's 144 tokens a sentence (measured on its
own prompt; the seed's short prompt here paraphrases it at 124): the proposed default
setting at most 144, the recommended cheapest at most 35% of it (50.4), both with oracle F1
100.00%. Batch 1 cannot meet the first (the type list with its descriptions alone is 100
tokens a request): the proposed default is a batch of 10, pending the real-model measurement.

    python benchmarks/bench_tokens.py [--limit N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import seed
from common import CONLL, console, table, write_results

from prelabel.errors import ItemError
from prelabel.model import Endpoint, LabelingConfig, Limits, RunConfig
from prelabel.options import default_max_tokens
from producer.loading import DatasetSpec, load_dataset_records
from simulator.oracle import Oracle
from task_types.ner.alignment import align
from task_types.ner.gold import examples_from_records
from task_types.ner.guess import guessed_answer
from task_types.ner.model import NerRecord, Ontology, from_tags
from task_types.ner.parsing import parse_answer, parse_batch_answer
from task_types.ner.scores import entity_scores
from workers.fewshot import STRATEGIES, ExampleSelector, make_selector
from workers.requests import RequestBuilder
from workers.tokens import count_message_tokens, count_schema_tokens, count_tokens

MODEL = "gpt-4o-mini"
SHARD = 50
NOISE = 0.2
#: The settings measured: (batch size, few-shot examples, strategy); 0 examples: the
#: built-in worked example. `fixed` rows are added when that strategy exists.
SETTINGS = [
    *((size, shots, "similar") for size in (1, 5, 10) for shots in (0, 5)),
    (10, 5, "random"),
    *((size, shots, "similar") for size in (15, 25, 50) for shots in (0, 1, 3)),
]
FIXED = [(size, shots, "fixed") for size in (10, 25, 50) for shots in (1, 3)]
#: The public recipe's tokens per sentence (issue 20: about 104 prompt + 41 answer).
RECIPE = 144
#: The proposed default setting and the recommended cheapest, and their targets as shares of
#: the recipe's tokens per sentence (messages only).
DEFAULT = (10, 0, "similar")
RECOMMENDED = (25, 0, "similar")
TARGETS = {DEFAULT: 1.0, RECOMMENDED: 0.35}


@dataclass
class Row:
    name: str
    requests: int = 0
    prompt: int = 0
    completion: int = 0
    estimated: int = 0
    f1: float = 0.0
    f1_noisy: float = 0.0
    failed: int = 0
    over_max_tokens: int = 0
    schema: int = 0


def batches(records: Sequence[NerRecord], size: int) -> list[list[NerRecord]]:
    """Shards of 50, then batches within each shard: as a run cuts its work."""
    out = []
    for start in range(0, len(records), SHARD):
        shard = records[start : start + SHARD]
        out += [list(shard[i : i + size]) for i in range(0, len(shard), size)]
    return out


class Labeler:
    """The workers' request, parse, split and align path, with the oracle in-process."""

    def __init__(
        self, builder: RequestBuilder, oracle: Oracle, ontology: Ontology, max_tokens: int
    ) -> None:
        self.builder, self.oracle, self.ontology = builder, oracle, ontology
        self.max_tokens = max_tokens
        self.requests = self.prompt = self.completion = self.failed = self.over = 0
        self.schema = 0

    def label(self, batch: Sequence[NerRecord]) -> dict[str, list[str]]:
        messages = self.builder.messages(batch)
        content = self.oracle.respond(messages, [r.id for r in batch]).content
        self.requests += 1
        self.prompt += count_message_tokens(messages, MODEL)
        self.schema += count_schema_tokens(self.builder.response_format(batch), MODEL)
        answer_tokens = count_tokens(content, MODEL)
        self.completion += answer_tokens
        # The oracle is never cut short; a real endpoint stops at max_tokens, and the answer
        # then fails to parse and the batch is split: worth knowing before choosing a size.
        self.over += answer_tokens > self.max_tokens
        answers: list[dict[str, list[str]] | ItemError]
        if len(batch) == 1:
            try:
                answers = [parse_answer(content, self.ontology)]
            except ItemError as exc:
                answers = [exc]
        else:
            answers = parse_batch_answer(content, len(batch), self.ontology)
        tags: dict[str, list[str]] = {}
        retry = []
        for record, answer in zip(batch, answers, strict=True):
            if isinstance(answer, ItemError):
                if len(batch) > 1:
                    retry.append(record)
                else:
                    self.failed += 1
                    tags[record.id] = ["O"] * len(record.tokens)
                continue
            tags[record.id] = list(align(record, answer, self.ontology).tags)
        half = max(1, len(retry) // 2)
        for part in (retry[:half], retry[half:]):
            if part:
                tags.update(self.label(part))
        return tags


def prelabel_row(
    records: list[NerRecord],
    ontology: Ontology,
    oracles: tuple[Oracle, Oracle],
    selector: ExampleSelector | None,
    size: int,
    shots: int,
    strategy: str,
) -> Row:
    config = RunConfig(
        run_id=f"bench-tokens-{size}-{shots}-{strategy}",
        endpoint=Endpoint(model=MODEL, base_url="http://127.0.0.1/v1"),
        limits=Limits(batch_size=size, shard_size=SHARD),
        labeling=LabelingConfig(labels=ontology, few_shot=shots, few_shot_strategy=strategy),
    )
    builder = RequestBuilder(config, selector)
    row = Row(setting_name(size, shots, strategy))
    gold = [list(r.gold_tags or ()) for r in records]
    for noisy, oracle in enumerate(oracles):
        labeler = Labeler(builder, oracle, ontology, default_max_tokens(size))
        tags: dict[str, list[str]] = {}
        for batch in batches(records, size):
            tags.update(labeler.label(batch))
            if not noisy:
                row.estimated += count_tokens(guessed_answer(batch, ontology), MODEL)
        f1 = entity_scores(gold, [tags[r.id] for r in records]).micro.f1
        if noisy:
            row.f1_noisy = f1
        else:
            row.f1, row.failed, row.over_max_tokens = f1, labeler.failed, labeler.over
            row.schema = labeler.schema
            row.requests, row.prompt, row.completion = (
                labeler.requests,
                labeler.prompt,
                labeler.completion,
            )
    return row


def setting_name(size: int, shots: int, strategy: str) -> str:
    return f"prelabel, batch {size}" + (f" + {shots} {strategy}" if shots else "")


def seed_row(
    records: list[NerRecord], oracles: tuple[Oracle, Oracle], prompt: str, name: str
) -> Row:
    import json

    row = Row(name)
    gold = [list(r.gold_tags or ()) for r in records]
    for noisy, oracle in enumerate(oracles):
        tags = []
        for record in records:
            # The seed's request; the oracle's answer to its sentence is the seed's answer too.
            reply = oracle.respond([{"role": "user", "content": record.text}], [record.id])
            # The seed's answer lists every type, as its prompt asks (the oracle's is compact).
            answer = {t.name: reply.answer.get(t.name, []) for t in oracle.ontology.labels}
            tags.append(seed.token_string_tags(record.tokens, answer))
            if not noisy:
                row.requests += 1
                row.prompt += count_message_tokens(seed.seed_messages(record.text, prompt), MODEL)
                row.completion += count_tokens(json.dumps(answer, ensure_ascii=False), MODEL)
                row.estimated += count_tokens(guessed_answer([record], oracle.ontology), MODEL)
        f1 = entity_scores(gold, tags).micro.f1
        row.f1_noisy, row.f1 = (f1, row.f1) if noisy else (row.f1_noisy, f1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences only")
    args = parser.parse_args()
    if not (CONLL / "test.txt").exists():
        raise SystemExit(f"CoNLL-2003 not found in {CONLL}")
    started = time.monotonic()
    test = load_dataset_records(DatasetSpec(source=str(CONLL), split="test", limit=args.limit))
    train = load_dataset_records(DatasetSpec(source=str(CONLL), split="train"))
    records = test.records
    ontology = from_tags(test.labels)
    pool = examples_from_records(train.records, ontology)
    oracles = (Oracle(records, ontology), Oracle(records, ontology, noise=NOISE, seed=0))
    selectors = {name: make_selector(name, pool) for name in ("similar", "random")}

    rows = [
        seed_row(records, oracles, seed.SEED_PROMPT, "seed (role, goal, tips)"),
        seed_row(records, oracles, seed.SHORT_PROMPT, "seed, short prompt"),
    ]
    if "fixed" in STRATEGIES:
        selectors["fixed"] = make_selector("fixed", pool)
    settings = SETTINGS + (FIXED if "fixed" in selectors else [])
    for size, shots, strategy in settings:
        selector = selectors[strategy] if shots else None
        rows.append(prelabel_row(records, ontology, oracles, selector, size, shots, strategy))
        console.print(f"  {rows[-1].name}: done", style="dim")

    n = len(records)
    base = (rows[0].prompt + rows[0].completion) / n
    short = (rows[1].prompt + rows[1].completion) / n
    out_rows = []
    results: list[dict[str, Any]] = []
    for row in rows:
        per = (row.prompt + row.completion) / n
        out_rows.append(
            (
                row.name,
                row.requests,
                f"{row.prompt / n:.1f}",
                f"{row.completion / n:.1f}",
                f"{per:.1f}",
                f"{row.schema / n:.1f}",
                f"{100 * per / base:.1f}%",
                f"{100 * per / short:.1f}%",
                f"{row.estimated / n:.1f}",
                f"{100 * row.f1:.2f}",
                f"{100 * row.f1_noisy:.2f}",
                row.failed,
                row.over_max_tokens,
            )
        )
        results.append(
            {
                **row.__dict__,
                "tokens_per_sentence": per,
                "schema_per_sentence": row.schema / n,
                "share_of_seed": per / base,
                "share_of_short_seed": per / short,
            }
        )
    columns = (
        "setting",
        "requests",
        "prompt/sent.",
        "compl./sent.",
        "tokens/sent.",
        "schema/sent.",
        "of seed",
        "of short",
        "compl. est./sent.",
        "F1 % (oracle)",
        f"F1 % (noise {NOISE})",
        "failed",
        "> max_tokens",
    )
    title = f"Tokens per labelled sentence (o200k, exact), CoNLL-2003 test, {n:,} sentences"
    console.print(table(title, columns, out_rows))
    missed = []
    for setting, target in TARGETS.items():
        row = next(r for r in results if r["name"] == setting_name(*setting))
        share = row["tokens_per_sentence"] / RECIPE
        ok = share <= target and row["f1"] == 1.0
        missed += [] if ok else [row["name"]]
        console.print(
            f"{row['name']}: {row['tokens_per_sentence']:.1f} tokens/sentence, "
            f"{100 * share:.1f}% of the public recipe's {RECIPE}, "
            f"oracle F1 {100 * row['f1']:.2f}%: "
            f"{'meets' if ok else 'misses'} the ≤ {100 * target:.0f}% target"
        )
    write_results(
        "tokens",
        {
            "sentences": n,
            "model_encoding": MODEL,
            "noise": NOISE,
            "pool": len(pool),
            "rows": results,
            "default": setting_name(*DEFAULT),
            "recommended": setting_name(*RECOMMENDED),
            "targets": {setting_name(*k): v for k, v in TARGETS.items()},
            "seconds": time.monotonic() - started,
        },
    )
    if missed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
