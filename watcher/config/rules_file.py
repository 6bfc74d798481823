"""The rules file: validated against one model, compiled once, every problem located.

``watcher.config.schema`` says what a rules file may hold, and pydantic checks a file
against it; this module adds what needs the whole file at once (a ``notify`` naming a
channel, a rule naming an account, duplicate names) and builds the engine's types.
Loading collects *all* problems before failing, so ``watcher check`` shows every
mistake in one run, each as ``PATH:LINE:COL: rule NAME: what``. When parts of a file
are broken, the rest is still compiled and checked, and handed on with the error, so
that later steps (``${VAR}``s, apprise) can add their problems too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from watcher.config import schema
from watcher.config.channels import Channel, QuietHours
from watcher.config.expr import Compiled, Needs
from watcher.config.located import locate, validate
from watcher.config.model import (
    BUILTIN_RULES,
    DEFAULT_CHANNEL,
    AccountSpec,
    Digest,
    Heartbeat,
    Policy,
    Rule,
    RuleSet,
    TelegramCommands,
)
from watcher.config.yamlloc import Loc, LocList, LocMap, YamlProblem, load
from watcher.core.alerts import MAIN
from watcher.core.errors import Problem, RulesError, Where
from watcher.core.secrets import url_secrets

__all__ = ["load_rules", "parse_rules", "read_rules_file"]

_NAME = re.compile(schema.NAME_PATTERN)
SECTIONS = ("defaults", "heartbeat", "digest", "commands")  # dropped whole when broken
ENTRIES = ("rules", "channels", "accounts")  # broken entries dropped one by one


class RulesCompiler:
    """One file: validate, salvage what is sound, cross-check, build a ``RuleSet``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.document = _empty()
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.written: list[int] = []  # the index in the file of each rule compiled
        self.accounts: tuple[str, ...] = (MAIN,)

    def load(self, text: str) -> RuleSet:
        try:
            document = load(text, self.path)
        except YamlProblem as exc:
            raise RulesError([exc.problem]) from None
        self.document = _empty() if document is None else document
        if not isinstance(self.document, LocMap):
            raise RulesError([Problem(self.path, 1, 1, "the file must be a mapping with 'rules:'")])
        spec, self.problems, paths = validate(
            schema.RulesFile, self.document, self.path, self.rule_of
        )
        rules = self.document.get("rules")
        self.written = list(range(len(rules))) if isinstance(rules, list) else []
        ruleset = self.build(spec or self.salvage(paths))
        if self.problems:
            problems = sorted(self.problems, key=lambda p: (p.line, p.column))
            raise RulesError(problems, partial=ruleset)
        return ruleset

    # --- locations ----------------------------------------------------------------------

    def at(self, *steps: Any) -> Loc:
        return locate(self.document, steps)

    def where(self, *steps: Any) -> Where:
        loc = self.at(*steps)
        return Where(self.path, loc.line, loc.column)

    def rule_of(self, steps: Sequence[Any]) -> str | None:
        """The name of the rule at ``steps``, when it has a good one to be called by."""
        rules = self.document.get("rules")
        if len(steps) < 2 or steps[0] != "rules" or not isinstance(rules, list):
            return None
        item = rules[steps[1]] if isinstance(steps[1], int) and steps[1] < len(rules) else None
        name = item.get("name") if isinstance(item, dict) else None
        return name if isinstance(name, str) and _NAME.fullmatch(name) else None

    def problem(self, loc: Loc, message: str, rule: str | None = None) -> None:
        self.problems.append(Problem(self.path, loc.line, loc.column, message, rule))

    def warn(self, loc: Loc, message: str, rule: str | None = None) -> None:
        """Legal, loads and runs, but likely not what was meant: shown by ``check``."""
        self.warnings.append(Problem(self.path, loc.line, loc.column, f"warning: {message}", rule))

    # --- what is sound in a broken file ---------------------------------------------------

    def salvage(self, paths: list[tuple[Any, ...]]) -> schema.RulesFile:
        """The file without the parts that have problems, so the rest is still checked."""
        broken = {_part(p) for p in paths}
        kept: dict[str, Any] = {}
        for key, value in self.document.items():
            if key in SECTIONS and (key,) not in broken:
                kept[key] = value
            elif key == "rules" and isinstance(value, list):
                self.written = [i for i in self.written if (key, i) not in broken]
                kept[key] = [value[i] for i in self.written]
            elif key in ENTRIES[1:] and isinstance(value, dict):
                entries = {k: v for k, v in value.items() if (key, k) not in broken}
                if key == "channels":  # a channel's sound URLs are still worth checking
                    entries |= _sound_urls(value, broken, paths)
                kept[key] = entries or None if key == "accounts" else entries
        kept.setdefault("rules", [])
        spec = validate(schema.RulesFile, _located(kept), self.path).value
        if spec is None:  # a part that is sound alone but not beside the others
            self.written = []
            return schema.RulesFile(rules=[])
        return spec

    # --- the engine's types -------------------------------------------------------------

    def build(self, spec: schema.RulesFile) -> RuleSet:
        refused = self.cross_check()
        channels = {name: self.channel(name, c) for name, c in spec.channels.items()}
        accounts = tuple(self.account(n, a) for n, a in (spec.accounts or {}).items())
        defaults = _policy(Policy(), spec.defaults)
        rules = [
            _rule(rule, _policy(defaults, rule), self.at("rules", index).line, *self.group(rule))
            for rule, index in zip(spec.rules, self.written, strict=True)
            if index not in refused and not self.lint(rule, ("rules", index))
        ]
        daily = None
        if spec.digest is not None:
            daily = Digest(spec.digest.at, spec.digest.timezone, tuple(spec.digest.notify))
        return RuleSet(
            self.path,
            tuple(rules),
            channels,
            _needs(rules, daily),
            tuple(self.warnings),
            tuple(self.heartbeat(i, b) for i, b in enumerate(spec.heartbeat)),
            daily,
            accounts,
            self.telegram(spec.commands),
        )

    # --- what needs the whole file: run on the file as written, sound parts or not --------

    def cross_check(self) -> set[int]:
        """Names that must exist or must be unique; the indices of rules refused for it."""
        channels = self.names_in("channels")
        self.accounts = self.names_in("accounts") or (MAIN,)
        self.default_channel(channels)
        self.names_known(("defaults", "notify"), "channel", channels)
        self.names_known(("digest", "notify"), "channel", channels, context="digest: ")
        refused: set[int] = set()
        first: dict[str, int] = {}
        written = self.document.get("rules")
        for index in range(len(written) if isinstance(written, list) else 0):
            name = self.rule_of(("rules", index))
            if name is None:
                continue
            steps = ("rules", index)
            if name in first or name in BUILTIN_RULES:
                refused.add(index)
                message = (
                    f"duplicate rule name (first at line {first[name]})"
                    if name in first
                    else "this name is taken by a built-in alert"
                )
                self.problem(self.at(*steps, "name"), message, name)
            first.setdefault(name, self.at(*steps).line)
            self.names_known((*steps, "notify"), "channel", channels, name)
            self.names_known((*steps, "accounts"), "account", self.accounts, name, listed=True)
        return refused

    def names_known(
        self,
        steps: tuple[Any, ...],
        what: str,
        names: tuple[str, ...],
        rule: str | None = None,
        context: str = "",
        listed: bool = False,
    ) -> None:
        """The one spelling of "names something that does not exist", with a hint, for each
        name written at ``steps`` (one name or a list of them)."""
        written = _written(self.document, steps)
        found = [written] if isinstance(written, str) else written
        for index, name in enumerate(found if isinstance(found, list) else ()):
            if not isinstance(name, str) or name in names:
                continue
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            have = f" (have: {', '.join(names)})" if listed else ""
            message = f"{context}{steps[-1]}: no {what} named {name!r}{hint}{have}"
            self.problem(self.at(*steps, index), message, rule)

    def names_in(self, section: str) -> tuple[str, ...]:
        """Every name a section declares, sound or not: a rule naming a broken channel gets
        the channel's problem, not a second one saying there is no such channel."""
        found = self.document.get(section)
        return tuple(str(n) for n in found) if isinstance(found, dict) else ()

    def default_channel(self, names: tuple[str, ...]) -> None:
        written = self.document.get("channels")
        if written is not None and not isinstance(written, dict):
            return  # the section's own problem says enough
        if DEFAULT_CHANNEL not in names:
            self.problem(
                self.at("channels"),
                "no channel named 'default': it receives built-in alerts (exchange unreachable, "
                "auth failed) and every rule without 'notify'; add e.g. default: \"console://\"",
            )

    def channel(self, name: str, spec: schema.Channel) -> Channel:
        quiet = None
        if spec.quiet_hours is not None:
            zone = ZoneInfo(spec.timezone) if spec.timezone else None
            quiet = QuietHours(*spec.quiet_hours, zone)
        urls = tuple(spec.urls)
        written = self.document["channels"][name]
        if isinstance(written, dict) and isinstance(written.get("urls"), LocList):
            where = tuple(self.where("channels", name, "urls", i) for i in range(len(urls)))
        else:
            where = (self.where("channels", name, "urls"),) * len(urls)
        channel = Channel(name, urls, quiet, where)
        self.literal_tokens(channel)
        return channel

    def literal_tokens(self, channel: Channel) -> None:
        """A URL with a token written out (``tgram://123:ABC.../...``) works, but rules files
        get copied and committed: say where a ``${VAR}`` would keep it out of the file."""
        for url, where in channel.located():
            if "${" not in url and any(len(part) >= 16 for part in url_secrets(url)):
                self.warnings.append(
                    where.problem(
                        f"warning: channel {channel.name}: this URL holds a token; write it "
                        'as "${VAR}" and set the variable in watcher.env'
                    )
                )

    def account(self, name: str, spec: schema.Account) -> AccountSpec:
        given = spec.model_dump(exclude_none=True)
        if "wallets" in given:
            given["wallets"] = tuple(given["wallets"])
        if "pegged" in given:
            given["pegged"] = tuple(code.upper() for code in given["pegged"])
        where = {"": self.where("accounts", name)}
        where |= {key: self.where("accounts", name, key) for key in given}
        return AccountSpec(name=name, **given, where=tuple(where.items()))

    def group(self, rule: schema.Rule) -> tuple[tuple[str, ...] | None, str | None]:
        """``accounts: [main, hedge]`` narrows a rule; ``combined: true`` sums them."""
        names = tuple(rule.accounts) if rule.accounts else None
        members = names or self.accounts
        if rule.combined and len(members) == 1:
            # the sum over one account is that account: its own rule, under the same label
            # (a group labelled like the account would take over all of its rules)
            return members, None
        return names, "+".join(members) if rule.combined else None

    def lint(self, rule: schema.Rule, steps: tuple[Any, ...]) -> bool:
        """The expression language's warnings, and ``each`` over a per-account condition;
        True when a name the rule uses was refused, so the rule is not compiled."""
        for key in ("when", "clear_when"):
            compiled: Compiled | None = getattr(rule, key)
            if compiled is None:
                continue
            for pos, message in compiled.lints:
                self.warn(self.at(*steps, key).at(pos), f"{key}: {message}", rule.name)
        reads = rule.when.needs.reads
        if rule.each == "currency" and not any(code == "*" for code, _ in reads):
            self.warn(
                self.at(*steps, "when"),
                "when: reads no field of the current currency (spot, total, ...), so "
                "'each: currency' gives every currency the same answer",
                rule.name,
            )
        return any(p.rule == rule.name for p in self.problems)

    def heartbeat(self, index: int, spec: schema.Heartbeat) -> Heartbeat:
        return Heartbeat(spec.url, spec.every, spec.style, self.where("heartbeat", index, "url"))

    def telegram(self, spec: schema.Commands | None) -> TelegramCommands | None:
        if spec is None:
            return None
        bot = spec.telegram
        users = tuple(bot.users) if bot.users else None
        where = self.where("commands", "telegram", "token")
        return TelegramCommands(bot.token, tuple(bot.chats), users, bot.api_url, where)


def _policy(base: Policy, spec: schema.Policy | None) -> Policy:
    """``base`` with what ``spec`` sets; ``repeat: never`` is no reminder."""
    if spec is None:
        return base
    values: dict[str, Any] = {}
    for name in spec.model_fields_set & set(schema.Policy.model_fields):
        value = getattr(spec, name)
        if value is None:
            continue
        if name == "repeat" and value == timedelta(0):
            value = None
        values[name] = tuple(value) if name == "notify" else value
    return Policy(**{**base.__dict__, **values})


def _rule(
    spec: schema.Rule,
    policy: Policy,
    line: int,
    accounts: tuple[str, ...] | None,
    group: str | None,
) -> Rule:
    return Rule(
        name=spec.name,
        when=spec.when,
        policy=policy,
        clear_when=spec.clear_when,
        each=spec.each == "currency",
        per_position=spec.each == "position",
        currencies=tuple(spec.currencies) if spec.currencies else None,
        exclude=frozenset(spec.exclude or ()),
        message=spec.message,
        line=line,
        accounts=accounts,
        group=group,
    )


def _needs(rules: list[Rule], daily: Digest | None) -> Needs:
    needs = Needs()
    for rule in rules:
        needs.merge(rule.when.needs)
        if rule.clear_when:
            needs.merge(rule.clear_when.needs)
    if daily is not None:  # the digest reports the account total and its 24 h change
        needs.totals = True
        needs.reads.add(("ACCOUNT", "total"))
    return needs


def _sound_urls(
    channels: dict[str, Any], broken: set[tuple[Any, ...]], paths: list[tuple[Any, ...]]
) -> dict[str, Any]:
    """The broken channels whose ``urls`` are sound, as channels of their URLs alone."""
    found = {}
    for name, value in channels.items():
        urls = value.get("urls") if isinstance(value, dict) else None
        bad = any(p[:3] == ("channels", name, "urls") for p in paths)
        if ("channels", name) in broken and urls is not None and not bad:
            found[name] = {"urls": urls}
    return found


def _written(document: Any, steps: tuple[Any, ...]) -> Any:
    """The value at ``steps`` in the file as written, or None."""
    for step in steps:
        if isinstance(document, dict):
            document = document.get(step)
        elif isinstance(document, list) and isinstance(step, int) and step < len(document):
            document = document[step]
        else:
            return None
    return document


def _part(steps: tuple[Any, ...]) -> tuple[Any, ...]:
    """The part of the file an error path breaks: a section, or one entry of a list."""
    if steps and steps[0] in ENTRIES and len(steps) > 1:
        return steps[:2]
    return steps[:1]


def _empty() -> LocMap:
    return _located({})


def _located(values: dict[str, Any]) -> LocMap:
    document = LocMap(values)
    document.loc, document.locs, document.key_locs = Loc(1, 1), {}, {}
    return document


def parse_rules(text: str, path: str = "rules.yaml") -> RuleSet:
    """Syntax and meaning only: no environment, no apprise, no ccxt. ``${VAR}`` stay as
    written; ``watcher.config.resolve`` and ``watcher.app.preflight`` take it from here."""
    return RulesCompiler(path).load(text)


def load_rules(path: Path | str) -> RuleSet:
    """Read and compile a rules file; raises ``RulesError`` listing every problem."""
    return parse_rules(read_rules_file(Path(path)), str(path))


def read_rules_file(path: Path) -> str:
    """The file's text, or a ``RulesError`` that says how to get one."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = "rules file not found; copy rules.example.yaml there or set WATCHER_RULES"
        raise RulesError([Problem(str(path), 1, 1, message)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([Problem(str(path), 1, 1, f"cannot read: {exc}")]) from None


def rule_index(path: Path | str) -> dict[str, bool]:
    """Rule names (and whether each runs per currency) without compiling anything or
    expanding a channel's ``${VAR}``: what ``silence`` and ``status`` need on a server
    where the channel variables live only in the service's environment file."""
    path = Path(path)
    text = read_rules_file(path)
    try:
        document = load(text, str(path))
    except YamlProblem as exc:
        raise RulesError([exc.problem]) from None
    rules = document.get("rules") if isinstance(document, dict) else None
    found = {
        str(r["name"]): "each" in r for r in rules or [] if isinstance(r, dict) and "name" in r
    }
    return {**found, **dict.fromkeys(BUILTIN_RULES, False)}


def account_index(path: Path | str) -> tuple[str, ...]:
    """The account names a rules file declares (``main`` without a section), unexpanded."""
    try:
        document = load(Path(path).read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, YamlProblem):
        return (MAIN,)
    section = document.get("accounts") if isinstance(document, dict) else None
    return tuple(str(n) for n in section) if isinstance(section, dict) and section else (MAIN,)
