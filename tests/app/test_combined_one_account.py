"""Second adversarial round, finding 12: with exactly one account, a `combined: true` rule
used to take that account's label and silence every other rule of it."""

from __future__ import annotations

import json

from tests.conftest import WEB_KEY
from tests.support.process import watcher

RULES = """
channels: {default: "console://"}
accounts:
  main: {source: mexc, web_key: "${MAIN_KEY}", mexc_url: "%s"}
rules:
  - name: anything
    when: total > 0
  - name: all-usdt-low
    when: USDT.spot < 100000
    combined: true
"""


def test_one_account_and_a_combined_rule_every_rule_fires_once(tmp_path, sim) -> None:
    (tmp_path / "rules.yaml").write_text(RULES % sim.mexc_url)
    done = watcher(
        "once",
        "--json",
        MAIN_KEY=WEB_KEY,
        WATCHER_RULES=str(tmp_path / "rules.yaml"),
        WATCHER_STATE=str(tmp_path / "w.db"),
    )
    assert done.returncode == 1, done.stderr
    alerts = json.loads(done.stdout)["alerts"]
    fired = sorted((a["account"], a["rule"]) for a in alerts if a["state"] == "firing")
    assert fired == [("main", "all-usdt-low"), ("main", "anything")]
