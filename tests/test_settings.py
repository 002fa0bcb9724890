"""Settings: conventional variables, flags over environment, secrets kept out of sight."""

from __future__ import annotations

import pytest

from prelabel.errors import ConfigError
from prelabel.settings import api_key_for, is_local_endpoint, load_settings


def test_conventional_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("PRELABEL_INFLIGHT", "64")
    settings = load_settings()
    assert settings.redis_url == "redis://example:6379/3"
    assert settings.openai_base_url == "http://127.0.0.1:9999/v1"
    assert settings.inflight == 64


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    assert load_settings(REDIS_URL="redis://flag:6379/0").redis_url == "redis://flag:6379/0"


def test_the_api_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-" + "x" * 40
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    settings = load_settings()
    assert secret not in repr(settings)
    assert secret not in str(settings)
    assert secret not in settings.model_dump_json()
    assert api_key_for(settings, "https://api.openai.com/v1") == secret


def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_INFLIGHT", "0")
    with pytest.raises(ConfigError, match="PRELABEL_INFLIGHT"):
        load_settings()


def test_a_real_endpoint_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = load_settings()
    assert api_key_for(settings, "http://127.0.0.1:8000/v1")  # local: a placeholder will do
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        api_key_for(settings, "https://api.openai.com/v1")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://myorg.openai.azure.com/openai/v1", False),
    ],
)
def test_local_endpoints(url: str, local: bool) -> None:
    assert is_local_endpoint(url) is local
