"""Replay: how often would these rules have fired over recorded balances?

The sources are the values the daemon stored (``history``: every series the
rules read) or a JSON-lines file written by ``watcher record``. The daemon's
own evaluator runs over them; nothing is sent and nothing is stored. Both
sources hold successful polls only, so replay leaves out the built-in alerts
(it cannot know when the exchange failed) and silences (they mute messages,
not the counts): ``LEAVES_OUT`` says so in the output.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from watcher.app.timeline import Held, steps
from watcher.config.model import RuleSet
from watcher.core.alerts import FIRING, MAIN, RESOLVED, Alert, Key
from watcher.core.errors import ConfigError
from watcher.core.models import (
    ORIGIN_WALLETS,
    ROW_FIELDS,
    WALLETS,
    Balance,
    Overview,
    Totals,
    amount,
)
from watcher.core.positions import MARK, as_json, from_json, positions_at
from watcher.engine.evaluate import evaluate_poll
from watcher.engine.lookback import History

ZERO = Decimal(0)
DEFAULT_INTERVAL = timedelta(seconds=60)
LEAVES_OUT = "built-in alerts and silences are not replayed (only successful polls are kept)"


def overview_to_json(overview: Overview, account: str = MAIN) -> str:
    """One line of a ``watcher record`` file."""
    data: dict[str, Any] = {
        "account": account,
        "fetched_at": overview.fetched_at.isoformat(),
        "is_testnet": overview.is_testnet,
    }
    if overview.currencies is not None:
        data["currencies"] = {
            code: {f: str(getattr(row, f)) for f in ROW_FIELDS}
            for code, row in overview.currencies.items()
        }
    if overview.totals is not None:
        data["totals"] = {f: str(getattr(overview.totals, f)) for f in WALLETS}
    if overview.positions is not None:
        data["positions"] = [as_json(p) for p in overview.positions]
    return json.dumps(data)


def build_overview(
    when: datetime,
    currencies: dict[str, dict[str, Any]] | None,
    totals: dict[str, Any] | None,
    is_testnet: bool = False,
) -> Overview:
    """An overview from partial field maps: a missing field is zero, a missing
    ``total`` is the sum of the wallets given."""
    rows = None
    if currencies is not None:
        rows = {
            code: Balance(currency=code, **_fields(values, True))
            for code, values in currencies.items()
        }
    account = Totals(**_fields(totals, False)) if totals is not None else None
    return Overview(fetched_at=when, is_testnet=is_testnet, currencies=rows, totals=account)


def _fields(values: dict[str, Any], origin: bool) -> dict[str, Decimal]:
    allowed = ROW_FIELDS if origin else WALLETS
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise ValueError(f"unknown field '{unknown[0]}' (fields: {', '.join(allowed)})")
    out = {f: _amount(f, values.get(f, 0)) for f in allowed}
    if "total" not in values:
        out["total"] = sum((out[w] for w in WALLETS[1:]), ZERO)
    if origin and "originTotal" not in values:
        out["originTotal"] = sum((out[o] for o in ORIGIN_WALLETS[1:]), ZERO)
    return out


def _amount(name: str, value: Any) -> Decimal:
    """A hand-written or recorded amount; YAML and JSON give floats, taken by their text."""
    try:
        return amount(str(value) if isinstance(value, float) else value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def from_file(path: Path, account: str = MAIN) -> Iterator[Overview]:
    """The recorded overviews of one account (a line without ``account`` is ``main``'s)."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if data.get("account", MAIN) != account:
                    continue
                overview = build_overview(
                    datetime.fromisoformat(data["fetched_at"]),
                    data.get("currencies"),
                    data.get("totals"),
                    bool(data.get("is_testnet", False)),
                )
                if isinstance(data.get("positions"), list):
                    held = tuple(from_json(p) for p in data["positions"])
                    overview = replace(overview, positions=held)
                yield overview
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}:{number}: not a recorded overview: {exc}") from None


def from_polls(polls: Iterable[tuple[datetime, dict[str, Decimal]]]) -> Iterator[Overview]:
    """Stored polls (``Store.polls``: every key's value at each poll) back into overviews."""
    for when, values in polls:
        codes: dict[str, dict[str, Decimal]] = defaultdict(dict)
        for key, value in values.items():
            code, _, name = key.rpartition(".")
            codes[code][name] = value
        account = codes.pop("ACCOUNT", None)
        held = {c: codes.pop(c) for c in [c for c in codes if c.startswith(MARK)]}
        rows = {c: {**dict.fromkeys(ROW_FIELDS, ZERO), **v} for c, v in codes.items()}
        totals = {**dict.fromkeys(WALLETS, ZERO), **account} if account else None
        overview = build_overview(when, rows or None, totals)
        yield replace(overview, positions=positions_at(held)) if held else overview


@dataclass
class Stats:
    fired: int = 0
    resolved: int = 0
    firing_time: timedelta = timedelta(0)
    longest: timedelta = timedelta(0)


def replay(
    rules: RuleSet,
    overviews: Iterable[Overview],
    interval: timedelta = DEFAULT_INTERVAL,
    account: str = MAIN,
) -> tuple[dict[str, Stats], int]:
    """Run the rules over the overviews as the daemon would have, polling every
    ``interval`` (each overview holds until the next); per-rule statistics and polls."""
    stats = {rule.name: Stats() for rule in rules.rules_for(account)}
    alerts: dict[Key, Alert] = {}
    history = History()
    started: dict[tuple[str, str | None], datetime] = {}
    polls, last = 0, None
    for last, overview in stepped(list(overviews), interval):
        polls += 1
        outcome, _ = evaluate_poll(rules, alerts, history, last, overview, account=account)
        for standing in outcome.standings:
            key = (standing.rule, standing.currency)
            if standing.state == FIRING and key not in started:
                started[key] = last
                stats[standing.rule].fired += 1
            elif standing.state == RESOLVED and key in started:
                _close(stats[standing.rule], last - started.pop(key))
                stats[standing.rule].resolved += 1
        alerts = outcome.alerts
    for key, since in started.items():
        if last is not None:
            _close(stats[key[0]], last - since)
    return stats, polls


def stepped(overviews: list[Overview], interval: timedelta) -> Iterator[tuple[datetime, Overview]]:
    """The daemon's polls over a recording: every ``interval``, the overview in force."""
    if not overviews:
        return
    held = Held([(o.fetched_at, o) for o in overviews])
    for now in steps(held.first, held.last, interval):
        overview = held.at(now)
        assert overview is not None
        yield now, replace(overview, **{"fetched_at": now})


def _close(stats: Stats, episode: timedelta) -> None:
    stats.firing_time += episode
    stats.longest = max(stats.longest, episode)


def override(rules: RuleSet, **policy: Any) -> RuleSet:
    """The same rules with ``for``/``keep_firing_for`` forced, to tune them by replay."""
    changed = tuple(replace(r, policy=replace(r.policy, **policy)) for r in rules.rules)
    return replace(rules, rules=changed)
