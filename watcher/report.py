"""What ``once`` and ``status`` print: readable tables or one JSON object."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from watcher import table
from watcher.app import PollResult
from watcher.engine import Report
from watcher.messages import human
from watcher.models import ORIGIN_WALLETS, WALLETS, Overview
from watcher.settings import Settings
from watcher.store import Store


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def alert_json(report: Report) -> dict[str, Any]:
    return {
        "rule": report.rule,
        "currency": report.currency,
        "state": report.state,
        "value": _dec(report.value),
        "threshold": _dec(report.threshold),
        "severity": report.severity,
        "since": _iso(report.since),
    }


def once_json(settings: Settings, result: PollResult) -> dict[str, Any]:
    notifications = [
        {"channel": channel, "rule": n.rule, "currency": n.currency, "kind": n.kind}
        for n in result.outcome.notices
        for channel in n.channels
    ]
    return {
        "source": settings.source,
        "network": settings.network if settings.source == "bypass" else None,
        "fetched_at": _iso(result.overview.fetched_at if result.overview else result.at),
        "error": None if result.error is None else str(result.error),
        "balances": balances_json(result.overview),
        "alerts": [alert_json(r) for r in all_reports(result)],
        "notifications": notifications,
    }


def balances_json(overview: Overview | None) -> dict[str, Any] | None:
    """What the rules saw, as exact decimal strings; an unreadable row says ``no_data``."""
    if overview is None:
        return None
    rows: dict[str, Any] | None = None
    if overview.currencies is not None:
        rows = {
            code: {**_amounts(row, WALLETS + ORIGIN_WALLETS), "no_data": False}
            for code, row in sorted(overview.currencies.items())
        }
        rows |= {code: {"no_data": True} for code in sorted(overview.nodata)}
    totals = _amounts(overview.totals, WALLETS) if overview.totals is not None else None
    return {"rows": rows, "totals": totals}


def _amounts(item: Any, names: tuple[str, ...]) -> dict[str, str]:
    return {name: str(getattr(item, name)) for name in names}


def all_reports(result: PollResult) -> list[Report]:
    """This evaluation's reports, then instances it did not touch (e.g. exchange down)."""
    reports = list(result.outcome.reports)
    seen = {(r.rule, r.currency) for r in reports}
    for alert in result.outcome.alerts.values():
        if alert.key not in seen:
            reports.append(
                Report(
                    alert.rule,
                    alert.currency,
                    alert.state,
                    alert.severity,
                    alert.since,
                    alert.value,
                    alert.threshold,
                )
            )
    return reports


def alerts_table(reports: list[Report]) -> str:
    if not reports:
        return "no alerts pending or firing"
    rows = [
        [
            r.state.upper(),
            r.rule,
            r.currency or "",
            human(r.value),
            human(r.threshold),
            f"{r.since:%Y-%m-%d %H:%M:%S}",
        ]
        for r in reports
    ]
    headers = ["state", "rule", "currency", "value", "threshold", "since (UTC)"]
    return table.render(headers, rows, right={3, 4})


def once_text(result: PollResult) -> str:
    parts = []
    if result.overview is not None:
        parts.append(table.balances(result.overview))
    else:
        parts.append(f"no balances: {result.error}")
    parts.append(alerts_table(all_reports(result)))
    return "\n\n".join(parts)


def status_json(store: Store) -> dict[str, Any]:
    meta = store.meta()
    alerts = sorted(store.load_alerts().values(), key=lambda a: (a.rule, a.currency or ""))
    return {
        "last_poll": meta.get("last_poll"),
        "last_result": meta.get("last_result"),
        "last_error": meta.get("last_error") or None,
        "last_success": meta.get("last_success"),
        "alerts": [
            {
                "rule": a.rule,
                "currency": a.currency,
                "state": a.state,
                "since": _iso(a.since),
                "last_notified": _iso(a.last_notified),
                "value": _dec(a.value),
                "threshold": _dec(a.threshold),
            }
            for a in alerts
        ],
        "silences": [
            {
                "id": s.id,
                "rule": s.rule,
                "currency": s.currency,
                "ends": _iso(s.ends),
                "comment": s.comment,
            }
            for s in store.silences(datetime.now().astimezone())
        ],
        "outbox": store.outbox_depth(),
    }


def status_text(data: dict[str, Any]) -> str:
    lines = [
        f"last poll:    {data['last_poll'] or 'never'} ({data['last_result'] or '-'})",
        f"last success: {data['last_success'] or 'never'}",
    ]
    if data["last_error"]:
        lines.append(f"last error:   {data['last_error']}")
    lines.append(f"outbox:       {data['outbox']} notification(s) waiting")
    rows = [
        [a["state"].upper(), a["rule"], a["currency"] or "", a["since"], a["last_notified"] or "-"]
        for a in data["alerts"]
    ]
    headers = ["state", "rule", "currency", "since", "last notified"]
    lines += ["", table.render(headers, rows, right=set()) if rows else "no alerts"]
    for s in data["silences"]:
        lines.append(f"silence {s['id']}: {s['rule']} {s['currency'] or ''} until {s['ends']}")
    return "\n".join(lines)
