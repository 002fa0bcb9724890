"""What the rate-limit benchmarks share: Redis db, data, a simulator and a fleet of real worker
processes they start and stop themselves, run creation, and result tables and files.

Everything talks to 127.0.0.1 only. Redis is `PRELABEL_BENCH_REDIS_URL` (default db 11 of the
local server), which the benchmarks flush: never point it at a database holding real runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from prelabel import launch  # noqa: E402
from prelabel.model import Endpoint, LabelingConfig, Limits, RunConfig  # noqa: E402
from prelabel.settings import Settings, load_settings  # noqa: E402
from prelabel.store import RunStore  # noqa: E402
from producer.runs import new_run_id, start_run  # noqa: E402
from task_types.ner.model import NerRecord, from_tags  # noqa: E402

REDIS_URL = os.environ.get("PRELABEL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
CONLL = ROOT.parent / "shared" / "data" / "conll2003"
SAMPLE = ROOT / "producer" / "samples" / "sample.conll"
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "gpt-4o-mini"

console = Console(width=int(os.environ.get("COLUMNS", "150")))


def gold_source() -> tuple[Path, str]:
    """The simulator's gold data and its split: CoNLL-2003 train, else the shipped sample."""
    train = CONLL / "train.txt"
    return (train, "train") if train.exists() else (SAMPLE, "test")


def records(n: int) -> list[NerRecord]:
    """n records cycled from the gold data, with unique ids."""
    from producer import DatasetSpec, load_dataset_records

    source, split = gold_source()
    base = load_dataset_records(DatasetSpec(source=str(source), split=split)).records
    return [base[i % len(base)].model_copy(update={"id": f"b{i:07d}"}) for i in range(n)]


def flush() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def kill(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGKILL the process groups this benchmark started (a benchmark has nothing to drain)."""
    for proc in procs:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.wait(10)


@dataclass
class Simulator:
    """A `prelabel simulate` subprocess."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
        return stats


@contextmanager
def simulator(*options: str, logs: Path) -> Iterator[Simulator]:
    """A simulator answering from the gold data, with `options` (e.g. `--rpm 600`)."""
    gold, split = gold_source()
    port = launch.free_port()
    proc = launch.start_simulator(
        port, gold, split=split, extra=options, log=logs / f"sim-{port}.log", timeout=120
    )
    try:
        yield Simulator(port, proc)
    finally:
        kill([proc])


@dataclass
class Fleet:
    """Worker processes on a queue of their own."""

    settings: Settings
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def store(self) -> RunStore:
        return RunStore(redis.Redis.from_url(REDIS_URL))


@contextmanager
def fleet(workers: int, logs: Path, env: dict[str, str] | None = None) -> Iterator[Fleet]:
    """`workers` real `prelabel worker --concurrency 1` processes, ready when this yields."""
    queue = f"prelabel-bench-{uuid.uuid4().hex[:8]}"
    full_env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "PRELABEL_QUEUE": queue,
        "PRELABEL_CAPS": "{}",
        **(env or {}),
    }
    full_env.pop("OPENAI_API_KEY", None)
    settings = load_settings(REDIS_URL=REDIS_URL, queue=queue)
    running = Fleet(settings)
    try:
        for i in range(workers):
            running.procs.append(
                launch.start_worker(
                    concurrency=1,
                    env=full_env,
                    log=logs / f"{queue}-{i}.log",
                    hostname=f"{queue}-{i}@%h",
                )
            )
        wait_ready(settings, workers)
        yield running
    finally:
        kill(running.procs)


def wait_ready(settings: Settings, workers: int, timeout: float = 90) -> None:
    """Until `workers` workers of this queue answer a ping."""
    from prelabel.queue import make_app

    app = make_app(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        mine = [r for r in replies if any(name.startswith(settings.queue) for name in r)]
        if len(mine) >= workers:
            return
    raise RuntimeError(f"{workers} workers did not answer within {timeout:.0f}s")


def new_run(
    settings: Settings,
    items: list[NerRecord],
    base_url: str,
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    max_tokens: int = 128,
    shard_size: int = 50,
) -> RunConfig:
    """Write a run of `items` and enqueue it; the answer cache is off (every call is made)."""
    config = RunConfig(
        run_id=new_run_id(),
        dataset="bench",
        split="train",
        total=len(items),
        shards=-(-len(items) // shard_size),
        created_at=time.time(),
        endpoint=Endpoint(model=MODEL, base_url=base_url, max_tokens=max_tokens, cache=False),
        limits=Limits(rpm=rpm, tpm=tpm, shard_size=shard_size),
        labeling=LabelingConfig(labels=from_tags(["PER", "ORG", "LOC", "MISC"])),
    )
    store = RunStore(redis.Redis.from_url(REDIS_URL))
    start_run(settings, store, items, config)
    return config


@dataclass
class Labeled:
    """What one `prelabel run` wrote: its prediction rows, report.json, and the simulator's
    stats (`/stats`)."""

    rows: list[dict[str, Any]]
    report: dict[str, Any]
    stats: dict[str, Any]
    seconds: float

    @property
    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = self.report["figures"]
        return figures


def run_conll(
    name: str,
    flags: Sequence[str] | Callable[[], Sequence[str]],
    logs: Path,
    *,
    limit: int | None = None,
    simulator_options: Sequence[str] = ("--latency-ms", "0"),
    workers: int = 2,
    env: dict[str, str] | None = None,
) -> Labeled:
    """`prelabel run` over the CoNLL-2003 test split through the CLI, `workers` real workers
    and a simulator answering its gold (the answer cache off: every call is made). `flags`
    may be a function, called once the workers are ready (for a deadline counted from then)."""
    flush()
    port = launch.free_port()
    sim = launch.start_simulator(
        port,
        CONLL / "test.txt",
        split="test",
        extra=list(simulator_options),
        log=logs / f"sim-{name}.log",
    )
    out = Path(tempfile.mkdtemp(prefix=f"prelabel-bench-{name}-"))
    try:
        with fleet(workers, logs, env=env) as running:
            environ = {
                **os.environ,
                "REDIS_URL": REDIS_URL,
                "PRELABEL_QUEUE": running.settings.queue,
            }
            environ.pop("OPENAI_API_KEY", None)
            command = [
                sys.executable,
                "-m",
                "prelabel",
                "run",
                "--dataset",
                str(CONLL),
                "--split",
                "test",
                *(["--limit", str(limit)] if limit else []),
                "--model",
                MODEL,
                "--base-url",
                f"http://127.0.0.1:{port}/v1",
                "--no-cache",
                "--out",
                str(out),
                *(flags() if callable(flags) else flags),
            ]
            started = time.monotonic()
            proc = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"{name}: prelabel run exited {proc.returncode}:\n{proc.stderr}")
        url = f"http://127.0.0.1:{port}/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
    finally:
        kill([sim])
    with (out / "predictions.jsonl").open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return Labeled(rows, report, stats, seconds)


def done(store: RunStore, run_id: str) -> int:
    counters = store.counters(run_id)
    return counters.get("labeled", 0) + counters.get("failed", 0)


@contextmanager
def logs_dir(name: str) -> Iterator[Path]:
    """A folder for this benchmark's subprocess logs (kept, and named, when it fails)."""
    path = Path(tempfile.mkdtemp(prefix=f"prelabel-{name}-"))
    try:
        yield path
    except BaseException:
        console.print(f"[red]logs kept in {path}[/]")
        raise


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    out = Table(title=title)
    for i, column in enumerate(columns):
        out.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(_cell(v) for v in row))
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """`benchmarks/results/<name>.json`, with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        **payload,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"written {out.relative_to(ROOT)}")
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pids: Sequence[int], descendants: bool = True) -> float:
    """CPU time (user + system) used so far by `pids` and, unless told otherwise, every live
    descendant of theirs (Linux /proc)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1]: the parent's pid
        times[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        if descendants:
            todo.extend(children.get(pid, []))
    return total
