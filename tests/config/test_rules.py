"""The rules file: every problem located as PATH:LINE:COL: rule NAME: what."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from watcher.app.preflight import parse_checked, prepare
from watcher.config.rules_file import load_rules, parse_rules
from watcher.config.templates import TemplateError, render
from watcher.core.errors import RulesError

ROOT = Path(__file__).resolve().parents[2]
OK_CHANNELS = 'channels:\n  default: "json://127.0.0.1:9/"\n'


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_checked(text, "r.yaml", env=env or {})
    return [str(p) for p in caught.value.problems]


def test_example_file_loads_with_every_rule() -> None:
    rules = load_rules(ROOT / "rules.example.yaml")
    names = [r.name for r in rules.rules]
    assert names == [
        "usdt-spot-low",
        "contract-heavy",
        "coin-contract-heavy",
        "btc-drawdown",
        "share-flap-guard",
    ]
    assert rules.get("usdt-spot-low").policy.for_ == timedelta(minutes=5)
    assert rules.get("share-flap-guard").policy.repeat is None
    assert rules.get("share-flap-guard").clear_when is not None
    assert rules.get("coin-contract-heavy").exclude == frozenset({"USDT"})
    assert rules.needs.rows and rules.needs.totals
    assert rules.history_keep == timedelta(hours=1, minutes=6)


def test_defaults_apply_and_rules_override() -> None:
    text = OK_CHANNELS + (
        "defaults:\n  for: 1m\n  repeat: 0\n  severity: info\n  send_resolved: false\n"
        "rules:\n  - name: a\n    when: total > 1\n  - name: b\n    when: total > 1\n"
        "    severity: critical\n    repeat: 30m\n"
    )
    rules = parse_rules(text, "r.yaml")
    a, b = rules.rules
    assert (a.policy.for_, a.policy.repeat, a.policy.severity) == (
        timedelta(minutes=1),
        None,
        "info",
    )
    assert not a.policy.send_resolved
    assert (b.policy.severity, b.policy.repeat) == ("critical", timedelta(minutes=30))


def test_every_problem_is_reported_at_once_with_its_place() -> None:
    text = OK_CHANNELS + (
        "rules:\n"
        "  - name: usdt-spot-low\n"  # line 4
        "    when: USDT.spto < 100\n"
        "    for: 5x\n"
        '    message: "{value.__class__}"\n'
        "  - name: usdt-spot-low\n"  # line 8
        "    when: total >\n"
        "    notify: [phon]\n"
        "    colour: red\n"
        "  - name: Bad_Name\n"
        "    when: total > 1\n"
    )
    assert problems(text) == [
        "r.yaml:5:16: rule usdt-spot-low: when: unknown field 'spto'; did you mean 'spot'?",
        "r.yaml:6:10: rule usdt-spot-low: for: expected a duration like 30s, 5m or 1h, got '5x'",
        "r.yaml:7:14: rule usdt-spot-low: message: '{value.__class__}' is not allowed: "
        "use a bare name such as {value}",
        "r.yaml:8:11: rule usdt-spot-low: duplicate rule name (first at line 4)",
        "r.yaml:9:18: rule usdt-spot-low: when: the expression ends too early",
        "r.yaml:10:14: rule usdt-spot-low: notify: no channel named 'phon'",
        "r.yaml:11:5: rule usdt-spot-low: unknown rule key 'colour' (keys: name, each, when, "
        "clear_when, currencies, exclude, message, accounts, combined, for, keep_firing_for, "
        "repeat, severity, notify, send_resolved)",
        "r.yaml:12:11: name: 'Bad_Name': use lower case letters, digits and dashes, e.g. "
        "usdt-spot-low",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [\n", "r.yaml:2:1: YAML syntax: expected the node content"),
        ("rules:\n  - name: a\n\twhen: x\n", "r.yaml:3:1: line"),
        ("- 1\n- 2\n", "r.yaml:1:1: the file must be a mapping with 'rules:'"),
        ("rules: 5\n", "r.yaml:1:8: rules: must be a list of rules"),
        ("rulez: []\n", "r.yaml:1:1: unknown top-level key 'rulez'; did you mean 'rules'?"),
        ("rules:\n  - when: total > 1\n", "r.yaml:2:5: missing 'name:'"),
        ("rules:\n  - name: a\n", "r.yaml:2:5: rule a: missing 'when:'"),
        ("rules:\n  - name: a\n    when: 5\n", "r.yaml:3:11: rule a: when: a condition must be"),
        ("rules:\n  - name: a\n    when: total > 1\n    severity: high\n", "severity: must be"),
        ("rules:\n  - name: a\n    when: total > 1\n    each: coin\n", "each: must be 'currency'"),
        ("rules:\n  - name: a\n    when: total > 1\n    currencies: [BTC]\n", "only applies"),
        (
            "rules:\n  - name: a\n    each: currency\n    when: total > 1\n    exclude: [btc]\n",
            "r.yaml:5:15: rule a: exclude: 'btc': use an upper-case currency code",
        ),
        ("rules:\n  - name: auth-failed\n    when: total > 1\n", "taken by a built-in"),
        (
            "rules:\n  - name: a\n    when: total > 1\n    message: '{nope}'\n",
            "message: unknown placeholder '{nope}'",
        ),
        ("rules:\n  - name: a\n    when: total > 1\n    send_resolved: 3\n", "true or false"),
        ("rules:\n  - name: a\n    when: total > 1\n    notify: 5\n", "channel name or a list"),
        ("rules:\n  a: 1\n  a: 2\n", "r.yaml:3:3: YAML syntax: duplicate key 'a'"),
    ],
)
def test_located_errors(text: str, expected: str) -> None:
    found = problems(OK_CHANNELS + text if not text.startswith("-") else text)
    shifted = expected
    if expected.startswith("r.yaml:") and not text.startswith("-"):
        line = int(expected.split(":")[1]) + 2  # the channels block above
        shifted = expected.replace(f"r.yaml:{line - 2}:", f"r.yaml:{line}:", 1)
    assert any(shifted in p for p in found), found


def test_channel_problems_are_located() -> None:
    text = (
        "channels:\n"
        "  default: 'json://127.0.0.1:9/'\n"
        "  phone: 'tgram://${NOPE_TOKEN}/123'\n"
        "  odd: 'nonsense://x'\n"
        "  team:\n"
        "    urls: ['json://127.0.0.1:9/', 'plain text']\n"
        "    quiet_hours: '25:00-07:00'\n"
        "  night:\n"
        "    urls: 'json://127.0.0.1:9/'\n"
        "    quiet_hours: '23:00-07:00'\n"
        "    timezone: Mars/Olympus\n"
        "rules: []\n"
    )
    assert problems(text) == [
        "r.yaml:3:10: channel phone: environment variable NOPE_TOKEN is not set",
        "r.yaml:4:8: channel odd: apprise cannot use this 'nonsense://' URL; "
        "check it against apprise's docs",
        "r.yaml:6:35: channel team: not a URL: expected SCHEME://..., e.g. tgram://TOKEN/CHAT_ID",
        # parsing no longer stops at the bad URL, so the channel's other mistake shows too
        "r.yaml:7:18: channel team: quiet_hours: has an impossible time",
        "r.yaml:11:15: channel night: timezone: unknown time zone 'Mars/Olympus'",
    ]


def test_missing_default_channel_is_explained() -> None:
    text = "channels:\n  phone: 'json://127.0.0.1:9/'\nrules: []\n"
    (only,) = problems(text)
    assert only.startswith("r.yaml:2:3: no channel named 'default'")


def test_env_variables_expand_and_stay_out_of_errors() -> None:
    text = "channels:\n  default: 'json://${HOST}:9/${PATH_PART}'\nrules: []\n"
    rules = prepare(parse_rules(text, "r.yaml"), env={"HOST": "127.0.0.1", "PATH_PART": "tok"})
    assert rules.channels["default"].urls == ("json://127.0.0.1:9/tok",)


def test_missing_file_is_one_located_line(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "nope.yaml")
    assert str(caught.value).endswith(
        "nope.yaml:1:1: rules file not found; copy rules.example.yaml there or set WATCHER_RULES"
    )


@pytest.mark.parametrize(
    "template",
    ["{value.__class__}", "{value[0]}", "{0}", "{}", "{value!r}", "{value:{rule.x}}", "{nope}"],
)
def test_templates_cannot_reach_attributes_or_items(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, {"value": 1, "rule": "r"})


def test_template_formats_values() -> None:
    values = {"rule": "r", "value": Decimal("1234.5"), "threshold": 2}
    assert render("{rule}: {value:,.2f} < {threshold}", values) == "r: 1,234.50 < 2"


def test_a_typo_is_one_problem_and_only_beside_its_own_mapping() -> None:
    """`url:` for `urls:` in one channel is one line; another channel's missing `urls`
    is still its own problem."""
    text = "channels:\n  default:\n    url: 'console://'\n  other:\n    timezone: UTC\nrules: []\n"
    assert problems(text) == [
        "r.yaml:3:5: channel default: unknown key 'url'; did you mean 'urls'?",
        "r.yaml:5:5: channel other: missing 'urls:'",
    ]
