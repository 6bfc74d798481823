"""Soak: 10,000 poll cycles on a fake clock with faults, outages, crashes and a full disk.

Real engine, real SQLite outbox, the real mexc source against the simulated
exchange over HTTP, and apprise posting to a real local json:// receiver.
Every cycle may inject an exchange fault (every kind the simulator offers,
dripping headers and bodies included), start a receiver outage, make the
receiver slow (slower than delivery's budget), or "crash" between two steps
(the objects are abandoned and rebuilt from the database, as after a kill).
Where the machine lets root mount a small tmpfs, the state database lives on
it and some phases fill the disk. Invariants are checked after every cycle;
the summary must show 0 duplicated, 0 lost, 0 false (in a pair, duplicates only of
messages under way when a leader froze, counted and bounded).

With ``--postgres URL`` the state is PostgreSQL and the soak plays a pair: every
crash is a leader's kill -9 after which the standby takes over once the lease ran out,
and now and then the leader is paused past its lease instead: the standby takes over,
then the old leader wakes and tries to commit and deliver (the fence must refuse both).

Run: .venv/bin/python bench/soak.py [--cycles 10000] [--seed 7] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from watcher.app.poll import Watcher
from watcher.config.model import BUILTIN_RULES
from watcher.config.resolve import resolve
from watcher.config.rules_file import parse_rules
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.errors import Deposed
from watcher.core.models import Overview
from watcher.daemon.service import keep_large_buffers_unmapped
from watcher.engine.evaluate import FIRING, RESOLVED, History, run
from watcher.notify.messages import WORDS
from watcher.sim.exchange import FAULT_KINDS, SimExchange
from watcher.sim.receiver import Receiver, fill_disk
from watcher.store import Store
from watcher.store.lease import Lease, Takeover

ROOT = Path(__file__).resolve().parent.parent
KEY = "soak-api-key-0123456789"
STEP = timedelta(seconds=60)
RULES = """
channels:
  default: "{url}"
defaults:
  repeat: never
rules:
  - name: low
    when: USDT.spot < 100
  - name: heavy
    when: contract / total > 60%
  - name: coin-heavy
    each: currency
    when: contract > 80% * total and total > 10
"""
FAULT_PARAMS: dict[str, list[dict[str, Any]]] = {
    "delay": [{"delay": 0.3}],
    "status": [{"status": s} for s in (429, 500, 502, 503, 401, 403, 400)],
    "code": [{"code": c} for c in (401, 402, 510, 600, 602)],
    "html": [{"status": s} for s in (200, 404, 502)],
    "truncated": [{}],
    "missing": [{"field_name": f} for f in ("spot", "contract", "originTotal")],
    "numbers": [{}],
    "negative": [{}],
    "badrow": [{"field_name": f} for f in ("spot", "originTotal")],
    "duplicate": [{}],
    "nocode": [{}],
    "akamai": [{}],
    "redirect": [{}],
    "drip": [{"delay": 0.05}],
    "driphead": [{"delay": 0.05}],
    "gzipbomb": [{}],
    "disconnect": [{}],
    "testnet": [{}],
    "raw": [
        {"status": 200, "body": '{"code": 0, "is_testnet": false}'},
        {"status": 200, "body": '{"data": [], "code": "0", "is_testnet": false}'},
        {"status": 503, "body": ""},
    ],
}
assert set(FAULT_PARAMS) == set(FAULT_KINDS), "the soak must cover every fault kind"
ACCOUNT = "/api/v3/account"  # the official API's balances, as ccxt asks for them
TICKERS = "/api/v3/ticker/24hr"
CCXT_RULES = (
    """
accounts:
  official: {{source: ccxt, exchange: mexc, base_url: "{base}", api_key: "${{K}}",
              secret: "${{S}}"}}
"""
    + RULES
)
CCXT_FAULTS: list[tuple[str, dict[str, Any]]] = [  # what the ccxt source must bear
    ("drip", {"delay": 0.05, "path": ACCOUNT}),
    ("driphead", {"delay": 0.05, "path": ACCOUNT}),
    ("redirect", {"path": ACCOUNT}),
    ("gzipbomb", {"path": ACCOUNT}),
    ("delay", {"delay": 0.3, "path": ACCOUNT}),
    ("disconnect", {"path": ACCOUNT}),
    ("raw", {"status": 503, "body": "", "path": ACCOUNT}),
    ("raw", {"status": 200, "body": '{"balances": 5}', "path": ACCOUNT}),
    ("price gap", {}),  # the tickers without BTC: BTC has no price this poll
]


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
    return 0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Soak:
    def __init__(self, cycles: int, seed: int, db: Path | str, ccxt: bool = False) -> None:
        self.cycles = cycles
        self.random = random.Random(seed)
        self.clock = Clock()
        self.sim = SimExchange(web_key=KEY).start()
        self.receiver = Receiver()
        self.ccxt = ccxt  # one ccxt account on the simulator's official API instead
        text = (CCXT_RULES if ccxt else RULES).format(url=self.receiver.url(), base=self.sim.url)
        env = {"K": self.sim.official_key, "S": self.sim.official_secret}
        self.rules = resolve(parse_rules(text, "soak.yaml"), env=env)
        self.settings = Settings(
            web_key=KEY,
            mexc_url=self.sim.mexc_url,
            # the floor; with these timeouts the client's retry budget is none, so a fault
            # costs one cycle. ccxt's own rate limiter sleeps about 0.6 s before each of its
            # three requests: its poll gets a 5 s deadline, as a poll would at a 5 s interval
            interval="5s" if ccxt else "1s",
            timeout="1s" if ccxt else "0.5s",
            stale_after="5m",
            state=db,
        )
        self.truth = _overview(self.clock.now, {})
        self.decided: Counter[tuple[str, str]] = Counter()
        self.counts: Counter[str] = Counter()
        self.false: list[str] = []
        self.outage_until = -1
        self.got: Counter[tuple[str, str]] = Counter()
        self.disk: Path | None = None
        self.filler: Path | None = None
        self.slow_until = -1
        self.seen = 0
        self.killed = 0  # notifications held in memory on a full disk when a kill came
        self.slowest = 0.0  # the longest fetch, seconds: a dripping answer is cut at the deadline
        self.balances = {"USDT": ["500", "800"], "BTC": ["0.05", "0.01"], "ETH": ["1", "0"]}
        self.apply_balances()
        self.pair = isinstance(db, str)  # PostgreSQL: a pair, whose leader is killed or paused
        self.leaders = 0
        self.window = 0  # messages a takeover may send twice: under way when a leader froze
        self.watcher = self.fresh()

    def fresh(self) -> Watcher:
        """A new process: everything rebuilt from the database (in a pair: the standby,
        which first takes the lease)."""
        store = Store(self.settings.state)
        lease = self.take_lease(store) if self.pair else None
        watcher = Watcher.open(self.settings, self.rules, store, clock=self.clock)
        watcher.deliverer.budget = 0.05  # a slow receiver is left to finish on its own
        if lease is not None:
            watcher.deliverer.store.fence = lease.fence
            watcher.deliverer.guard = lease.leading
        return watcher

    def take_lease(self, store: Store) -> Lease:
        """The next instance leads; the lease of the one before ran out (what waiting
        15 s does, done to the row: the lease is timed by the database's clock)."""
        self.leaders += 1
        store.db.execute("UPDATE lease SET expires = expires - 3600")
        lease = Lease(store.sibling(), f"vps-{self.leaders}", timedelta(seconds=15))
        if not isinstance(lease.tick(), Takeover):
            raise SystemExit("the standby could not take an expired lease")
        store.fence = lease.fence
        return lease

    def pause(self) -> None:
        """The leader freezes past its lease, a standby takes over, the old one wakes with
        a poll in hand: its commit and its delivery must both be refused."""
        self.counts["leader paused, taken over"] += 1
        zombie, posts, window = self.watcher, len(self.receiver.posts), self.window
        if zombie.deliverer.busy():  # a send under way when it froze: at least once
            self.counts["takeovers with a send under way"] += 1
            self.window += len(zombie.store.pending())
        self.watcher = self.fresh()
        overview, error = zombie.try_fetch()
        try:
            zombie.process(self.clock.now, overview, error)
            self.false.append(f"a deposed leader committed a poll at {self.clock.now}")
        except Deposed:
            self.counts["deposed leader: commit refused"] += 1
        try:
            zombie.deliver()
        except Deposed:
            self.counts["deposed leader: delivery refused"] += 1
        zombie.deliverer.wait_idle(5.0)  # what was under way arrives (and is not recorded)
        if len(self.receiver.posts) > posts + (self.window - window):
            self.false.append(f"a deposed leader delivered at {self.clock.now}")
        self.close(zombie)

    def apply_balances(self) -> None:
        prices = {"USDT": "1", "BTC": "60000", "ETH": "3000"}
        for code, (spot, contract) in self.balances.items():
            self.sim.set_coin(code, prices[code], spot=spot, contract=contract)

    def wander(self) -> None:
        """Move the account so that alerts fire and resolve often."""
        r = self.random.random
        if r() < 0.12:
            self.balances["USDT"][0] = self.random.choice(["50", "500", "5000"])
        if r() < 0.08:
            self.balances["USDT"][1] = self.random.choice(["800", "30000"])
        if r() < 0.08:
            self.balances["BTC"][1] = self.random.choice(["0.01", "0.5"])
        self.apply_balances()

    def cycle(self, index: int) -> None:
        self.clock.now += STEP
        self.wander()
        self.truth = _overview(self.clock.now, _rows(self.sim))  # what the exchange really holds
        if self.ccxt and self.random.random() < 0.15:
            self.ccxt_fault()
        elif not self.ccxt and self.random.random() < 0.15:
            kind = self.random.choice(FAULT_KINDS)
            params = self.random.choice(FAULT_PARAMS[kind])
            self.sim.inject(kind, times=1, **params)
            self.counts[f"fault {kind}"] += 1
            if kind == "negative":  # a real negative amount: it is what the account holds
                btc = replace(self.truth.currencies["BTC"], **{"spot": Decimal(-5)})
                rows = {**self.truth.currencies, "BTC": btc}
                self.truth = replace(self.truth, **{"currencies": rows})
        self.outages(index)
        self.disk_phases(index)
        if self.pair and self.random.random() < 0.01:
            self.pause()
        crash = self.random.random() < 0.02 and self.random.choice("ABC")
        fetching = time.monotonic()
        overview, error = self.watcher.try_fetch()
        self.slowest = max(self.slowest, time.monotonic() - fetching)
        self.sim.clear_faults()
        self.counts["polls ok" if error is None else "polls failed"] += 1
        if crash == "A":
            return self.crash("between fetch and commit")
        result = self.watcher.process(self.clock.now, overview, error)
        if self.watcher.unwritable:  # the disk is full: decided in memory, sent later
            self.counts["polls held in memory (disk full)"] += 1
        for notice in result.outcome.notices:
            self.decided[key_of(notice)] += len(notice.channels)
            self.check_truth(notice)
        if crash == "B":
            return self.crash("between commit and delivery")
        self.watcher.deliver()
        self.check_no_duplicates()
        if crash == "C":
            return self.crash("after delivery")

    def ccxt_fault(self) -> None:
        kind, params = self.random.choice(CCXT_FAULTS)
        self.counts[f"ccxt fault {kind}"] += 1
        if kind == "price gap":
            from watcher.sim.official import tickers

            rows = [r for r in tickers(self.sim) if not r["symbol"].startswith("BTC")]
            self.sim.inject("raw", times=None, status=200, body=json.dumps(rows), path=TICKERS)
            return
        self.sim.inject(kind, times=None, **params)

    def disk_phases(self, index: int) -> None:
        """Now and then the disk fills for a while; delivery must hold back, not repeat."""
        if self.disk is None:
            return
        if self.filler is not None and self.random.random() < 0.2:
            self.filler.unlink()
            self.filler = None
        elif self.filler is None and self.random.random() < 0.005:
            self.filler = fill_disk(self.disk)
            self.counts["disk-full phases"] += 1

    def outages(self, index: int) -> None:
        if index == self.slow_until:
            self.receiver.delay = 0.0
        if self.slow_until < index and self.random.random() < 0.01:
            self.slow_until = index + self.random.randint(1, 5)
            self.receiver.delay = 0.2  # four times delivery's budget
            self.counts["slow receiver phases"] += 1
        if index == self.outage_until:
            self.receiver.fail = 0
        if self.outage_until < index and self.random.random() < 0.02:
            self.outage_until = index + self.random.randint(1, 20)
            self.receiver.fail = 10**9
            self.counts["receiver outages"] += 1

    def crash(self, where: str) -> None:
        """As after a kill: nothing is flushed or finished; the OS closes the sockets and
        files (uncommitted work is gone); a new process starts from the database."""
        self.counts[f"crash {where}"] += 1
        old = self.watcher
        for _, _, notice, _ in old.held.outbox:  # decided on a full disk: memory only
            self.decided[key_of(notice)] -= 1
            self.killed += 1
        old.deliverer.wait_idle(5.0)  # the crash points lie between steps, not inside a send
        self.close(old)
        self.watcher = self.fresh()

    def close(self, old: Watcher) -> None:
        for account in old.accounts.values():
            account.source.close()
        old.store.db.close()
        old.deliverer.store.db.close()

    def check_truth(self, notice: Any) -> None:
        """A balance alert must match the real balances at its time, faults or not."""
        if notice.rule in BUILTIN_RULES:
            self.counts[f"built-in {notice.rule} {notice.kind}"] += 1
            return
        rule = self.rules.get(notice.rule)
        assert rule is not None
        truth = self.truth
        row = truth.balance(notice.currency) if notice.currency else None
        holds = run(rule.when.fn, truth.totals, row, truth.balance, History(), False)
        if (notice.kind == FIRING and holds is not True) or (
            notice.kind == RESOLVED and holds is not False
        ):
            self.false.append(f"{notice.kind} {notice.rule} {notice.currency} at {notice.at}")

    def check_no_duplicates(self) -> None:
        """After every delivery: nothing arrived more often than it was decided."""
        messages = self.receiver.messages()
        for message in messages[self.seen :]:
            for text in message.splitlines():
                self.got.update(parse_line(text))
        self.seen = len(messages)
        extra = [k for k, n in self.got.items() if n > self.decided[k]]
        over = sum(n - self.decided[k] for k, n in self.got.items() if n > self.decided[k])
        if extra and over > self.window:  # beyond what takeovers may send twice
            raise SystemExit(f"duplicate or unknown notification delivered: {extra[0]}")

    def drain(self) -> None:
        self.receiver.fail = 0
        self.receiver.delay = 0.0
        if self.filler is not None:
            self.filler.unlink()
            self.filler = None
        for _ in range(100):
            if self.watcher.store.outbox_depth() == 0 and not self.watcher.deliverer.in_flight:
                return
            self.clock.now += timedelta(minutes=15)
            self.watcher.deliver()
            time.sleep(0.05)

    def received(self) -> Counter[tuple[str, str]]:
        got: Counter[tuple[str, str]] = Counter()
        for message in self.receiver.messages():
            for text in message.splitlines():
                got.update(parse_line(text))
        return got


def ccxt_phase(cycles: int, seed: int) -> dict[str, Any]:
    """The same soak with one ccxt account on the simulator's official API, under the
    faults the ccxt source must bear: dripping answers, redirects, gzip bombs, odd
    bodies and price gaps. Crashes and receiver outages as before; no disk phases."""
    with tempfile.TemporaryDirectory() as tmp:
        soak = Soak(cycles, seed, Path(tmp) / "ccxt.db", ccxt=True)
        started = time.monotonic()
        try:
            for index in range(cycles):
                soak.cycle(index)
            soak.drain()
            got = soak.received()
        finally:
            soak.receiver.stop()
            soak.sim.stop()
    decided = sum(soak.decided.values())
    duplicated = sum(max(0, got[k] - n) for k, n in soak.decided.items())
    duplicated += sum(n for k, n in got.items() if k not in soak.decided)
    lost = sum(max(0, n - got[k]) for k, n in soak.decided.items())
    print(f"soak, ccxt phase: {cycles} cycles in {time.monotonic() - started:.0f}s")
    for name, count in sorted(soak.counts.items()):
        print(f"  {name:<40} {count}")
    for false in soak.false[:5]:
        print(f"  FALSE ALERT: {false}")
    budget = soak.settings.interval.total_seconds() + 2 * soak.settings.timeout.total_seconds()
    line = (
        f"{decided} decided, {sum(got.values())} delivered, duplicated {duplicated}, lost "
        f"{lost}, false {len(soak.false)}; slowest poll {soak.slowest:.2f}s "
        f"(budget {budget:.1f}s)"
    )
    print(f"  {line}")
    ok = duplicated == lost == 0 and not soak.false and soak.slowest <= budget + 1.0
    return {"ok": ok, "line": line}


def key_of(notice: Any) -> tuple[str, str]:
    name = f"{notice.rule} {notice.currency}" if notice.currency else notice.rule
    if notice.account:  # a rules file with accounts: messages name the account
        name += f" ({notice.account})"
    return name, notice.kind


_KINDS = {word: kind for kind, word in WORDS.items()}
_HISTORY = re.compile(r"^(?P<name>[^:]+): (?P<chain>(?:[A-Z ]+ \d\d:\d\d(?: -> )?)+) UTC")
_SINGLE = re.compile(
    r"^(?P<word>FIRING|RESOLVED|STILL FIRING) (?P<name>.+?)(?: after \S+| for \S+)?: "
)


def parse_line(text: str) -> list[tuple[str, str]]:
    """The notices one delivered line stands for: one, or an alert's collapsed history."""
    history = _HISTORY.match(text)
    if history:
        steps = [step.rsplit(" ", 1)[0] for step in history["chain"].split(" -> ")]
        return [(history["name"], _KINDS[word]) for word in steps]
    if text.startswith("watcher cannot write its state database"):
        return []  # the straight warning of a full disk: not a decided notification
    single = _SINGLE.match(text)
    if single is None:
        raise SystemExit(f"a delivered line the soak cannot read: {text}")
    return [(single["name"], _KINDS[single["word"]])]


def small_disk(base: Path) -> Path | None:
    """A 64 MB tmpfs for the state database, where root may mount one; else None."""
    mount = base / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    )
    return mount if done.returncode == 0 else None


def _rows(sim: SimExchange) -> dict[str, Any]:
    from watcher.sources.parse import balance_from

    return {row["currency"]: balance_from(row, row["currency"]) for row in sim.rows()}


def _overview(when: datetime, rows: dict[str, Any]) -> Overview:
    from watcher.core.models import WALLETS, Totals

    totals = Totals(**{w: sum(getattr(r, w) for r in rows.values()) for w in WALLETS})
    return Overview(fetched_at=when, is_testnet=False, currencies=rows, totals=totals)


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", metavar="URL", help="a pair on this PostgreSQL database")
    args = parser.parse_args(argv)
    logs.configure("CRITICAL", "json")
    keep_large_buffers_unmapped()  # as the daemon does
    with tempfile.TemporaryDirectory() as tmp:
        disk = None if args.postgres else small_disk(Path(tmp))
        soak = Soak(args.cycles, args.seed, args.postgres or (disk or Path(tmp)) / "soak.db")
        soak.disk = disk
        warm = max(args.cycles // 20, 1)
        started = time.monotonic()
        try:
            for index in range(args.cycles):
                if index == warm:  # apprise plugins, SQLite caches and the like are loaded
                    rss_start = rss_kib()
                soak.cycle(index)
            soak.drain()
            took, rss_end = time.monotonic() - started, rss_kib()
            got = soak.received()
        finally:
            soak.receiver.stop()
            soak.sim.stop()
            if disk is not None:
                soak.watcher.store.close()
                subprocess.run(["umount", "-l", str(disk)])
        decided = sum(soak.decided.values())
        duplicated = sum(max(0, got[k] - n) for k, n in soak.decided.items())
        duplicated += sum(n for k, n in got.items() if k not in soak.decided)
        lost = sum(max(0, n - got[k]) for k, n in soak.decided.items())
    growth = (rss_end - rss_start) / 1024
    print(f"soak: {args.cycles} cycles (seed {args.seed}) in {took:.0f}s")
    for name, count in sorted(soak.counts.items()):
        print(f"  {name:<40} {count}")
    print(
        f"  notifications decided {decided}, delivered {sum(got.values())}, "
        f"duplicated {duplicated}, lost {lost}, false alerts {len(soak.false)}"
    )
    print(f"  held in memory on a full disk when a kill came (not counted above): {soak.killed}")
    print(
        f"  RSS after {warm} warm-up cycles {rss_start / 1024:.1f} MB, at the end "
        f"{rss_end / 1024:.1f} MB (growth {growth:.1f} MB, goal < 5 MB)"
    )
    for false in soak.false[:5]:
        print(f"  FALSE ALERT: {false}")
    if soak.pair:
        print(f"  leaders in turn: {soak.leaders} (each took over from the one before)")
        print(f"  may be sent twice across takeovers (under way when frozen): {soak.window}")
    ccxt = (
        {"ok": True, "line": "skipped (a pair)"}
        if soak.pair
        else ccxt_phase(max(min(args.cycles // 10, 200), 50), args.seed)  # ~2 s a poll
    )
    ok = duplicated <= soak.window and lost == 0 and not soak.false and growth < 5 and ccxt["ok"]
    print("  invariants:", "all hold" if ok else "VIOLATED")
    if not ok:
        raise SystemExit(1)
    return {
        "soak ccxt phase": ccxt["line"],
        "soak cycles": f"{args.cycles} in {took:.0f}s",
        "soak decided / delivered": f"{decided} / {sum(got.values())}",
        "soak duplicated / lost / false": f"{duplicated} / {lost} / {len(soak.false)}",
        "soak RSS growth": f"{growth:.1f} MB (goal < 5 MB)",
    }


if __name__ == "__main__":
    main()
