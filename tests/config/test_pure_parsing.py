"""Parsing is pure: syntax and meaning only. The world is asked once, at start-up."""

from __future__ import annotations

import subprocess
import sys

from watcher.app.preflight import parse_checked
from watcher.config.rules_file import parse_rules
from watcher.core.errors import RulesError

WORLDLY = (
    "channels:\n"
    "  default: 'tgram://${NOT_SET_TOKEN}/123'\n"
    "  team: 'nonsense://x'\n"
    "accounts:\n"
    "  main: {source: mexc, web_key: '${NOT_SET_KEY}'}\n"
    "  desk: {source: ccxt, exchange: nosuchexchange, api_key: '${K}', secret: '${S}'}\n"
    "heartbeat: {url: '${NOT_SET_PING}'}\n"
    "rules:\n"
    "  - name: low\n"
    "    when: USDT.spot < 100\n"
)


def test_importing_and_parsing_the_configuration_loads_no_apprise_ccxt_or_requests() -> None:
    code = (
        "import sys, watcher.config.rules_file, watcher.config.settings, "
        "watcher.config.resolve\n"
        f"rules = watcher.config.rules_file.parse_rules({WORLDLY!r}, 'r.yaml')\n"
        "assert [a.name for a in rules.accounts] == ['main', 'desk']\n"
        "assert rules.channels['default'].urls == ('tgram://${NOT_SET_TOKEN}/123',)\n"
        "print(' '.join(m for m in ('apprise', 'ccxt', 'requests') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_parsing_keeps_variables_as_written_and_start_up_names_every_problem() -> None:
    rules = parse_rules(WORLDLY, "r.yaml")
    assert rules.accounts[0].web_key == "${NOT_SET_KEY}"
    assert rules.heartbeats[0].url == "${NOT_SET_PING}"
    try:
        parse_checked(WORLDLY, "r.yaml", env={"K": "key-1234", "S": "secret-1234"})
    except RulesError as exc:
        found = [str(p) for p in exc.problems]
    else:
        raise AssertionError("the start-up check passed a file that cannot run")
    assert found == [
        "r.yaml:2:12: channel default: environment variable NOT_SET_TOKEN is not set",
        "r.yaml:3:9: channel team: apprise cannot use this 'nonsense://' URL; "
        "check it against apprise's docs",
        "r.yaml:5:33: account main: web_key: environment variable NOT_SET_KEY is not set",
        "r.yaml:6:34: account desk: ccxt knows no exchange 'nosuchexchange'",
        "r.yaml:7:18: heartbeat: environment variable NOT_SET_PING is not set",
    ]


def test_check_asks_for_what_run_needs(tmp_path, capsys, monkeypatch) -> None:
    """Issue "What a newcomer tripped on", point 1: check said OK without the web key."""
    from watcher.cli.main import main

    for name in ("WATCHER_WEB_KEY", "WATCHER_SOURCE", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("channels: {default: 'console://'}\nrules: []\n")
    assert main(["check", "--rules", str(rules)]) == 2
    assert capsys.readouterr().err.startswith("watcher: WATCHER_WEB_KEY is not set")
    for pasted in ("u_id=WEB1234567890abcdef", "WEB1234567890abcdef;"):
        monkeypatch.setenv("WATCHER_WEB_KEY", pasted)
        assert main(["check", "--rules", str(rules)]) == 2
        err = capsys.readouterr().err
        assert "keep only the value after u_id=" in err and "1234567890" not in err
    monkeypatch.setenv("WATCHER_WEB_KEY", "WEB1234567890abcdef")
    assert main(["check", "--rules", str(rules)]) == 0


def test_an_accounts_web_key_pasted_as_the_cookie_is_located() -> None:
    text = (
        "channels: {default: 'console://'}\n"
        "accounts:\n  main: {source: mexc, web_key: '${K}'}\nrules: []\n"
    )
    try:
        parse_checked(text, "r.yaml", env={"K": "u_id=WEB1234567890abcdef;"})
    except RulesError as exc:
        found = [str(p) for p in exc.problems]
    else:
        raise AssertionError("a pasted cookie passed")
    assert found == [
        "r.yaml:3:33: account main: web_key looks like the cookie as copied (u_id=...;): "
        "keep only the value after u_id="
    ]


def test_a_channel_url_with_a_written_out_token_is_a_warning_that_points_to_a_variable() -> None:
    """Issue "What a newcomer tripped on", point 11."""
    text = "channels:\n  default: 'tgram://123456789:AAFakeBotTokenForTests_0123456789abcd/111'\n"
    rules = parse_rules(text + "rules: []\n", "r.yaml")
    (warning,) = rules.warnings
    assert str(warning) == (
        'r.yaml:2:12: warning: channel default: this URL holds a token; write it as "${VAR}" '
        "and set the variable in watcher.env"
    )
    assert parse_rules("channels:\n  default: '${URL}'\nrules: []\n").warnings == ()
