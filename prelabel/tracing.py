"""Optional OpenTelemetry tracing of the producer, the shard tasks and the LLM calls.

Off by default, and then nothing of OpenTelemetry is imported. It is on when the settings
say so (`PRELABEL_TRACING=1`) or the standard OpenTelemetry environment asks for traces
(`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off again). It needs the
`otel` extra; without it, turning it on fails with one line saying what to install.

Each process sets it up once (`setup`): the producer when it starts a run, each worker pool
process when it starts (`install_worker_tracing`, on Celery's `worker_process_init`: the
exporter's thread does not survive the fork). The exporter and its endpoint, headers and
sampling are configured by the usual `OTEL_*` variables, read by the SDK itself;
`OTEL_SERVICE_NAME` replaces the service names below.

What is traced:

- the producer's start of a run (`prelabel.start_run`), and under it each shard task it
  sends (Celery's instrumentation, which carries the trace to the worker in the task's
  headers);
- each shard task a worker runs (the same instrumentation);
- each LLM call (`chat MODEL`, span kind CLIENT), with the model, the endpoint's host, the
  run, the items asked about, the attempts, and the tokens the endpoint counted, named as
  OpenTelemetry's GenAI conventions name them. Never the prompt, the answer or the API key;
  a failed call records the exception's type, not its message (an endpoint's message may
  quote the request).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prelabel.errors import ConfigError
from prelabel.extras import require

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from prelabel.settings import Settings

#: The exporters `OTEL_TRACES_EXPORTER` may name (a comma-separated list of them).
EXPORTERS = ("otlp", "console")
WORKER_SERVICE = "prelabel-worker"
PRODUCER_SERVICE = "prelabel-producer"


def exporters_wanted(settings: Settings) -> tuple[str, ...]:
    """The span exporters the settings ask for; () when tracing is off."""
    if settings.otel_sdk_disabled:
        return ()
    listed = settings.otel_traces_exporter
    if listed is not None:
        names = tuple(n.strip().lower() for n in listed.split(",") if n.strip())
        if names in ((), ("none",)):
            return ()
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={listed}: prelabel can export traces with "
                f"{', '.join(EXPORTERS)} or none"
            )
        return names
    if settings.tracing or settings.otel_exporter_otlp_endpoint:
        return ("otlp",)
    return ()


def enabled(settings: Settings) -> bool:
    return bool(exporters_wanted(settings))


@dataclass(frozen=True, slots=True)
class _Process:
    """Tracing as this process set it up (a forked child sets up its own)."""

    pid: int
    provider: TracerProvider
    tracer: Tracer


_process: _Process | None = None


def check_installed(exporters: tuple[str, ...] = ()) -> None:
    """Raise the one-line MissingExtra naming the `otel` extra if it (or the part of it
    `exporters` need) is missing."""
    require("opentelemetry.instrumentation.celery", "otel")
    require("opentelemetry.sdk.trace", "otel")
    if "otlp" in exporters:
        require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel")


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    # HTTP/protobuf, OTLP's default protocol; it reads OTEL_EXPORTER_OTLP_* itself.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup(settings: Settings, service: str, *, exporter: SpanExporter | None = None) -> bool:
    """Start tracing in this process if the settings ask for it (or `exporter` is given, for
    tests: spans go to it as each ends); True when tracing is on. Once per process: a second
    call is a no-op."""
    global _process
    names = exporters_wanted(settings)
    if not names and exporter is None:
        return False
    if _process is not None and _process.pid == os.getpid():
        return True
    check_installed(names)
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # The SDK adds OTEL_RESOURCE_ATTRIBUTES; the name given here would win over its own
    # reading of OTEL_SERVICE_NAME, so the settings' is passed on.
    service_name = settings.otel_service_name or service
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    # Libraries traced through the global provider (none of prelabel's own spans are) get
    # this one too; the global can be set only once per process.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    instrumentor = _celery_instrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # instrumented for a provider this process replaced
    instrumentor.instrument(tracer_provider=provider)
    _process = _Process(os.getpid(), provider, provider.get_tracer("prelabel"))
    return True


def _celery_instrumentor() -> Any:
    """Celery's instrumentor (one per process; its package is untyped)."""
    from opentelemetry.instrumentation import celery

    instrumentor: Any = celery.CeleryInstrumentor
    return instrumentor()


def shutdown() -> None:
    """Send the spans still buffered and stop tracing in this process."""
    global _process
    if _process is None or _process.pid != os.getpid():
        return
    _celery_instrumentor().uninstrument()
    _process.provider.shutdown()
    _process = None


def install_worker_tracing(settings: Settings) -> bool:
    """Trace each pool process of the worker about to start, if the settings ask for it.

    Checked here, in the worker's main process, so that a missing extra stops `prelabel
    worker` with its one line before any process forks."""
    names = exporters_wanted(settings)
    if not names:
        return False
    check_installed(names)
    from celery import signals

    def on_process_init(**_: Any) -> None:
        setup(settings, WORKER_SERVICE)

    def on_process_shutdown(**_: Any) -> None:
        shutdown()

    # weak=False: the closures live only in the signals' receiver lists.
    signals.worker_process_init.connect(on_process_init, weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False)
    return True


# --- spans --------------------------------------------------------------------------------


class CallSpan:
    """What an LLM call adds to its span once it has an answer (nothing when tracing is off)."""

    def __init__(self, span: Span | None = None) -> None:
        self._span = span

    def answered(
        self, *, prompt_tokens: int, completion_tokens: int, requests: int, finish_reason: str
    ) -> None:
        if self._span is None:
            return
        self._span.set_attributes(
            {
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": completion_tokens,
                "prelabel.requests": requests,
            }
        )
        if finish_reason:
            self._span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])


@contextlib.contextmanager
def llm_call(*, model: str, base_url: str, run_id: str, items: int) -> Iterator[CallSpan]:
    """A span around one LLM call (all its attempts), when this process traces."""
    if _process is None or _process.pid != os.getpid():
        yield CallSpan()
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "server.address": urlsplit(base_url).hostname or "",
        "prelabel.run_id": run_id,
        "prelabel.items": items,
    }
    with _process.tracer.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        # The exception's message may quote the request: only its type is recorded.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield CallSpan(span)
        except BaseException as exc:
            kind = type(exc).__name__
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
            raise


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int | float | bool]) -> Iterator[None]:
    """A span of prelabel's own (e.g. the producer's start of a run), when this process
    traces."""
    if _process is None or _process.pid != os.getpid():
        yield
        return
    with _process.tracer.start_as_current_span(name, attributes=dict(attributes)):
        yield
