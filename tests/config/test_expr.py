"""The expression language: grammar, types, functions, fields, no-data."""

from __future__ import annotations

import ast
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.helpers import at, overview, row
from watcher.config.expr import ExprError, compile_expression, parse
from watcher.core.models import ORIGIN_WALLETS, WALLETS
from watcher.engine.evaluate import History, run

BASE = overview(
    row("USDT", spot="1500", contract="800"),
    row("BTC", "60000", spot="0.05", contract="0.01"),
    total="5900",
    spot="4500",
    contract="1400",
)


def value(text: str, each_currency: str | None = None, history: History | None = None):
    compiled = compile_expression(text, each=each_currency is not None)
    current = BASE.balance(each_currency) if each_currency else None
    args = (BASE.totals, current, BASE.balance, history or History(), BASE.is_testnet)
    return run(compiled.fn, *args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3 == 9", True),
        ("10 - 4 - 3 == 3", True),
        ("8 / 4 / 2 == 1", True),
        ("-2 * 3 == -6", True),
        ("--2 == 2", True),
        ("60% == 0.6", True),
        ("10_000 == 10000", True),
        ("0.5 < 1 and 1 < 2", True),
        ("1 > 2 or 2 > 1", True),
        ("not 1 > 2", True),
        ("not 1 < 2 or 1 < 2", True),  # not binds tighter than or
        ("1 < 2 and not 2 < 1", True),
        ("1 > 2 and 2 > 1 or 1 == 1", True),  # and before or
        ("1 != 2", True),
        ("2 >= 2 and 2 <= 2", True),
    ],
)
def test_precedence_and_literals(text: str, expected: bool) -> None:
    assert value(text) is expected


def test_numbers_are_decimal_end_to_end() -> None:
    compiled = compile_expression("0.1 + 0.2 == 0.3", each=False)
    assert run(compiled.fn, None, None, None, None, False) is True  # float would say False
    threshold = compile_expression("spot < 0.1 + 0.2", each=False).threshold
    assert run(threshold, None, None, None, None, False) == Decimal("0.3")


@pytest.mark.parametrize("wallet", WALLETS)
def test_every_account_field(wallet: str) -> None:
    compiled = compile_expression(f"{wallet} >= 0", each=False)
    assert compiled.needs.totals and not compiled.needs.rows
    assert value(f"{wallet} >= 0") is True


@pytest.mark.parametrize("name", WALLETS + ORIGIN_WALLETS)
def test_every_currency_field(name: str) -> None:
    expected = getattr(BASE.balance("BTC"), name)
    compiled = compile_expression(f"BTC.{name} == 0", each=False)
    assert compiled.needs.rows and not compiled.needs.totals
    assert value(f"BTC.{name} == {expected}") is True
    assert value(f"{name} == {expected}", each_currency="BTC") is True


def test_currency_fields_read_real_values() -> None:
    assert value("USDT.spot == 1500") is True
    assert value("BTC.spot == 3000") is True
    assert value("BTC.originSpot == 0.05") is True
    assert value("contract / total > 23%") is True


def test_unlisted_currency_holds_zero() -> None:
    assert value("DOGE.total == 0 and DOGE.originSpot == 0") is True


def test_each_rule_names_and_currency() -> None:
    assert value("currency == 'BTC' and originTotal == 0.06", each_currency="BTC") is True
    assert value('currency != "BTC"', each_currency="USDT") is True


def test_is_testnet() -> None:
    assert value("not is_testnet") is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abs(-5) == 5", True),
        ("min(3, 1, 2) == 1", True),
        ("max(3, 1, 2) == 3", True),
        ("max(USDT.spot, BTC.spot) == 3000", True),
        ("abs(USDT.spot - 2000) == 500", True),
    ],
)
def test_plain_functions(text: str, expected: bool) -> None:
    assert value(text) is expected


def test_change_and_delta_use_history() -> None:
    history = History()
    history.record("BTC.originTotal", at(minutes=0), Decimal("0.08"))
    history.record("BTC.originTotal", at(minutes=30), Decimal("0.07"))
    history.record("ACCOUNT.total", at(minutes=0), Decimal("5000"))
    history.now = at(minutes=60).timestamp()
    assert value("change(BTC.originTotal, 1h) == -25%", history=history) is True
    assert value("delta(BTC.originTotal, 1h) == -0.02", history=history) is True
    assert value("delta(BTC.originTotal, 30m) == -0.01", history=history) is True
    assert value("delta(total, 1h) == 900", history=history) is True
    assert value("change(originTotal, 1h) < -10%", "BTC", history=history) is True


def test_history_needs_are_recorded() -> None:
    compiled = compile_expression("change(BTC.total, 1h) < 0 and delta(spot, 2d) > 0", each=False)
    assert compiled.needs.series == {("BTC", "total"), ("ACCOUNT", "spot")}
    assert compiled.needs.window == timedelta(days=2)
    each = compile_expression("change(total, 30m) < 0", each=True)
    assert each.needs.series == {("*", "total")}


@pytest.mark.parametrize(
    "text",
    [
        "USDT.spot / DOGE.total > 1",  # division by zero
        "change(BTC.total, 1h) < 0",  # no history at all
        "change(DOGE.total, 1h) < 0",
    ],
)
def test_no_data_is_none_never_an_exception(text: str) -> None:
    assert value(text) is None


def test_no_data_when_history_is_too_young_or_zero() -> None:
    history = History()
    history.record("BTC.total", at(minutes=50), Decimal("1"))
    history.record("USDT.total", at(minutes=0), Decimal("0"))
    history.now = at(minutes=60).timestamp()
    assert value("change(BTC.total, 1h) < 0", history=history) is None
    assert value("change(USDT.total, 1h) < 0", history=history) is None
    history.now = at(hours=5).timestamp()  # only samples far older than the window
    assert value("delta(USDT.total, 1h) < 0", history=history) is None


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("USDT.spto < 100", 6, "did you mean 'spot'"),
        ("spto < 100", 1, "did you mean 'spot'"),
        ("usdt.spot < 100", 1, "currency codes are upper case"),
        ("USDT.spot <", 12, "ends too early"),
        ("USDT.spot < 100 100", 17, "unexpected '100'"),
        ("(USDT.spot < 100", 17, "expected ')'"),
        ("chnage(BTC.total, 1h) < 1", 1, "did you mean 'change'"),
        ("change(BTC.total) < 1", 1, "change() takes a field and a duration"),
        ("change(BTC.total + 1, 1h) < 1", 8, "takes a field"),
        ("change(BTC.total, 5) < 1", 19, "takes a field and a duration"),
        ("min(1) < 2", 1, "two or more"),
        ("abs(1, 2) < 2", 1, "exactly one"),
        ("USDT.spot", 1, "must be true or false"),
        ("USDT.spot + (1 < 2) > 0", 14, "needs a number"),
        ("1 < 2 < 3", 7, "cannot be chained"),
        ("USDT.spot < 100 and 5", 21, "needs a true/false"),
        ("USDT.spot $ 3", 11, "unexpected character '$'"),
        ("", 1, "empty"),
        ("currency == 'BTC'", 1, "only in rules with 'each"),
        ("USDT < 5", 1, "alone is not a value"),
        ("originTotal > 1", 1, "exists per currency"),
    ],
)
def test_errors_carry_a_column(text: str, column: int, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        compile_expression(text, each=False)
    assert message in caught.value.message
    assert caught.value.pos + 1 == column


def test_value_and_threshold_are_the_sides_of_the_first_comparison() -> None:
    compiled = compile_expression("contract / total > 60% and spot < 2000", each=False)
    args = (BASE.totals, None, BASE.balance, History(), False)
    assert run(compiled.value, *args) == Decimal("1400") / Decimal("5900")
    assert run(compiled.threshold, *args) == Decimal("0.60")


def test_compiled_code_has_no_access_to_builtins() -> None:
    compiled = compile_expression("abs(USDT.spot) > 0", each=False)
    assert compiled.fn.__globals__["__builtins" + "__"] == {}
    assert set(compiled.fn.__code__.co_names) <= {"abs", "C", "spot", "_k0", "__builtins__"}


def test_no_names_reach_python_beyond_the_whitelist() -> None:
    for text in ("__import__ < 1", "USDT.__class__ < 1", "open < 1", "eval(1) < 1"):
        with pytest.raises(ExprError):
            compile_expression(text, each=False)


def test_parse_builds_a_tree_not_python() -> None:
    tree = parse("USDT.spot < 100")
    assert not isinstance(tree, ast.AST)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_any_text_compiles_or_gives_a_located_error(text: str) -> None:
    try:
        compiled = compile_expression(text, each=False)
    except ExprError as exc:
        assert 0 <= exc.pos <= len(text)
        assert exc.message
    else:
        run(compiled.fn, BASE.totals, None, BASE.balance, History(), False)


TOKENS = st.sampled_from(
    [
        "USDT.spot",
        "total",
        "spot",
        "1",
        "60%",
        "0.5",
        "(",
        ")",
        "+",
        "-",
        "*",
        "/",
        "<",
        ">=",
        "==",
        "and",
        "or",
        "not",
        "abs(",
        "min(",
        ",",
        "change(",
        "1h",
        "BTC.originTotal",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=12).map(" ".join))
def test_token_soup_compiles_or_gives_a_located_error(text: str) -> None:
    test_any_text_compiles_or_gives_a_located_error.hypothesis.inner_test(text)
