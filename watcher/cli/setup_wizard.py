"""``watcher setup``: from an installed watcher to a first real alert, in one guided run.

It asks for the web key (no echo) and reads the account once with it, shows the
balances, writes the credential (mode 600), asks for a notification URL and
sends a test message, offers two starter rules from the currencies it saw,
checks the result and prints the one command that starts the service. Every
step can be given by a flag for scripted installs. No secret is echoed or
logged: the key goes to a credential file, the URL to ``watcher.env`` (600).
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from watcher.cli.table import balances
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.durations import counted
from watcher.core.errors import (
    Blocked,
    ConfigError,
    ExchangeError,
    RulesError,
    WatcherError,
)
from watcher.core.models import Overview
from watcher.net.browser import available as browser_tls
from watcher.sources import open_source

TELEGRAM_HELP = """\
A notification URL is an apprise URL. For Telegram:
  1. talk to @BotFather, send /newbot, and copy the token it gives (123456:ABC...);
  2. send your new bot any message, then open
     https://api.telegram.org/bot<token>/getUpdates and copy "chat":{"id": ...};
  3. the URL is tgram://<token>/<chat id>
Slack, Discord, e-mail and 100 more: see the README's "Channels"."""
STABLES = ("USDT", "USDC", "FDUSD", "DAI", "TUSD")


def hidden_input(prompt: str) -> str:
    """A secret from the terminal without echo; from a pipe, the next line as it is.

    getpass reads the terminal even when the answers are piped (and warns with
    GetPassWarning where there is none), so a pipe is read directly.
    """
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def blocked_help(browser_installed: bool) -> str:
    """What to do when Akamai refused the request (the key was not even looked at)."""
    if browser_installed:
        return (
            "MEXC's web front (Akamai) refused the request, with a browser's TLS handshake "
            "too: it refuses this server's address. Set WATCHER_PROXY to a proxy elsewhere "
            "(http://, https:// or socks5://), then run watcher setup again."
        )
    return (
        "MEXC's web front (Akamai) refused the request; the key was not even looked at. It "
        "refuses some TLS handshakes, Python's among them. A browser's handshake often "
        "passes:\n  pip install 'watcher[browser-tls]'\n(curl_cffi; watcher then switches "
        "by itself, or set WATCHER_TLS=browser to always use it). If that does not help, it "
        "refuses this server's address: set WATCHER_PROXY to a proxy elsewhere. Then run "
        "watcher setup again."
    )


@dataclass
class Answers:
    web_key_file: Path | None
    notify: str | None
    yes: bool
    config_dir: Path


class Wizard:
    def __init__(
        self,
        answers: Answers,
        out: TextIO | None = None,
        ask: Callable[[str], str] = input,
        secret: Callable[[str], str] | None = None,
    ) -> None:
        self.answers = answers
        self.out = out or sys.stdout  # looked up now: a default would pin the import's stdout
        self.ask = ask
        self.secret = secret or hidden_input
        self.dir = answers.config_dir

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> int:
        key, overview = self.web_key()
        self.say("\nYour account, as watcher reads it:\n" + balances(overview))
        self.write_secret(self.dir / "credentials" / "web_key", key)
        self.say(f"\nThe web key is stored in {self.dir / 'credentials' / 'web_key'} (mode 600).")
        url = self.notify_url()
        self.write_env("NOTIFY_URL", url)
        rules = self.dir / "rules.yaml"
        if self.confirm(f"Write two starter rules to {rules}?"):
            self.write_rules(rules, overview)
        self.check(rules, url)
        self.say("\nAll set. Start watcher now and at every boot with:")
        self.say("  sudo systemctl enable --now watcher")
        return 0

    # --- the steps ----------------------------------------------------------------
    def web_key(self) -> tuple[str, Overview]:
        """Ask (or read) the key, then one real read of the account proves it works."""
        for _ in range(3):
            if self.answers.web_key_file:
                key = self.answers.web_key_file.read_text(encoding="utf-8").strip()
            else:
                self.say("Paste the u_id cookie of a logged-in mexc.com session (starts with WEB).")
                key = self.secret("MEXC web key (not shown): ").strip()
            try:
                settings = Settings(web_key=key, **source_overrides())
                source = open_source(settings, lambda: datetime.now(UTC))
                overview = source.fetch(rows=True, totals=True)
                source.close()
                return key, overview
            except (ValueError, ConfigError, ExchangeError) as exc:
                self.say(f"That did not work: {first_line(exc)}")
                if isinstance(exc, Blocked):
                    self.say(blocked_help(browser_tls()))
                    raise ConfigError("MEXC's web front refused this server; see above") from None
                if self.answers.web_key_file:
                    raise ConfigError("the web key in --web-key-file does not work") from None
        raise ConfigError("no working web key after three tries")

    def notify_url(self) -> str:
        from watcher.notify.adapter import INFO, Message, masked, send, validate_url

        url = self.answers.notify
        if url is None:
            self.say("\n" + TELEGRAM_HELP)
            url = self.secret("Notification URL (not shown): ").strip()
        problem = validate_url(url)
        if problem:
            raise ConfigError(f"notification URL: {problem}")
        ok, _ = send(url, Message("watcher: test message", "watcher setup works.", INFO, "info"))
        shown = masked(url)
        if not ok:
            raise ConfigError(f"the test message to {shown} was not accepted; check the URL")
        self.say(f"A test message went to {shown}.")
        return url

    def write_rules(self, path: Path, overview: Overview) -> None:
        """The starter rules replace the old file only once they parse: a working file is
        never swapped for one that fails ``check``."""
        from watcher.config.rules_file import parse_rules

        text = starter_rules(overview)
        try:
            parse_rules(text, str(path))
        except RulesError as exc:
            raise ConfigError(
                f"the starter rules would not pass check ({exc.problems[0].message}); "
                f"{path} is unchanged"
            ) from None
        fd, name = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(name, 0o640)
        if path.exists():
            path.replace(path.with_name(path.name + ".bak"))
        os.replace(name, path)
        self.say(f"Starter rules written to {path} (the old file, if any, is {path.name}.bak).")

    def check(self, rules: Path, url: str) -> None:
        from watcher.app.preflight import load_checked

        loaded = load_checked(rules, env={**os.environ, "NOTIFY_URL": url})
        found = f"{counted(len(loaded.rules), 'rule')}, {counted(len(loaded.channels), 'channel')}"
        self.say(f"\nwatcher check: {found}: OK")

    # --- helpers --------------------------------------------------------------------
    def confirm(self, question: str) -> bool:
        if self.answers.yes:
            return True
        return self.ask(f"{question} [Y/n] ").strip().lower() in ("", "y", "yes")

    def write_secret(self, path: Path, value: str) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        path.chmod(0o600)

    def write_env(self, name: str, value: str) -> None:
        """Set one variable in watcher.env (600), keeping every other line."""
        path = self.dir / "watcher.env"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        lines = [x for x in lines if not x.startswith(f"{name}=")] + [f"{name}={env_quote(value)}"]
        self.write_secret(path, "\n".join(lines) + "\n")


NAMEABLE = re.compile(r"[A-Z_][A-Z0-9_]*")  # a code the condition language can name


def env_quote(value: str) -> str:
    """A value for ``watcher.env`` that systemd's ``EnvironmentFile=`` and python-dotenv
    (how the installed command reads it) read back as the same text: single quotes, or
    double quotes with ``\\`` and ``"`` escaped when the value holds a single quote.
    Nothing in it is ever run: ``&``, ``;`` and ``${IFS}`` stay text."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError("a value for watcher.env cannot hold a line break")
    if "'" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def starter_rules(overview: Overview) -> str:
    """Two rules a trader would write first, from what the account holds."""
    rows = overview.currencies or {}
    stable = next((c for c in STABLES if c in rows), None)
    nameable = [r for r in rows.values() if NAMEABLE.fullmatch(r.currency)]  # not 1INCH
    biggest = max(nameable, key=lambda r: r.total, default=None)
    rules = []
    if stable is not None:
        floor = max(int(rows[stable].spot / 2), 1)
        rules.append(
            f"  - name: {stable.lower()}-spot-low\n"
            f"    when: {stable}.spot < {floor}\n"
            f"    for: 5m\n"
            f'    message: "{stable} spot is {{value}}, below {{threshold}}"\n'
        )
    if biggest is not None and biggest.currency != stable:
        code = biggest.currency
        rules.append(
            f"  - name: {code.lower()}-drawdown\n"
            f"    # originTotal counts coins; total is converted and follows the price\n"
            f"    when: change({code}.originTotal, 1h) < -10%\n"
            f"    severity: critical\n"
        )
    if len(rules) < 2:
        rules.append("  - name: contract-heavy\n    when: contract / total > 60%\n")
    return (
        "# Written by watcher setup; edit freely and check with: sudo watcher check\n"
        'channels:\n  default: "${NOTIFY_URL}"\nrules:\n' + "".join(rules)
    )


def source_overrides() -> dict[str, str]:
    """Where the account is read from: the settings of the environment (tests: simulator)."""
    keys = ("mexc_url", "source", "proxy", "base_url", "api_key", "network")
    return {k: v for k in keys if (v := os.environ.get(f"WATCHER_{k.upper()}"))}


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def run_setup(answers: Answers) -> int:
    logs.configure("ERROR", "console")
    try:
        return Wizard(answers).run()
    except (KeyboardInterrupt, EOFError):
        print("\nsetup stopped; nothing more was written", file=sys.stderr)
        return 130
    except WatcherError:
        raise
