"""What the Telegram commands do: /status, /balances, /alerts, /ack, /silence, /unsilence.

Every command gets exactly one reply, a mistake included; the reply is HTML for
Telegram (text escaped, balances in a monospace block). The daemon hands in
what it knows (the latest balances per account, the rules); the rest comes
from the state database.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.app.acks import acknowledge
from watcher.config.model import BUILTIN_RULES, RuleSet
from watcher.core.alerts import FIRING, PENDING, describe
from watcher.core.durations import format_duration, parse_duration
from watcher.core.errors import WatcherError
from watcher.core.models import Overview
from watcher.core.numbers import human
from watcher.core.times import shown
from watcher.store import Store

HELP = """watcher commands:
/status: each account's last poll, what fires, the outbox
/balances [CUR] [account]: the latest balances
/positions [account]: open futures positions and their distance to liquidation
/alerts: pending and firing, with since
/ack RULE [CURRENCY] [account]: no repeats until it resolves (or reply /ack to an alert)
/silence RULE DURATION [comment]: mute a rule, e.g. /silence usdt-spot-low 4h topping up
/unsilence ID: end a silence
/help: this list"""
ALERT_LINE = re.compile(  # the head of a FIRING line, as messages.line writes it
    r"^(?:STILL )?FIRING (?P<rule>[a-z0-9-]+)(?: (?P<cur>[A-Z0-9_-]+(?: long| short)?))?"
    r"(?: \((?P<acct>[a-z0-9+-]+)\))?(?: for \S+)?:",
    re.M,
)
TOP = 15


def esc(text: str) -> str:
    """Safe inside Telegram's HTML mode; quotes stay quotes."""
    return html.escape(text, quote=False)


@dataclass
class Context:
    store: Store
    rules: Callable[[], RuleSet]
    balances: Callable[[], Mapping[str, Overview]]
    clock: Callable[[], datetime]
    bot_state: Callable[[], str] = lambda: "connected"


def handle(text: str, replied: str | None, ctx: Context, who: str) -> str:
    """The reply to one command line."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return "commands start with /; try /help"
    name = words[0][1:].split("@", 1)[0].lower()  # the bot checked whose name follows @
    args = words[1:]
    try:
        if name in ("help", "start"):
            return esc(HELP)
        if name == "status":
            return status(ctx)
        if name == "balances":
            return balances(ctx, args)
        if name == "positions":
            return positions(ctx, args)
        if name == "alerts":
            return alerts(ctx)
        if name == "ack":
            return ack(ctx, args, replied, who)
        if name == "silence":
            return silence(ctx, args, who)
        if name == "unsilence":
            return unsilence(ctx, args)
    except WatcherError as exc:
        return esc(str(exc))
    return f"unknown command /{esc(name[:30])}; try /help"


def status(ctx: Context) -> str:
    meta = ctx.store.meta()
    rules = ctx.rules()
    lines = []
    for name in rules.account_names:
        result = meta.get(f"{name}/last_result") or "-"
        when = meta.get(f"{name}/last_poll")
        polled = shown(datetime.fromisoformat(when), "%Y-%m-%d %H:%M:%S") if when else "never"
        lines.append(f"{name}: last poll {polled} ({result})")
    firing = [a for a in ctx.store.load_alerts().values() if a.state == FIRING]
    named = ", ".join(describe(a.key) for a in firing)
    lines.append(f"firing: {len(firing)}" + (f": {named}" if firing else ""))
    lines.append(f"outbox: {ctx.store.outbox_depth()} waiting")
    return esc("\n".join(lines))


def balances(ctx: Context, args: list[str]) -> str:
    rules = ctx.rules()
    accounts = [a for a in args if a in rules.account_names]
    codes = [a.upper() for a in args if a not in accounts]
    shown = []
    for name, overview in sorted(ctx.balances().items()):
        if accounts and name not in accounts:
            continue
        rows = sorted((overview.currencies or {}).values(), key=lambda r: r.total, reverse=True)
        rows = [r for r in rows if not codes or r.currency in codes][:TOP]
        table = [("", "total", "spot", "contract")]
        table += [(r.currency, human(r.total), human(r.spot), human(r.contract)) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        body = "\n".join(
            row[0].ljust(widths[0])
            + "".join(c.rjust(w + 2) for c, w in zip(row[1:], widths[1:], strict=True))
            for row in table
        )
        head = f"{name}:\n" if len(rules.account_names) > 1 else ""
        shown.append(esc(head) + f"<pre>{esc(body)}</pre>")
    if not shown:
        return "no balances yet: the first poll has not finished"
    return "\n".join(shown)


def positions(ctx: Context, args: list[str]) -> str:
    """Each account's open positions, nearest to liquidation first."""
    rules = ctx.rules()
    accounts = [a for a in args if a in rules.account_names]
    shown = []
    for name, overview in sorted(ctx.balances().items()):
        if accounts and name not in accounts:
            continue
        head = f"{name}: " if len(rules.account_names) > 1 else ""
        held = overview.positions
        if held is None:
            why = overview.positions_error or "no rule reads positions"
            shown.append(esc(f"{head}positions not read ({why})"))
            continue
        if not held:
            shown.append(esc(f"{head}no open positions"))
            continue
        near = sorted(held, key=lambda p: (p.liq_distance is None, p.liq_distance or 0))
        lines = [
            f"{p.instance} {human(p.leverage)}x: {human(p.liq_distance, True)} from "
            f"liquidation (mark {human(p.mark)}, liquidation {human(p.liquidation)}), "
            f"pnl {human(p.pnl)}"
            for p in near[:TOP]
        ]
        shown.append(
            esc(head.rstrip() + ("\n" if head else "")) + f"<pre>{esc(chr(10).join(lines))}</pre>"
        )
    return "\n".join(shown) or "no positions yet: the first poll has not finished"


def alerts(ctx: Context) -> str:
    now = ctx.clock()
    active = sorted(
        (a for a in ctx.store.load_alerts().values() if a.state in (PENDING, FIRING)),
        key=lambda a: a.since,
    )
    if not active:
        return "nothing pending or firing"
    acked = {a.key for a in ctx.store.acks()}
    lines = [
        f"{a.state.upper()} {describe(a.key)} since {format_duration(now - a.since)}"
        + (" (acknowledged)" if a.key in acked else "")
        for a in active
    ]
    return esc("\n".join(lines))


TAPS = {"a": "Acknowledge", "s1": "Silence 1h", "s24": "Silence 24h"}


def token(key: tuple[str, str, str | None]) -> str:
    """An alert's name in a button: ``callback_data`` holds at most 64 bytes, and a rule,
    an account and a position's name can be longer than that together."""
    return hashlib.sha256("|".join(k or "" for k in key).encode()).hexdigest()[:12]


def keyboard(ctx: Context) -> dict[str, Any] | None:
    """One row of one-tap actions per firing alert, for /alerts' reply."""
    firing = sorted(
        (a for a in ctx.store.load_alerts().values() if a.state == FIRING), key=lambda a: a.since
    )[:TOP]
    if not firing:
        return None
    rows = []
    for alert in firing:
        name = describe(alert.key)
        rows.append(
            [
                {"text": f"{label}: {name}"[:64] if code == "a" else label,
                 "callback_data": f"{code}:{token(alert.key)}"}
                for code, label in TAPS.items()
            ]
        )  # fmt: skip
    return {"inline_keyboard": rows}


def tap(ctx: Context, data: str, who: str) -> str:
    """What one button does, in the words the tapper sees (and the message then shows)."""
    code, _, wanted = data.partition(":")
    found = next((a for a in ctx.store.load_alerts().values() if token(a.key) == wanted), None)
    if code not in TAPS or found is None:
        return "that alert is no longer pending or firing"
    if code == "a":
        return acknowledge(ctx.store, found.rule, found.currency, found.account, who)
    span = timedelta(hours=1 if code == "s1" else 24)
    ident = ctx.store.add_silence(
        found.rule, found.currency, ctx.clock(), span, f"from Telegram by {who}", found.account
    )
    return f"silence {ident}: {describe(found.key)} muted for {format_duration(span)}"


def ack(ctx: Context, args: list[str], replied: str | None, who: str) -> str:
    if not args and replied:
        found = [m.groupdict() for m in ALERT_LINE.finditer(replied)]
        if not found:
            return "that message names no firing alert; use /ack RULE"
        lines = [acknowledge(ctx.store, f["rule"], f["cur"], f["acct"], who) for f in found]
        return esc("\n".join(lines))
    if not args:
        return "usage: /ack RULE [CURRENCY] [account], or reply /ack to an alert"
    rules = ctx.rules()
    account = next((a for a in args[1:] if a in rules.account_names), None)
    words = [a for a in args[1:] if a != account]
    currency = words[0].upper() if words else None
    if currency and len(words) > 1 and words[1].lower() in ("long", "short"):
        currency = f"{currency} {words[1].lower()}"  # a position: /ack liq-near BTC_USDT long
    return esc(acknowledge(ctx.store, args[0], currency, account, who))


def silence(ctx: Context, args: list[str], who: str) -> str:
    if len(args) < 2:
        return "usage: /silence RULE DURATION [comment], e.g. /silence usdt-spot-low 4h"
    rule, length = args[0], args[1]
    known = {r.name for r in ctx.rules().rules} | set(BUILTIN_RULES)
    if rule not in known:
        return esc(f"no rule named {rule!r}; /alerts lists what fires")
    try:
        span = parse_duration(length)
    except ValueError as exc:
        return esc(f"duration: {exc}")
    if span.total_seconds() <= 0:
        return "the duration must be longer than 0s, e.g. 4h"
    comment = " ".join(args[2:])[:200] or f"from Telegram by {who}"
    ident = ctx.store.add_silence(rule, None, ctx.clock(), span, comment)
    return esc(f"silence {ident}: {rule} muted for {format_duration(span)}")


ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²" and Arabic-Indic digits are not ids


def unsilence(ctx: Context, args: list[str]) -> str:
    if len(args) != 1 or not ID.fullmatch(args[0]):
        return "usage: /unsilence ID (the number /silence gave)"
    if not ctx.store.remove_silence(int(args[0])):
        return f"no silence with id {args[0]}"
    return f"silence {args[0]} removed"
