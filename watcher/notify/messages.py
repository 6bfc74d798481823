"""What a person reads at 3 am: one line per alert, numbers for people, a scannable title.

Pure formatting of decided notices. Every line names its alert; a RESOLVED
line says what ended and how long it lasted; several waiting notices about
one alert become that alert's history on one line, ending with its state now.
Markdown (the alert name bold, everything else escaped) for services that
render it; plain text for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from watcher.core.alerts import FIRING, RESOLVED, Notice
from watcher.core.durations import format_duration
from watcher.core.numbers import human
from watcher.core.times import label, local

WORDS = {
    FIRING: "FIRING",
    "repeat": "STILL FIRING",
    RESOLVED: "RESOLVED",
    "rejected": "RELOAD REJECTED",  # about the rules file, not an alert
    "reloaded": "RELOADED",
    "digest": "DIGEST",
    "ended": "ENDED",  # a firing alert whose rule was removed
    "takeover": "TOOK OVER",  # the standby of a pair leads now
}
CALM = (RESOLVED, "reloaded", "digest", "ended", "takeover")  # kinds that say nothing needs doing
SEVERITY_ORDER = ("critical", "warning", "info")
BUILTIN_RESOLVED = {
    "exchange-unreachable": "the exchange answers again",
    "auth-failed": "the exchange accepts the key again",
    "network-mismatch": "the exchange serves the configured network again",
    "web-key-expiry": "a new web key is in use",
}
TITLE_WORDS = {
    RESOLVED: "resolved",
    "digest": "daily digest",
    "rejected": "rules reload rejected",
    "reloaded": "rules reloaded",
    "ended": "ended",
    "takeover": "took over",
}
_MARKDOWN = re.compile(r"([\\`*_\[\]~])")  # what changes meaning mid-line


def escape(text: str) -> str:
    """Markdown's special characters, backslash-escaped: a user's ``_`` stays a ``_``."""
    return _MARKDOWN.sub(r"\\\1", text)


def _values(notice: Notice) -> str:
    value, threshold = human(notice.value, notice.percent), human(notice.threshold, notice.percent)
    return f"value {value}, threshold {threshold}"


class Style:
    """Plain text, or markdown with the alert's name in bold."""

    def __init__(self, markdown: bool) -> None:
        self.markdown = markdown

    def text(self, text: str) -> str:
        return escape(text) if self.markdown else text

    def name(self, notice: Notice) -> str:
        who = f"{notice.rule} {notice.currency}" if notice.currency else notice.rule
        where = f" ({self.text(notice.account)})" if notice.account else ""
        return (f"**{escape(who)}**" if self.markdown else who) + where


def detail(notice: Notice) -> str:
    """What the alert is about, after its name: the rule's words or the default."""
    if notice.kind in ("rejected", "reloaded", "ended"):
        return notice.text or ""
    if notice.kind == RESOLVED:
        if notice.rule in BUILTIN_RESOLVED:
            return BUILTIN_RESOLVED[notice.rule]
        if notice.text and not notice.condition:  # e.g. "the position closed"
            return notice.text
        if notice.windowed:
            return f"{notice.condition} is no longer true"
        if notice.cleared:
            return f"{notice.condition} holds ({_values(notice)})"
        return f"{notice.condition} no longer holds ({_values(notice)})"
    if notice.text:
        return notice.text
    if notice.condition:
        return f"{notice.condition} ({_values(notice)})"
    return _values(notice)


def lasted(notice: Notice) -> timedelta:
    return max(notice.at - (notice.fired_at or notice.since), timedelta(0))


def line(notice: Notice, style: Style) -> str:
    """One alert, one line (a digest is its own few lines)."""
    if notice.kind in ("digest", "takeover"):  # their own words, whole
        return style.text(notice.text or "")
    word = WORDS[notice.kind]
    head = f"{word} {style.name(notice)}"
    if notice.kind == RESOLVED:
        head += f" after {format_duration(lasted(notice))}"
    elif notice.kind == "repeat":
        head += f" for {format_duration(lasted(notice))}"
    return f"{head}: {style.text(detail(notice))}"


def history(notices: Sequence[Notice], style: Style) -> str:
    """Several waiting notices about one alert: its history, ending with its state now."""
    steps = [notices[0]] + [n for n in notices[1:] if n.kind != "repeat"]
    if notices[-1] not in steps:
        steps.append(notices[-1])
    chain = " -> ".join(f"{WORDS[n.kind]} {local(n.at):%H:%M}" for n in steps)
    last = notices[-1]
    now = "resolved" if last.kind == RESOLVED else "still firing"
    zone = label(last.at)
    return f"{style.name(last)}: {chain} {zone} ({now}); {style.text(detail(last))}"


def body_lines(notices: Sequence[Notice], style: Style) -> list[str]:
    """Lines in decision order; the notices of one alert collapse into one history line."""
    by_alert: dict[tuple[str | None, str, str | None], list[Notice]] = {}
    for notice in notices:
        by_alert.setdefault((notice.account, notice.rule, notice.currency), []).append(notice)
    lines = []
    for group in by_alert.values():
        lines.append(line(group[0], style) if len(group) == 1 else history(group, style))
    return lines


def final_kinds(notices: Sequence[Notice]) -> list[Notice]:
    """The last notice of each alert: what its line says now."""
    last: dict[tuple[str | None, str, str | None], Notice] = {}
    for notice in notices:
        last[(notice.account, notice.rule, notice.currency)] = notice
    return list(last.values())


def worst_severity(notices: Sequence[Notice]) -> str | None:
    active = [n.severity for n in final_kinds(notices) if n.kind not in CALM]
    return min(active, key=SEVERITY_ORDER.index) if active else None


def title(notices: Sequence[Notice], name: str) -> str:
    """``watcher vps-1: 2 firing, 1 resolved (critical)``."""
    counts: dict[str, int] = {}
    for notice in final_kinds(notices):
        word = TITLE_WORDS.get(notice.kind, "firing")
        counts[word] = counts.get(word, 0) + 1
    order = (
        "firing",
        "resolved",
        "took over",
        "rules reload rejected",
        "rules reloaded",
        "daily digest",
    )
    summary = ", ".join(
        f"{counts[w]} {w}" if w in ("firing", "resolved") else w for w in order if w in counts
    )
    worst = worst_severity(notices)
    who = f"watcher {name}" if name else "watcher"
    accounts = {n.account for n in notices}
    if len(accounts) == 1 and None not in accounts:
        who += f"/{accounts.pop()}"
    return f"{who}: {summary}" + (f" ({worst})" if worst else "")
