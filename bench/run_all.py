"""Run every bench and print one table of figures (`make bench`; about 30 minutes, most
of it `bench/scale.py`'s three daemons over HTTP).

Run: .venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aged
import footprint
import parse
import rules
import scale
import soak
import walk


def main() -> int:
    started = time.monotonic()
    figures: dict[str, str] = {}
    for name, bench in (
        ("parse", parse),
        ("rules", rules),
        ("footprint", footprint),
        ("walk", walk),
    ):
        print(f"--- bench/{name}.py", flush=True)
        figures.update(bench.main())
    print("--- bench/scale.py", flush=True)
    figures.update(scale.main([]))
    print("--- bench/aged.py", flush=True)
    figures.update(aged.main([]))
    print("--- bench/soak.py", flush=True)
    figures.update(soak.main([]))
    width = max(map(len, figures))
    print(f"\n{'figure':<{width}}  value (medians; this machine)")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    print(f"\nall benches in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
