"""What ``once`` and ``status`` print: readable tables or one JSON object."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from watcher.app.poll import PollResult
from watcher.cli import table
from watcher.config.settings import Settings
from watcher.core.alerts import MAIN, describe
from watcher.core.durations import format_duration
from watcher.core.models import ROW_FIELDS, WALLETS, Overview
from watcher.core.numbers import human
from watcher.core.positions import as_json
from watcher.core.times import label, local, shown, stamp
from watcher.engine.evaluate import Standing
from watcher.store import Store
from watcher.store.lease import holder


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def alert_json(standing: Standing) -> dict[str, Any]:
    return {
        "account": standing.account,
        "rule": standing.rule,
        "currency": standing.currency,
        "state": standing.state,
        "value": _dec(standing.value),
        "threshold": _dec(standing.threshold),
        "severity": standing.severity,
        "since": stamp(standing.since),
    }


def once_json(settings: Settings, result: PollResult) -> dict[str, Any]:
    notifications = [
        {
            "channel": channel,
            "account": n.account,
            "rule": n.rule,
            "currency": n.currency,
            "kind": n.kind,
        }
        for n in result.outcome.notices
        for channel in n.channels
    ]
    accounts = {
        name: {
            "error": None if answer.error is None else str(answer.error),
            "balances": balances_json(answer.overview),
        }
        for name, answer in result.accounts.items()
    }
    return {
        "source": settings.source,
        "network": settings.network if settings.source == "bypass" else None,
        "fetched_at": stamp(result.overview.fetched_at if result.overview else result.at),
        "error": None if result.error is None else str(result.error),
        "balances": balances_json(result.overview),
        "accounts": accounts,
        "alerts": [alert_json(r) for r in all_standings(result)],
        "notifications": notifications,
    }


def balances_json(overview: Overview | None) -> dict[str, Any] | None:
    """What the rules saw, as exact decimal strings; an unreadable row says ``no_data``, and
    ``unlisted`` says what a currency the answer did not list holds: zero, or no data (when
    the answer could not vouch for being whole), with the ``problems`` that made it so."""
    if overview is None:
        return None
    rows: dict[str, Any] | None = None
    if overview.currencies is not None:
        rows = {
            code: {**_amounts(row, ROW_FIELDS), "no_data": False}
            for code, row in sorted(overview.currencies.items())
        }
        rows |= {code: {"no_data": True} for code in sorted(overview.nodata)}
    totals = _amounts(overview.totals, WALLETS) if overview.totals is not None else None
    unlisted = "zero" if overview.complete else "no data"
    held = overview.positions
    return {
        "rows": rows,
        "totals": totals,
        "positions": None if held is None else [as_json(p) for p in held],
        "positions_error": overview.positions_error,
        "quote": overview.quote,  # what converted amounts are in; None: the exchange's unit
        "unlisted": unlisted,
        "problems": [*overview.problems],
    }


def _amounts(item: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {name: str(getattr(item, name)) for name in names}


def all_standings(result: PollResult) -> list[Standing]:
    """This evaluation's standings, then instances it did not touch (e.g. exchange down)."""
    standings = list(result.outcome.standings)
    seen = {(r.account, r.rule, r.currency) for r in standings}
    for alert in result.outcome.alerts.values():
        if alert.key not in seen:
            standings.append(
                Standing(
                    alert.rule,
                    alert.currency,
                    alert.state,
                    alert.severity,
                    alert.since,
                    alert.value,
                    alert.threshold,
                    alert.account,
                )
            )
    return standings


def alerts_table(standings: list[Standing]) -> str:
    if not standings:
        return "no alerts pending or firing"
    rows = [
        [
            r.state.upper(),
            r.account,
            r.rule,
            r.currency or "",
            human(r.value, r.percent),
            human(r.threshold, r.percent),
            f"{local(r.since):%Y-%m-%d %H:%M:%S}",
        ]
        for r in standings
    ]
    since = f"since ({label()})"
    headers = ["state", "account", "rule", "currency", "value", "threshold", since]
    return table.render(headers, rows, right={4, 5})


def once_text(result: PollResult) -> str:
    parts = []
    several = len(result.accounts) > 1
    for name, answer in result.accounts.items():
        head = f"{name}:\n" if several else ""
        if answer.overview is not None:
            parts.append(head + table.balances(answer.overview))
            held = answer.overview.positions
            if held:
                parts.append(table.positions(held))
            elif answer.overview.positions_error:
                parts.append(f"positions: no data ({answer.overview.positions_error})")
        else:
            parts.append(f"{head}no balances: {answer.error}")
    parts.append(alerts_table(all_standings(result)))
    return "\n\n".join(parts)


FACTS = ("last_poll", "last_result", "last_error", "last_success")


def stored_positions(text: str | None) -> list[dict[str, Any]] | None:
    """The positions the last poll read, as the poll stored them (None: none read)."""
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return None
    return found if isinstance(found, list) else None


def pair_json(store: Store, node: str) -> dict[str, Any] | None:
    """Who leads a pair and how fresh its lease is (None: the state is a file, no pair)."""
    if not store.url:
        return None
    lead = holder(store)
    if lead is None:
        return {"role": "standby", "node": node, "leader": None, "epoch": 0}
    return {
        "role": "leader" if lead.name == node and not lead.expired else "standby",
        "node": node,
        "leader": lead.name,
        "epoch": lead.epoch,
        "lease_age_seconds": round(lead.age.total_seconds(), 1),
        "lease_expired": lead.expired,
    }


def pair_text(pair: dict[str, Any]) -> str:
    """``pair: this is vps-2, standby; leader vps-1 (epoch 3, lease renewed 2s ago)``."""
    if pair["leader"] is None:
        return f"pair: this is {pair['node']}, standby; no instance has led yet"
    age = format_duration(timedelta(seconds=pair["lease_age_seconds"]))
    state = "expired" if pair["lease_expired"] else f"renewed {age} ago"
    return (
        f"pair: this is {pair['node']}, {pair['role']}; leader {pair['leader']} "
        f"(epoch {pair['epoch']}, lease {state})"
    )


def status_json(store: Store, node: str = "") -> dict[str, Any]:
    meta = store.meta()
    names = sorted({k.split("/", 1)[0] for k in meta if k.endswith("/last_poll")}) or [MAIN]
    accounts = {
        name: {fact: meta.get(f"{name}/{fact}") or None for fact in FACTS} for name in names
    }
    for name in names:
        accounts[name]["positions"] = stored_positions(meta.get(f"{name}/positions"))
    first = accounts[MAIN] if MAIN in accounts else accounts[names[0]]
    alerts = sorted(
        store.load_alerts().values(), key=lambda a: (a.account, a.rule, a.currency or "")
    )
    delivered, waiting = store.deliveries(), store.waiting()
    return {
        **first,  # the first account's, for a setup of one account
        "accounts": accounts,
        "alerts": [
            {
                "account": a.account,
                "rule": a.rule,
                "currency": a.currency,
                "state": a.state,
                "since": stamp(a.since),
                "last_notified": stamp(a.last_notified),  # decided, delivered or not
                "last_delivered": stamp(delivered.get((a.account, a.rule, a.currency or ""))),
                "waiting": waiting[(a.account, a.rule, a.currency or "")],
                "value": _dec(a.value),
                "threshold": _dec(a.threshold),
            }
            for a in alerts
        ],
        "silences": [
            {
                "id": s.id,
                "account": s.account,
                "rule": s.rule,
                "currency": s.currency,
                "ends": stamp(s.ends),
                "comment": s.comment,
            }
            for s in store.silences(datetime.now().astimezone())
        ],
        "acks": [
            {"account": a.account, "rule": a.rule, "currency": a.currency, "by": a.by}
            for a in store.acks()
        ],
        "telegram": meta.get("telegram_state"),
        "outbox": store.outbox_depth(),
        "pair": pair_json(store, node),
    }


def _read(text: str | None, missing: str = "never") -> str:
    """An ISO time from the JSON form as a person reads it, in the display zone."""
    return shown(datetime.fromisoformat(text), "%Y-%m-%d %H:%M:%S") if text else missing


def status_text(data: dict[str, Any]) -> str:
    lines = [pair_text(data["pair"])] if data.get("pair") else []
    several = len(data["accounts"]) > 1
    for name, facts in data["accounts"].items():
        who = f" ({name})" if several else ""
        lines.append(
            f"last poll{who}: {_read(facts['last_poll'])} ({facts['last_result'] or '-'})"
            f"; last success: {_read(facts['last_success'])}"
        )
        if facts["last_error"]:
            lines.append(f"last error{who}: {facts['last_error']}")
        for held in facts.get("positions") or []:
            distance = held.get("liq_distance")
            far = human(Decimal(distance), True) if distance else "-"
            lever = f" {human(Decimal(held['leverage']))}x" if held.get("leverage") else ""
            pnl = human(Decimal(held["pnl"])) if held.get("pnl") else "-"
            position = f"{held['symbol']} {held['side']}{lever}"
            lines.append(f"position{who}: {position}, {far} from liquidation, pnl {pnl}")
    lines.append(f"outbox: {data['outbox']} notification(s) waiting")
    rows = [
        [
            a["state"].upper(),
            a["account"],
            a["rule"],
            a["currency"] or "",
            _read(a["since"]),
            _read(a["last_delivered"]),
            str(a["waiting"]) if a["waiting"] else "-",
        ]
        for a in data["alerts"]
    ]
    headers = ["state", "account", "rule", "currency", "since", "last delivered", "waiting"]
    lines += ["", table.render(headers, rows, right=set()) if rows else "no alerts"]
    for a in data["acks"]:
        key = (a["account"], a["rule"], a["currency"])
        lines.append(f"acknowledged: {describe(key)} by {a['by']}")
    if data["telegram"]:
        lines.append(f"telegram commands: {data['telegram']}")
    for s in data["silences"]:
        who = f" on {s['account']}" if s["account"] else ""
        lines.append(
            f"silence {s['id']}: {s['rule']} {s['currency'] or ''}{who} until {_read(s['ends'])}"
        )
    return "\n".join(lines)
