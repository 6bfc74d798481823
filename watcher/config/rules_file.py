"""The rules file: parsed and compiled once, every problem located.

Loading collects *all* problems before failing, so ``watcher check`` shows a
user every mistake in one run, each as ``PATH:LINE:COL: rule NAME: what``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from watcher.config import sections as schedules
from watcher.config.accounts_section import accounts as account_specs
from watcher.config.channels import Channel, ChannelError, parse_channel
from watcher.config.expr import Compiled, ExprError, Needs, compile_expression
from watcher.config.model import (
    BUILTIN_RULES,
    DEFAULT_CHANNEL,
    SEVERITIES,
    Policy,
    Rule,
    RuleSet,
)
from watcher.config.templates import TemplateError, render
from watcher.config.yamlloc import Loc, LocList, LocMap, YamlProblem, load
from watcher.core.alerts import MAIN
from watcher.core.durations import parse_duration
from watcher.core.errors import Problem, RulesError, Where
from watcher.core.secrets import url_secrets

__all__ = ["load_rules", "parse_rules", "read_rules_file"]

TOP_KEYS = ("defaults", "accounts", "channels", "rules", "heartbeat", "digest", "commands")
POLICY_KEYS = ("for", "keep_firing_for", "repeat", "severity", "notify", "send_resolved")
RULE_KEYS = (
    "name",
    "when",
    "clear_when",
    "each",
    "currencies",
    "exclude",
    "message",
    "accounts",
    "combined",
    *POLICY_KEYS,
)
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]*")


SAMPLE = {
    "value": Decimal("99.5"),
    "threshold": Decimal("100"),
    "rule": "sample-rule",
    "currency": "USDT",
    "severity": "warning",
    "state": "firing",
    "since": "2026-01-01 00:00 UTC",
    "when": "USDT.spot < 100",
}


class RulesCompiler:
    """Walks the YAML tree and compiles it, collecting located problems."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.accounts: tuple[Any, ...] = ()
        self.names: tuple[str, ...] = (MAIN,)
        self.rule_name: str | None = None
        self.channel_names: set[str] = set()

    def where(self, loc: Loc) -> Where:
        return Where(self.path, loc.line, loc.column)

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.path, loc.line, loc.column, message, self.rule_name))

    def warn(self, loc: Loc, message: str) -> None:
        """Legal, loads and runs, but likely not what was meant: shown by ``check``."""
        where = Problem(self.path, loc.line, loc.column, f"warning: {message}", self.rule_name)
        self.warnings.append(where)

    def load(self, text: str) -> RuleSet:
        try:
            document = load(text, self.path)
        except YamlProblem as exc:
            raise RulesError([exc.problem]) from None
        if document is None:
            document = LocMap()
            document.loc, document.locs, document.key_locs = Loc(1, 1), {}, {}
        if not isinstance(document, LocMap):
            raise RulesError([Problem(self.path, 1, 1, "the file must be a mapping with 'rules:'")])
        self.unknown_keys(document, TOP_KEYS, "top-level key", free_prefix="x-")
        channels = self.channels(document)
        self.accounts = account_specs(
            document.get("accounts"),
            document.locs.get("accounts", document.loc),
            self.where,
            self.problem,
        )
        self.names = tuple(a.name for a in self.accounts) or (MAIN,)
        defaults = self.policy(document.get("defaults"), document, "defaults", Policy())
        rules = self.rules(document, defaults)
        top = document.loc
        beats = schedules.heartbeats(
            document.get("heartbeat"), document.locs.get("heartbeat", top), self.where, self.problem
        )
        bot = schedules.telegram(
            document.get("commands"), document.locs.get("commands", top), self.where, self.problem
        )
        daily = schedules.digest(
            document.get("digest"),
            document.locs.get("digest", top),
            self.channel_names,
            self.problem,
        )
        needs = Needs()
        for rule in rules:
            needs.merge(rule.when.needs)
            if rule.clear_when:
                needs.merge(rule.clear_when.needs)
        if daily is not None:  # the digest reports the account total and its 24 h change
            needs.totals = True
            needs.reads.add(("ACCOUNT", "total"))
        ruleset = RuleSet(
            self.path,
            tuple(rules),
            channels,
            needs,
            tuple(self.warnings),
            beats,
            daily,
            self.accounts,
            bot,
        )
        if self.problems:
            problems = sorted(self.problems, key=lambda p: (p.line, p.column))
            raise RulesError(problems, partial=ruleset)
        return ruleset

    def unknown_keys(
        self, mapping: LocMap, allowed: tuple[str, ...], what: str, free_prefix: str = ""
    ) -> None:
        """Name every key that is not allowed; ``x-...`` top-level keys hold YAML anchors."""
        for key in mapping:
            if free_prefix and str(key).startswith(free_prefix):
                continue
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(allowed)})"
                )
                self.problem(mapping.key_locs[key], f"unknown {what} '{key}'{hint}")

    def channels(self, document: LocMap) -> dict[str, Channel]:
        """The channels that parsed; the names of all of them are kept for ``notify`` checks."""
        section = document.get("channels")
        loc = document.locs.get("channels", document.loc)
        if section is None:
            section = LocMap()
            section.loc, section.locs, section.key_locs = loc, {}, {}
        if not isinstance(section, LocMap):
            self.problem(loc, "'channels' must map names to apprise URLs")
            return {}
        channels: dict[str, Channel] = {}
        self.channel_names = {str(name) for name in section}
        for name, spec in section.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.problem(section.key_locs[name], f"channel name {name!r} must match [a-z0-9-]+")
                continue
            try:
                channel = parse_channel(name, spec)
            except ChannelError as exc:
                self.problem(_channel_loc(section, name, exc), f"channel {name}: {exc}")
                if not exc.urls:
                    continue
                channel = Channel(name, exc.urls)  # kept so start-up checks check its URLs
            channels[name] = replace(channel, where=self.url_where(section, name, channel))
            self.literal_tokens(channels[name])
        if DEFAULT_CHANNEL not in section:
            self.problem(
                loc,
                "no channel named 'default': it receives built-in alerts (exchange unreachable, "
                "auth failed) and every rule without 'notify'; add e.g. default: \"console://\"",
            )
        return channels

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

    def url_where(self, section: LocMap, name: str, channel: Channel) -> tuple[Where, ...]:
        """Where each of a channel's URLs stands, for problems found when it is resolved."""
        spec = section[name]
        urls = spec.get("urls") if isinstance(spec, LocMap) else None
        if isinstance(urls, LocList):
            return tuple(self.where(loc) for loc in urls.locs)
        loc = spec.locs["urls"] if isinstance(spec, LocMap) else section.locs[name]
        return (self.where(loc),) * len(channel.urls)

    def policy(
        self,
        mapping: Any,
        parent: LocMap,
        key: str,
        base: Policy,
    ) -> Policy:
        if mapping is None:
            return base
        if not isinstance(mapping, LocMap):
            self.problem(parent.locs[key], f"'{key}' must be a mapping")
            return base
        if key == "defaults":
            self.unknown_keys(mapping, POLICY_KEYS, "key in defaults")
        values: dict[str, Any] = {}
        for name in ("for", "keep_firing_for", "repeat"):
            if name in mapping:
                values["for_" if name == "for" else name] = self.duration(mapping, name)
        if "severity" in mapping:
            severity = mapping["severity"]
            if severity not in SEVERITIES:
                self.problem(mapping.locs["severity"], f"severity must be one of {SEVERITIES}")
            else:
                values["severity"] = severity
        if "notify" in mapping:
            values["notify"] = self.notify(mapping)
        if "send_resolved" in mapping:
            if not isinstance(mapping["send_resolved"], bool):
                self.problem(mapping.locs["send_resolved"], "send_resolved must be true or false")
            else:
                values["send_resolved"] = mapping["send_resolved"]
        values = {k: v for k, v in values.items() if v is not _BAD}
        return Policy(**{**base.__dict__, **values})

    def duration(self, mapping: LocMap, name: str) -> Any:
        value = mapping[name]
        if name == "repeat" and (value in (0, "0", "never") or value is False):
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(mapping.locs[name], f"{name}: {exc}")
            return _BAD

    def notify(self, mapping: LocMap) -> Any:
        value = mapping["notify"]
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.problem(mapping.locs["notify"], "notify must be a channel name or a list of them")
            return _BAD
        for index, name in enumerate(names):
            if name not in self.channel_names:
                loc = names.locs[index] if isinstance(names, LocList) else mapping.locs["notify"]
                close = difflib.get_close_matches(name, sorted(self.channel_names), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.problem(loc, f"notify: no channel named '{name}'{hint}")
        return tuple(names)

    def rules(self, document: LocMap, defaults: Policy) -> list[Rule]:
        section = document.get("rules")
        if not isinstance(section, LocList):
            loc = document.locs.get("rules", document.loc)
            self.problem(loc, "'rules' must be a list of rules (each starting with '- name:')")
            return []
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(section):
            self.rule_name = None
            if not isinstance(item, LocMap):
                self.problem(section.locs[index], "each rule must be a mapping with name and when")
                continue
            rule = self.rule(item, defaults, seen)
            if rule:
                rules.append(rule)
        self.rule_name = None
        return rules

    def rule(
        self,
        item: LocMap,
        defaults: Policy,
        seen: dict[str, int],
    ) -> Rule | None:
        name = item.get("name")
        if name is None:
            self.problem(item.loc, "missing 'name:' (lower case, e.g. name: usdt-spot-low)")
            return None
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            where = item.locs.get("name", item.loc)
            self.problem(where, f"rule name {name!r} must match [a-z0-9-]+ (e.g. usdt-spot-low)")
            return None
        self.rule_name = name
        if name in seen:
            self.problem(item.locs["name"], f"duplicate rule name (first at line {seen[name]})")
        elif name in BUILTIN_RULES:
            self.problem(item.locs["name"], "this name is taken by a built-in alert")
        seen.setdefault(name, item.loc.line)
        self.unknown_keys(item, RULE_KEYS, "rule key")
        each = self.each(item)
        when = self.expression(item, "when", each, required=True)
        clear_when = self.expression(item, "clear_when", each, required=False)
        currencies = self.codes(item, "currencies", each)
        exclude = self.codes(item, "exclude", each)
        message = self.message(item)
        policy = self.policy(item, item, name, defaults)
        accounts, group = self.rule_accounts(item)
        if when is None or self.problems_for(name):
            return None
        return Rule(
            name=name,
            when=when,
            policy=policy,
            clear_when=clear_when,
            each=each,
            currencies=tuple(currencies) if currencies else None,
            exclude=frozenset(exclude or ()),
            message=message,
            line=item.loc.line,
            accounts=accounts,
            group=group,
        )

    def rule_accounts(self, item: LocMap) -> tuple[tuple[str, ...] | None, str | None]:
        """``accounts: [main, hedge]`` narrows a rule; ``combined: true`` sums them."""
        names = None
        if "accounts" in item:
            value = item["accounts"]
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not value:
                self.problem(item.locs["accounts"], "accounts must be a list of account names")
            else:
                for index, name in enumerate(value):
                    if name not in self.names:
                        where = value.locs[index] if isinstance(value, LocList) else item.loc
                        known = ", ".join(self.names)
                        close = difflib.get_close_matches(str(name), self.names, n=1)
                        hint = f"; did you mean '{close[0]}'?" if close else ""
                        self.problem(
                            where, f"accounts: no account named {name!r}{hint} (have: {known})"
                        )
                names = tuple(str(n) for n in value)
        combined = item.get("combined", False)
        if not isinstance(combined, bool):
            self.problem(item.locs["combined"], "combined must be true or false")
            combined = False
        members = names or self.names
        if combined and len(members) == 1:
            # the sum over one account is that account: its own rule, under the same label
            # (a group labelled like the account would take over all of its rules)
            return members, None
        return names, "+".join(members) if combined else None

    def problems_for(self, name: str) -> bool:
        return any(p.rule == name for p in self.problems)

    def each(self, item: LocMap) -> bool:
        if "each" not in item:
            return False
        if item["each"] != "currency":
            self.problem(item.locs["each"], "each: the only supported value is 'currency'")
        return True

    def expression(self, item: LocMap, key: str, each: bool, required: bool) -> Compiled | None:
        text = item.get(key)
        if text is None:
            if required:
                self.problem(item.loc, f"missing '{key}:' (a condition such as USDT.spot < 100)")
            return None
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            self.problem(item.locs[key], f"'{key}' must be a condition such as USDT.spot < 100")
            return None
        try:
            compiled = compile_expression(str(text), each)
        except ExprError as exc:
            self.problem(item.locs[key].at(exc.pos), f"{key}: {exc.message}")
            return None
        for pos, message in compiled.lints:
            self.warn(item.locs[key].at(pos), f"{key}: {message}")
        if each and key == "when" and not any(code == "*" for code, _ in compiled.needs.reads):
            self.warn(
                item.locs[key],
                "when: reads no field of the current currency (spot, total, ...), so "
                "'each: currency' gives every currency the same answer",
            )
        return compiled

    def codes(self, item: LocMap, key: str, each: bool) -> list[str] | None:
        if key not in item:
            return None
        value = item[key]
        if not each:
            self.problem(item.locs[key], f"'{key}' only applies with 'each: currency'")
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(
                item.locs[key], f"'{key}' must be a list of currency codes like [BTC, ETH]"
            )
            return None
        for index, code in enumerate(value):
            if not _CODE.fullmatch(code):
                assert isinstance(value, LocList)
                self.problem(
                    value.locs[index], f"{key}: {code!r} is not an upper-case currency code"
                )
        return value

    def message(self, item: LocMap) -> str | None:
        template = item.get("message")
        if template is None:
            return None
        if not isinstance(template, str):
            self.problem(item.locs["message"], "message must be text")
            return None
        try:
            render(template, SAMPLE)
        except TemplateError as exc:
            self.problem(item.locs["message"], f"message: {exc}")
            return None
        return template


_BAD = object()


def _channel_loc(section: LocMap, name: str, exc: ChannelError) -> Loc:
    spec = section[name]
    if exc.key and isinstance(spec, LocMap) and exc.key in spec.locs:
        value = spec[exc.key]
        if exc.index is not None and isinstance(value, LocList):
            return value.locs[exc.index]
        return spec.locs[exc.key]
    return section.locs[name]


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
