"""Second adversarial round, finding 3: answers whose JSON is valid but whose shape is
wrong never read as zero balances. Each case ran ``USDT.spot < 100`` to FIRING with
``error: null`` before; now it is no data (or a bad answer), and nothing fires.

``watcher once --json`` runs as a real process against the simulator over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.support.process import watcher
from watcher.core.models import ROW_FIELDS
from watcher.sim.exchange import SimExchange

RULES = "channels:\n  default: 'console://'\nrules:\n  - name: low\n    when: USDT.spot < 100\n"


def once(tmp_path: Path, sim: SimExchange) -> tuple[int, dict]:
    (tmp_path / "rules.yaml").write_text(RULES)
    done = watcher(
        "once",
        "--json",
        WATCHER_WEB_KEY=WEB_KEY,
        WATCHER_MEXC_URL=sim.mexc_url,
        WATCHER_RULES=str(tmp_path / "rules.yaml"),
        WATCHER_STATE=str(tmp_path / "w.db"),
        WATCHER_TIMEOUT="2s",
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}


USDT = json.dumps({"currency": "USDT", "coinId": "usdt", **dict.fromkeys(ROW_FIELDS, "1500")})
DATA_TWICE = f'{{"code":0,"data":[{USDT}],"data":[]}}'
SPOT_TWICE = (
    '{"code":0,"data":[' + USDT.replace('"spot": "1500"', '"spot": "1500", "spot": "0"') + "]}"
)


def firing(data: dict) -> list[str]:
    return [a["rule"] for a in data.get("alerts", []) if a["state"] == "firing"]


def test_an_empty_list_of_currencies_with_a_nonzero_total_is_no_data(tmp_path, sim) -> None:
    sim.inject("raw", status=200, body='{"code":0,"data":[]}')  # the rows request only
    code, data = once(tmp_path, sim)
    assert code == 0 and firing(data) == [] and data["error"] is None
    assert data["balances"]["unlisted"] == "no data"
    assert data["balances"]["problems"] == [
        "the exchange listed no currency while the account total is not zero"
    ]


def test_an_empty_list_is_an_empty_account_when_the_total_says_so(tmp_path, sim) -> None:
    """The choice: zeros only when the exchange's own total agrees, so a real drain fires."""
    sim.coins.clear()
    code, data = once(tmp_path, sim)
    assert code == 1 and firing(data) == ["low"]


def test_a_rows_request_answered_with_totals_is_a_bad_answer(tmp_path, sim) -> None:
    totals = json.dumps({"code": 0, "data": sim.totals()})
    sim.inject("raw", times=None, status=200, body=totals)
    code, data = once(tmp_path, sim)
    assert code == 3 and firing(data) == []
    assert "currencies were asked for" in data["error"]


@pytest.mark.parametrize("body", [DATA_TWICE, SPOT_TWICE], ids=["data-twice", "spot-twice"])
def test_a_key_given_twice_makes_the_answer_unreadable(tmp_path, sim, body) -> None:
    sim.inject("raw", times=None, status=200, body=body)
    code, data = once(tmp_path, sim)
    assert code == 3 and firing(data) == []
    assert "twice" in data["error"]
