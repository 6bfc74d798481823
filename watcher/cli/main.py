"""The ``watcher`` command. Every user mistake is one line and an exit code.

Exit codes: 0 ok, 1 alerts firing (``once``) or a failed check of channels,
2 bad configuration or usage, 3 exchange unreachable or erroring.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from watcher import __version__
from watcher.core import logs, times
from watcher.core.durations import counted
from watcher.core.errors import ConfigError, WatcherError

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, str, Handler]] = {}


def command(name: str, purpose: str, example: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = (purpose, example, fn)
        return fn

    return register


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        unit = UNIT_WORD.search(message)
        if message.startswith("unrecognized arguments") and unit:
            message = f"'{unit.group(0)}' is not a duration unit: write durations like 4h or 30m"
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


UNIT_WORD = re.compile(r"\b(?:sec|second|minute|min|hour|hr|day|week)s?\b", re.IGNORECASE)


def _settings(args: argparse.Namespace, one_shot: bool = True) -> Any:
    """Settings, and logging for this command: a one-shot command reports its own
    outcome in one line, so unless WATCHER_LOG_LEVEL says otherwise it logs errors only."""
    from watcher.config.settings import load_settings

    overrides = {
        name: value
        for name in ("rules", "state")
        if (value := getattr(args, name, None)) is not None
    }
    settings = load_settings(**overrides)
    level = settings.log_level
    if one_shot and "log_level" not in settings.given:
        level = "ERROR"
    logs.configure(level, settings.log_format, settings.secret_values())
    times.use_zone(settings.timezone)
    return settings


def _rules(settings: Any) -> Any:
    from watcher.app.preflight import load_checked

    return load_checked(settings.rules)


def _store(settings: Any, snapshot: bool = False) -> Any:
    from watcher.store import open_state

    return open_state(settings, snapshot)


# --- commands -----------------------------------------------------------------


@command("run", "Run the daemon: poll, evaluate, notify, forever.", "watcher run")
def cmd_run(args: argparse.Namespace) -> int:
    from watcher.daemon.build import run

    settings = _settings(args, one_shot=False)
    return run(settings)  # each account's source checks its own secrets


@command(
    "once",
    "Poll once, evaluate, persist and notify; print balances and alerts.",
    "watcher once --dry-run --json",
)
def cmd_once(args: argparse.Namespace) -> int:
    from watcher.app.poll import Watcher
    from watcher.cli.views import once_json, once_text
    from watcher.core.errors import StoreError
    from watcher.store import shared
    from watcher.store.lease import holder
    from watcher.store.lock import StateLock

    settings = _settings(args)
    rules = _rules(settings)
    if not rules.accounts:
        settings.require_secrets()  # before the state is touched: one line, exit 2
    dry_run, note = args.dry_run, None
    lock = StateLock(settings.state) if not shared(settings) else None
    if not dry_run and lock is not None:
        try:
            lock.acquire()
        except StoreError:  # a daemon owns the state: two writers would send twice
            dry_run = True
            note = (
                f"watcher: a running watcher (PID {lock.holder()}) owns {settings.state}; "
                "this was a dry run: nothing written, nothing sent"
            )
    store = _store(settings, snapshot=dry_run)
    leader = holder(store) if lock is None else None
    if leader is not None and not leader.expired and not dry_run:
        dry_run, store.readonly = True, True  # the pair's leader owns the state
        note = (
            f"watcher: {leader.name} leads on this state; this was a dry run: nothing "
            "written, nothing sent"
        )
    # With --json, stdout is for the JSON alone: a console:// channel prints to stderr.
    console = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        watcher = Watcher.open(settings, rules, store)
        with console:
            result = watcher.poll(dry_run=dry_run)
            if not dry_run:
                watcher.deliver()
    finally:
        store.close()
        if lock is not None:
            lock.release()
    print(json.dumps(once_json(settings, result)) if args.json else once_text(result))
    if note:
        print(note, file=sys.stderr)
    if result.error is not None:
        print(f"watcher: {result.error}", file=sys.stderr)
        return result.error.exit_code
    return 1 if result.firing else 0


@command(
    "migrate",
    "Copy the state into another database (PostgreSQL, for a pair); stop watcher first.",
    "watcher migrate --to postgresql://watcher@db.internal/watcher",
)
def cmd_migrate(args: argparse.Namespace) -> int:
    from watcher.store import open_state, shared
    from watcher.store.copy import copy_state
    from watcher.store.lock import StateLock

    settings = _settings(args)
    target = settings.replace(state=args.to)  # the same check: no password in the URL
    if str(target.state) == str(settings.state):
        raise ConfigError("watcher migrate: --to names the state it would copy from")
    if not shared(settings) and not Path(settings.state).exists():
        raise ConfigError(f"no state database at {settings.state}; nothing to migrate")
    lock = StateLock(settings.state) if not shared(settings) else None
    if lock is not None:
        lock.acquire()  # a running daemon would go on writing the old state
    try:
        source, into = open_state(settings), open_state(target)
        try:
            counts = copy_state(source, into)
        finally:
            source.close()
            into.close()
    finally:
        if lock is not None:
            lock.release()
    print(
        f"copied {counted(counts['alerts'], 'alert')}, "
        f"{counted(counts['outbox'], 'waiting message')}, "
        f"{counted(counts['history'], 'history row')}, {counted(counts['silences'], 'silence')} "
        f"and {counted(counts['acks'], 'ack')} from {source.path} to {into.path}"
    )
    print(f"next: set WATCHER_STATE={into.path} on every instance, and start watcher")
    return 0


@command("check", "Validate the rules file and settings; name every problem.", "watcher check")
def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    rules = _rules(settings)
    if not rules.accounts:  # the one account of the environment: its key, as run needs it
        settings.require_secrets()
    for warning in rules.warnings:
        print(f"watcher: {warning}", file=sys.stderr)
    found = f"{counted(len(rules.rules), 'rule')}, {counted(len(rules.channels), 'channel')}"
    print(f"{settings.rules}: {found}: OK")
    return 0


@command(
    "test-notify",
    "Send a test message to channels and report per URL.",
    "watcher test-notify default phone",
)
def cmd_test_notify(args: argparse.Namespace) -> int:
    from watcher.notify.delivery import test_channels

    settings = _settings(args)
    rules = _rules(settings)
    names = args.channels or sorted(rules.channels)
    unknown = [n for n in names if n not in rules.channels]
    if unknown:
        raise ConfigError(f"no channel named {unknown[0]!r} (have: {', '.join(rules.channels)})")
    results = test_channels(rules.channels, names, settings.name)
    for channel, url, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {channel}: {url}")
    return 0 if all(ok for _, _, ok in results) else 1


@command(
    "status",
    "Show the last poll, alerts, silences and outbox (no exchange call).",
    "watcher status --json",
)
def cmd_status(args: argparse.Namespace) -> int:
    from watcher.cli.views import status_json, status_text

    settings = _settings(args)
    if not str(settings.state).startswith("postgres") and not Path(settings.state).exists():
        raise ConfigError(f"no state database at {settings.state}; has 'watcher run' started?")
    store = _store(settings)
    try:
        data = status_json(store, settings.name)
    finally:
        store.close()
    print(json.dumps(data, indent=2) if args.json else status_text(data))
    return 0


@command(
    "silence",
    "Mute notifications of a rule for a while (evaluation goes on).",
    "watcher silence usdt-spot-low --for 4h --comment 'topping up'",
)
def cmd_silence(args: argparse.Namespace) -> int:
    from watcher.core.durations import format_duration, parse_duration, utcnow

    settings = _settings(args)
    store = _store(settings)
    try:
        if args.list or not args.rule:
            for s in store.silences(utcnow()):
                who = f"{s.rule} {s.currency}" if s.currency else s.rule
                who += f" on {s.account}" if s.account else ""
                print(f"{s.id}  {who}  until {times.shown(s.ends)}  {s.comment}".rstrip())
            return 0
        try:
            length = parse_duration(args.duration)
        except ValueError as exc:
            raise ConfigError(f"--for: {exc}") from None
        if length <= timedelta(0):
            raise ConfigError("--for must be longer than 0s, e.g. --for 4h")
        currency = _silence_target(args, settings)
        account = _account_of(args, settings)
        ident = store.add_silence(args.rule, currency, utcnow(), length, args.comment, account)
    finally:
        store.close()
    print(f"silence {ident}: {args.rule} muted for {format_duration(length)}")
    return 0


def _account_of(args: argparse.Namespace, settings: Any) -> str | None:
    """``--account NAME``: one account only (default: every account)."""
    if getattr(args, "account", None) is None:
        return None
    from watcher.config.rules_file import account_index

    names = account_index(settings.rules)
    if args.account not in names:
        raise ConfigError(f"no account named {args.account!r} (have: {', '.join(names)})")
    return str(args.account)


def _silence_target(args: argparse.Namespace, settings: Any) -> str | None:
    """The rule must exist; a currency is upper case and only means something with ``each``."""
    from watcher.config.rules_file import rule_index

    index = rule_index(settings.rules)
    if args.rule not in index:
        raise ConfigError(f"no rule named {args.rule!r} in {settings.rules}")
    currency = args.currency
    if currency is None:
        return None
    if currency != currency.upper():
        print(
            f"watcher: warning: currency codes are upper case; using {currency.upper()}",
            file=sys.stderr,
        )
        currency = currency.upper()
    if not index[args.rule]:
        print(
            f"watcher: warning: rule {args.rule} has no 'each: currency', so --currency "
            f"{currency} matches none of its alerts; the silence covers nothing",
            file=sys.stderr,
        )
    return currency


@command(
    "ack",
    "Acknowledge a firing alert: no repeats until it resolves (its RESOLVED still comes).",
    "watcher ack usdt-spot-low --account hedge",
)
def cmd_ack(args: argparse.Namespace) -> int:
    from watcher.app.acks import acknowledge

    settings = _settings(args)
    store = _store(settings)
    try:
        account = _account_of(args, settings)
        currency = args.currency.upper() if args.currency else None
        done = acknowledge(store, args.rule, currency, account, "cli")
    finally:
        store.close()
    print(done)
    return 0


@command("unsilence", "End a silence early.", "watcher unsilence 3")
def cmd_unsilence(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    try:
        if not store.remove_silence(args.id):
            raise ConfigError(f"no silence with id {args.id} (see watcher silence --list)")
    finally:
        store.close()
    print(f"silence {args.id} removed")
    return 0


@command(
    "test",
    "Run rule unit tests: timelines of balances and the alerts they must raise.",
    "watcher test tests/rules/example.test.yaml",
)
def cmd_test(args: argparse.Namespace) -> int:
    from watcher.app.rule_tests import run_files

    logs.configure("WARNING", "console")
    return run_files([Path(p) for p in args.files], sys.stdout)


@command(
    "replay",
    "Count how often the rules would have fired over recorded balances.",
    "watcher replay --since 7d --for 10m",
)
def cmd_replay(args: argparse.Namespace) -> int:
    from watcher.app.replay import from_file, from_polls, override, replay
    from watcher.core.durations import format_duration, parse_duration, utcnow

    settings = _settings(args)
    rules = _rules(settings)
    changes = {}
    for name, value in (("for_", args.for_), ("keep_firing_for", args.keep_firing_for)):
        if value is not None:
            try:
                changes[name] = parse_duration(value)
            except ValueError as exc:
                raise ConfigError(f"--{name.rstrip('_').replace('_', '-')}: {exc}") from None
    rules = override(rules, **changes) if changes else rules
    if args.source:
        name = _account_of(args, settings) or rules.account_names[0]
        overviews = from_file(Path(args.source), name)
        stats, polls = replay(rules, overviews, settings.interval, name)
    else:
        try:
            since = utcnow() - parse_duration(args.since)
        except ValueError as exc:
            raise ConfigError(f"--since: {exc}") from None
        store = _store(settings, snapshot=True)
        try:
            name = _account_of(args, settings) or rules.account_names[0]
            recorded = from_polls(store.polls(since, name))
            stats, polls = replay(rules, recorded, settings.interval, name)
        finally:
            store.close()
    tuned = ", ".join(f"{k.rstrip('_')}={format_duration(v)}" for k, v in changes.items())
    print(f"{counted(polls, 'poll')} replayed{' with ' + tuned if tuned else ''}")
    rows = [
        [
            name,
            str(s.fired),
            str(s.resolved),
            format_duration(s.firing_time),
            format_duration(s.longest),
        ]
        for name, s in stats.items()
    ]
    from watcher.cli.table import render

    headers = ["rule", "fired", "resolved", "time firing", "longest"]
    print(render(headers, rows, right={1, 2, 3, 4}))
    from watcher.app.replay import LEAVES_OUT

    print(f"note: {LEAVES_OUT}")
    return 0


@command(
    "record",
    "Append raw overviews from the exchange to a JSON-lines file for replay.",
    "watcher record --to balances.jsonl --count 60",
)
def cmd_record(args: argparse.Namespace) -> int:
    import time

    from watcher.app.replay import overview_to_json
    from watcher.core.durations import utcnow
    from watcher.sources import open_source

    settings = _settings(args)
    name, spec, positions = "main", None, False
    if args.account or Path(settings.rules).exists():  # accounts live in the rules file
        rules = _rules(settings)
        positions = rules.needs.positions  # recorded too, when rules read them
        name = _account_of(args, settings) or rules.account_names[0]
        spec = next((a for a in rules.accounts if a.name == name), None)
    source = open_source(settings, utcnow, account=spec)
    count = 0
    try:
        with open(args.to, "a", encoding="utf-8") as out:
            if args.redact:
                listen(source, out)
            while args.count is None or count < args.count:
                if count:
                    time.sleep(settings.interval.total_seconds())
                overview = source.fetch(rows=True, totals=True, positions=positions)
                if not args.redact:
                    out.write(overview_to_json(overview, name) + "\n")
                out.flush()
                count += 1
                stamp = times.shown(overview.fetched_at, "%H:%M:%S")
                print(f"{stamp}: capture {count} of {name} appended to {args.to}", flush=True)
    finally:
        source.close()
    print(f"{count} overview(s) of {name} appended to {args.to}")
    return 0


def listen(source: Any, out: Any) -> None:
    """``record --redact``: every answer the source's clients receive, redacted."""
    from watcher.app.captures import Redactor

    clients = [getattr(source, n, None) for n in ("http", "futures")]
    clients = [c for c in clients if c is not None and hasattr(c, "heard")]
    if not clients:
        raise ConfigError("record --redact captures the web sources (mexc, bypass), not ccxt")
    redactor = Redactor()
    for client in clients:
        client.heard = lambda url, answer: out.write(redactor.line(url, answer) + "\n")


@command(
    "balances",
    "Show every balance of every account, all wallets (once shows what the rules read).",
    "watcher balances --json",
)
def cmd_balances(args: argparse.Namespace) -> int:
    import json

    from watcher.app.poll import Watcher
    from watcher.cli.table import balances
    from watcher.cli.views import balances_json
    from watcher.core.errors import ExchangeError

    settings = _settings(args)
    rules = _rules(settings)
    if not rules.accounts:
        settings.require_secrets()
    store = _store(settings, snapshot=True)  # reads the exchange, writes nothing
    try:
        found: dict[str, Any] = {}
        for name, account in Watcher.open(settings, rules, store).accounts.items():
            try:
                found[name] = (account.fetch(rows=True, totals=True), None)
            except ExchangeError as exc:
                found[name] = (None, str(exc))
    finally:
        store.close()
    if args.json:
        shown = {n: {"balances": balances_json(o), "error": e} for n, (o, e) in found.items()}
        print(json.dumps({"accounts": shown}, indent=2))
    else:
        for name, (overview, error) in found.items():
            print(f"{name}:\n" + (balances(overview) if overview else f"  no data: {error}"))
    return 3 if any(error for _, error in found.values()) else 0


@command(
    "digest",
    "Print today's daily digest (balances, what fires, outbox); --send sends it now.",
    "watcher digest --send",
)
def cmd_digest(args: argparse.Namespace) -> int:
    from watcher.app.poll import Watcher
    from watcher.core.durations import utcnow

    settings = _settings(args)
    rules = _rules(settings)
    if rules.digest is None:
        raise ConfigError(
            f"{settings.rules} has no digest section; add e.g. "
            'digest: {at: "08:00", timezone: Europe/Berlin}'
        )
    store = _store(settings, snapshot=not args.send)
    try:
        watcher = Watcher.open(settings, rules, store)
        now = utcnow()
        if args.send:
            watcher.daily.maybe(now, force=True)
            counts = watcher.deliver()
            print(f"digest sent to {', '.join(rules.digest.notify)} ({counts.sent} delivered)")
        else:
            print(watcher.daily.text(now))
    finally:
        store.close()
    return 0


@command(
    "setup",
    "Guided first setup: web key, balances, a notification URL, starter rules.",
    "watcher setup --notify 'tgram://TOKEN/CHAT_ID'",
)
def cmd_setup(args: argparse.Namespace) -> int:
    import os

    from watcher.cli.setup_wizard import Answers, run_setup

    config = args.config_dir or os.environ.get("WATCHER_CONFIG_DIR") or "/etc/watcher"
    web_key_file = Path(args.web_key_file) if args.web_key_file else None
    return run_setup(Answers(web_key_file, args.notify, args.yes, Path(config)))


@command(
    "demo",
    "Play a scripted scenario against the built-in simulated exchange.",
    "watcher demo --forever",
)
def cmd_demo(args: argparse.Namespace) -> int:
    from watcher.cli.demo import run_demo

    return run_demo(forever=args.forever, step=args.step)


@command(
    "doctor",
    "Check every link (DNS, TCP, TLS, the key, channels, Telegram, the database); paste-safe.",
    "watcher doctor --send",
)
def cmd_doctor(args: argparse.Namespace) -> int:
    from watcher.app.preflight import load_checked
    from watcher.cli.doctor import Doctor, Verdict
    from watcher.core.errors import RulesError

    settings = _settings(args)
    try:
        rules = load_checked(settings.rules)
    except RulesError as exc:
        print(Verdict(True, "settings", f"source {settings.source}").line())
        print(Verdict(False, "rules", str(exc.problems[0])).line())
        print(f"doctor: the rules file has {counted(len(exc.problems), 'problem')}; "
              "watcher check lists them")  # fmt: skip
        return 1
    return Doctor(settings, rules, send=args.send).run(print)


@command(
    "schema",
    "Print the JSON Schema of the rules file, for editors that check YAML as you type.",
    "watcher schema > rules.schema.json",
)
def cmd_schema(args: argparse.Namespace) -> int:
    from watcher.config.schema import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


# --- parser -------------------------------------------------------------------


def build_parser() -> Parser:
    parser = Parser(
        prog="watcher",
        description="Balance alerts for a MEXC account, delivered through apprise.",
        epilog="example: watcher check --rules rules.yaml   (settings: WATCHER_* variables)",
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (purpose, example, _) in COMMANDS.items():
        child = sub.add_parser(
            name, help=purpose, description=purpose, epilog=f"example: {example}"
        )
        if name not in ("demo", "test", "setup", "schema"):
            child.add_argument("--rules", metavar="PATH", help="rules file (WATCHER_RULES)")
            child.add_argument("--state", metavar="PATH", help="state database (WATCHER_STATE)")
        _arguments(name, child)
    return parser


def _arguments(name: str, child: Parser) -> None:
    if name == "once":
        child.add_argument("--dry-run", action="store_true", help="send nothing, write nothing")
        child.add_argument("--json", action="store_true", help="print one JSON object")
    elif name in ("status", "balances"):
        child.add_argument("--json", action="store_true", help="print one JSON object")
    elif name == "test-notify":
        child.add_argument("channels", nargs="*", metavar="CHANNEL", help="default: all")
    elif name == "silence":
        child.add_argument("rule", nargs="?", metavar="RULE")
        child.add_argument("--currency", metavar="CODE", help="only this currency's instance")
        child.add_argument("--account", metavar="NAME", help="only this account's instances")
        child.add_argument("--for", dest="duration", default="1h", metavar="DURATION")
        child.add_argument("--comment", default="", help="why, for whoever reads the list")
        child.add_argument("--list", action="store_true", help="list active silences")
    elif name == "ack":
        child.add_argument("rule", metavar="RULE")
        child.add_argument("--currency", metavar="CODE", help="only this currency's instance")
        child.add_argument("--account", metavar="NAME", help="only this account's instance")
    elif name == "migrate":
        child.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST/DB")
    elif name == "unsilence":
        child.add_argument("id", type=int, metavar="ID")
    elif name == "test":
        child.add_argument("files", nargs="+", metavar="TESTFILE")
    elif name == "replay":
        child.add_argument("--since", default="7d", help="how far back (stored history)")
        child.add_argument("--from", dest="source", metavar="FILE", help="a recorded file")
        child.add_argument("--for", dest="for_", metavar="DURATION", help="override 'for'")
        child.add_argument("--keep-firing-for", metavar="DURATION", help="override it too")
        child.add_argument("--account", metavar="NAME", help="which account (default: the first)")
    elif name == "record":
        child.add_argument("--to", required=True, metavar="FILE")
        child.add_argument(
            "--redact", action="store_true", help="raw answers, amounts and secrets replaced"
        )
        child.add_argument("--account", metavar="NAME", help="which account (default: the first)")
        child.add_argument("--count", type=int, metavar="N", help="stop after N (default: never)")
    elif name == "setup":
        child.add_argument("--web-key-file", metavar="FILE", help="read the web key from FILE")
        child.add_argument("--notify", metavar="URL", help="the notification URL (apprise)")
        child.add_argument("--yes", action="store_true", help="accept the starter rules")
        child.add_argument("--config-dir", metavar="DIR", help="default: /etc/watcher")
    elif name == "digest":
        child.add_argument("--send", action="store_true", help="send it now, through the outbox")
    elif name == "doctor":
        child.add_argument("--send", action="store_true", help="also send each channel a test")
    elif name == "demo":
        child.add_argument("--forever", action="store_true", help="keep running after the script")
        child.add_argument("--step", type=float, default=2.0, help="seconds per poll (default 2)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command][2](args)
    except WatcherError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"watcher: {line}", file=sys.stderr)
        return exc.exit_code
    except sqlite3.DatabaseError as exc:  # damage found after the file opened
        from watcher.store.db import damaged

        print(f"watcher: {damaged(None, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
