"""One secrets module: every kind of secret masked, ordinary words left alone."""

from __future__ import annotations

import io

import pytest
from pydantic import SecretStr

from watcher.config.resolve import resolve
from watcher.config.rules_file import parse_rules
from watcher.core import logs
from watcher.core.secrets import MASKER, Masker, url_secrets
from watcher.notify.adapter import masked

WEB_KEY = "WEB1f2e3d4c5b6a79880123456789abcdef0123456789abcdef01234567"
API_SECRET = "s3cr3t-api-secret-0123456789"
BOT_TOKEN = "123456789:AAFakeBotTokenForTests_0123456789abcd"
PROXY = "socks5://trader:proxy-pass-77@127.0.0.1:1080"
HEADER_URL = "json://127.0.0.1:9/hook?+X-Api-Key=header-secret-42"
PING = "https://hc.example/ping/0b1f5c6e-4a3b-4f6e-9d2a-1c2b3d4e5f60"
FORM = "form://127.0.0.1:9/form/tokn"
ORDINARY = "stopping the poll; format the rule usdt-top-up-needed; ping sent"


def masker() -> Masker:
    found = Masker([WEB_KEY, API_SECRET, BOT_TOKEN, PROXY])
    for url in (f"tgram://{BOT_TOKEN}/111", HEADER_URL, PING, FORM):
        found.add(url)
    return found


@pytest.mark.parametrize(
    "secret", [WEB_KEY, API_SECRET, BOT_TOKEN, "proxy-pass-77", "header-secret-42", "tokn"]
)
def test_every_kind_of_secret_is_masked_wherever_it_stands_as_a_token(secret: str) -> None:
    text = f"error: GET failed with {secret}; url=https://x/{secret}/y (key {secret})"
    shown = masker().mask(text)
    assert secret not in shown and "***" in shown


def test_short_url_parts_leave_ordinary_words_intact() -> None:
    assert {"ping", "form"} <= set(url_secrets(PING) + url_secrets(FORM))
    assert (
        masker().mask(ORDINARY) == "stopping the poll; format the rule usdt-top-up-needed; *** sent"
    )


def test_a_long_secret_is_masked_even_inside_other_text() -> None:
    assert masker().mask(f"x{WEB_KEY}y") == "x***y"


def test_secret_values_never_print() -> None:
    key = SecretStr(WEB_KEY)
    assert WEB_KEY not in f"{key} {key!r} {[key]}"


RULES = (
    "channels:\n"
    "  default: '${FORM_URL}'\n"
    "heartbeat: {url: '${PING_URL}', style: plain}\n"
    "accounts:\n"
    "  main: {source: mexc, web_key: '${KEY}'}\n"
    "rules:\n"
    "  - name: usdt-top-up-needed\n"
    "    when: USDT.spot < 100\n"
)


def test_the_log_pipeline_masks_what_the_rules_file_brought_in_and_nothing_else() -> None:
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream=stream)
    try:
        resolve(parse_rules(RULES), env={"FORM_URL": FORM, "PING_URL": PING, "KEY": WEB_KEY})
        log = logs.get("t")
        log.info("stopping", rule="usdt-top-up-needed", note="format")
        log.error("ping failed", url=PING, key=WEB_KEY, channel=FORM)
    finally:
        MASKER.clear()
        logs.reset()
    text = stream.getvalue()
    assert "stopping" in text and "usdt-top-up-needed" in text and "format" in text
    for secret in (WEB_KEY, "0b1f5c6e-4a3b-4f6e-9d2a-1c2b3d4e5f60", "tokn"):
        assert secret not in text


def test_apprise_urls_are_shown_in_their_privacy_form() -> None:
    shown = masked(f"tgram://{BOT_TOKEN}/111")
    assert BOT_TOKEN not in shown and "AAFake" not in shown
    assert "header-secret-42" not in masked(HEADER_URL)


def test_cli_output_and_the_notification_hold_no_url_token(
    tmp_path, receiver, capsys, monkeypatch
) -> None:
    """``watcher test-notify`` shows the URL it sent to, and the receiver gets a message:
    neither holds the path token or the ``+Header`` value."""
    token, header = "pathtoken0123456789", "header-secret-42"
    url = receiver.url(f"{token}/x") + f"?+X-Api-Key={header}"
    rules = tmp_path / "rules.yaml"
    rules.write_text("channels:\n  default: '${HOOK}'\nrules: []\n")
    monkeypatch.setenv("HOOK", url)
    from watcher.cli.main import main

    try:
        assert main(["test-notify", "--rules", str(rules)]) == 0
    finally:
        MASKER.clear()
    shown = capsys.readouterr()
    assert "ok   default: json://" in shown.out and len(receiver.posts) == 1
    for secret in (token, header):
        assert secret not in shown.out + shown.err
        assert all(secret not in str(post) for post in receiver.posts)
