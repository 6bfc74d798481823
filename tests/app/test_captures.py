"""Redacted captures (#29, 3): nothing of the account leaves, everything parsers need does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.support.helpers import ruleset
from watcher.app.captures import Redactor, answers
from watcher.cli.main import main
from watcher.engine.evaluate import History, evaluate
from watcher.sim.exchange import SimExchange
from watcher.sources.mexc import ROWS_PATH, TOTALS_PATH, MexcWebSource
from watcher.sources.parse import ROWS, TOTALS

CAPTURES = sorted((Path(__file__).resolve().parents[1] / "corpus" / "captures").glob("*.jsonl"))
KINDS = {ROWS_PATH: ROWS, TOTALS_PATH: TOTALS}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_every_capture_replays_through_the_source_and_the_rules(path: Path) -> None:
    source = MexcWebSource("https://www.mexc.com", "WEB-x", 1.0, 5.0, lambda: datetime.now(UTC))
    rules = ruleset("  - name: low\n    when: USDT.spot < 100\n")
    replayed = 0
    for where, answer in answers(path):
        overview = source.parse(answer, KINDS[where])
        evaluate(rules, overview, {}, History(), overview.fetched_at)
        replayed += 1
    assert replayed >= 2


def test_record_redact_keeps_shapes_and_codes_and_drops_amounts_and_secrets(
    tmp_path: Path, sim: SimExchange, monkeypatch, capsys
) -> None:
    sim.set_coin("USDT", "1", spot="98765.4321", contract="0")
    sim.set_coin("BTC", "61000", spot="0.123456")
    monkeypatch.setenv("WATCHER_WEB_KEY", WEB_KEY)
    monkeypatch.setenv("WATCHER_MEXC_URL", sim.mexc_url)
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    monkeypatch.setenv("WATCHER_RULES", str(tmp_path / "none.yaml"))
    out = tmp_path / "capture.jsonl"
    assert main(["record", "--redact", "--to", str(out), "--count", "1"]) == 0
    text = out.read_text()
    assert WEB_KEY not in text and "98765" not in text and "0.123456" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert {line["path"] for line in lines} == {ROWS_PATH, TOTALS_PATH}
    rows = next(line for line in lines if line["path"] == ROWS_PATH)["body"]
    usdt = next(r for r in rows["data"] if r["currency"] == "USDT")
    assert rows["code"] == 0 and rows["msg"] == "success"
    assert len(usdt["spot"].split(".")[1]) == 4 and usdt["contract"] == "0"  # scale, zero
    assert set(usdt) == {  # field names as sent
        "currency", "coinId", "total", "spot", "otc", "contract", "strategy", "robot", "alpha",
        "originTotal", "originSpot", "originOtc", "originContract", "originStrategy",
        "originRobot", "originAlpha",
    }  # fmt: skip


def test_a_stand_in_keeps_sign_type_scale_and_zero_and_is_consistent() -> None:
    redact = Redactor(b"k" * 32)
    assert redact.value("0") == "0" and redact.value(0) == 0
    assert redact.value("-12.50").startswith("-") and len(redact.value("-12.50")) == 6
    assert isinstance(redact.value(Decimal("3.25")), Decimal)
    assert isinstance(redact.value("3.25"), str) and redact.value("3.25") != "3.25"
    assert redact.value("0.0115").startswith("0.") and redact.value("0.0115") != "0.0000"
    assert redact.value("3.25") == redact.value("3.25")  # the same amount, the same stand-in
    assert redact.value({"code": 401, "msg": "Unauthorized"}) == {
        "code": 401,
        "msg": "Unauthorized",
    }
    assert redact.value({"uid": "alice@example.com"}) == {"uid": "<redacted>"}
