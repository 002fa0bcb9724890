"""Classification: the oracle's accuracy end to end, and tokens per item by batch and few-shot.

1. **End to end**: `prelabel simulate` answering AG News or GoEmotions from gold (zero noise),
   two real `prelabel worker` processes, and `prelabel run` through the CLI, with the
   documented flags, on every item: all 7,600 AG News test items (single-label) and all 5,427
   GoEmotions test items (multi-label), batch 10. The accuracy (exact-set for multi-label) is
   computed here from predictions.jsonl, and report.json's own figure printed beside it;
   both must be 100.00%.

2. **Tokens per item** at batch sizes 1, 10 and 25, with no examples and with 4 similar ones:
   the messages the workers send (`workers.requests.RequestBuilder`, shard by shard, batch by
   batch), counted in o200k (`gpt-4o-mini`'s encoding) with OpenAI's per-message overhead;
   the **response format's JSON schema**, which the provider bills as input but does not say
   how it renders, counted as its compact JSON text in o200k (an overestimate: OpenAI is
   understood to render it more tersely, TypeScript-like; the column is shown apart so that
   either reading can be taken); and the oracle's answers, counted the same way. AG News
   labels rows 0-7,199 and takes its examples from rows 7,200-7,599 of the same test split
   (the documented held-out part: only the test split ships); GoEmotions labels its test
   split and takes examples from its train split. Each row's accuracy goes through the
   workers' parse, halving and predict path, and must be 100.00%.

    python benchmarks/bench_classify.py [--limit N] [--skip-e2e] [--skip-tokens]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REDIS_URL, ROOT, console, fleet, kill, logs_dir, table, write_results

import task_types
from prelabel import launch
from prelabel.errors import ItemError
from prelabel.model import Endpoint, LabelingConfig, LabelSet, Limits, Record, RunConfig, Usage
from producer.loading import DatasetSpec, load_dataset_records, parse_rows
from simulator.oracle import Oracle
from task_types.classify.model import ClassifyRecord, ClassifyResult
from workers.fewshot import make_selector
from workers.requests import RequestBuilder
from workers.tokens import count_message_tokens, count_tokens

DATA = ROOT.parent / "shared" / "data"
MODEL = "gpt-4o-mini"
SHARD = 50
SHOTS = 4
BATCHES = (1, 10, 25)


@dataclass(frozen=True)
class Dataset:
    """A shared classification dataset and the flags that read it as it is."""

    name: str
    task: str
    path: Path
    split: str
    labels: Path
    flags: tuple[str, ...]
    #: Rows to label, and where the few-shot pool comes from (source, split, rows).
    rows: str | None
    pool: tuple[Path, str, str | None]

    def spec(self, **extra: Any) -> DatasetSpec:
        return DatasetSpec(source=str(self.path), split=self.split, **self._fields(), **extra)

    def _fields(self) -> dict[str, Any]:
        options = dict(zip(self.flags[::2], self.flags[1::2], strict=True))
        fields: dict[str, Any] = {}
        if "--columns" in options:
            fields["columns"] = tuple(options["--columns"].split(","))
        if "--text-field" in options:
            fields["text_field"] = options["--text-field"]
        if "--first-label-id" in options:
            fields["first_label_id"] = int(options["--first-label-id"])
        if "--id-field" in options:
            fields["id_field"] = options["--id-field"]
        return fields


AG_NEWS = Dataset(
    name="AG News",
    task="classify",
    path=DATA / "ag_news" / "test.csv",
    split="test",
    labels=DATA / "ag_news" / "classes.txt",
    flags=(
        "--columns",
        "label,title,description",
        "--text-field",
        "title,description",
        "--first-label-id",
        "1",
    ),
    rows=":7200",
    pool=(DATA / "ag_news" / "test.csv", "test", "7200:"),
)
GOEMOTIONS = Dataset(
    name="GoEmotions",
    task="classify-multi",
    path=DATA / "goemotions",
    split="test",
    labels=DATA / "goemotions" / "emotions.txt",
    flags=("--columns", "text,labels,id", "--id-field", "id"),
    rows=None,
    pool=(DATA / "goemotions", "train", None),
)


def task_flags(data: Dataset) -> list[str]:
    multi = ["--multi-label"] if data.task == "classify-multi" else []
    return ["--task", "classify", *multi, "--labels", str(data.labels), *data.flags]


# --- 1. end to end ------------------------------------------------------------------------


def end_to_end(data: Dataset, logs: Path) -> dict[str, Any]:
    """Every item of the split through the simulator, two workers and `prelabel run`."""
    port = launch.free_port()
    extra = [*task_flags(data), "--latency-ms", "0"]
    sim = launch.start_simulator(
        port, data.path, split=data.split, extra=extra, log=logs / f"sim-{port}.log", timeout=180
    )
    out = Path(tempfile.mkdtemp(prefix="prelabel-bench-classify-"))
    try:
        with fleet(2, logs) as running:
            env = {
                **os.environ,
                "REDIS_URL": REDIS_URL,
                "PRELABEL_QUEUE": running.settings.queue,
            }
            env.pop("OPENAI_API_KEY", None)
            args = [
                sys.executable,
                "-m",
                "prelabel",
                "run",
                "--dataset",
                str(data.path),
                "--split",
                data.split,
                *task_flags(data),
                "--model",
                MODEL,
                "--base-url",
                f"http://127.0.0.1:{port}/v1",
                "--batch-size",
                "10",
                "--shard-size",
                "100",
                "--no-cache",
                "--out",
                str(out),
            ]
            started = time.monotonic()
            proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{data.name}: prelabel run exited {proc.returncode}:\n{proc.stderr}")
    finally:
        kill([sim])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open(encoding="utf-8")]
    exact = sum(r["status"] == "labeled" and sorted(r["labels"]) == sorted(r["gold"]) for r in rows)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {
        "dataset": data.name,
        "task": data.task,
        "items": len(rows),
        "labeled": sum(r["status"] == "labeled" for r in rows),
        "exact": exact,
        "accuracy": exact / len(rows),
        "report_accuracy": _report_accuracy(report),
        "seconds": seconds,
        "items_per_s": len(rows) / seconds,
        "out": str(out),
    }


def _report_accuracy(report: dict[str, Any]) -> float | None:
    """report.json's accuracy (exact-set for multi-label), wherever the task put it."""
    stack: list[Any] = [report]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("accuracy", "subset_accuracy"):
                value = node.get(key)
                if isinstance(value, int | float):
                    return float(value)
                if isinstance(value, dict) and isinstance(value.get("value"), int | float):
                    return float(value["value"])
            stack.extend(node.values())
    return None


# --- 2. tokens per item -------------------------------------------------------------------


@dataclass
class TokenRow:
    setting: str
    requests: int = 0
    messages: int = 0
    schema: int = 0
    completion: int = 0
    items: int = 0
    exact: int = 0
    failed: int = 0

    def per_item(self, tokens: int) -> float:
        return tokens / self.items if self.items else 0.0

    def as_dict(self) -> dict[str, Any]:
        total = self.messages + self.schema + self.completion
        return {
            "setting": self.setting,
            "requests": self.requests,
            "messages_per_item": self.per_item(self.messages),
            "schema_per_item": self.per_item(self.schema),
            "completion_per_item": self.per_item(self.completion),
            "total_per_item": self.per_item(total),
            "accuracy": self.exact / self.items if self.items else 0.0,
            "failed": self.failed,
        }


class Labeler:
    """The workers' request, parse, halving and predict path, the oracle answering in-process."""

    def __init__(self, builder: RequestBuilder, oracle: Oracle, row: TokenRow) -> None:
        self.builder, self.oracle, self.row = builder, oracle, row
        self.task = task_types.get(builder.config.labeling.task)

    def label(self, batch: Sequence[Record]) -> dict[str, tuple[str, ...] | None]:
        config = self.builder.config
        messages = self.builder.messages(batch)
        schema = self.builder.response_format(batch) or {}
        content = self.oracle.respond(messages, [r.id for r in batch]).content
        self.row.requests += 1
        self.row.messages += count_message_tokens(messages, MODEL)
        self.row.schema += count_tokens(json.dumps(schema, separators=(",", ":")), MODEL)
        self.row.completion += count_tokens(content, MODEL)
        out: dict[str, tuple[str, ...] | None] = {}
        retry: list[Record] = []
        for record, answer in zip(batch, self.task.parse(content, len(batch), config), strict=True):
            if isinstance(answer, ItemError):
                if len(batch) > 1:
                    retry.append(record)
                else:
                    out[record.id] = None
                continue
            result = self.task.predict(record, answer, config, Usage())
            out[record.id] = result.labels if isinstance(result, ClassifyResult) else None
        half = max(1, len(retry) // 2)
        for part in (retry[:half], retry[half:]):
            if part:
                out.update(self.label(part))
        return out


def token_rows(data: Dataset, limit: int | None) -> list[TokenRow]:
    task = task_types.get(data.task)
    labels: LabelSet = task.read_labels(data.labels)
    tags = tuple(label.tag for label in labels.labels)
    rows = parse_rows(data.rows) if data.rows else None
    items = load_dataset_records(data.spec(rows=rows, limit=limit, labels=tags), data.task).records
    pool_source, pool_split, pool_rows = data.pool
    pool_spec = DatasetSpec(
        source=str(pool_source),
        split=pool_split,
        rows=parse_rows(pool_rows) if pool_rows else None,
        labels=tags,
        **data._fields(),
    )
    pool = task.examples(load_dataset_records(pool_spec, data.task).records, labels)
    oracle = Oracle(items, labels, task=data.task)
    selector = make_selector("similar", pool)
    out = []
    for shots in (0, SHOTS):
        for size in BATCHES:
            config = RunConfig(
                run_id=f"bench-classify-{size}-{shots}",
                endpoint=Endpoint(model=MODEL, base_url="http://127.0.0.1/v1"),
                limits=Limits(batch_size=size, shard_size=SHARD),
                labeling=LabelingConfig(
                    task=data.task,
                    labels=labels,
                    prompt_version=task.prompt_version,
                    few_shot=shots,
                    few_shot_strategy="similar",
                ),
            )
            row = TokenRow(f"batch {size}" + (f" + {shots} similar" if shots else ""))
            labeler = Labeler(RequestBuilder(config, selector), oracle, row)
            predicted: dict[str, tuple[str, ...] | None] = {}
            for start in range(0, len(items), SHARD):
                shard = items[start : start + SHARD]
                for i in range(0, len(shard), size):
                    predicted.update(labeler.label(shard[i : i + size]))
            row.items = len(items)
            for record in items:
                assert isinstance(record, ClassifyRecord)
                got = predicted.get(record.id)
                row.failed += got is None
                row.exact += got is not None and set(got) == set(record.gold or ())
            out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N items (tokens only)")
    parser.add_argument("--skip-e2e", action="store_true", help="only count tokens")
    parser.add_argument("--skip-tokens", action="store_true", help="only run end to end")
    args = parser.parse_args()
    missing = [d.path for d in (AG_NEWS, GOEMOTIONS) if not d.path.exists()]
    if missing:
        absent = ", ".join(map(str, missing))
        raise SystemExit(f"skipped: the shared datasets are absent ({absent})")
    results: dict[str, Any] = {}
    if not args.skip_e2e:
        with logs_dir("bench-classify") as logs:
            e2e = [end_to_end(data, logs) for data in (AG_NEWS, GOEMOTIONS)]
        results["end_to_end"] = e2e
        console.print(
            table(
                "Oracle answers through the simulator, 2 workers and `prelabel run` (batch 10)",
                ["dataset", "items", "labeled", "accuracy", "report.json", "items/s"],
                [
                    [
                        f"{r['dataset']} ({r['task']})",
                        r["items"],
                        r["labeled"],
                        f"{100 * r['accuracy']:.2f}%",
                        "-"
                        if r["report_accuracy"] is None
                        else f"{100 * r['report_accuracy']:.2f}%",
                        r["items_per_s"],
                    ]
                    for r in e2e
                ],
            )
        )
    if not args.skip_tokens:
        results["tokens"] = {}
        for data in (AG_NEWS, GOEMOTIONS):
            rows = [r.as_dict() for r in token_rows(data, args.limit)]
            results["tokens"][data.name] = rows
            console.print(
                table(
                    f"{data.name} ({data.task}): tokens per item, o200k ({MODEL})",
                    ["setting", "requests", "messages", "schema", "answer", "total", "accuracy"],
                    [
                        [
                            r["setting"],
                            r["requests"],
                            r["messages_per_item"],
                            r["schema_per_item"],
                            r["completion_per_item"],
                            r["total_per_item"],
                            f"{100 * r['accuracy']:.2f}%",
                        ]
                        for r in rows
                    ],
                )
            )
    write_results("bench_classify", results)


if __name__ == "__main__":
    main()
