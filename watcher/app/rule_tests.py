"""``watcher test``: unit tests for rules, evaluated the way the daemon evaluates them.

A test file names a rules file and a list of cases. Each case is a timeline
of what the exchange answered (balances, or a failure such as ``error:
timeout``), each point holding until the next, and the expected alerts and
notifications at given times. As ``promtool test rules`` does with
``evaluation_interval`` and as the daemon does with its polls, a fake clock
steps by ``interval`` from the first timeline point to the last expectation
and evaluates at every step, through the daemon's own evaluator, built-in
alerts included. No network, no sending, no database. Silences are not part
of a test file: they mute messages, and a test checks what was decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.app.replay import build_overview
from watcher.app.timeline import Held, on_grid, steps
from watcher.config.model import RuleSet
from watcher.config.rules_file import load_rules
from watcher.config.yamlloc import Loc, LocList, LocMap, YamlProblem, load
from watcher.core.alerts import Alert, Key, Outcome
from watcher.core.durations import format_duration, parse_duration
from watcher.core.errors import (
    AuthError,
    BadResponse,
    Blocked,
    ExchangeError,
    NetworkMismatch,
    Problem,
    RateLimited,
    RulesError,
    TransportError,
)
from watcher.core.models import WALLETS, Overview, combine
from watcher.engine.builtins import Known, poll_facts
from watcher.engine.evaluate import evaluate_poll
from watcher.engine.lookback import History

START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_INTERVAL = timedelta(seconds=60)  # the daemon's default WATCHER_INTERVAL
DEFAULT_STALE_AFTER = timedelta(minutes=5)  # and WATCHER_STALE_AFTER
TOP_KEYS = ("rules", "interval", "stale_after", "cases")
CASE_KEYS = ("name", "timeline", "expect")
POINT_KEYS = ("at", "account", "currencies", "totals", "is_testnet", "error")
EXPECT_KEYS = ("at", "alerts", "notifications")
ALERT_FIELDS = ("rule", "currency", "state", "account")
NOTICE_FIELDS = ("channel", "rule", "currency", "kind", "account")
FAILURES: dict[str, tuple[type[ExchangeError], str]] = {
    "timeout": (TransportError, "cannot reach the exchange: timed out"),
    "unreachable": (TransportError, "cannot reach the exchange: connection refused"),
    "server_error": (TransportError, "exchange returned HTTP 503"),
    "blocked": (Blocked, "MEXC's web front (Akamai) refused the request with HTTP 403"),
    "auth": (AuthError, "MEXC refused the credentials (401: Unauthorized)"),
    "rate_limited": (RateLimited, "exchange asked us to slow down (510)"),
    "bad_response": (BadResponse, "response is not JSON (HTTP 200)"),
    "network_mismatch": (NetworkMismatch, "asked for MAINNET but the gateway served TESTNET"),
    "exchange_error": (ExchangeError, "exchange error 600: parameter error"),
}


@dataclass
class CaseResult:
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Point:
    """What the exchange answered from this moment on: balances, or a failure."""

    overview: Overview | None
    error: ExchangeError | None


@dataclass(frozen=True)
class Expect:
    at: timedelta
    alerts: set[tuple[Any, ...]] | None
    notifications: set[tuple[Any, ...]] | None


class Reader:
    """Walks a located test file; every problem is ``FILE:LINE:COL: what``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(str(self.path), loc.line, loc.column, message))

    def mapping(self, value: Any, loc: Loc, allowed: tuple[str, ...], what: str) -> bool:
        if not isinstance(value, LocMap):
            self.problem(loc, f"{what} must be a mapping")
            return False
        for key in value:
            if key not in allowed:
                self.problem(
                    value.key_locs[key],
                    f"unknown key '{key}' in {what} (keys: {', '.join(allowed)})",
                )
        return True

    def items(self, value: Any, loc: Loc, what: str) -> list[tuple[Any, Loc]]:
        if not isinstance(value, LocList):
            self.problem(loc, f"{what} must be a list")
            return []
        return list(zip(value, value.locs, strict=True))

    def duration(self, value: Any, loc: Loc, what: str, offset: bool = False) -> timedelta | None:
        text = str(value).strip()
        if offset:
            text = text.removeprefix("t").removeprefix("+") or "0s"
        try:
            found = parse_duration(text)
        except ValueError as exc:
            self.problem(loc, f"{what}: {exc}")
            return None
        if not offset and found <= timedelta(0):
            self.problem(loc, f"{what} must be longer than 0s")
            return None
        return found


class Case:
    """Timelines per account (a point without ``account`` is the first account's)."""

    def __init__(
        self, name: str, points: dict[str, dict[timedelta, Point]], expects: list[Expect]
    ) -> None:
        self.name = name
        self.points = points
        self.expects = {e.at: e for e in expects}

    def run(self, rules: RuleSet, interval: timedelta, stale_after: timedelta) -> CaseResult:
        result = CaseResult(self.name)
        timelines = {
            name: Held([(START + at, p) for at, p in points.items()])
            for name, points in self.points.items()
        }
        first = min(h.first for h in timelines.values())
        end = START + max([*self.expects, *(max(p) for p in self.points.values())])
        alerts: dict[Key, Alert] = {}
        histories = {name: History() for name in [*timelines, *rules.groups]}
        known = {
            n: Known(started=first, last_success=None, stale_after=stale_after) for n in timelines
        }
        for now in steps(first, end, interval):
            outcome = Outcome(alerts=alerts)
            current: dict[str, Overview | None] = {}
            for name, held in timelines.items():
                point = held.at(now)
                if point is None:
                    continue  # this account's timeline starts later
                overview = point.overview
                if overview is not None:
                    overview = replace(overview, **{"fetched_at": now})
                current[name] = overview
                facts = poll_facts(point.error, now, known[name], name)
                step = self.evaluate(rules, outcome, histories[name], now, overview, facts, name)
                if point.error is None:
                    known[name] = Known(first, now, stale_after)
                outcome = step
            for label, members in rules.groups.items():
                parts = [current.get(m) for m in members]
                if all(p is not None for p in parts):
                    overview = combine(parts, now)  # type: ignore[arg-type]
                    outcome = self.evaluate(
                        rules, outcome, histories[label], now, overview, (), label
                    )
            alerts = outcome.alerts
            expect = self.expects.get(now - START)
            if expect is not None:
                check(expect, outcome, result, rules.labelled)
        return result

    @staticmethod
    def evaluate(
        rules: RuleSet,
        before: Outcome,
        history: History,
        now: datetime,
        overview: Overview | None,
        facts: Any,
        account: str,
    ) -> Outcome:
        """One account's step, added to what this step decided so far."""
        label = account if rules.labelled else None
        outcome, _ = evaluate_poll(
            rules, before.alerts, history, now, overview, facts, account=account, label=label
        )
        outcome.notices = before.notices + outcome.notices
        outcome.standings = before.standings + outcome.standings
        return outcome


def check(expect: Expect, outcome: Any, result: CaseResult, labelled: bool = False) -> None:
    stamp = f"t+{format_duration(expect.at)}"
    if expect.alerts is not None:
        actual = {
            (a.rule, a.currency, a.state, a.account if labelled else None)
            for a in outcome.alerts.values()
        }
        actual |= {
            (r.rule, r.currency, r.state, r.account if labelled else None)
            for r in outcome.standings
        }
        if expect.alerts != actual:
            result.failures.append(
                f"at {stamp}: alerts differ\n"
                f"      expected: {_show(expect.alerts, ALERT_FIELDS)}\n"
                f"      actual:   {_show(actual, ALERT_FIELDS)}"
            )
    if expect.notifications is not None:
        actual = {
            (c, n.rule, n.currency, n.kind, n.account) for n in outcome.notices for c in n.channels
        }
        if expect.notifications != actual:
            result.failures.append(
                f"at {stamp}: notifications differ\n"
                f"      expected: {_show(expect.notifications, NOTICE_FIELDS)}\n"
                f"      actual:   {_show(actual, NOTICE_FIELDS)}"
            )


def _show(rows: set[tuple[Any, ...]], keys: tuple[str, ...]) -> str:
    if not rows:
        return "(none)"
    return "; ".join(
        " ".join(f"{k}={v}" for k, v in zip(keys, row, strict=True) if v is not None)
        for row in sorted(rows, key=str)
    )


@dataclass
class TestFile:
    rules: RuleSet
    interval: timedelta
    stale_after: timedelta
    cases: list[Case]


class TestFileLoader(Reader):
    """A test file to ``TestFile``, collecting every located problem before failing."""

    def load(self) -> TestFile:
        try:
            document = load(self.path.read_text(encoding="utf-8"), str(self.path))
        except OSError as exc:
            problem = Problem(str(self.path), 1, 1, f"cannot read: {exc.strerror}")
            raise RulesError([problem]) from None
        except YamlProblem as exc:
            raise RulesError([exc.problem]) from None
        top = Loc(1, 1)
        if not self.mapping(document, top, TOP_KEYS, "the test file") or "rules" not in document:
            raise RulesError(
                self.problems
                or [
                    Problem(
                        str(self.path), 1, 1, "a test file needs 'rules: PATH' and 'cases: [...]'"
                    )
                ]
            )
        if not isinstance(document["rules"], str):
            self.problem(document.locs["rules"], "rules must be the path of a rules file")
            raise RulesError(self.problems)
        interval = self.setting(document, "interval", DEFAULT_INTERVAL)
        stale_after = self.setting(document, "stale_after", DEFAULT_STALE_AFTER)
        rules = load_rules((self.path.parent / str(document["rules"])).resolve())
        cases = []
        for index, (spec, loc) in enumerate(
            self.items(document.get("cases"), document.locs.get("cases", top), "'cases'")
        ):
            case = self.case(spec, loc, index, rules, interval)
            if case is not None:
                cases.append(case)
        if self.problems:
            raise RulesError(sorted(self.problems, key=lambda p: (p.line, p.column)))
        return TestFile(rules, interval, stale_after, cases)

    def setting(self, document: LocMap, key: str, default: timedelta) -> timedelta:
        if key not in document:
            return default
        return self.duration(document[key], document.locs[key], key) or default

    def case(
        self, spec: Any, loc: Loc, index: int, rules: RuleSet, interval: timedelta
    ) -> Case | None:
        if not self.mapping(spec, loc, CASE_KEYS, "a case"):
            return None
        name = str(spec.get("name") or f"case {index + 1}")
        points: dict[str, dict[timedelta, Point]] = {}
        timeline = spec.get("timeline")
        for item, where in self.items(timeline, spec.locs.get("timeline", loc), "'timeline'"):
            at, point = self.point(item, where, rules)
            account = str(item.get("account") or rules.account_names[0]) if item else ""
            if account and account not in rules.account_names:
                known = ", ".join(rules.account_names)
                self.problem(where, f"no account named {account!r} (have: {known})")
            elif at is not None and point is not None:
                points.setdefault(account, {})[at] = point
        if not points:
            self.problem(spec.locs.get("timeline", loc), "the timeline is empty")
            return None
        first = min(min(p) for p in points.values())
        expects = []
        entries = spec.get("expect")
        where = spec.locs.get("expect", loc)
        for item, at in self.items(entries, where, "'expect'") if entries is not None else []:
            expect = self.expect(item, at, first, interval)
            if expect is not None:
                expects.append(expect)
        return Case(name, points, expects)

    def point(self, item: Any, loc: Loc, rules: RuleSet) -> tuple[timedelta | None, Point | None]:
        if not self.mapping(item, loc, POINT_KEYS, "a timeline point"):
            return None, None
        at = self.duration(item.get("at", "0s"), item.locs.get("at", loc), "at", offset=True)
        if "error" in item:
            kind = item["error"]
            if kind not in FAILURES:
                known = ", ".join(FAILURES)
                self.problem(item.locs["error"], f"error: unknown kind {kind!r} (kinds: {known})")
                return at, None
            if any(k in item for k in ("currencies", "totals")):
                self.problem(loc, "a failed poll has no balances: give 'error' or balances")
            cls, text = FAILURES[kind]
            return at, Point(None, cls(text))
        try:
            return at, Point(snapshot(item, rules), None)
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.problem(loc, str(exc))
            return at, None

    def expect(self, item: Any, loc: Loc, first: timedelta, interval: timedelta) -> Expect | None:
        if not self.mapping(item, loc, EXPECT_KEYS, "an expectation"):
            return None
        where = item.locs.get("at", loc)
        at = self.duration(item.get("at", "0s"), where, "at", offset=True)
        if at is None:
            return None
        if not on_grid(START + first, START + at, interval):
            self.problem(
                where,
                f"at {format_duration(at)} is not an evaluation step: steps run every "
                f"{format_duration(interval)} from {format_duration(first)}",
            )
            return None
        alerts = self.rows(item, "alerts", ALERT_FIELDS, loc)
        notices = self.rows(item, "notifications", NOTICE_FIELDS, loc)
        return Expect(at, alerts, notices)

    def rows(
        self, item: LocMap, key: str, fields: tuple[str, ...], loc: Loc
    ) -> set[tuple[Any, ...]] | None:
        if key not in item:
            return None
        rows: set[tuple[Any, ...]] = set()
        if item[key] is None:
            return rows
        for row, where in self.items(item[key], item.locs.get(key, loc), f"'{key}'"):
            if self.mapping(row, where, fields, f"an entry of '{key}'"):
                rows.add(tuple(row.get(k) for k in fields))
        return rows


def snapshot(item: Mapping[str, Any], rules: RuleSet) -> Overview:
    """Balances from partial field maps; account totals default to the sum of the rows."""
    rows, totals = item.get("currencies"), item.get("totals")
    when = START
    overview = build_overview(when, rows, totals, bool(item.get("is_testnet", False)))
    if totals is None and rules.needs.totals and overview.currencies is not None:
        sums = {f: sum(getattr(r, f) for r in overview.currencies.values()) for f in WALLETS}
        overview = build_overview(when, rows, sums, bool(overview.is_testnet))
    return overview


def load_test_file(path: Path) -> TestFile:
    return TestFileLoader(path).load()


def run_files(paths: list[Path], out: Any) -> int:
    """Run every case; print one line per case and a closing count. Exit 1 on failure."""
    passed = failed = 0
    for path in paths:
        test = load_test_file(path)
        for case in test.cases:
            result = case.run(test.rules, test.interval, test.stale_after)
            if result.ok:
                passed += 1
                print(f"PASSED {path.name}::{case.name}", file=out)
                continue
            failed += 1
            print(f"FAILED {path.name}::{case.name}", file=out)
            for failure in result.failures:
                print(f"    {failure}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return 1 if failed else 0
