"""The one start-up check that ``check``, ``run`` and ``once`` share, after parsing.

Parsing (``watcher.config``) is pure: syntax and meaning. What needs the world is
checked here, in one place, with every problem located in the rules file:

1. every ``${VAR}`` is set (``watcher.config.resolve``);
2. every channel URL makes an apprise service (``watcher.notify``);
3. every ccxt account's exchange is known to an installed ccxt (``watcher.sources``);
4. Telegram commands have python-telegram-bot installed (the ``telegram`` extra).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from watcher.config.model import RuleSet
from watcher.config.resolve import resolve_all, unresolved
from watcher.config.rules_file import parse_rules, read_rules_file
from watcher.core.errors import Problem, RulesError
from watcher.notify.adapter import validate_url
from watcher.sources import exchange_problem


def service_problems(rules: RuleSet) -> list[Problem]:
    """What a resolved rule set names that the world cannot provide, located."""
    found = []
    for name, channel in rules.channels.items():
        for url, where in channel.located():
            problem = None if unresolved(url) else validate_url(url)
            if problem:
                found.append(where.problem(f"channel {name}: {problem}"))
    for account in rules.accounts:
        if account.source == "ccxt" and account.exchange:
            problem = exchange_problem(account.exchange, positions=rules.needs.positions)
            if problem:
                key, what = problem
                found.append(account.at(key).problem(f"account {account.name}: {what}"))
    if rules.telegram is not None and not installed("telegram.ext"):
        what = "commands: telegram needs python-telegram-bot: pip install 'watcher[telegram]'"
        found.append(rules.telegram.where.problem(what))
    return found


def installed(module: str) -> bool:
    """True when ``module`` can be imported (it is not imported here)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ValueError, ImportError):
        return False


def prepare(rules: RuleSet, env: Mapping[str, str] | None = None) -> RuleSet:
    """Parsed rules made ready to run: resolved and checked, or one ``RulesError`` with
    every problem, sorted by line."""
    resolved, problems = resolve_all(rules, env)
    problems += service_problems(resolved)
    if problems:
        raise RulesError(sorted(problems, key=_place))
    return resolved


def load_checked(path: Path | str, env: Mapping[str, str] | None = None) -> RuleSet:
    """Read, parse, resolve and check a rules file: what ``check``, ``run`` and ``once`` use."""
    return parse_checked(read_rules_file(Path(path)), str(path), env)


def parse_checked(text: str, path: str, env: Mapping[str, str] | None = None) -> RuleSet:
    """Parse, resolve and check; the problems of every step come in one sorted list, so
    one ``check`` shows every mistake."""
    try:
        rules = parse_rules(text, path)
    except RulesError as exc:
        if exc.partial is None:
            raise
        resolved, later = resolve_all(exc.partial, env)
        problems = exc.problems + later + service_problems(resolved)
        raise RulesError(sorted(problems, key=_place)) from None
    return prepare(rules, env)


def _place(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.column
