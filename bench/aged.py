"""An aged state: what a restart and a poll cost after days of history at N accounts.

Every poll writes a POLL marker per account, and the history keeps seven days by
default: at 5,000 accounts and 60 s that is 7.2 million rows a day. The bench writes
``--days`` of such history (N accounts, 12 keys each, a value that changes every ten
minutes) straight into a SQLite state, then measures with the store's own calls:

- the start-up restore of ``change``/``delta``'s look-back (``load_history`` for every
  account, one hour back), as ``Accounts.restore_history`` runs it;
- one account's commit: its samples, without and with the prune of its old rows, as a
  poll writes them (medians of 200 accounts; the first write of an account reads its
  latest values, and its first prune removes half its rows at once);
- beside them, in the same run, the statements these replaced: the prune over every
  account's keys (each commit ran it; timed once the rows past the cut are gone, as in a
  steady run) and the latest-values read over the whole table (each account's restore
  ran it), each timed once and rolled back.

Goal: neither the restore per account nor the commit grows with N or with the days kept.
Run: .venv/bin/python bench/aged.py [--accounts 5000] [--days 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watcher.core import logs
from watcher.engine.lookback import History
from watcher.store import Store

KEYS = [f"{c}.{w}" for c in ("USDT", "BTC", "ETH", "SOL") for w in ("spot", "contract", "total")]
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def fill(store: Store, accounts: int, days: float, interval: int = 60) -> int:
    """``days`` of polls for every account: a POLL marker each poll, each key changing
    every ten polls (only changes are stored)."""
    polls = int(days * 86400 / interval)
    start = NOW.timestamp() - polls * interval
    written = 0
    for first in range(0, accounts, 250):
        rows = []
        for index in range(first, min(first + 250, accounts)):
            head = f"a{index:05d}/"
            for poll in range(polls):
                ts = start + poll * interval + index * interval / accounts
                rows.append((head + "POLL", ts, "1"))
                if poll % 10 == 0:
                    rows += [(head + k, ts, str(1000 + poll % 70)) for k in KEYS]
        with store.transaction():
            store.db.executemany("INSERT INTO history (key, ts, value) VALUES (?, ?, ?)", rows)
        written += len(rows)
    return written


def restore(store: Store, accounts: int) -> float:
    """Seconds to load every account's last hour, as a start-up does."""
    started = time.perf_counter()
    for index in range(accounts):
        store.load_history(History(), NOW - timedelta(hours=1), lambda k: True, f"a{index:05d}")
    return time.perf_counter() - started


def commits(store: Store, accounts: int, keep: timedelta | None, at: datetime) -> float:
    """Median seconds of one account's commit (samples, and the prune of its rows older
    than ``keep``), over 200 accounts."""
    spent = []
    for index in range(0, accounts, max(accounts // 200, 1)):
        samples = [(k, at, Decimal(2000 + index % 7)) for k in KEYS]
        cut = None if keep is None else at - keep
        started = time.perf_counter()
        store.commit({}, samples={f"a{index:05d}": samples}, prune_before=cut)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def replaced(store: Store, keep: timedelta) -> tuple[float, float]:
    """The statements of before, timed once each on the same data, then rolled back."""
    cut = (NOW - keep).timestamp()
    every = (
        "DELETE FROM history WHERE ts < ? AND ts < (SELECT MAX(ts) FROM history h "
        "WHERE h.key = history.key AND h.ts < ?)"
    )
    with store.transaction():  # the catch-up, untimed: every account's rows past the cut
        store.db.execute(every, (cut, cut))
    started = time.perf_counter()
    store.db.execute("BEGIN")
    store.db.execute(every, (cut, cut))  # what each commit then paid: each key's last row
    store.db.execute("ROLLBACK")
    prune = time.perf_counter() - started
    started = time.perf_counter()
    store.db.execute(
        "SELECT key, value FROM history h WHERE ts = (SELECT MAX(ts) FROM history "
        "WHERE key = h.key AND ts < ?)",
        (NOW.timestamp() - 3600,),
    ).fetchall()
    return prune, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--days", type=float, default=1.0)
    args = parser.parse_args(argv)
    logs.configure("CRITICAL", "json")
    keep = timedelta(days=args.days / 2)  # half of it is past the cut: the prune has work
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "w.db")
        started = time.perf_counter()
        rows = fill(store, args.accounts, args.days)
        size = (Path(tmp) / "w.db").stat().st_size / 1e6
        print(
            f"N={args.accounts}, {args.days:g} days: {rows:,} history rows, {size:.0f} MB "
            f"(written in {time.perf_counter() - started:.0f} s)"
        )
        took = restore(store, args.accounts)
        print(
            f"start-up restore of every account's last hour: {took:.2f} s "
            f"({took / args.accounts * 1000:.2f} ms per account)"
        )
        bare = commits(store, args.accounts, None, NOW)
        first = commits(store, args.accounts, keep, NOW + timedelta(minutes=1))
        steady = commits(store, args.accounts, keep, NOW + timedelta(minutes=2))
        print(
            f"one account's commit: {bare * 1000:.2f} ms; with the prune of its rows past "
            f"the cut {steady * 1000:.2f} ms (the first prune, half its rows at once: "
            f"{first * 1000:.2f} ms); medians of 200, fsync included"
        )
        prune, latest = replaced(store, keep)
        print(
            f"replaced, timed once on the same state: the prune over every account "
            f"{prune * 1000:.0f} ms per commit; the latest-values read over the whole table "
            f"{latest * 1000:.0f} ms per account restored ({latest * args.accounts:.0f} s "
            f"for all {args.accounts})"
        )
        store.close()
    return {
        f"aged N={args.accounts} restore": f"{took / args.accounts * 1000:.2f} ms per account",
        f"aged N={args.accounts} commit": f"{steady * 1000:.2f} ms with its prune",
    }


if __name__ == "__main__":
    main()
