"""The start-up walk and the one-poll walk, counted: stays, rooms, climbs back up, returns.

A walk is the order in which watcher's modules are entered by calls, traced with
``sys.setprofile`` from one entry point, against the simulator:

- start-up: ``watcher.daemon.build.build(settings)`` (the composition root);
- one poll: ``Daemon.poll_job(account)`` on the built daemon.

Only calls from one watcher module into another count. Stays, rooms and returns count
down to ``DEPTH`` watcher frames below the entry (deeper calls are the leaves of a step,
not the path); climbs back up count at any depth. Then:

- stay: a call into another module (a step of the walk);
- room: a module the walk enters (distinct);
- climb back up: a call from a module into a module of a higher stage (``STAGES`` order;
  within a stage, no climb), e.g. the store calling back into the app;
- return: a call into a room the walk has already been in, other than the one it
  came from (zig-zag).

Goal (issue "The house by stage"): start-up at most 4 climbs back up.
Run: .venv/bin/python bench/walk.py
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from watcher import STAGES
from watcher.config.settings import Settings
from watcher.daemon.build import build
from watcher.sim.exchange import SimExchange, sample_portfolio

DEPTH = 3
GOAL_CLIMBS = 4
KEY = "walk-key-0123456789abcdef"
RULES = """
channels:
  default: "json://127.0.0.1:9/never"
rules:
  - name: usdt-low
    when: USDT.spot < 1
  - name: btc-drop
    when: change(BTC.originTotal, 1h) < -10%
"""


def module_of(frame: FrameType) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if name.startswith("watcher.") else None


def stage_of(module: str) -> int:
    part = module.split(".")[1]
    return STAGES.index(part) if part in STAGES else -1


def trace(entry: Callable[[], Any]) -> list[tuple[str, str, int]]:
    """The module-to-module calls made under ``entry``, in order: (caller, callee, depth)."""
    calls: list[tuple[str, str, int]] = []
    depth = {"n": 0}

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        here = module_of(frame)
        if here is None:
            return
        if event == "return":
            depth["n"] -= 1
            return
        depth["n"] += 1
        back = frame.f_back
        while back is not None and module_of(back) is None:
            back = back.f_back
        caller = module_of(back) if back is not None else None
        if caller and caller != here:
            calls.append((caller, here, depth["n"] - 1))

    sys.setprofile(profile)
    try:
        entry()
    finally:
        sys.setprofile(None)
    return calls


def climbs(calls: list[tuple[str, str, int]]) -> set[tuple[str, str]]:
    """Each distinct call from a module into one of a higher stage."""
    return {(a, b) for a, b, _ in calls if stage_of(b) > stage_of(a)}


def count(calls: list[tuple[str, str, int]]) -> dict[str, int]:
    path = [(a, b) for a, b, depth in calls if depth <= DEPTH]
    rooms: set[str] = set()
    returns = 0
    for caller, callee in path:
        rooms.add(caller)
        returns += callee in rooms
        rooms.add(callee)
    found = {"stays": len(path), "rooms": len(rooms), "returns": returns}
    return {**found, "climbs back up": len(climbs(calls))}


def describe(calls: list[tuple[str, str, int]]) -> list[str]:
    shown = [f"  {'  ' * d}{a} -> {b}" for a, b, d in calls if d <= DEPTH]
    return shown + [f"  climb: {a} -> {b}" for a, b in sorted(climbs(calls))]


def main(verbose: bool = False) -> dict[str, str]:
    sim = SimExchange(web_key=KEY).start()
    sample_portfolio(sim)
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(RULES)
        settings = Settings(
            web_key=KEY, mexc_url=sim.mexc_url, rules=rules, state=Path(tmp) / "w.db", interval="5s"
        )
        built: dict[str, Any] = {}
        start = trace(lambda: built.setdefault("daemon", build(settings)))
        daemon = built["daemon"]
        poll = trace(lambda: daemon.poll_job(next(iter(daemon.watcher.accounts))))
        daemon.store.close()
        daemon.lock.release()
    sim.stop()
    figures = {}
    for name, calls in (("start-up", start), ("one poll", poll)):
        found = count(calls)
        if verbose:
            print(f"{name} walk:", *describe(calls), sep="\n")
        text = ", ".join(f"{v} {k}" for k, v in found.items())
        goal = f"   (goal: at most {GOAL_CLIMBS} climbs)" if name == "start-up" else ""
        print(f"{name:<9} {text}{goal}")
        figures[f"{name} walk"] = text
    return figures


if __name__ == "__main__":
    main(verbose="-v" in sys.argv)
