"""``watcher test``: unit tests for rules, like ``promtool test rules``.

A test file names a rules file and a list of cases. Each case is a timeline of
snapshots (what the exchange answered at ``t+0s``, ``t+5m``, ...) and the
expected alerts and notifications at given times. The engine runs on a fake
clock: no network, no sending, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from watcher.alerts import Alert, Key
from watcher.durations import format_duration, parse_duration
from watcher.engine import evaluate_poll
from watcher.errors import ConfigError
from watcher.history import History
from watcher.models import Overview
from watcher.replay import build_overview
from watcher.rules import RuleSet, load_rules

START = datetime(2026, 1, 1, tzinfo=UTC)
ALERT_FIELDS = ("rule", "currency", "state")
NOTICE_FIELDS = ("channel", "rule", "currency", "kind")


@dataclass
class CaseResult:
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _offset(value: Any, where: str) -> timedelta:
    text = str(value).strip().removeprefix("t").removeprefix("+")
    try:
        return parse_duration(text or "0s")
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _rows(items: Any, keys: tuple[str, ...], where: str) -> set[tuple[Any, ...]]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list of mappings")
    rows = set()
    for item in items:
        unknown = set(item) - set(keys)
        if unknown:
            raise ConfigError(f"{where}: unknown key '{sorted(unknown)[0]}' (keys: {keys})")
        rows.add(tuple(item.get(k) for k in keys))
    return rows


def _show(rows: set[tuple[Any, ...]], keys: tuple[str, ...]) -> str:
    if not rows:
        return "(none)"
    return "; ".join(
        " ".join(f"{k}={v}" for k, v in zip(keys, row, strict=True) if v is not None)
        for row in sorted(rows, key=str)
    )


class Case:
    def __init__(self, rules: RuleSet, spec: Mapping[str, Any], where: str) -> None:
        self.rules = rules
        self.name = str(spec.get("name") or where)
        self.where = f"{where} ({self.name})"
        self.snapshots: dict[timedelta, Overview] = {}
        for index, snap in enumerate(spec.get("timeline") or []):
            at = _offset(snap.get("at", "0s"), f"{self.where} timeline[{index}]")
            try:
                self.snapshots[at] = self.snapshot(snap, START + at)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise ConfigError(f"{self.where} timeline[{index}]: {exc}") from None
        if not self.snapshots:
            raise ConfigError(f"{self.where}: the timeline is empty")
        self.expect = {
            _offset(e.get("at", "0s"), f"{self.where} expect"): e for e in spec.get("expect") or []
        }

    def snapshot(self, snap: Mapping[str, Any], when: datetime) -> Overview:
        rows = snap.get("currencies")
        totals = snap.get("totals")
        overview = build_overview(when, rows, totals, bool(snap.get("is_testnet", False)))
        if totals is None and self.rules.needs.totals and overview.currencies is not None:
            sums = {
                f: sum(getattr(r, f) for r in overview.currencies.values())
                for f in ("total", "spot", "otc", "contract", "strategy", "robot", "alpha")
            }
            overview = build_overview(when, rows, sums, overview.is_testnet)
        return overview

    def run(self) -> CaseResult:
        result = CaseResult(self.name)
        alerts: dict[Key, Alert] = {}
        history = History()
        times = sorted(set(self.snapshots) | set(self.expect))
        current: Overview | None = None
        for offset in times:
            now = START + offset
            if offset in self.snapshots:
                current = self.snapshots[offset]
            if current is None:
                continue
            polled = current.model_copy(update={"fetched_at": now})
            outcome, _ = evaluate_poll(self.rules, alerts, history, now, polled)
            alerts = outcome.alerts
            if offset in self.expect:
                self.check(offset, self.expect[offset], outcome, result)
        return result

    def check(self, offset: timedelta, spec: Mapping[str, Any], outcome: Any, result: Any) -> None:
        stamp = f"t+{format_duration(offset)}"
        if "alerts" in spec:
            expected = _rows(spec["alerts"], ALERT_FIELDS, f"{self.where} {stamp} alerts")
            actual = {(a.rule, a.currency, a.state) for a in outcome.alerts.values()}
            actual |= {(r.rule, r.currency, r.state) for r in outcome.reports}
            if expected != actual:
                result.failures.append(
                    f"at {stamp}: alerts differ\n"
                    f"      expected: {_show(expected, ALERT_FIELDS)}\n"
                    f"      actual:   {_show(actual, ALERT_FIELDS)}"
                )
        if "notifications" in spec:
            where = f"{self.where} {stamp} notifications"
            expected = _rows(spec["notifications"], NOTICE_FIELDS, where)
            actual = {(c, n.rule, n.currency, n.kind) for n in outcome.notices for c in n.channels}
            if expected != actual:
                result.failures.append(
                    f"at {stamp}: notifications differ\n"
                    f"      expected: {_show(expected, NOTICE_FIELDS)}\n"
                    f"      actual:   {_show(actual, NOTICE_FIELDS)}"
                )


def load_test_file(path: Path) -> tuple[RuleSet, list[Case]]:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the test file: {exc}") from None
    if not isinstance(spec, dict) or "rules" not in spec or "cases" not in spec:
        raise ConfigError(f"{path}: a test file needs 'rules: PATH' and 'cases: [...]'")
    rules = load_rules((path.parent / spec["rules"]).resolve())
    cases = [Case(rules, c, f"{path.name} case {i + 1}") for i, c in enumerate(spec["cases"])]
    return rules, cases


def run_files(paths: list[Path], out: Any) -> int:
    """Run every case; print one line per case and a closing count. Exit 1 on failure."""
    passed = failed = 0
    for path in paths:
        _, cases = load_test_file(path)
        for case in cases:
            result = case.run()
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
