"""Median time to parse a 500-currency rows answer of the mexc source (goal < 5 ms).

Run: .venv/bin/python bench/parse.py
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median_seconds, milliseconds, raw_rows

from watcher.config.settings import Settings
from watcher.net.client import Answer
from watcher.sources import open_source

GOAL = 0.005


def main() -> dict[str, str]:
    body = json.dumps({"data": raw_rows(500), "code": 0, "msg": "success", "timestamp": 1})
    answer = Answer(200, body.encode(), {})
    now = datetime.now(UTC)
    source = open_source(Settings(web_key="WEB-bench"), lambda: now)

    def parse() -> object:
        return source.parse(answer)  # type: ignore[attr-defined]

    assert len(parse().currencies) == 500  # type: ignore[attr-defined]
    took = median_seconds(parse, number=20)
    verdict = "ok" if took < GOAL else "OVER GOAL"
    print(
        f"parse 500-currency answer ({len(body) // 1024} KiB): {milliseconds(took)} median "
        f"(goal < {milliseconds(GOAL)}) {verdict}"
    )
    return {"parse 500 currencies": f"{milliseconds(took)} (goal < 5 ms) {verdict}"}


if __name__ == "__main__":
    main()
