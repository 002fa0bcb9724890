"""Alignment fidelity: the oracle's gold mentions, placed back on the whole CoNLL-2003 test split.

The simulator's oracle answers every sentence with its gold mentions, so a perfect aligner
gets 100.00% entity-level F1: anything less is the aligner's fault, never the model's. The same
answers go through the seed's method (benchmarks/seed.py) side by side, in one run:

- prelabel: `parse_answer`, then `align` (a cursor per type, whole tokens, exact case then
  any case), spans checked against the source text, IOB2 tags on the dataset's tokens;
- seed, offsets: `sentence.find(mention)` for each mention (repeats land on the first
  occurrence, short mentions inside words);
- seed, tags: entity tokens mapped to tags by token string, whatever their position.

Scores: entity-level F1 on tags (seqeval strict IOB2, the CoNLL number), span F1 on character
offsets (what an upload to Kili carries), and the seed's token-level F1 (O included).

Default mode calls the oracle and the alignment in-process (no workers, a few seconds).
`--e2e` also labels the split through the real system: a simulator subprocess answering from
the test split, two `prelabel worker` processes, Redis (`PRELABEL_BENCH_REDIS_URL`, default
db 11, flushed), the collector's files; it checks every span of predictions.jsonl against the
text and reads the entity-level F1 from report.json.

    python benchmarks/bench_alignment.py [--limit N] [--e2e] [--batch-size K]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import seed
from common import CONLL, console, fleet, flush, logs_dir, table, write_results

from prelabel import launch
from producer.loading import DatasetSpec, load_dataset_records
from simulator.oracle import Oracle
from task_types.ner.alignment import align
from task_types.ner.bio import mention_spans
from task_types.ner.model import NerRecord, Ontology, from_tags
from task_types.ner.parsing import parse_answer
from task_types.ner.scores import entity_scores, token_scores

Span = tuple[str, int, int]


def gold_spans(record: NerRecord) -> list[Span]:
    """The record's gold entities as `(tag, start char, end char)`."""
    return [
        (kind, record.offsets[b][0], record.offsets[e - 1][1])
        for kind, b, e in mention_spans(record.gold_tags or ())
    ]


def span_f1(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> dict[str, float]:
    """Micro P/R/F1 of character spans, sentence by sentence (a repeated span counts twice)."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        tp += sum((Counter(g) & Counter(p)).values())
        n_gold += len(g)
        n_pred += len(p)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "gold": n_gold}


def off_gold(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> int:
    """Predicted spans that are not a gold span of their sentence (misplaced mentions)."""
    return sum(sum((Counter(p) - Counter(g)).values()) for g, p in zip(gold, pred, strict=True))


def in_process(records: list[NerRecord], ontology: Ontology) -> dict[str, Any]:
    oracle = Oracle(records, ontology)
    gold_tags = [list(r.gold_tags or ()) for r in records]
    gold = [gold_spans(r) for r in records]
    ours_tags, ours_spans, seed_tags, seed_spans = [], [], [], []
    mentions = unaligned = text_mismatch = seed_unfound = 0
    for record in records:
        content = oracle.respond([{"role": "user", "content": record.text}], [record.id]).content
        answer = parse_answer(content, ontology)
        aligned = align(record, answer, ontology)
        mentions += sum(len(v) for v in answer.values())
        unaligned += len(aligned.unaligned)
        text_mismatch += sum(record.text[e.start : e.end] != e.text for e in aligned.entities)
        ours_tags.append(list(aligned.tags))
        ours_spans.append([(e.type, e.start, e.end) for e in aligned.entities])
        raw = json.loads(content)  # the seed reads the same answer with json.loads
        found = seed.find_spans(record.text, raw)
        seed_unfound += sum(len(v) for v in raw.values()) - len(found)
        seed_spans.append(found)
        seed_tags.append(seed.token_string_tags(record.tokens, raw))

    def scores(tags: list[list[str]] | None, spans: list[list[Span]] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if tags is not None:
            out["entity_f1"] = entity_scores(gold_tags, tags).micro.f1
            out["token_f1"] = token_scores(gold_tags, tags).weighted.f1
        if spans is not None:
            out["span"] = span_f1(gold, spans)
            out["spans_off_gold"] = off_gold(gold, spans)
        return out

    return {
        "sentences": len(records),
        "gold_entities": sum(len(g) for g in gold),
        "mentions": mentions,
        "prelabel": {
            **scores(ours_tags, ours_spans),
            "unaligned": unaligned,
            "span_text_mismatches": text_mismatch,
        },
        "seed_find": {**scores(None, seed_spans), "not_found": seed_unfound},
        "seed_token_string": scores(seed_tags, None),
    }


def end_to_end(test_file: Path, limit: int | None, batch_size: int) -> dict[str, Any]:
    """Label the split through the real system and check the collector's files."""
    from rich.console import Console

    from producer.pipeline import RunOptions, run_pipeline

    flush()
    with logs_dir("alignment") as logs, fleet(2, logs) as running:
        port = launch.free_port()
        sim = launch.start_simulator(port, test_file, log=logs / "sim.log", timeout=120)
        try:
            spec = DatasetSpec(source=str(test_file), split="test", limit=limit)
            options = RunOptions(
                model="gpt-4o-mini",
                base_url=f"http://127.0.0.1:{port}/v1",
                batch_size=batch_size,
                max_tokens=2048,
                cache=False,
            )
            started = time.monotonic()
            outcome = run_pipeline(
                running.settings, spec, options, logs / "out", Console(quiet=True)
            )
            seconds = time.monotonic() - started
        finally:
            launch.stop([sim])
    out = logs / "out"
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    mismatches = sum(
        row["text"][e["start"] : e["end"]] != e["text"] for row in rows for e in row["entities"]
    )
    report = json.loads((out / "report.json").read_text())
    return {
        "status": outcome.status,
        "items": len(rows),
        "labeled": sum(r["status"] == "labeled" for r in rows),
        "entity_f1": report["entity"]["micro"]["f1"],
        "unaligned": sum(len(r["unaligned"]) for r in rows),
        "span_text_mismatches": mismatches,
        "tags_equal_gold": sum(r["tags"] == r["gold_tags"] for r in rows),
        "batch_size": batch_size,
        "seconds": seconds,
    }


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only")
    parser.add_argument("--e2e", action="store_true", help="also label through real workers")
    parser.add_argument("--batch-size", type=int, default=10, help="batch size for --e2e")
    args = parser.parse_args()
    test_file = CONLL / "test.txt"
    if not test_file.exists():
        raise SystemExit(f"CoNLL-2003 test split not found at {test_file}")
    dataset = load_dataset_records(DatasetSpec(source=str(test_file), limit=args.limit))
    ontology = from_tags(dataset.labels)
    started = time.monotonic()
    result = in_process(dataset.records, ontology)
    result["seconds"] = time.monotonic() - started
    ours, find, strings = result["prelabel"], result["seed_find"], result["seed_token_string"]
    rows = [
        (
            "prelabel (cursor, token boundaries)",
            pct(ours["entity_f1"]),
            pct(ours["span"]["f1"]),
            pct(ours["token_f1"]),
            ours["spans_off_gold"],
            ours["unaligned"],
        ),
        (
            "seed: str.find offsets",
            "-",
            pct(find["span"]["f1"]),
            "-",
            find["spans_off_gold"],
            find["not_found"],
        ),
        (
            "seed: token-string tags",
            pct(strings["entity_f1"]),
            "-",
            pct(strings["token_f1"]),
            "-",
            "-",
        ),
    ]
    columns = (
        "method",
        "entity F1 % (tags)",
        "span F1 % (offsets)",
        "token F1 % (seed's, with O)",
        "spans off gold",
        "mentions not placed",
    )
    title = (
        f"Alignment fidelity: oracle answers on CoNLL-2003 test, {result['sentences']:,} "
        f"sentences, {result['gold_entities']:,} gold entities"
    )
    console.print(table(title, columns, rows))
    console.print(f"span text ≠ source text (prelabel): {ours['span_text_mismatches']}")
    if args.e2e:
        e2e = end_to_end(test_file, args.limit, args.batch_size)
        result["e2e"] = e2e
        console.print(
            table(
                f"End to end through 2 workers (batch {e2e['batch_size']})",
                (
                    "items",
                    "labeled",
                    "entity F1 %",
                    "tags = gold",
                    "unaligned",
                    "span text ≠ source",
                    "seconds",
                ),
                [
                    (
                        e2e["items"],
                        e2e["labeled"],
                        pct(e2e["entity_f1"]),
                        e2e["tags_equal_gold"],
                        e2e["unaligned"],
                        e2e["span_text_mismatches"],
                        e2e["seconds"],
                    )
                ],
            )
        )
    write_results("alignment", result)
    perfect = ours["entity_f1"] == 1.0 and ours["span_text_mismatches"] == 0
    if "e2e" in result:
        perfect = perfect and result["e2e"]["entity_f1"] == 1.0
    console.print("[green]100.00% entity-level F1[/]" if perfect else "[red]below 100%[/]")
    if not perfect:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
