"""Settings from the environment, .env and systemd credentials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from watcher.config.settings import Settings, load_settings
from watcher.core.errors import ConfigError


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
        ("WATCHER_NETWORK", "moon", "WATCHER_NETWORK: must be MAINNET or TESTNET, not 'moon'"),
        ("WATCHER_INTERVAL", "0s", "WATCHER_INTERVAL: must be longer than 0s"),
        ("WATCHER_INTERVAL", "1ms", "WATCHER_INTERVAL: must be at least 1s, got '1ms'"),
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


def test_precedence_environment_over_dotenv_over_credentials(monkeypatch, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "web_key").write_text("WEB-from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_settings().require_web_key() == "WEB-from-credential"
    (tmp_path / ".env").write_text("WATCHER_WEB_KEY=WEB-from-dotenv\n")
    assert load_settings().require_web_key() == "WEB-from-dotenv"
    monkeypatch.setenv("WATCHER_WEB_KEY", "WEB-from-env")
    assert load_settings().require_web_key() == "WEB-from-env"
    assert load_settings(web_key="WEB-from-code").require_web_key() == "WEB-from-code"


def test_an_empty_variable_counts_as_unset(monkeypatch, tmp_path: Path) -> None:
    """`WATCHER_PROXY=` in an EnvironmentFile means no proxy, not a broken one."""
    (tmp_path / ".env").write_text("WATCHER_INTERVAL=2m\n")
    for name in ("WATCHER_PROXY", "WATCHER_METRICS_ADDR", "WATCHER_INTERVAL", "WATCHER_NAME"):
        monkeypatch.setenv(name, "")
    s = load_settings()
    assert s.proxy is None and s.metrics_addr is None and s.name
    assert s.interval == timedelta(minutes=2)  # the empty variable does not hide .env
    assert s.given == frozenset({"interval"})


def test_names_are_case_insensitive_and_strangers_ignored(monkeypatch) -> None:
    monkeypatch.setenv("watcher_interval", "7s")
    monkeypatch.setenv("WATCHER_NO_SUCH_THING", "whatever")
    s = load_settings()
    assert s.interval == timedelta(seconds=7) and s.given == frozenset({"interval"})


def test_given_tells_a_command_what_the_user_set(monkeypatch) -> None:
    assert "log_level" not in load_settings().given
    monkeypatch.setenv("WATCHER_LOG_LEVEL", "debug")
    s = load_settings()
    assert s.log_level == "DEBUG" and "log_level" in s.given


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T08:00:00+00:00", datetime(2026, 11, 26, 8, tzinfo=UTC)),
        ("2026-11-26T08:00:00Z", datetime(2026, 11, 26, 8, tzinfo=UTC)),
        ("1795680000", datetime(2026, 11, 26, 8, tzinfo=UTC)),
    ],
)
def test_login_time_as_iso_or_unix_seconds(monkeypatch, text: str, expected: datetime) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY_ISSUED", text)
    assert load_settings().web_key_issued == expected


@pytest.mark.parametrize("text", ["99999999999999999999", "99999999999", "0"])
def test_a_unix_time_outside_reason_is_refused_in_words(monkeypatch, text: str) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY_ISSUED", text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        "WATCHER_WEB_KEY_ISSUED: must be a login time between the years 2000 and 2100"
    )


def test_every_bad_variable_is_named_on_its_own_line(monkeypatch) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY_ISSUED", "last tuesday")
    monkeypatch.setenv("WATCHER_TIMEOUT", "soon")
    monkeypatch.setenv("WATCHER_SOURCE", "kraken")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).splitlines() == [
        "WATCHER_SOURCE: must be mexc or bypass, not 'kraken'; the ccxt source is set per "
        "account, under 'accounts:' in the rules file",
        "WATCHER_WEB_KEY_ISSUED: must be a time such as 2026-11-26T08:00:00+00:00",
        "WATCHER_TIMEOUT: expected a duration like 30s, 5m or 1h, got 'soon'",
    ]


def test_settings_built_in_code_are_checked_and_replace_checks_again() -> None:
    s = Settings(web_key="WEB-in-code", interval="5s", state="w.db")
    assert s.web_key == SecretStr("WEB-in-code") and s.interval == timedelta(seconds=5)
    assert s.state == Path("w.db") and s.given == {"web_key", "interval", "state"}
    with pytest.raises(ConfigError, match="WATCHER_INTERVAL: must be longer than 0s"):
        s.replace(interval=timedelta(0))


def test_a_secret_never_prints() -> None:
    secret = SecretStr("very-secret-key")
    shown = f"{secret} {secret!r} {[secret]} {Settings(api_key=secret)}"
    assert "very-secret-key" not in shown and "**********" in shown
    assert secret.get_secret_value() == "very-secret-key" and not SecretStr("")


def test_settings_stand_on_pydantic_settings_and_never_show_its_words(monkeypatch) -> None:
    """Item 1 of #25: BaseSettings reads; the user reads watcher's one line per variable."""
    from pydantic_settings import BaseSettings

    assert issubclass(Settings, BaseSettings)
    monkeypatch.setenv("WATCHER_INTERVAL", "soon")
    monkeypatch.setenv("WATCHER_STALE_AFTER", "[1, 2]")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert lines[0] == "WATCHER_INTERVAL: expected a duration like 30s, 5m or 1h, got 'soon'"
    assert lines[1].startswith("WATCHER_STALE_AFTER: expected a duration")
    assert not any(word in str(caught.value) for word in ("pydantic", "validation error", "type="))
    with pytest.raises(ConfigError, match=r"^WATCHER_TIMEOUT: expected a duration"):
        Settings(timeout=object())
