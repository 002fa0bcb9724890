"""Labeling end to end: few-shot examples, batches and structured outputs through real workers.

The `prelabel` CLI, Redis, two `celery worker` subprocesses and the simulator over HTTP, with
a small recording proxy in front of the simulator: it shows what the workers sent (message
roles, `response_format`), and can play an endpoint that refuses `json_schema` with a 400,
as some OpenAI-compatible servers do (the simulator accepts both formats).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from prelabel import launch
from prelabel.model import ITEM_IDS_HEADER
from producer.estimate import estimate_run
from producer.labeling import LabelingOptions
from producer.loading import DatasetSpec
from simulator.prompt_cache import request_tokens

pytestmark = pytest.mark.slow

_PASSED_HEADERS = ("content-type", "x-prelabel-simulator")


@dataclass
class Proxy:
    """Forwards chat requests to the simulator, recording them; may refuse `json_schema`."""

    upstream: str
    reject_schema: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        fmt = body.get("response_format") or {}
        self.seen.append(
            {
                "format": fmt.get("type"),
                "schema": fmt.get("json_schema", {}).get("name"),
                "messages": body["messages"],
                "cache_key": body.get("prompt_cache_key"),
            }
        )
        if self.reject_schema and fmt.get("type") == "json_schema":
            error = {
                "message": "response_format of type json_schema is not supported by this server",
                "type": "invalid_request_error",
                "param": "response_format",
                "code": None,
            }
            return web.json_response({"error": error}, status=400)
        return await self._forward(request, "/chat/completions", await request.read())

    async def models(self, request: web.Request) -> web.Response:
        return await self._forward(request, "/models", None)

    async def _forward(self, request: web.Request, path: str, data: bytes | None) -> web.Response:
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", ITEM_IDS_HEADER)
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, self.upstream + path, data=data, headers=headers) as r,
        ):
            passed = {k: v for k, v in r.headers.items() if k.lower() in _PASSED_HEADERS}
            return web.Response(body=await r.read(), status=r.status, headers=passed)


@pytest.fixture
def proxy(simulator_url: str) -> Iterator[Proxy]:
    """A proxy on its own event loop thread, in front of the session's simulator."""
    recorder = Proxy(upstream=simulator_url)
    port = launch.free_port()
    recorder.url = f"http://127.0.0.1:{port}/v1"
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", recorder.chat)
        app.router.add_get("/v1/models", recorder.models)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runner_box.append(runner)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield recorder
    asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def prelabel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prelabel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def run_args(gold: Path, out: Path, proxy: Proxy, limit: int, *extra: str) -> list[str]:
    return [
        "run",
        "--dataset",
        str(gold),
        "--limit",
        str(limit),
        "--model",
        "gpt-4o-mini",
        "--base-url",
        proxy.url,
        "--shard-size",
        "20",
        "--no-cache",  # every request must reach the proxy
        "--out",
        str(out),
        *extra,
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_few_shot_batches_with_a_strict_schema_label_everything_as_estimated(
    fleet_env: dict[str, str], proxy: Proxy, gold_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # The gold file is its own example pool: every sentence's own copy must be left out.
    shots = ["--few-shot", "3", "--few-shot-from", str(gold_path)]
    args = run_args(gold_path, out, proxy, 60, "--batch-size", "5", *shots)
    proc = prelabel(*args, "--response-format", "json_schema", env=fleet_env)
    assert proc.returncode == 0, proc.stderr + proc.stdout

    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 60 and all(r["status"] == "labeled" for r in rows)
    assert all(r["tags"] == r["gold_tags"] for r in rows)
    report = json.loads((out / "report.json").read_text())
    assert report["entity"]["micro"]["f1"] == pytest.approx(1.0)

    assert len(proxy.seen) == 12  # 3 shards of 20, batches of 5
    for request in proxy.seen:
        assert request["format"] == "json_schema" and request["schema"] == "ner_batch_answer"
        messages = request["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        shown = {line.split(": ", 1)[1] for line in messages[1]["content"].splitlines()}
        labelled = {line.split(": ", 1)[1] for line in messages[3]["content"].splitlines()}
        assert len(shown) == 3 and not shown & labelled
        assert "Smith flew" not in messages[0]["content"]  # examples replace the built-in one

    # The estimate counted the very messages the workers sent (the simulator leaves out the
    # 3 tokens that prime each reply, which OpenAI and the estimate count).
    estimate = estimate_run(
        DatasetSpec(source=str(gold_path), limit=60),
        model="gpt-4o-mini",
        base_url=proxy.url,
        shard_size=20,
        batch_size=5,
        labeling=LabelingOptions(few_shot=3, few_shot_from=str(gold_path)),
    )
    figures = report["figures"]
    assert figures["requests"] == estimate.requests == 12
    # The simulator bills the messages and the schema, as the estimate counts them.
    assert estimate.schema_tokens > 0
    assert figures["prompt_tokens"] == estimate.prompt_tokens - 3 * estimate.requests
    assert figures["mentions_proposed"] == sum(len(r["entities"]) for r in rows)
    assert figures["unaligned_mentions"] == 0
    expected_cost = (0.15 * figures["prompt_tokens"] + 0.60 * figures["completion_tokens"]) / 1e6
    assert figures["cost_usd"] == pytest.approx(expected_cost)


def test_fixed_examples_make_a_prefix_the_prompt_cache_serves_after_the_first_requests(
    fleet_env: dict[str, str], proxy: Proxy, simulator_url: str, gold_path: Path, tmp_path: Path
) -> None:
    """`--few-shot-strategy fixed`: every request starts with the same system prompt and
    examples (well over 1,024 tokens; JSON mode, so that no schema comes first), so the
    simulator's prompt cache serves that prefix to every request but the first of each
    worker, and each request carries the run's cache key."""
    stats_url = simulator_url.removesuffix("/v1") + "/stats"
    before = json.loads(urllib.request.urlopen(stats_url).read())
    out = tmp_path / "out"
    shots = ["--few-shot", "40", "--few-shot-strategy", "fixed"]
    shots += ["--few-shot-from", str(gold_path), "--few-shot-rows", "50:"]
    args = run_args(gold_path, out, proxy, 40, "--batch-size", "5", "--rows", ":50", *shots)
    proc = prelabel(*args, "--response-format", "json_object", env=fleet_env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    after = json.loads(urllib.request.urlopen(stats_url).read())

    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 40 and all(r["status"] == "labeled" for r in rows)
    assert len(proxy.seen) == 8  # 2 shards of 20, batches of 5
    prefixes = {json.dumps(r["messages"][:-1]) for r in proxy.seen}
    assert len(prefixes) == 1  # one prefix: system and the same 40 examples
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    assert {r["cache_key"] for r in proxy.seen} == {"prelabel-" + run_id}
    assert after["prompt_cache_keys"] - before["prompt_cache_keys"] == 8
    # Two workers: at most their first requests, in flight together, miss the cache.
    cached = after["cached_tokens"] - before["cached_tokens"]
    prefix = len(request_tokens(proxy.seen[0]["messages"][:-1], None)) + 1  # + "user"
    assert prefix >= 1024
    assert cached % 128 == 0 and 6 * (prefix // 128 * 128) <= cached <= 7 * prefix, cached


# Needs the shared split: in the 94-sentence sample, random examples often fall on the items
# being labeled and are swapped, so the requests do not share one prefix.
@pytest.mark.usefixtures("conll_test_path")
def test_auto_falls_back_to_json_mode_when_the_endpoint_refuses_the_schema(
    fleet_env: dict[str, str], proxy: Proxy, gold_path: Path, tmp_path: Path
) -> None:
    proxy.reject_schema = True
    out = tmp_path / "out"
    shots = ["--few-shot", "2", "--few-shot-strategy", "random", "--few-shot-from", str(gold_path)]
    args = run_args(gold_path, out, proxy, 40, "--batch-size", "4", *shots)
    proc = prelabel(*args, env=fleet_env)  # --response-format auto is the default
    assert proc.returncode == 0, proc.stderr + proc.stdout

    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 40 and all(r["status"] == "labeled" for r in rows)
    refused = [r for r in proxy.seen if r["format"] == "json_schema"]
    json_mode = [r for r in proxy.seen if r["format"] == "json_object"]
    # Each batch is answered once in JSON mode; at most one refused attempt came before it.
    assert len(json_mode) == 10
    assert 1 <= len(refused) <= 10
    # Random examples are the same for every request: one prefix for the whole run.
    prefixes = {json.dumps(r["messages"][:3]) for r in json_mode}
    assert len(prefixes) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["entity"]["micro"]["f1"] == pytest.approx(1.0)
    assert report["figures"]["requests"] == len(proxy.seen)


def test_an_explicit_schema_that_is_refused_fails_the_items_with_the_reason(
    fleet_env: dict[str, str], proxy: Proxy, gold_path: Path, tmp_path: Path
) -> None:
    proxy.reject_schema = True
    out = tmp_path / "out"
    args = run_args(gold_path, out, proxy, 6, "--response-format", "json_schema")
    proc = prelabel(*args, env=fleet_env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["status"] for r in rows] == ["failed"] * 6
    assert all("(400)" in r["error"] and "json_schema" in r["error"] for r in rows)
    assert {r["format"] for r in proxy.seen} == {"json_schema"}
