"""``watcher migrate``: the whole state from one database into another, as it is.

Alert instances, waiting messages (with their order, attempts and due times), the
record of what was delivered, history, silences, acks and the poll facts are copied
in one transaction on the target, so the new database continues where the old one
stopped: nothing is announced twice, and what waited is delivered once.
"""

from __future__ import annotations

from watcher.core.errors import ConfigError
from watcher.store.db import Database

TABLES = {
    "meta": ("key", "value"),
    "alerts": (
        "rule", "currency", "state", "since", "fired_at", "last_notified", "cleared_since",
        "value", "threshold", "muted", "severity", "account",
    ),
    "history": ("key", "ts", "value"),
    "outbox": ("id", "channel", "url_key", "created", "due", "attempts", "notice", "last_error"),
    "silences": ("id", "rule", "currency", "starts", "ends", "comment", "account"),
    "delivered": ("account", "rule", "currency", "at"),
    "acks": ("account", "rule", "currency", "by", "at"),
}  # fmt: skip
IDENTITIES = ("outbox", "silences")  # their ids go on after the copied ones
OWN = ("schema_version",)  # meta the target keeps: its own


def holds_state(db: Database) -> bool:
    """True when the database already has alerts, messages or history of its own."""
    for table in ("alerts", "outbox", "history"):
        if db.db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
            return True
    return False


def copy_state(source: Database, target: Database) -> dict[str, int]:
    """Every row of every table, in one transaction on ``target``; rows per table."""
    if holds_state(target):
        raise ConfigError(
            f"{target.path} already holds a watcher state; migrate only into an empty "
            "database (or drop its tables first)"
        )
    counts = {}
    with target.transaction(fenced=False):
        for table, columns in TABLES.items():
            names = ", ".join(columns)
            rows = source.db.execute(f"SELECT {names} FROM {table}").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] not in OWN]
            target.db.execute(
                f"DELETE FROM {table}"
                + (" WHERE key <> 'schema_version'" if table == "meta" else "")
            )
            marks = ", ".join("?" for _ in columns)
            target.db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            counts[table] = len(rows)
        if target.url:
            for table in IDENTITIES:
                target.db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                )
    return counts
