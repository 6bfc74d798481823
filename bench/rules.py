"""Per-evaluation cost of a compiled rule against simpleeval and a hand-written lambda,
and one full cycle of 1,000 rules over a 500-currency overview.

Goals: at least 8x faster than pre-parsed simpleeval, within 3x of the lambda;
a 1,000-rule cycle under 100 ms.   Run: .venv/bin/python bench/rules.py
"""

from __future__ import annotations

import sys
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import account, median_seconds, microseconds, milliseconds
from simpleeval import SimpleEval

from watcher.config.expr import compile_expression
from watcher.config.resolve import resolve
from watcher.config.rules_file import parse_rules
from watcher.engine.evaluate import History, evaluate, evaluate_poll, run

EXPRESSION = "contract / total > 60% and spot < 2000"
PLAIN = "contract / total > 0.6 and spot < 2000"  # simpleeval has no % suffix


def single(overview) -> dict[str, float]:
    totals = overview.totals
    compiled = compile_expression(EXPRESSION, each=False)
    history, lookup = History(), overview.balance
    fn = compiled.fn
    names = {"contract": totals.contract, "total": totals.total, "spot": totals.spot}
    evaluator = SimpleEval(names=names)
    parsed = evaluator.parse(PLAIN)
    share, limit = Decimal("0.60"), Decimal(2000)
    floor = lambda t: t.contract / t.total > share and t.spot < limit  # noqa: E731
    answers = {
        fn(totals, None, lookup, history, False),
        run(fn, totals, None, lookup, history, False),
        evaluator.eval(PLAIN),
        evaluator.eval(PLAIN, previously_parsed=parsed),
        floor(totals),
    }
    assert len(answers) == 1, "the four ways must agree"
    n = 20000
    return {
        "compiled": median_seconds(lambda: fn(totals, None, lookup, history, False), n),
        "compiled via engine.run": median_seconds(
            lambda: run(fn, totals, None, lookup, history, False), n
        ),
        "simpleeval (parse each time)": median_seconds(lambda: evaluator.eval(PLAIN), n // 10),
        "simpleeval (pre-parsed)": median_seconds(
            lambda: evaluator.eval(PLAIN, previously_parsed=parsed), n
        ),
        "hand-written lambda": median_seconds(lambda: floor(totals), n),
    }


def thousand_rules(each_rules: int = 20) -> str:
    """950-odd single rules over currencies and totals plus ``each_rules`` per-currency ones."""
    lines = ["channels:", "  default: 'console://'", "rules:"]
    shapes = [
        "C{i:04d}.spot < 100",
        "C{i:04d}.contract / C{i:04d}.total > 70%",
        "contract / total > 60% and spot < {i}",
        "abs(C{i:04d}.spot - C{i:04d}.contract) > 1000",
        "max(USDT.spot, BTC.spot) < {i}",
    ]
    for i in range(1000 - each_rules):
        when = shapes[i % len(shapes)].format(i=2 + i % 498)
        lines += [f"  - name: r{i}", f"    when: {when}"]
    for i in range(each_rules):
        lines += [f"  - name: e{i}", "    each: currency", f"    when: contract > {i}% * total"]
    return "\n".join(lines) + "\n"


def cycle(overview) -> tuple[float, int]:
    rules = parse_rules(thousand_rules(), "bench.yaml")
    history = History()
    now = overview.fetched_at
    first = evaluate(rules, overview, {}, history, now)
    alerts = first.alerts  # steady state: the firing ones stay firing
    took = median_seconds(lambda: evaluate(rules, overview, alerts, history, now), 5, repeat=5)
    return took, len(alerts)


def accounts_rules(accounts: int = 20, rules: int = 50) -> str:
    """``accounts`` accounts, ``rules`` rules each reads on every account (5 per currency)."""
    lines = ["accounts:"]
    lines += [f"  a{i:02d}: {{web_key: '${{BENCH_KEY}}'}}" for i in range(accounts)]
    lines += ["channels:", "  default: 'console://'", "rules:"]
    for i in range(rules - 5):
        lines += [f"  - name: r{i}", f"    when: C{2 + i:04d}.spot < {i + 100}"]
    for i in range(5):
        lines += [
            f"  - name: e{i}",
            "    each: currency",
            f"    when: contract > {20 + i}% * total",
        ]
    return "\n".join(lines) + "\n"


def accounts_cycle(accounts: int = 20, currencies: int = 100) -> tuple[float, float, int]:
    """CPU of one cycle over every account (each its own overview), and the memory it holds."""
    tracemalloc.start()
    rules = resolve(
        parse_rules(accounts_rules(accounts), "bench.yaml"), env={"BENCH_KEY": "WEB-bench-key"}
    )
    overview = account(currencies)
    names = rules.account_names
    histories = {name: History() for name in names}
    now = overview.fetched_at

    def one_cycle(alerts: dict) -> dict:
        for name in names:
            alerts, _ = evaluate_poll(
                rules, alerts, histories[name], now, overview, account=name, label=name
            )
            alerts = alerts.alerts
        return alerts

    alerts = one_cycle({})
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()  # timing without the tracer, which slows allocation down
    took = median_seconds(lambda: one_cycle(alerts), 3, repeat=5)
    return took, held / 1e6, len(alerts)


def positions_rules(accounts: int = 20, rules: int = 20) -> str:
    """``accounts`` accounts and ``rules`` position rules, each read per open position."""
    lines = ["accounts:"]
    lines += [f"  a{i:02d}: {{web_key: '${{BENCH_KEY}}'}}" for i in range(accounts)]
    lines += ["channels:", "  default: 'console://'", "rules:"]
    fields = ("liq_distance < {t}%", "leverage > {t}", "pnl < -{t}00", "notional > {t}000")
    for i in range(rules):
        condition = fields[i % len(fields)].format(t=5 + i)
        lines += [f"  - name: p{i}", "    each: position", f"    when: {condition}"]
    return "\n".join(lines) + "\n"


def book(count: int = 50) -> Any:
    """An overview holding ``count`` open positions, some near liquidation."""
    from dataclasses import replace

    from watcher.core.positions import Position

    held = tuple(
        Position(
            f"C{i:03d}_USDT",
            "long" if i % 2 else "short",
            "isolated",
            Decimal(100 + i),
            Decimal("0.01"),
            Decimal(1000),
            Decimal(1000 + (i % 7) * 10),
            Decimal(950) if i % 2 else Decimal(1060),
            Decimal(5 + i % 30),
            Decimal(50),
            Decimal((i % 11) * 100 - 500),
        )
        for i in range(count)
    )
    return replace(account(10), positions=held)


def positions_cycle(accounts: int = 20, count: int = 50) -> tuple[float, int]:
    """CPU of one cycle: every account, every position rule, every open position."""
    rules = resolve(
        parse_rules(positions_rules(accounts), "bench.yaml"), env={"BENCH_KEY": "WEB-bench-key"}
    )
    overview = book(count)
    histories = {name: History() for name in rules.account_names}
    now = overview.fetched_at

    def one_cycle(alerts: dict) -> dict:
        for name in rules.account_names:
            outcome, _ = evaluate_poll(
                rules, alerts, histories[name], now, overview, account=name, label=name
            )
            alerts = outcome.alerts
        return alerts

    alerts = one_cycle({})
    return median_seconds(lambda: one_cycle(alerts), 3, repeat=5), len(alerts)


def main() -> dict[str, str]:
    overview = account(500)
    times = single(overview)
    width = max(map(len, times))
    print(f"one evaluation of `{EXPRESSION}` (median):")
    for name, seconds in times.items():
        print(f"  {name:<{width}}  {microseconds(seconds)}")
    speedup = times["simpleeval (pre-parsed)"] / times["compiled"]
    over_floor = times["compiled"] / times["hand-written lambda"]
    print(f"  compiled is {speedup:.1f}x faster than pre-parsed simpleeval (goal >= 8x)")
    print(f"  compiled is {over_floor:.2f}x the hand-written lambda (goal <= 3x)")
    took, firing = cycle(overview)
    print(
        f"1,000 rules (20 of them per currency) over 500 currencies: {milliseconds(took)} "
        f"median per cycle, {firing} instances active (goal < 100 ms)"
    )
    per_accounts, memory, instances = accounts_cycle()
    print(
        f"20 accounts x 50 rules x 100 currencies: {milliseconds(per_accounts)} median per "
        f"cycle (goal < 100 ms), {instances} instances active, {memory:.1f} MB held by the "
        "rules, overviews and alerts"
    )
    per_positions, held = positions_cycle()
    print(
        f"20 accounts x 50 positions x 20 position rules: {milliseconds(per_positions)} median "
        f"per cycle (goal < 100 ms), {held} instances active"
    )
    return {
        "20 accounts x 50 positions x 20 position rules": (
            f"{milliseconds(per_positions)} per cycle (goal < 100 ms)"
        ),
        "20 accounts x 50 rules x 100 currencies": (
            f"{milliseconds(per_accounts)} per cycle (goal < 100 ms), {memory:.1f} MB"
        ),
        "compiled rule vs pre-parsed simpleeval": f"{speedup:.1f}x faster (goal >= 8x)",
        "compiled rule vs hand-written lambda": f"{over_floor:.2f}x (goal <= 3x)",
        "1,000 rules x 500 currencies": f"{milliseconds(took)} per cycle (goal < 100 ms)",
    }


if __name__ == "__main__":
    main()
