"""Settings read from the environment, validated once, passed down explicitly.

Conventional variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `REDIS_URL`, `KILI_API_KEY`,
`KILI_API_ENDPOINT`) are read under their usual names; prelabel's own settings use the
`PRELABEL_` prefix. CLI flags override both.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from prelabel.frozen import Frozen

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class ModelCaps(Frozen):
    """One model's provider caps, as `PRELABEL_CAPS` gives them (None: no cap)."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    #: Prompt tokens the fleet may have waiting in Batch API batches for the model (OpenAI's
    #: enqueued-token limit); a run's `--enqueued-tokens` overrides it.
    enqueued_tokens: int | None = Field(None, gt=0)


class Settings(BaseSettings):
    """Process-wide settings. Secrets are `SecretStr`: they never show in `repr` or logs."""

    model_config = SettingsConfigDict(env_prefix="PRELABEL_", extra="ignore", frozen=True)

    redis_url: str = Field(
        DEFAULT_REDIS_URL, validation_alias=AliasChoices("PRELABEL_REDIS_URL", "REDIS_URL")
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("PRELABEL_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = Field(
        DEFAULT_BASE_URL,
        validation_alias=AliasChoices("PRELABEL_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
    )
    kili_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("PRELABEL_KILI_API_KEY", "KILI_API_KEY")
    )
    kili_api_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("PRELABEL_KILI_API_ENDPOINT", "KILI_API_ENDPOINT")
    )
    #: The Sentinel master a `sentinel://` REDIS_URL means (Celery's `master_name`).
    sentinel_master: str = Field("mymaster", min_length=1)
    #: Seconds after which `prelabel run` and `prelabel status` say that no worker has taken
    #: any shard of a run yet (and what to start).
    no_worker_warning: float = Field(20.0, gt=0)
    #: Kili project that uploads go to; without it, each run gets a project of its own.
    kili_project_id: str | None = None
    #: Celery queue the producer fills and workers consume.
    queue: str = "prelabel"
    #: LLM calls one worker process keeps in flight (in flight ≈ RPM/60 × latency in seconds).
    inflight: int = Field(16, ge=1, le=2048)
    #: Seconds an LLM call may take before it is abandoned and retried.
    request_timeout: float = Field(60.0, gt=0)
    #: Attempts per LLM call (429, 5xx, timeouts) before the item is failed.
    max_attempts: int = Field(6, ge=1)
    #: Seconds one 429's retry-after may pause the fleet at most: an endpoint asking for an
    #: hour is asked again after this (and may say so again).
    max_pause: float = Field(60.0, gt=0)
    #: Seconds of such pauses a run may be charged in all before it stops, with the reason
    #: (`prelabel resume` takes it up again once the endpoint answers).
    max_paused: float = Field(15 * 60.0, gt=0)
    #: Provider caps per model, as JSON: `{"gpt-4o-mini": {"rpm": 500, "tpm": 200000,
    #: "enqueued_tokens": 2000000}}`; a `"*"` entry covers other models. A run's `--rpm`,
    #: `--tpm` and `--enqueued-tokens` override them.
    caps: dict[str, ModelCaps] = Field(default_factory=dict)
    #: Seconds of each cap the shared bucket holds (the provider holds about one).
    bucket_seconds: float = Field(0.8, gt=0, le=60)
    #: Celery's own per-worker `rate_limit` on shard tasks (e.g. `10/m`); for comparisons
    #: only (benchmarks/bench_caps.py): the shared bucket is what respects a provider's caps.
    task_rate_limit: str | None = None
    #: Seconds a shard task runs before it hands the rest of its shard to a new task (at
    #: most 50 minutes: the broker's visibility timeout is set above the hard limit after it).
    soft_time_limit: float = Field(50 * 60, gt=0, le=50 * 60)
    #: Seconds a shard's lease lasts without a heartbeat before the reconciler re-enqueues it.
    lease_seconds: float = Field(30.0, gt=0)
    #: Seconds between two passes of the reconciler (in workers and in `prelabel run`).
    reconcile_interval: float = Field(15.0, gt=0)
    #: Seconds before the batch poller first looks at a Batch API batch again; the wait
    #: doubles after each look, up to 10 minutes (`workers.batch_poller`).
    batch_poll_seconds: float = Field(30.0, gt=0)
    #: Times a shard may start before it is failed (a shard that kills its worker again and
    #: again is not looped forever).
    max_shard_attempts: int = Field(4, ge=1)
    #: Seconds a run's data stays in Redis after it is collected.
    run_ttl: int = Field(7 * 24 * 3600, ge=60)
    #: Seconds a cached answer stays in Redis.
    cache_ttl: int = Field(30 * 24 * 3600, ge=60)
    #: The model's context window in tokens: a request that cannot fit (prompt + max_tokens)
    #: is split, and a single sentence that cannot fit fails with that reason. None: what
    #: the server says (llama.cpp, vLLM, Ollama), else 128,000 (`workers.transports.window`).
    context_tokens: int | None = Field(None, ge=256)
    #: Trace the producer, shard tasks and LLM calls with OpenTelemetry (the `otel` extra),
    #: exporting by OTLP; prelabel.tracing. The standard variables below turn it on too.
    tracing: bool = False
    #: OpenTelemetry's own switches, read under their standard names: which exporters
    #: (`otlp`, `console`, `none`), an OTLP endpoint (turns tracing on), and the SDK's
    #: off switch. The exporter reads the rest of `OTEL_*` itself.
    otel_traces_exporter: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_TRACES_EXPORTER")
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        ),
    )
    otel_sdk_disabled: bool = Field(False, validation_alias=AliasChoices("OTEL_SDK_DISABLED"))
    #: The service name on the spans; default: prelabel-worker or prelabel-producer.
    otel_service_name: str | None = Field(None, validation_alias=AliasChoices("OTEL_SERVICE_NAME"))


def enqueued_token_limit(settings: Settings, model: str, own: int | None = None) -> int | None:
    """The prompt tokens the fleet may have waiting in batches for `model`: the run's own
    (`Delivery.enqueued_tokens`), else `PRELABEL_CAPS`' for the model (or `"*"`), else None
    (no limit)."""
    if own is not None:
        return own
    caps = settings.caps.get(model) or settings.caps.get("*")
    return caps.enqueued_tokens if caps is not None else None


def is_local_endpoint(base_url: str) -> bool:
    """True for endpoints on this machine (the simulator, a local vLLM or Ollama)."""
    host = urlsplit(base_url).hostname or ""
    return host in {"localhost", "::1"} or host.startswith("127.")


def api_key_for(settings: Settings, base_url: str) -> str:
    """The API key to send to `base_url`; local endpoints accept a placeholder."""
    if settings.openai_api_key is not None:
        return settings.openai_api_key.get_secret_value()
    if is_local_endpoint(base_url):
        return "sk-local-no-key"
    from prelabel.errors import ConfigError

    raise ConfigError(
        f"OPENAI_API_KEY is not set, and {base_url} is not a local endpoint: "
        "export OPENAI_API_KEY (workers read it from their environment)"
    )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and `overrides`, by variable name), or one clear error."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from prelabel.errors import ConfigError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:
        # A complex setting (PRELABEL_CAPS) whose value is not JSON.
        field = next((f for f in Settings.model_fields if f'"{f}"' in str(exc)), "")
        name = _ENV_NAMES.get(field, f"PRELABEL_{field.upper()}")
        raise ConfigError(f"{name} is not valid JSON; fix the environment") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        name = _ENV_NAMES.get(field, f"PRELABEL_{field.upper()}")
        inner = ".".join(str(part) for part in err["loc"][1:])  # e.g. gpt-4o-mini.rpm in CAPS
        where = f" at {inner}" if inner else ""
        raise ConfigError(f"{name} is invalid{where}: {err['msg']}; fix the environment") from None


_ENV_NAMES = {
    "redis_url": "REDIS_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "kili_api_key": "KILI_API_KEY",
    "kili_api_endpoint": "KILI_API_ENDPOINT",
    "otel_traces_exporter": "OTEL_TRACES_EXPORTER",
    "otel_exporter_otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "otel_sdk_disabled": "OTEL_SDK_DISABLED",
    "otel_service_name": "OTEL_SERVICE_NAME",
}
