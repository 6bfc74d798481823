"""Builders for pure tests: overviews and rule sets without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from watcher.config.model import RuleSet
from watcher.config.rules_file import parse_rules
from watcher.core.models import ORIGIN_WALLETS, WALLETS, Balance, Overview, Totals
from watcher.sim.receiver import fill_disk

__all__ = ["T0", "at", "fill_disk", "overview", "row", "ruleset"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHANNELS = 'channels:\n  default: "json://127.0.0.1:9/"\n'


def at(seconds: float = 0, minutes: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(seconds=seconds, minutes=minutes, hours=hours)


def row(currency: str, price: str = "1", **native: str) -> Balance:
    """A currency row from native amounts; converted = native * price."""
    amounts = {w: Decimal(native.get(w, "0")) for w in WALLETS[1:]}
    amounts["total"] = sum(amounts.values(), Decimal(0))
    fields: dict[str, object] = {w: amounts[w] * Decimal(price) for w in WALLETS}
    fields.update({o: amounts[w] for w, o in zip(WALLETS, ORIGIN_WALLETS, strict=True)})
    return Balance(currency=currency, **fields)


def overview(*rows: Balance, when: datetime = T0, testnet: bool = False, **totals: str) -> Overview:
    account = None
    if totals:
        values = {w: Decimal(totals.get(w, "0")) for w in WALLETS}
        account = Totals(**values)
    return Overview(
        fetched_at=when,
        is_testnet=testnet,
        currencies={r.currency: r for r in rows} if rows else None,
        totals=account,
    )


def ruleset(rules_yaml: str, extra: str = "") -> RuleSet:
    return parse_rules(CHANNELS + extra + "rules:\n" + rules_yaml, "rules.yaml")
