"""The rules file as one pydantic model: every key, its type, its check and its words.

``RulesFile`` describes the whole document: channels, accounts, rules, defaults,
heartbeat, digest and commands. Validating a document against it finds every mistake
of shape and value at once; ``watcher.config.located`` turns pydantic's findings into
``FILE:LINE:COL`` lines, and ``watcher schema`` prints its JSON Schema for editors.

What needs more than one section at a time (a rule's ``notify`` naming a channel, a
duplicate rule name) is checked after validation, by ``watcher.config.rules_file``.

Each field's ``description`` is written to finish "must be ...": the one phrase serves
the JSON Schema and the error message alike. Conditions are compiled by the
expression language's own parser, called from a validator; a message template is
rendered once against sample values. Secrets are ``${VAR}`` and stay unexpanded.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from watcher.config.expr import Compiled, ExprError, compile_expression
from watcher.config.located import PATTERNS
from watcher.config.resolve import is_reference
from watcher.config.settings import is_loopback
from watcher.config.templates import TemplateError, render
from watcher.core.durations import parse_duration
from watcher.core.numbers import Shown

NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
CODE_PATTERN = r"^[A-Z0-9][A-Z0-9_-]*$"
# what each pattern means, in words, for "'Low' is not ..." messages
PATTERNS[NAME_PATTERN] = "use lower case letters, digits and dashes, e.g. usdt-spot-low"
PATTERNS[CODE_PATTERN] = "use an upper-case currency code such as BTC"
FREE_PREFIX = "x-"  # top-level keys for YAML anchors: `x-common: &common {...}`
_BARE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")  # $VAR: a shell habit, without braces
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_HOUR = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")

SAMPLE = {  # what a message template is rendered with when the file is checked
    "value": Shown(Decimal("99.5")),
    "threshold": Shown(Decimal("100")),
    "rule": "sample-rule",
    "currency": "USDT",
    "severity": "warning",
    "state": "firing",
    "since": "2026-01-01 00:00 UTC",
    "when": "USDT.spot < 100",
}


# --- the checks, each raising its own words -------------------------------------------


def _duration(value: Any) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, str | int | float | timedelta):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    return parse_duration(value)


def _repeat(value: Any) -> timedelta:
    """``repeat: never`` (or 0, or false) is no reminder: the engine reads 0 as never."""
    if value in (0, "0", "never") or value is False:
        return timedelta(0)
    return _duration(value)


def _at_least_a_second(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s")
    return value


def _listed(value: Any) -> Any:
    """One name where a list is expected is a list of one."""
    return [value] if isinstance(value, str) else value


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return str(value)


def _time_of_day(value: Any) -> time:
    match = _HOUR.match(str(value))
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError('must be a time of day such as "08:00"')
    return time(int(match[1]), int(match[2]))


def _window(value: Any) -> tuple[time, time]:
    match = _HOURS.match(str(value))
    if not match:
        raise ValueError("must look like 23:00-07:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError("has an impossible time")
    return time(h1, m1), time(h2, m2)


def _reference(value: Any) -> Any:
    """A secret is ``${VAR}``: rules files get copied, pasted and committed."""
    if not isinstance(value, str) or is_reference(value):
        return value
    bare = _BARE.fullmatch(value.strip())
    if bare:
        raise ValueError(f"write ${{{bare.group(1)}}}, with braces")
    raise ValueError(
        "must be ${VAR} (an environment variable or credential), never the secret itself"
    )


def _https_unless_loopback(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the type check says what it should be
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s):// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must be https (plain http only for loopback): a key travels in it")
    return value.rstrip("/")


def _condition(value: Any, info: ValidationInfo) -> Compiled:
    """The expression language's parser, run where the rule is read; ``each`` comes first
    in the model so that it is known here."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a condition such as USDT.spot < 100")
    try:  # a number is an expression too, and the language says why it is not a condition
        return compile_expression(str(value), info.data.get("each") or False)
    except ExprError as exc:
        raise PydanticCustomError(
            "expression", "{message}", {"message": exc.message, "pos": exc.pos}
        ) from None


def _template(value: str) -> str:
    try:
        render(value, SAMPLE)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return value


def needs_key(key: str, message: str) -> PydanticCustomError:
    """A problem of the whole mapping that belongs at one of its keys."""
    return PydanticCustomError("needs", "{message}", {"message": message, "key": key})


# --- the types the models share ---------------------------------------------------------

Duration = Annotated[
    timedelta, BeforeValidator(_duration, json_schema_input_type=str | int | float)
]
Repeat = Annotated[
    timedelta, BeforeValidator(_repeat, json_schema_input_type=str | int | float | bool)
]
Names = Annotated[list[str], BeforeValidator(_listed, json_schema_input_type=str | list[str])]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Code = Annotated[str, Field(pattern=CODE_PATTERN)]
Reference = Annotated[
    str, Field(pattern=r"^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$"), BeforeValidator(_reference)
]
HttpUrl = Annotated[str, BeforeValidator(_https_unless_loopback, json_schema_input_type=str)]
Zone = Annotated[str, BeforeValidator(_zone, json_schema_input_type=str)]
Template = Annotated[str, AfterValidator(_template)]
Condition = Annotated[Compiled, PlainValidator(_condition, json_schema_input_type=str)]


class Part(BaseModel):
    """A mapping of the rules file: no unknown keys, no silent conversions."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)
    noun: ClassVar[str] = ""  # in "unknown NOUN key" and "NOUN NAME: ..." messages
    shape: ClassVar[str] = "a mapping"  # finishes "must be ..." when it is not a mapping


class Policy(Part):
    """How an alert behaves once its condition is decided (Alertmanager's knobs)."""

    noun: ClassVar[str] = "defaults"
    for_: Duration | None = Field(
        None,
        alias="for",
        description="how long the condition must hold before the alert fires",
        examples=["5m"],
    )
    keep_firing_for: Duration | None = Field(
        None, description="how long the alert keeps firing after the condition clears"
    )
    repeat: Repeat | None = Field(
        None, description="a duration between reminders while firing, or never", examples=["4h"]
    )
    severity: Literal["info", "warning", "critical"] | None = None
    notify: Names | None = Field(
        None, min_length=1, description="a channel name or a list of them", examples=["default"]
    )
    send_resolved: bool | None = Field(None, description="true or false")


class Rule(Policy):
    """One rule: a condition over balances, checked at every poll."""

    noun: ClassVar[str] = "rule"
    shape: ClassVar[str] = "a mapping with name and when"
    name: Name = Field(
        description="a name of lower case letters, digits and dashes", examples=["usdt-spot-low"]
    )
    each: Literal["currency", "position"] | None = Field(
        None, description="'currency' (one alert per currency) or 'position' (per position)"
    )
    when: Condition = Field(
        description="a condition such as USDT.spot < 100", examples=["USDT.spot < 100"]
    )
    clear_when: Condition | None = Field(None, description="a condition such as USDT.spot > 120")
    currencies: list[Code] | None = Field(
        None, description="a list of currency codes like [BTC, ETH]"
    )
    exclude: list[Code] | None = Field(None, description="a list of currency codes like [BTC, ETH]")
    message: Template | None = Field(None, description="text with {placeholders}")
    accounts: Names | None = Field(
        None, min_length=1, description="an account name or a list of them"
    )
    combined: bool = Field(False, description="true or false")

    @model_validator(mode="after")
    def _filters_need_each(self) -> Rule:
        for key in ("currencies", "exclude"):
            if getattr(self, key) is not None and self.each is None:
                message = f"'{key}' only applies with 'each: currency' or 'each: position'"
                raise needs_key(key, message)
        return self


def _or_text(schema: dict[str, Any]) -> None:
    """In the JSON Schema, a channel may also be one URL (``default: "console://"``)."""
    mapping = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"type": "string"}, mapping]


class Channel(Part):
    """Where messages go: apprise URLs, and hours in which they wait."""

    noun: ClassVar[str] = "channel"
    shape: ClassVar[str] = "a URL or a mapping with 'urls'"
    model_config = ConfigDict(json_schema_extra=lambda schema: _or_text(schema))
    urls: Names = Field(min_length=1, description="a URL or a list of URLs")
    quiet_hours: (
        Annotated[tuple[time, time], BeforeValidator(_window, json_schema_input_type=str)] | None
    ) = Field(None, description="a daily window such as 23:00-07:00", examples=["23:00-07:00"])
    timezone: Zone | None = Field(None, description="a time zone such as Europe/Berlin")

    @model_validator(mode="before")
    @classmethod
    def _one_url(cls, value: Any) -> Any:
        """``default: "console://"`` is a channel of one URL."""
        return {"urls": [value]} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _zone_needs_hours(self) -> Channel:
        if self.timezone is not None and self.quiet_hours is None:
            raise needs_key("timezone", "'timezone' only matters with 'quiet_hours'")
        return self


SOURCE_NEEDS = {
    "mexc": ("web_key",),
    "bypass": ("api_key",),
    "ccxt": ("exchange", "api_key", "secret"),
}


class Account(Part):
    """One exchange account: its source, its settings and its secrets as ``${VAR}``."""

    noun: ClassVar[str] = "account"
    shape: ClassVar[str] = 'a mapping such as {source: mexc, web_key: "${VAR}"}'
    source: Literal["mexc", "bypass", "ccxt"] = "mexc"
    mexc_url: HttpUrl | None = None
    futures_url: HttpUrl | None = None
    tls: Literal["auto", "python", "browser"] | None = Field(
        None, description="mexc: the TLS handshake (browser needs watcher[browser-tls])"
    )
    base_url: HttpUrl | None = None
    network: Literal["MAINNET", "TESTNET"] | None = None
    exchange: str | None = Field(None, description="a ccxt exchange id such as binance")
    quote: str | None = None
    web_key: Reference | None = None
    api_key: Reference | None = None
    proxy: Reference | None = None
    secret: Reference | None = None
    password: Reference | None = None
    wallets: Names | None = Field(None, description="a list of names")
    pegged: Names | None = Field(None, description="a list of currency codes")

    @model_validator(mode="after")
    def _source_has_its_keys(self) -> Account:
        for need in SOURCE_NEEDS[self.source]:
            if getattr(self, need) is None:
                example = "mexc" if need == "exchange" else '"${VAR}"'
                raise PydanticCustomError(
                    "needs",
                    "{message}",
                    {"message": f"the {self.source} source needs {need}: {example}"},
                )
        return self


class Heartbeat(Part):
    """An outside service watching for watcher's pings."""

    noun: ClassVar[str] = "heartbeat"
    shape: ClassVar[str] = 'a mapping such as {url: "${HC_URL}", every: 5m}'
    url: str = Field(description="the ping URL, best as ${VAR}", examples=["${HC_URL}"])
    every: Annotated[Duration, AfterValidator(_at_least_a_second)] = Field(
        timedelta(minutes=5), description="a duration of at least 1s"
    )
    style: Literal["healthchecks", "kuma", "plain"] | None = None


def _beats(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


def _or_one(schema: dict[str, Any]) -> None:
    """In the JSON Schema, a list of one may be written as its one item."""
    listed = {"type": "array", "items": schema.pop("items")}
    schema.pop("type", None)
    schema["anyOf"] = [listed["items"], listed]


class Digest(Part):
    """One all-clear-or-not message a day."""

    noun: ClassVar[str] = "digest"
    shape: ClassVar[str] = 'a mapping such as {at: "08:00", timezone: Europe/Berlin}'
    at: Annotated[time, BeforeValidator(_time_of_day, json_schema_input_type=str)] = Field(
        description='a time of day such as "08:00"', examples=["08:00"]
    )
    timezone: Zone = Field("UTC", description="a time zone such as Europe/Berlin")
    notify: Names = Field(["default"], min_length=1, description="a channel name or a list")


class Telegram(Part):
    """A bot of watcher's own that answers commands from the listed chats (and users)."""

    noun: ClassVar[str] = "telegram"
    shape: ClassVar[str] = 'a mapping such as {token: "${BOT_TOKEN}", chats: [123456789]}'
    token: Reference = Field(
        description="${VAR}, never the token itself", examples=["${BOT_TOKEN}"]
    )
    chats: list[int] = Field(
        min_length=1, description="a non-empty list of numeric ids", examples=[[123456789]]
    )
    users: list[int] | None = Field(
        None, min_length=1, description="a non-empty list of numeric ids"
    )
    api_url: HttpUrl = "https://api.telegram.org"


class Commands(Part):
    noun: ClassVar[str] = "commands"
    shape: ClassVar[str] = "a mapping such as {telegram: {...}}"
    telegram: Telegram


class RulesFile(Part):
    """A watcher rules file (rules.yaml)."""

    noun: ClassVar[str] = "top-level"
    shape: ClassVar[str] = "a mapping with 'rules:'"
    model_config = ConfigDict(
        title="watcher rules file",
        json_schema_extra={"patternProperties": {"^x-": {}}},
    )
    defaults: Policy | None = None
    accounts: dict[Name, Account] | None = Field(
        None,
        min_length=1,
        description="a mapping of names, e.g. main: {source: mexc, web_key: ...}",
    )
    channels: dict[Name, Channel] = Field({}, description="a mapping of names to apprise URLs")
    rules: list[Rule] = Field(
        description="a list of rules (each starting with '- name:')",
        examples=[[{"name": "usdt-spot-low", "when": "USDT.spot < 100"}]],
    )
    heartbeat: Annotated[list[Heartbeat], BeforeValidator(_beats)] = Field(
        [],
        description="a mapping such as {url: ${HC_URL}, every: 5m}, or a list of them",
        json_schema_extra=lambda schema: _or_one(schema),
    )
    digest: Digest | None = None
    commands: Commands | None = None

    @model_validator(mode="before")
    @classmethod
    def _free_keys(cls, value: Any) -> Any:
        """``x-...`` keys hold YAML anchors for the rest of the file; nothing reads them."""
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not str(k).startswith(FREE_PREFIX)}
        return value


SCHEMA_ID = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The rules file's JSON Schema (draft 2020-12), as pydantic generates it from
    ``RulesFile``: what ``watcher schema`` prints and editors read."""
    generated = RulesFile.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_ID, **generated}
