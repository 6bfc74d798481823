"""The rule expression language: tokenizer, parser, type check and compiler.

User text never reaches ``eval``: our parser builds a tree of whitelisted
nodes, the compiler turns that tree into a Python ``ast`` that we construct
node by node (as Jinja does), and ``compile()`` makes it a plain function.
That function is as fast as a hand-written lambda, which matters when a
thousand rules run over five hundred currencies every poll.
"""

from __future__ import annotations

import ast
import difflib
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from watcher.core.durations import parse_duration
from watcher.core.models import ORIGIN_WALLETS, ROW_FIELDS, WALLETS, NoData  # noqa: F401  (re-exported)
from watcher.core.positions import POSITION_FIELDS, POSITION_TEXT, SUMMARY_FIELDS, UNKNOWN_POSITIONS

NUM, BOOL, TEXT, DUR = "number", "true/false", "text", "duration"
FUNCTIONS = ("abs", "min", "max", "change", "delta")
ACCOUNT = "ACCOUNT"
KEYWORDS = ("and", "or", "not")
_CURRENCY = re.compile(r"[A-Z0-9][A-Z0-9_-]*")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<dur>(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+(?![\w.]))
  | (?P<num>\d[\d_]*(?:\.\d[\d_]*)?%?)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
  | (?P<op><=|>=|==|!=|[-+*/()<>,])
    """,
    re.VERBOSE,
)


_GLUED = re.compile(r"[0-9.]*[A-Za-z_]+")  # a number with letters stuck to it


def _unexpected(text: str, pos: int) -> str:
    """What a stray character most likely meant."""
    if text[pos] == "=":
        return "'=' alone is not a comparison: use == to compare"
    if text[pos] == "%" and re.search(r"[0-9.]\s+$", text[:pos]):
        number = text[:pos].split()[-1]
        return f"write the percent sign next to its number: {number}%"
    return f"unexpected character {text[pos]!r}"


class ExprError(Exception):
    """A problem in one expression, at a 0-based character offset."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ExprError(_unexpected(text, pos), pos)
        kind = match.lastgroup or ""
        if kind == "num" and _GLUED.match(text, match.end()):  # 1hour, 30mins, 2days
            word = _GLUED.match(text, pos)
            shown = word.group() if word else match.group()
            raise ExprError(f"{shown} is not a duration; write e.g. 1h, 30m or 2d", pos)
        if kind != "space":
            word = match.group()
            if kind == "name" and word in KEYWORDS:
                kind = "op"
            tokens.append(Token(kind, word, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# --- tree ---------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Num(Node):
    value: Decimal
    percent: bool = False  # written with %: shown as a percentage in messages


@dataclass(frozen=True)
class Dur(Node):
    value: timedelta


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "==": 4,
    "!=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}
COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
MAX_DEPTH = 40  # nested parentheses, unary signs and chained operators, all told


class Parser:
    """Precedence climbing over the token list; every error carries a position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def deeper(self, pos: int) -> None:
        """Refuse nesting a person never writes before it can exhaust Python's stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"the condition nests deeper than {MAX_DEPTH} levels", pos)

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise ExprError("the expression is empty", 0)
        node = self.expression(0)
        if self.token.kind != "end":
            raise ExprError(f"unexpected {self.token.text!r}", self.token.pos)
        return node

    def expression(self, floor: int) -> Node:
        self.deeper(self.token.pos)
        try:
            return self.climb(floor)
        finally:
            self.depth -= 1

    def climb(self, floor: int) -> Node:
        left = self.unary()
        chained = 0
        while True:
            op = self.token.text if self.token.kind == "op" else ""
            level = _PRECEDENCE.get(op, 0)
            if level <= floor:
                return left
            token = self.advance()
            right = self.expression(level)
            if op in COMPARISONS and isinstance(right, Binary) and right.op in COMPARISONS:
                raise ExprError("comparisons cannot be chained; join them with 'and'", right.pos)
            if op in COMPARISONS and isinstance(left, Binary) and left.op in COMPARISONS:
                raise ExprError("comparisons cannot be chained; join them with 'and'", token.pos)
            left = Binary(left.pos, op, left, right)
            chained += 1  # a left-leaning chain is a tree this deep
            if self.depth + chained > MAX_DEPTH:
                raise ExprError(
                    f"the condition chains more than {MAX_DEPTH} operators; split it into rules",
                    token.pos,
                )

    def unary(self) -> Node:
        token = self.token
        if token.kind == "op" and token.text == "not":
            self.advance()
            return Unary(token.pos, "not", self.expression(3))
        if token.kind == "op" and token.text in "-+":
            self.advance()
            self.deeper(token.pos)
            try:
                return Unary(token.pos, token.text, self.unary())
            finally:
                self.depth -= 1
        return self.primary()

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "num":
            return Num(token.pos, _number(token), token.text.endswith("%"))
        if token.kind == "dur":
            try:
                return Dur(token.pos, parse_duration(token.text))
            except ValueError as exc:
                raise ExprError(str(exc), token.pos) from None
        if token.kind == "str":
            return Str(token.pos, token.text[1:-1])
        if token.kind == "name":
            if self.token.text == "(":
                return self.call(token)
            return Name(token.pos, token.text)
        if token.text == "(":
            inner = self.expression(0)
            self.expect(")", token)
            return inner
        if token.kind == "end":
            raise ExprError("the expression ends too early", token.pos)
        raise ExprError(f"unexpected {token.text!r}", token.pos)

    def call(self, name: Token) -> Call:
        opening = self.advance()
        args: list[Node] = []
        if self.token.text != ")":
            args.append(self.expression(0))
            while self.token.text == ",":
                self.advance()
                args.append(self.expression(0))
        self.expect(")", opening)
        return Call(name.pos, name.text, tuple(args))

    def expect(self, text: str, opening: Token) -> None:
        if self.token.text != text:
            where = f"for the '{opening.text}' at column {opening.pos + 1}"
            raise ExprError(f"expected '{text}' {where}", self.token.pos)
        self.advance()


def _number(token: Token) -> Decimal:
    text = token.text.replace("_", "")
    percent = text.endswith("%")
    try:
        value = Decimal(text.rstrip("%"))
    except InvalidOperation:
        raise ExprError(f"{token.text!r} is not a number", token.pos) from None
    return value / 100 if percent else value


def parse(text: str) -> Node:
    return Parser(text).parse()


# --- compiler -----------------------------------------------------------------

ARGS = ("T", "R", "C", "H", "I", "P")  # totals, row, lookup, history, is_testnet, positions
POSITION = "position"  # each: position


@dataclass
class Needs:
    """What a compiled expression reads, so the client fetches only that."""

    rows: bool = False
    totals: bool = False
    series: set[tuple[str, str]] = field(default_factory=set)
    reads: set[tuple[str, str]] = field(default_factory=set)
    window: timedelta = timedelta(0)
    positions: bool = False  # futures positions: fetched only when a rule reads them

    def merge(self, other: Needs) -> None:
        self.rows |= other.rows
        self.totals |= other.totals
        self.positions |= other.positions
        self.series |= other.series
        self.reads |= other.reads
        self.window = max(self.window, other.window)


@dataclass(frozen=True)
class Compiled:
    """A compiled expression: ``fn(T, R, C, H, I[, P])`` plus what it reads."""

    text: str
    fn: Callable[..., Any]
    kind: str
    needs: Needs
    value: Callable[..., Any] | None = None
    threshold: Callable[..., Any] | None = None
    percent: bool = False  # the threshold is a % literal: value and threshold read as %
    lints: tuple[tuple[int, str], ...] = ()  # (position, warning): legal but likely wrong

    @property
    def windowed(self) -> bool:
        """Reads change()/delta(): it can stop holding because its window moved on."""
        return self.needs.window > timedelta(0)


class Compiler:
    """Type-checks the tree and builds the Python AST for it."""

    def __init__(self, each: bool | str) -> None:
        self.per_position = each == POSITION
        self.each = bool(each) and not self.per_position  # each: currency
        self.constants: dict[str, Any] = {}
        self.needs = Needs()

    def constant(self, value: Any) -> ast.expr:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return ast.Name(name, ast.Load())

    def visit(self, node: Node) -> tuple[ast.expr, str]:
        method = getattr(self, "visit_" + type(node).__name__.lower())
        return method(node)

    def visit_num(self, node: Num) -> tuple[ast.expr, str]:
        return self.constant(node.value), NUM

    def visit_dur(self, node: Dur) -> tuple[ast.expr, str]:
        return self.constant(node.value.total_seconds()), DUR

    def visit_str(self, node: Str) -> tuple[ast.expr, str]:
        return ast.Constant(node.value), TEXT

    def visit_name(self, node: Name) -> tuple[ast.expr, str]:
        expr, kind, _ = self.field(node)
        return expr, kind

    def field(self, node: Name) -> tuple[ast.expr, str, ast.expr | None]:
        """A field read plus the history key expression for ``change``/``delta``."""
        name = node.name
        if name == "is_testnet":
            return ast.Name("I", ast.Load()), BOOL, None
        if name.startswith("positions."):
            return self.summary_field(node)
        if self.per_position and name in POSITION_FIELDS + POSITION_TEXT:
            self.needs.positions = True
            return _attr("R", name), TEXT if name in POSITION_TEXT else NUM, None
        if name in POSITION_FIELDS + POSITION_TEXT:
            raise ExprError(f"'{name}' is a field of a position: use 'each: position'", node.pos)
        if "." in name:
            return self.currency_field(node)
        if name == "currency":
            if not self.each:
                raise ExprError("'currency' exists only in rules with 'each: currency'", node.pos)
            self.needs.rows = True
            return _attr("R", "currency"), TEXT, None
        allowed = ROW_FIELDS if self.each else WALLETS
        if name not in allowed:
            raise ExprError(_unknown_field(name, allowed, self.each), node.pos)
        if self.each:
            self.needs.rows = True
            self.needs.reads.add(("*", name))
            key = ast.BinOp(_attr("R", "currency"), ast.Add(), ast.Constant("." + name))
            return _attr("R", name), NUM, key
        self.needs.totals = True
        self.needs.reads.add((ACCOUNT, name))
        return _attr("T", name), NUM, ast.Constant(f"{ACCOUNT}.{name}")

    def summary_field(self, node: Name) -> tuple[ast.expr, str, ast.expr | None]:
        """``positions.count`` and friends: the account's open positions at a glance."""
        name = node.name.partition(".")[2]
        if name not in SUMMARY_FIELDS:
            raise ExprError(
                _unknown_field(name, SUMMARY_FIELDS, False), node.pos + len("positions.")
            )
        self.needs.positions = True
        return _attr("P", name), NUM, None

    def currency_field(self, node: Name) -> tuple[ast.expr, str, ast.expr | None]:
        code, _, name = node.name.partition(".")
        if not _CURRENCY.fullmatch(code):
            hint = f"; currency codes are upper case, e.g. {code.upper()}.{name}"
            raise ExprError(f"{code!r} is not a currency code{hint}", node.pos)
        if name not in ROW_FIELDS:
            raise ExprError(_unknown_field(name, ROW_FIELDS, True), node.pos + len(code) + 1)
        self.needs.rows = True
        self.needs.reads.add((code, name))
        call = ast.Call(ast.Name("C", ast.Load()), [ast.Constant(code)], [])
        return ast.Attribute(call, name, ast.Load()), NUM, ast.Constant(f"{code}.{name}")

    def visit_unary(self, node: Unary) -> tuple[ast.expr, str]:
        operand, kind = self.visit(node.operand)
        if node.op == "not":
            self.require(kind, BOOL, node.operand, "'not'")
            return ast.UnaryOp(ast.Not(), operand), BOOL
        self.require(kind, NUM, node.operand, f"unary '{node.op}'")
        op = ast.USub() if node.op == "-" else ast.UAdd()
        return ast.UnaryOp(op, operand), NUM

    def visit_binary(self, node: Binary) -> tuple[ast.expr, str]:
        left, lkind = self.visit(node.left)
        right, rkind = self.visit(node.right)
        if node.op in ("and", "or"):
            self.require(lkind, BOOL, node.left, f"'{node.op}'")
            self.require(rkind, BOOL, node.right, f"'{node.op}'")
            op = ast.And() if node.op == "and" else ast.Or()
            return ast.BoolOp(op, [left, right]), BOOL
        if node.op in COMPARISONS:
            if node.op in ("==", "!=") and lkind == rkind and lkind != DUR:
                pass
            else:
                self.require(lkind, NUM, node.left, f"'{node.op}'")
                self.require(rkind, NUM, node.right, f"'{node.op}'")
            return ast.Compare(left, [_COMPARE[node.op]()], [right]), BOOL
        self.require(lkind, NUM, node.left, f"'{node.op}'")
        self.require(rkind, NUM, node.right, f"'{node.op}'")
        return ast.BinOp(left, _ARITH[node.op](), right), NUM

    def visit_call(self, node: Call) -> tuple[ast.expr, str]:
        if node.func not in FUNCTIONS:
            close = difflib.get_close_matches(node.func, FUNCTIONS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(FUNCTIONS)})"
            raise ExprError(f"unknown function '{node.func}'{hint}", node.pos)
        if node.func in ("change", "delta"):
            return self.history_call(node)
        if node.func == "abs" and len(node.args) != 1:
            raise ExprError("abs() takes exactly one number", node.pos)
        if node.func in ("min", "max") and len(node.args) < 2:
            raise ExprError(f"{node.func}() takes two or more numbers", node.pos)
        args = []
        for arg in node.args:
            expr, kind = self.visit(arg)
            self.require(kind, NUM, arg, f"{node.func}()")
            args.append(expr)
        return ast.Call(ast.Name(node.func, ast.Load()), args, []), NUM

    def history_call(self, node: Call) -> tuple[ast.expr, str]:
        usage = f"{node.func}() takes a field and a duration, e.g. {node.func}(BTC.total, 1h)"
        if len(node.args) != 2:
            raise ExprError(usage, node.pos)
        target, window = node.args
        if not isinstance(target, Name):
            raise ExprError(usage, target.pos)
        if not isinstance(window, Dur) or window.value <= timedelta(0):
            raise ExprError(usage, window.pos)
        value, kind, key = self.field(target)
        if kind != NUM or key is None:
            raise ExprError(usage, target.pos)
        code, _, name = target.name.rpartition(".")
        self.needs.series.add((code or ("*" if self.each else ACCOUNT), name))
        self.needs.window = max(self.needs.window, window.value)
        seconds = ast.Constant(window.value.total_seconds())
        method = ast.Attribute(ast.Name("H", ast.Load()), node.func, ast.Load())
        return ast.Call(method, [key, seconds, value], []), NUM

    @staticmethod
    def require(kind: str, wanted: str, node: Node, where: str) -> None:
        if kind != wanted:
            raise ExprError(f"{where} needs a {wanted}, but this is a {kind}", node.pos)

    def build(self, expr: ast.expr) -> Callable[..., Any]:
        """Turn one AST expression into a function of ``ARGS`` without eval/exec."""
        params = ast.arguments(
            posonlyargs=[],
            args=[ast.arg(a) for a in ARGS],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        )
        tree = ast.Expression(ast.Lambda(params, expr))
        ast.fix_missing_locations(tree)
        code = compile(tree, "<rule>", "eval")
        lambda_code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
        namespace = {"__builtins__": {}, "abs": abs, "min": min, "max": max, **self.constants}
        # P defaults to "not read": a caller that has no positions passes five arguments
        return types.FunctionType(lambda_code, namespace, None, (UNKNOWN_POSITIONS,))


_COMPARE: dict[str, type[ast.cmpop]] = {
    "<": ast.Lt,
    "<=": ast.LtE,
    ">": ast.Gt,
    ">=": ast.GtE,
    "==": ast.Eq,
    "!=": ast.NotEq,
}
_ARITH: dict[str, type[ast.operator]] = {
    "+": ast.Add,
    "-": ast.Sub,
    "*": ast.Mult,
    "/": ast.Div,
}


def _attr(base: str, name: str) -> ast.expr:
    return ast.Attribute(ast.Name(base, ast.Load()), name, ast.Load())


def _unknown_field(name: str, allowed: tuple[str, ...], each: bool) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"unknown field '{name}'; did you mean '{close[0]}'?"
    if name in ORIGIN_WALLETS and not each:
        return f"'{name}' exists per currency: write e.g. USDT.{name} or use 'each: currency'"
    if re.fullmatch(r"[A-Z0-9]+", name):
        return f"'{name}' alone is not a value; name a field, e.g. {name}.total"
    return f"unknown field '{name}' (fields: {', '.join(allowed)})"


def top_comparison(node: Node) -> Binary | None:
    """The comparison whose sides are ``{value}`` and ``{threshold}``: the first one found."""
    queue = [node]
    while queue:
        current = queue.pop(0)
        if isinstance(current, Binary):
            if current.op in COMPARISONS:
                return current
            queue += [current.left, current.right]
        elif isinstance(current, Unary):
            queue.append(current.operand)
    return None


def compile_expression(text: str, each: bool | str) -> Compiled:
    """Parse, check and compile ``text``; the result must be true/false."""
    tree = parse(text)
    compiler = Compiler(each)
    expr, kind = compiler.visit(tree)
    if kind != BOOL:
        raise ExprError(f"a condition must be true or false, but this is a {kind}", tree.pos)
    value = threshold = None
    percent = False
    comparison = top_comparison(tree)
    if comparison is not None:
        sides = [compiler.visit(comparison.left), compiler.visit(comparison.right)]
        if all(k == NUM for _, k in sides):
            value, threshold = (compiler.build(e) for e, _ in sides)
            percent = isinstance(comparison.right, Num) and comparison.right.percent
    fn = compiler.build(expr)
    lints = ratio_lints(comparison) if comparison is not None else ()
    return Compiled(text, fn, kind, compiler.needs, value, threshold, percent, lints)


def ratio_lints(comparison: Binary) -> tuple[tuple[int, str], ...]:
    """``contract / total > 60``: a share is at most 1, so 60 almost surely meant 60%."""
    for ratio, constant in (
        (comparison.left, comparison.right),
        (comparison.right, comparison.left),
    ):
        if (
            isinstance(ratio, Binary)
            and ratio.op == "/"
            and isinstance(constant, Num)
            and not constant.percent
            and constant.value > 1
        ):
            number = format(constant.value.normalize(), "f")
            return (
                (
                    constant.pos,
                    f"a ratio compared with {number}: a share is at most 1; "
                    f"did you mean {number}%?",
                ),
            )
    return ()
