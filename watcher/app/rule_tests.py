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
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from watcher.app.replay import build_overview
from watcher.app.timeline import Held, on_grid, steps
from watcher.config import schema
from watcher.config.located import locate, validate
from watcher.config.model import RuleSet
from watcher.config.rules_file import load_rules
from watcher.config.yamlloc import LocMap, YamlProblem, load
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
from watcher.core.positions import Position, unrealised
from watcher.engine.builtins import Known, poll_facts
from watcher.engine.evaluate import evaluate_poll
from watcher.engine.lookback import History

START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_INTERVAL = timedelta(seconds=60)  # the daemon's default WATCHER_INTERVAL
DEFAULT_STALE_AFTER = timedelta(minutes=5)  # and WATCHER_STALE_AFTER
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


# --- the test file's model: the rules file's machinery, so mistakes read the same ------


def _offset(value: Any) -> timedelta:
    """``at: 10m``, ``at: t+10m`` or ``at: +10m``: time since the start of the case."""
    text = str(value).strip().removeprefix("t").removeprefix("+") or "0s"
    return parse_duration(text)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


Offset = Annotated[timedelta, BeforeValidator(_offset, json_schema_input_type=str | int)]
Step = Annotated[schema.Duration, AfterValidator(_positive)]


def _decimal(value: Any) -> Any:
    """A YAML number (or its text) as an exact Decimal; ``true`` is never an amount."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


Amount = Annotated[Decimal, BeforeValidator(_decimal, json_schema_input_type=float | str)]


class PositionSpec(schema.Part):
    """An open position at a timeline point; ``pnl`` follows from the prices if not given."""

    noun: ClassVar[str] = "position"
    symbol: str = Field(examples=["BTC_USDT"])
    side: Literal["long", "short"]
    size: Amount = Field(description="the size in contracts")
    contract_size: Amount = Decimal(1)
    entry: Amount | None = None
    mark: Amount | None = None
    liquidation: Amount | None = None
    leverage: Amount | None = None
    margin: Amount | None = None
    pnl: Amount | None = None
    margin_ratio: Amount | None = None
    margin_mode: Literal["isolated", "cross"] = "isolated"

    def position(self) -> Position:
        pnl = self.pnl
        if pnl is None and self.mark is not None and self.entry is not None:
            pnl = unrealised(self.side, self.mark, self.entry, self.size * self.contract_size)
        fields = self.model_dump(exclude={"pnl"})
        return Position(**fields, pnl=pnl)


class PointSpec(schema.Part):
    noun: ClassVar[str] = "timeline point"
    at: Offset = timedelta(0)
    account: str | None = None
    currencies: dict[str, Any] | None = Field(None, description="a mapping of currencies")
    totals: dict[str, Any] | None = Field(None, description="a mapping of wallet totals")
    is_testnet: bool = False
    error: Literal[tuple(FAILURES)] | None = None  # type: ignore[valid-type]
    positions: list[PositionSpec] | None = Field(None, description="a list of open positions")

    @model_validator(mode="after")
    def _either(self) -> PointSpec:
        if self.error is not None and (self.currencies is not None or self.totals is not None):
            raise schema.needs_key(
                "error", "a failed poll has no balances: give 'error' or balances"
            )
        return self


class AlertRow(schema.Part):
    noun: ClassVar[str] = "alert"
    rule: str | None = None
    currency: str | None = None
    state: str | None = None
    account: str | None = None


class NoticeRow(schema.Part):
    noun: ClassVar[str] = "notification"
    channel: str | None = None
    rule: str | None = None
    currency: str | None = None
    kind: str | None = None
    account: str | None = None


class ExpectSpec(schema.Part):
    noun: ClassVar[str] = "expectation"
    at: Offset = timedelta(0)
    alerts: list[AlertRow] | None = Field(None, description="a list of alerts")
    notifications: list[NoticeRow] | None = Field(None, description="a list of notifications")


class CaseSpec(schema.Part):
    noun: ClassVar[str] = "case"
    name: str | None = None
    timeline: list[PointSpec] = Field(
        min_length=1, description="a non-empty list of timeline points"
    )
    expect: list[ExpectSpec] | None = Field(None, description="a list of expectations")


class TestFileSpec(schema.Part):
    noun: ClassVar[str] = "test file"
    shape: ClassVar[str] = "a mapping with 'rules: PATH' and 'cases: [...]'"
    rules: str = Field(description="the path of a rules file", examples=["rules.yaml"])
    interval: Step = Field(DEFAULT_INTERVAL, description="a duration such as 1m")
    stale_after: Step = Field(DEFAULT_STALE_AFTER, description="a duration such as 5m")
    cases: list[CaseSpec] = Field([], description="a list of cases")


class TestFileLoader:
    """A test file to ``TestFile``: the model first, then what needs the rules file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.document = LocMap()

    def problem(self, steps: tuple[Any, ...], message: str) -> None:
        loc = locate(self.document, steps)
        self.problems.append(Problem(str(self.path), loc.line, loc.column, message))

    def load(self) -> TestFile:
        try:
            document = load(self.path.read_text(encoding="utf-8"), str(self.path))
        except OSError as exc:
            problem = Problem(str(self.path), 1, 1, f"cannot read: {exc.strerror}")
            raise RulesError([problem]) from None
        except YamlProblem as exc:
            raise RulesError([exc.problem]) from None
        if not isinstance(document, LocMap):
            message = f"a test file must be {TestFileSpec.shape}"
            raise RulesError([Problem(str(self.path), 1, 1, message)])
        self.document = document
        spec, problems, _ = validate(TestFileSpec, document, str(self.path))
        if spec is None:
            raise RulesError(sorted(problems, key=lambda p: (p.line, p.column)))
        rules = load_rules((self.path.parent / spec.rules).resolve())
        cases = [
            self.case(c, ("cases", i), i, rules, spec.interval) for i, c in enumerate(spec.cases)
        ]
        if self.problems:
            raise RulesError(sorted(self.problems, key=lambda p: (p.line, p.column)))
        return TestFile(rules, spec.interval, spec.stale_after, [c for c in cases if c])

    def case(
        self,
        spec: CaseSpec,
        steps: tuple[Any, ...],
        index: int,
        rules: RuleSet,
        interval: timedelta,
    ) -> Case | None:
        points: dict[str, dict[timedelta, Point]] = {}
        for number, item in enumerate(spec.timeline):
            where = (*steps, "timeline", number)
            account = item.account or rules.account_names[0]
            if account not in rules.account_names:
                known = ", ".join(rules.account_names)
                self.problem(where, f"no account named {account!r} (have: {known})")
                continue
            point = self.point(item, where, rules)
            if point is not None:
                points.setdefault(account, {})[item.at] = point
        if not points:
            return None
        # from every point as written: one bad point must not move the grid under the rest
        first = min(item.at for item in spec.timeline)
        expects = []
        for number, item in enumerate(spec.expect or ()):
            where = (*steps, "expect", number)
            if not on_grid(START + first, START + item.at, interval):
                self.problem(
                    (*where, "at"),
                    f"at {format_duration(item.at)} is not an evaluation step: steps run every "
                    f"{format_duration(interval)} from {format_duration(first)}",
                )
                continue
            alerts = _rows(item.alerts, ALERT_FIELDS)
            expects.append(Expect(item.at, alerts, _rows(item.notifications, NOTICE_FIELDS)))
        return Case(spec.name or f"case {index + 1}", points, expects)

    def point(self, item: PointSpec, steps: tuple[Any, ...], rules: RuleSet) -> Point | None:
        if item.error is not None:
            cls, text = FAILURES[item.error]
            return Point(None, cls(text))
        try:
            overview = snapshot(item.model_dump(), rules)
            if item.positions is not None:
                overview = replace(overview, positions=tuple(p.position() for p in item.positions))
            return Point(overview, None)
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.problem(steps, str(exc))
            return None


def _rows(rows: list[Any] | None, fields: tuple[str, ...]) -> set[tuple[Any, ...]] | None:
    if rows is None:
        return None
    return {tuple(getattr(row, key) for key in fields) for row in rows}


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
