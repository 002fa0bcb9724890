"""Optional OpenTelemetry tracing (prelabel.tracing), with the SDK's in-memory exporter: off
unless asked for, one line naming the extra when it is missing, a span per LLM call with the
model, items and tokens but never the prompt or the key, and the producer's start of a run
whose trace the shard tasks carry to the workers."""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from rich.console import Console

from prelabel import tracing
from prelabel.errors import ConfigError, ItemError
from prelabel.settings import Settings
from producer.loading import DatasetSpec
from producer.pipeline import RunOptions, run_pipeline
from tests.conftest import SAMPLE_CONLL
from tests.test_llm import RECORD, ask, mock_endpoint, simulator, with_fleet

KEY = "sk-secret-never-traced"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process traces into memory for the test."""
    exporter = InMemorySpanExporter()
    assert tracing.setup(Settings(), "prelabel-test", exporter=exporter)
    yield exporter
    tracing.shutdown()


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, ()),
        ({"PRELABEL_TRACING": "1"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "PRELABEL_TRACING": "1"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, ()),
    ],
)
def test_tracing_is_off_unless_the_environment_asks(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], wanted: tuple[str, ...]
) -> None:
    for name in (
        "PRELABEL_TRACING",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert tracing.exporters_wanted(settings) == wanted
    assert tracing.enabled(settings) is bool(wanted)


def test_an_unknown_exporter_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_TRACES_EXPORTER=jaeger: .*otlp, console"):
        tracing.exporters_wanted(Settings(otel_traces_exporter="jaeger"))


def test_off_by_default_sets_nothing_up() -> None:
    assert tracing.setup(Settings(), "prelabel-test") is False
    with tracing.llm_call(model="m", base_url="http://x/v1", run_id="r", items=1) as call:
        call.answered(prompt_tokens=1, completion_tokens=1, requests=1, finish_reason="stop")


@pytest.mark.parametrize(
    "module",
    [
        "opentelemetry.sdk.trace",
        "opentelemetry.instrumentation.celery",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    ],
)
def test_without_the_extra_one_line_names_it(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an install without it imports
    settings = Settings(tracing=True)
    starts: list[Callable[[], bool]] = [
        lambda: tracing.setup(settings, tracing.PRODUCER_SERVICE),
        lambda: tracing.install_worker_tracing(settings),
    ]
    for start in starts:
        with pytest.raises(ConfigError) as caught:
            start()
        message = str(caught.value)
        assert "\n" not in message
        assert message.endswith("pip install 'prelabel[otel]'"), message


def attributes_text(span: ReadableSpan) -> str:
    attributes = dict(span.attributes or {})
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()})


def test_an_llm_call_is_a_span_with_model_items_and_tokens(
    redis_url: str, redis_client: redis.Redis, spans: InMemorySpanExporter
) -> None:
    with simulator() as sim:
        completion = with_fleet(redis_url, sim.base_url, lambda f: ask(f.caller()), api_key=KEY)
    (span,) = named(spans, "chat ")
    assert span.name == "chat gpt-4o-mini" and span.kind == SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["prelabel.items"] == 1
    assert attrs["gen_ai.usage.input_tokens"] == completion.prompt_tokens > 0
    assert attrs["gen_ai.usage.output_tokens"] == completion.completion_tokens > 0
    assert attrs["prelabel.requests"] == 1
    assert span.status.status_code != StatusCode.ERROR
    # Never the key, the prompt or the answer.
    text = attributes_text(span) + json.dumps([e.name for e in span.events])
    assert KEY not in text
    assert "Blackburn" not in text and "Peter" not in text
    assert completion.content not in text


def test_a_failed_llm_call_records_its_error_type_not_its_message(
    redis_url: str, redis_client: redis.Redis, spans: InMemorySpanExporter
) -> None:
    quoting = f"Invalid 'messages': {' '.join(RECORD.tokens)}"  # an error that quotes the prompt
    http = mock_endpoint(400, quoting)
    with pytest.raises(ItemError):
        with_fleet(redis_url, "http://127.0.0.1:9/v1", lambda f: ask(f.caller()), http_client=http)
    (span,) = named(spans, "chat ")
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "CallFailed"
    assert not span.events, "no exception event: its message quotes the request"
    assert "Blackburn" not in attributes_text(span) + str(span.status.description)


def test_the_producer_traces_a_run_start_and_the_tasks_carry_it(
    redis_url: str, redis_client: redis.Redis, spans: InMemorySpanExporter
) -> None:
    settings = Settings(redis_url=redis_url, queue="prelabel-tracing-test")
    spec = DatasetSpec(source=str(SAMPLE_CONLL), limit=6)
    with simulator() as sim:
        options = RunOptions(model="gpt-4o-mini", base_url=sim.base_url, shard_size=3)
        outcome = run_pipeline(
            settings, spec, options, None, Console(file=io.StringIO()), wait=False
        )
    (start,) = named(spans, "prelabel.start_run")
    assert start.attributes is not None
    assert start.attributes["prelabel.run_id"] == outcome.run_id
    assert start.attributes["prelabel.items"] == 6 and start.attributes["prelabel.shards"] == 2
    published = named(spans, "apply_async/")
    assert len(published) == 2
    assert start.context is not None
    trace_id = start.context.trace_id
    for span in published:
        assert span.parent is not None and span.parent.span_id == start.context.span_id
    # The queued messages carry the trace to whichever worker takes them.
    raw: list[bytes] = redis_client.lrange(settings.queue, 0, -1)  # type: ignore[assignment]
    queued = [json.loads(m) for m in raw]
    parents: list[Any] = [m["headers"].get("traceparent") for m in queued]
    assert len(parents) == 2
    assert all(p and p.split("-")[1] == f"{trace_id:032x}" for p in parents), parents


def console_spans(text: str) -> list[dict[str, Any]]:
    """The spans the SDK's console exporter printed (indented JSON objects) among log lines."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    at = text.find("{\n")
    while at != -1:
        try:
            obj, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            end = at + 2
        else:
            if isinstance(obj, dict) and "context" in obj:
                found.append(obj)
        at = text.find("{\n", end)
    return found


@pytest.mark.slow
def test_a_real_worker_continues_the_producers_trace(
    redis_url: str,
    redis_client: redis.Redis,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    """The producer (in memory here) and a `prelabel worker` subprocess (console exporter,
    turned on by OTEL_TRACES_EXPORTER alone) make one trace: the shard task's span under the
    producer's, the LLM calls under the task's."""
    from prelabel import launch

    queue = f"prelabel-tracing-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": redis_url, "PRELABEL_QUEUE": queue}
    env |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "worker-under-test"}
    env.pop("OPENAI_API_KEY", None)
    log = tmp_path / "worker.log"
    worker = launch.start_worker(concurrency=1, env=env, log=log, hostname=f"{queue}@%h")
    try:
        settings = Settings(redis_url=redis_url, queue=queue)
        spec = DatasetSpec(source=str(SAMPLE_CONLL), limit=4)
        with simulator() as sim:
            options = RunOptions(model="gpt-4o-mini", base_url=sim.base_url, cache=False)
            outcome = run_pipeline(
                settings, spec, options, tmp_path / "out", Console(file=io.StringIO())
            )
        assert outcome.status == "completed"
    finally:
        launch.stop([worker])  # the pool process flushes its spans as it shuts down
    (start,) = named(spans, "prelabel.start_run")
    assert start.context is not None
    trace_id = f"0x{start.context.trace_id:032x}"
    printed = console_spans(log.read_text())
    in_trace = [s for s in printed if s["context"]["trace_id"] == trace_id]
    runs = [s for s in in_trace if s["name"].startswith("run/")]
    calls = [s for s in in_trace if s["name"] == "chat gpt-4o-mini"]
    assert len(runs) == 1, [s["name"] for s in printed]
    assert calls, [s["name"] for s in printed]
    assert {s["resource"]["attributes"]["service.name"] for s in in_trace} == {"worker-under-test"}
    published = {f"0x{s.context.span_id:016x}" for s in named(spans, "apply_async/") if s.context}
    assert runs[0]["parent_id"] in published
    # Each call's span is the task's, or below it: one shard, one task here.
    assert all(c["parent_id"] == runs[0]["context"]["span_id"] for c in calls)
    assert sum(c["attributes"]["prelabel.items"] for c in calls) == 4
