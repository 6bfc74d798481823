"""The malformed-input corpus: every file yields its exact, located, one-line error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import API_KEY
from watcher.cli.main import main
from watcher.config.settings import Settings
from watcher.core import errors
from watcher.core.models import MAX_AMOUNT, WALLETS
from watcher.net.client import Answer
from watcher.sim.exchange import SimExchange
from watcher.sources import open_source
from watcher.sources.parse import ROWS, TOTALS, BadField, amount, amounts

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
RULES = sorted((CORPUS / "rules").glob("*.yaml"))
ANSWERS = sorted((CORPUS / "responses").glob("*.json"))
RESPONSES = [p for p in ANSWERS if "error" in json.loads(p.read_text())]
NODATA = [p for p in ANSWERS if "nodata" in json.loads(p.read_text())]


def test_corpus_is_big_enough() -> None:
    assert len(RULES) >= 50 and len(RESPONSES) >= 25 and len(NODATA) >= 10


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.stem)
def test_bad_rules_file_gives_its_located_error(path: Path, capsys) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    assert main(["check", "--rules", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"watcher: {path}:{expected}\n"
    assert captured.out == ""


def case(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.stem)
def test_bad_answer_gives_its_error_class_and_message(path: Path) -> None:
    spec = case(path)
    settings = Settings(source="bypass", api_key=API_KEY)
    source = open_source(settings, lambda: datetime.now(UTC))
    with pytest.raises(errors.ExchangeError) as caught:
        asked = ROWS if spec["convert"] else TOTALS  # what the request was for
        answer = Answer(spec["status"], spec["body"].encode(), {})
        source.parse(answer, asked)  # type: ignore[attr-defined]
    assert type(caught.value).__name__ == spec["error"]
    assert str(caught.value) == spec["message"]
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("path", NODATA, ids=lambda p: p.stem)
def test_bad_rows_are_no_data_for_their_currency_alone(path: Path, sim: SimExchange) -> None:
    """Over real HTTP: the poll succeeds, the bad row's currency is no data, each says why."""
    spec = case(path)
    sim.inject("raw", times=None, status=spec["status"], body=spec["body"])
    settings = Settings(source="bypass", api_key=API_KEY, base_url=sim.url)
    convert = spec["convert"]
    overview = open_source(settings, lambda: datetime.now(UTC)).fetch(
        rows=convert, totals=not convert
    )
    assert sorted(overview.nodata) == spec["nodata"]
    assert list(overview.problems) == spec["problems"]
    if any(p.startswith("row ") for p in spec["problems"]):
        assert overview.complete is False and overview.unknown("ANY")


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.stem)
def test_bad_answer_over_http_through_the_client(path: Path, sim: SimExchange) -> None:
    spec = case(path)
    sim.inject("raw", times=None, status=spec["status"], body=spec["body"])
    settings = Settings(
        source="bypass",
        api_key=API_KEY,
        base_url=sim.url,
        interval="1s",
        timeout="1s",
    )
    convert = spec["convert"]
    with pytest.raises(errors.ExchangeError) as caught:
        open_source(settings, lambda: datetime.now(UTC)).fetch(rows=convert, totals=not convert)
    assert (type(caught.value).__name__, str(caught.value)) == (spec["error"], spec["message"])


@pytest.mark.parametrize("path", RESPONSES[::3], ids=lambda p: p.stem)
def test_bad_answer_in_the_cli_is_one_line_exit_3(path: Path, sim, monkeypatch, capsys) -> None:
    spec = case(path)
    sim.inject("raw", times=None, status=spec["status"], body=spec["body"])
    when = "BTC.spot < 1" if spec["convert"] else "total < 1"  # rows or totals: one request
    Path("rules.yaml").write_text(
        f"channels:\n  default: 'console://'\nrules:\n  - name: a\n    when: {when}\n"
    )
    settings = {
        "WATCHER_SOURCE": "bypass",
        "WATCHER_API_KEY": API_KEY,
        "WATCHER_BASE_URL": sim.url,
        "WATCHER_INTERVAL": "1s",
        "WATCHER_TIMEOUT": "1s",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert main(["once", "--dry-run"]) == 3
    err = capsys.readouterr().err
    assert err == f"watcher: {spec['message']}\n"


AMOUNT_TEXT = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1_000", " 5 ", "1e18", "-1e18", "9.99e17", "lots", "", "0x10", "-0"]),
)
AMOUNT_VALUE = st.one_of(
    AMOUNT_TEXT, st.integers(), st.booleans(), st.none(), st.decimals(allow_nan=False)
)


@hypothesis.settings(max_examples=300, deadline=None)
@given(st.lists(AMOUNT_VALUE, min_size=7, max_size=7), st.integers(0, 7))
def test_the_fast_path_and_the_careful_path_agree(values: list, drop: int) -> None:
    """`amounts` takes a C-speed shortcut for the usual row; whatever it returns must be
    what the field-by-field check returns, and whatever that refuses, it refuses too."""
    item = dict(zip(WALLETS, values, strict=True))
    if drop < 7:
        del item[WALLETS[drop]]
    try:
        careful = [amount(item[name]) for name in WALLETS]
    except (KeyError, ValueError):
        careful = None
    if careful is None:
        with pytest.raises(BadField, match=r"^field data\.\w+: "):
            amounts(item, WALLETS, "data")
    else:
        assert amounts(item, WALLETS, "data") == careful
        assert all(-MAX_AMOUNT < n < MAX_AMOUNT and n.is_finite() for n in careful)


def test_amounts_are_exact_and_refuse_what_is_not_money() -> None:
    assert amount("0.1") + amount("0.2") == Decimal("0.3") and amount(7) == Decimal(7)
    for bad, why in [
        (True, "not true"),
        (None, "not null"),
        (1.5, "not a float"),
        ({"a": 1}, "not an object"),
        ("1_000", "not text"),
        ("1e18", "between"),
        ("-Infinity", "finite"),
    ]:
        with pytest.raises(ValueError, match=why):
            amount(bad)
