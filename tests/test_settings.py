"""Settings from the environment, .env and systemd credentials."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watcher.errors import ConfigError
from watcher.settings import load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.network == "MAINNET" and s.base_url == "https://api.mexc-bypass.xyz/v1"
    assert s.source == "mexc" and s.mexc_url == "https://www.mexc.com" and s.proxy is None
    assert s.interval == timedelta(seconds=60) and s.timeout == timedelta(seconds=10)
    assert s.stale_after == timedelta(minutes=5) and s.rules == Path("rules.yaml")
    assert s.state == Path("watcher.db") and s.metrics_addr is None


def test_env_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_INTERVAL", "5m")
    monkeypatch.setenv("WATCHER_TIMEOUT", "30")
    monkeypatch.setenv("WATCHER_NETWORK", "testnet")
    monkeypatch.setenv("WATCHER_METRICS_ADDR", "127.0.0.1:9108")
    s = load_settings()
    assert s.interval == timedelta(minutes=5) and s.timeout == timedelta(seconds=30)
    assert s.network == "TESTNET" and s.metrics_bind == ("127.0.0.1", 9108)


def test_state_directory_under_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/a:{tmp_path}/b")
    assert load_settings().state == tmp_path / "a" / "watcher.db"


def test_credentials_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("cred-api-key\n")
    (tmp_path / "web_key").write_text("WEBcred\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = load_settings()
    assert s.require_api_key() == "cred-api-key"
    assert s.web_key.get_secret_value() == "WEBcred"
    monkeypatch.setenv("WATCHER_API_KEY", "env-wins")
    assert load_settings().require_api_key() == "env-wins"


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WATCHER_API_KEY=from-dotenv\nWATCHER_INTERVAL=2m\n")
    s = load_settings()
    assert s.require_api_key() == "from-dotenv" and s.interval == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WATCHER_BASE_URL", "http://api.example.com/v1", "plain http would send the key"),
        ("WATCHER_BASE_URL", "ftp://x", "must be an http(s) URL"),
        ("WATCHER_NETWORK", "moon", "WATCHER_NETWORK: Input should be 'MAINNET' or 'TESTNET'"),
        ("WATCHER_INTERVAL", "0s", "WATCHER_INTERVAL: must be longer than 0s"),
        ("WATCHER_METRICS_ADDR", "9108", "WATCHER_METRICS_ADDR: expected HOST:PORT"),
        ("WATCHER_LOG_FORMAT", "xml", "WATCHER_LOG_FORMAT"),
    ],
)
def test_invalid_settings_name_the_variable(monkeypatch, name: str, value: str, message: str):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_loopback_http_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("http://127.0.0.1:8099/v1", "http://localhost/v1", "http://[::1]:80/v1"):
        monkeypatch.setenv("WATCHER_BASE_URL", url)
        assert load_settings().base_url == url


def test_secrets_stay_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_API_KEY", "very-secret-key")
    s = load_settings()
    assert "very-secret-key" not in repr(s) and "very-secret-key" not in str(s.model_dump())


def test_source_and_mexc_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_SOURCE", "Bypass")
    monkeypatch.setenv("WATCHER_MEXC_URL", "http://127.0.0.1:8099/")
    s = load_settings()
    assert s.source == "bypass" and s.mexc_url == "http://127.0.0.1:8099"
    monkeypatch.setenv("WATCHER_MEXC_URL", "http://www.mexc.com")
    with pytest.raises(ConfigError, match="WATCHER_MEXC_URL: plain http"):
        load_settings()


@pytest.mark.parametrize("key", ["WEB12345\u2026", "WEB 1234", "WEBé1234", "WEB\t123"])
def test_a_key_that_cannot_be_sent_is_refused_at_start(monkeypatch, key: str) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", key)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith("WATCHER_WEB_KEY: contains a character that cannot be sent")
    assert key not in text and len(text.splitlines()) == 1


@pytest.mark.parametrize(
    ("proxy", "ok"),
    [("socks5://u:pw-secret@10.1.1.1:1080", True), ("http://h:3128", True), ("ftp://h", False)],
)
def test_proxy_urls_and_their_password_is_a_secret(monkeypatch, proxy: str, ok: bool) -> None:
    monkeypatch.setenv("WATCHER_PROXY", proxy)
    if not ok:
        with pytest.raises(ConfigError, match="WATCHER_PROXY: must be a proxy URL"):
            load_settings()
        return
    secrets = load_settings().secret_values()
    assert proxy in secrets
    if "pw-secret" in proxy:
        assert "pw-secret" in secrets
