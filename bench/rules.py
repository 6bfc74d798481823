"""Per-evaluation cost of a compiled rule against simpleeval and a hand-written lambda,
and one full cycle of 1,000 rules over a 500-currency overview.

Goals: at least 8x faster than pre-parsed simpleeval, within 3x of the lambda;
a 1,000-rule cycle under 100 ms.   Run: .venv/bin/python bench/rules.py
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import account, median_seconds, microseconds, milliseconds
from simpleeval import SimpleEval

from watcher.engine import History, evaluate, run
from watcher.expr import compile_expression
from watcher.rules import parse_rules

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
    rules = parse_rules(thousand_rules(), "bench.yaml", env={})
    history = History()
    now = overview.fetched_at
    first = evaluate(rules, overview, {}, history, now)
    alerts = first.alerts  # steady state: the firing ones stay firing
    took = median_seconds(lambda: evaluate(rules, overview, alerts, history, now), 5, repeat=5)
    return took, len(alerts)


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
    return {
        "compiled rule vs pre-parsed simpleeval": f"{speedup:.1f}x faster (goal >= 8x)",
        "compiled rule vs hand-written lambda": f"{over_floor:.2f}x (goal <= 3x)",
        "1,000 rules x 500 currencies": f"{milliseconds(took)} per cycle (goal < 100 ms)",
    }


if __name__ == "__main__":
    main()
