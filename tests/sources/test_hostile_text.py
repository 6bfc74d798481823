"""Second adversarial round, finding 11: what an exchange says reaches a terminal, a log
line or a phone only as one printable line, and currency codes are plain codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import WEB_KEY
from tests.support.process import watcher
from watcher.core.models import ROW_FIELDS
from watcher.core.text import printable
from watcher.sim.exchange import SimExchange

EVIL = "\x1b[2J\x1b[31mbad key\nFIRING forged-rule: all is lost\u202egnp.exe"


def once(tmp_path: Path, sim: SimExchange, *args: str) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "channels:\n  default: 'console://'\nrules:\n  - name: low\n    when: USDT.spot < 100\n"
    )
    return watcher(
        "once",
        *args,
        WATCHER_WEB_KEY=WEB_KEY,
        WATCHER_MEXC_URL=sim.mexc_url,
        WATCHER_RULES=str(rules),
        WATCHER_STATE=str(tmp_path / "w.db"),
        WATCHER_TIMEOUT="2s",
    )


def test_an_exchange_message_is_one_printable_line(tmp_path, sim) -> None:
    sim.inject("raw", times=None, status=200, body=json.dumps({"code": 700, "msg": EVIL}))
    done = once(tmp_path, sim)
    assert done.returncode == 3
    line = done.stderr
    assert line.count("\n") == 1 and line.startswith("watcher: exchange error 700: ")
    assert "\x1b" not in line and "\u202e" not in line and "bad key FIRING forged" in line


def test_a_currency_code_with_a_newline_forges_no_line(tmp_path, sim) -> None:
    row = {"currency": "USDT\nFIRING forged-rule", **dict.fromkeys(ROW_FIELDS, "5")}
    usdt = {"currency": "USDT", **dict.fromkeys(ROW_FIELDS, "5")}
    body = json.dumps({"code": 0, "data": [usdt, row]})
    sim.inject("raw", times=None, status=200, body=body)
    done = once(tmp_path, sim, "--json")
    data = json.loads(done.stdout)
    assert data["balances"]["unlisted"] == "no data"
    assert "row 1 has no readable currency code" in data["balances"]["problems"][0]
    shown = done.stdout + done.stderr
    assert not any(line.startswith("FIRING forged") for line in shown.splitlines())


def test_printable_drops_controls_and_bidi_and_folds_lines() -> None:
    assert printable(EVIL) == "[2J[31mbad key FIRING forged-rule: all is lostgnp.exe"
    assert printable("zero\u200bwidth\u2066 isolate\u2069") == "zerowidth isolate"


def test_connection_refused_names_the_port(tmp_path) -> None:
    """Issue "What a newcomer tripped on", point 14."""
    from tests.support.receivers import free_port

    port = free_port()  # nothing listens there
    (tmp_path / "rules.yaml").write_text("channels: {default: 'console://'}\nrules: []\n")
    done = watcher(
        "once",
        WATCHER_WEB_KEY=WEB_KEY,
        WATCHER_MEXC_URL=f"http://127.0.0.1:{port}",
        WATCHER_RULES=str(tmp_path / "rules.yaml"),
        WATCHER_STATE=str(tmp_path / "w.db"),
        WATCHER_TIMEOUT="1s",
    )
    assert done.returncode == 3 and f"127.0.0.1:{port}" in done.stderr
