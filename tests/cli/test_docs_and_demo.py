"""The README cannot rot, and the demo a newcomer runs first works."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from watcher.cli.main import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


FAKE_SECRETS = {  # shaped like the real thing, so apprise accepts the URLs
    "TELEGRAM_BOT_TOKEN": "123456789:ABCdefGhIJKlmnoPQRsTUVwxyZ012345678",
    "TELEGRAM_CHAT_ID": "12345678",
    "SLACK_A": "T1JJ3T3L2",
    "SLACK_B": "A1BRTD4JD",
    "SLACK_C": "TIiajkdnlazkcOXrIdevi7FQ",
    "DISCORD_WEBHOOK_ID": "4174216298",
    "DISCORD_WEBHOOK_TOKEN": "JHMHI8qBe7bk2ZwO5U711o3dV_js",
    "SMTP_USER": "alerts",
    "SMTP_PASS": "app-password",
    "HC_URL": "https://hc-ping.com/0b1f5c6e-4a3b-4f6e-9d2a-1c2b3d4e5f60",
    "KUMA_URL": "https://kuma.example.org/api/push/Tk4mPushTok3n",
    "MEXC_MAIN_WEB_KEY": "WEB-main-0123456789abcdef",
    "MEXC_HEDGE_WEB_KEY": "WEB-hedge-0123456789abcdef",
    "HEDGE_PROXY": "socks5://user:pass@127.0.0.1:1080",
    "MEXC_API_KEY": "mx0vglSIMULATED",
    "MEXC_API_SECRET": "sim-secret-0123456789",
}


def readme_commands() -> list[list[str]]:
    """Every ``watcher ...`` in inline code or in a shell block of the README."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    spans = re.findall(r"`([^`\n]*)`", prose)
    found = [
        re.sub(r"^\.venv/bin/", "", x) for x in spans if re.match(r"(\.venv/bin/)?watcher ", x)
    ]
    for _, block in code_blocks(""):
        for line in block.splitlines():
            match = re.match(r"(?:\w+=\S+\s+)*(?:\S*/)?(watcher\s.*)$", line)
            if match:
                found.append(match.group(1))
    commands = []
    for text in found:
        words = shlex.split(text.split("#")[0])
        if len(words) > 1 and words[1] in COMMANDS:
            commands.append(words)
        else:
            assert words[1:] in ([], ["--help"]), f"README names an unknown command: {text}"
    return commands


def code_blocks(language: str) -> list[tuple[str, str]]:
    """(language, text) of each fenced block whose language is ``language``."""
    blocks, current, lang = [], None, ""
    for line in README.splitlines():
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if lang == language:
                    blocks.append((lang, "\n".join(current) + "\n"))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def yaml_blocks() -> list[str]:
    """The rules-file examples (test-file examples have ``cases:``)."""
    return [text for _, text in code_blocks("yaml") if "\ncases:" not in "\n" + text]


def readme_test_files() -> list[str]:
    return [text for _, text in code_blocks("yaml") if "\ncases:" in "\n" + text]


README_TEST_RULES = """channels:
  default: "console://"
rules:
  - name: low
    when: USDT.spot < 100
    for: 3m
"""


@pytest.mark.parametrize("block", readme_test_files())
def test_every_readme_test_file_example_passes(block: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "rules.yaml").write_text(README_TEST_RULES)
    (tmp_path / "example.test.yaml").write_text(block)
    assert main(["test", str(tmp_path / "example.test.yaml")]) == 0, capsys.readouterr()


def test_readme_quick_start_is_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "```\nmake demo\nmake test\n```" in quick


def test_readme_mentions_every_setting() -> None:
    from watcher.config.settings import field_names

    for name in field_names():
        assert f"`WATCHER_{name.upper()}`" in README


@pytest.mark.parametrize("command", readme_commands(), ids=" ".join)
def test_every_readme_command_parses(command: list[str], capsys) -> None:
    assert command[0] == "watcher"
    with pytest.raises(SystemExit) as done:
        main([command[1], "--help"])
    assert done.value.code == 0
    from watcher.cli.main import build_parser

    args = build_parser().parse_args(command[1:])
    assert args.command == command[1]


@pytest.mark.parametrize("block", yaml_blocks())
def test_every_readme_rules_example_checks(block: str, tmp_path: Path, monkeypatch, capsys) -> None:
    for var in set(re.findall(r"\$\{(\w+)\}", block)):
        monkeypatch.setenv(var, FAKE_SECRETS[var])
    monkeypatch.setenv("WATCHER_WEB_KEY", "WEB-readme-example-key")  # what run needs, check too
    rules = tmp_path / "rules.yaml"
    rules.write_text(block)
    assert main(["check", "--rules", str(rules)]) == 0, capsys.readouterr().err


def test_demo_plays_its_script_and_exits_0() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--step", "0.5"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert took < 90
    out = done.stdout
    expected = [
        "==> [1/9] simulated MEXC up at http://127.0.0.1:",
        "USDT      2,300  1,500       800        2,300",
        "==> [2/9] daemon started",
        "[warning] watcher ",
        "FIRING usdt-spot-low: USDT spot is 80, below 100",
        "==> [3/9] a big futures position",
        "[critical] watcher ",
        "FIRING contract-heavy: contract / total > 60% (value 82.1%, threshold 60%)",
        "==> [4/9] a transfer brings USDT spot back",
        "RESOLVED usdt-spot-low after ",
        "==> [5/9] a 20x BTC long",
        "FIRING btc-liq-near BTC_USDT long: BTC_USDT long 20x is 2.3% from liquidation "
        "(mark 58,600, liquidation 57,240)",
        "==> [6/9] the trader closes the position",
        "RESOLVED btc-liq-near BTC_USDT long after ",
        "the position closed",
        "==> [7/9] the exchange goes down",
        "FIRING exchange-unreachable: no successful poll for",
        "==> [8/9] the exchange comes back",
        "RESOLVED exchange-unreachable after ",
        "==> [9/9] demo finished; the daemon stopped cleanly (exit 0)",
    ]
    position = 0
    for text in expected:
        found = out.find(text, position)
        assert found >= 0, f"{text!r} missing after position {position}:\n{out}"
        position = found + len(text)
    assert "Traceback" not in out + done.stderr
