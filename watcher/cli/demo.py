"""``watcher demo``: the real daemon against the simulated exchange, narrated.

The daemon runs as a child process exactly as ``watcher run`` would, with the
rules of ``rules.example.yaml`` (durations shortened so the show fits in a
minute) and a ``console://`` channel; this process plays the exchange and
waits for each alert to appear on the console before it narrates the next step.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import yaml

from watcher.cli import table
from watcher.config.settings import Settings
from watcher.core.durations import parse_duration, utcnow
from watcher.sim.exchange import SimExchange, sample_portfolio
from watcher.sim.futures_host import open_position
from watcher.sources import open_source

WEB_KEY = "WEB-demo-web-key"  # the simulator's; a real one is the u_id cookie of MEXC
EXAMPLE = "rules.example.yaml"
LIQUIDATION_RULE = {
    "name": "btc-liq-near",
    "each": "position",
    "when": "liq_distance < 3%",
    "severity": "critical",
}


class DemoFailed(Exception):
    pass


def example_rules() -> Path:
    for place in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (place / EXAMPLE).exists():
            return place / EXAMPLE
    raise DemoFailed(f"cannot find {EXAMPLE} (run the demo from the repository)")


def short(step: float) -> str:
    """What a long ``for`` or ``keep_firing_for`` becomes: two polls (4s at the default)."""
    return f"{2 * step:g}s"


def demo_rules(source: Path, target: Path, step: float) -> None:
    """The example rules with a console channel and durations a demo can wait for:
    anything over 10s holds for two polls instead."""
    document = yaml.safe_load(source.read_text())
    document["channels"] = {"default": "console://"}
    for block in [document.get("defaults") or {}, *document["rules"]]:
        block.pop("notify", None)
        for key in ("for", "keep_firing_for"):
            if key in block and parse_duration(block[key]).total_seconds() > 10:
                block[key] = short(step)
    document["rules"].append(LIQUIDATION_RULE)  # commented out in the file: futures are opt-in
    target.write_text(yaml.safe_dump(document, sort_keys=False))


class Console:
    """Echoes the daemon's output and lets the script wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self.pump, args=(process,), daemon=True)
        self.thread.start()

    def pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write("    " + line)
            sys.stdout.flush()
            self.lines.put(line)

    def wait(self, predicate: Callable[[str], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return
        raise DemoFailed(f"waited {timeout:.0f}s for {what}, but it did not appear")


def say(step: int, total: int, text: str) -> None:
    print(f"==> [{step}/{total}] {text}", flush=True)


def run_demo(forever: bool = False, step: float = 2.0) -> int:
    sim = SimExchange(web_key=WEB_KEY)
    sample_portfolio(sim)
    with sim, tempfile.TemporaryDirectory(prefix="watcher-demo-") as tmp:
        try:
            return Show(sim, Path(tmp), step).play(forever)
        except DemoFailed as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1


class Show:
    TOTAL = 9

    def __init__(self, sim: SimExchange, tmp: Path, step: float) -> None:
        self.sim = sim
        self.tmp = tmp
        self.step = step
        self.process: subprocess.Popen[str] | None = None

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        return {
            **clean,
            "WATCHER_WEB_KEY": WEB_KEY,
            "WATCHER_MEXC_URL": self.sim.mexc_url,
            "WATCHER_MEXC_FUTURES_URL": self.sim.mexc_url,
            "WATCHER_RULES": str(self.tmp / "rules.yaml"),
            "WATCHER_STATE": str(self.tmp / "watcher.db"),
            "WATCHER_INTERVAL": f"{max(self.step, 1.0)}s",  # 1 s is the floor
            "WATCHER_TIMEOUT": "1s",
            "WATCHER_STALE_AFTER": f"{self.step * 3}s",
            "WATCHER_LOG_LEVEL": "ERROR",
            "WATCHER_LOG_FORMAT": "console",
            "PYTHONUNBUFFERED": "1",
        }

    def balances(self) -> str:
        settings = Settings(web_key=WEB_KEY, mexc_url=self.sim.mexc_url)
        source = open_source(settings, utcnow)
        try:
            return table.balances(source.fetch(rows=True, totals=True))
        finally:
            source.close()

    def play(self, forever: bool) -> int:
        demo_rules(example_rules(), self.tmp / "rules.yaml", self.step)
        say(1, self.TOTAL, f"simulated MEXC up at {self.sim.mexc_url}; the account holds:")
        print(self.balances(), flush=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"],
            env=self.env(),
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        console = Console(self.process)
        try:
            self.script(console)
            if forever:
                say(self.TOTAL, self.TOTAL, "script done; --forever: Ctrl-C stops the daemon")
                self.process.wait()
                return 0
        finally:
            code = self.stop()
        say(self.TOTAL, self.TOTAL, f"demo finished; the daemon stopped cleanly (exit {code})")
        return 0 if code == 0 else 1

    def script(self, console: Console) -> None:
        total, sim = self.TOTAL, self.sim
        say(2, total, f"daemon started (every {self.step:g}s); USDT spot drains 1,500 -> 80")
        for spot in ("1000", "400", "80"):
            sim.set_coin("USDT", "1", spot=spot, contract="800")
            time.sleep(self.step)
        print(f"    usdt-spot-low is pending: it must hold for {short(self.step)} (5m in the file)")
        console.wait(lambda s: "USDT spot is 80" in s, "usdt-spot-low FIRING")
        say(3, total, "a big futures position: contract share of the account crosses 60%")
        sim.set_coin("USDT", "1", spot="80", contract="30000")
        console.wait(lambda s: "FIRING contract-heavy" in s, "contract-heavy FIRING")
        say(4, total, "a transfer brings USDT spot back to 5,000 and closes the position")
        sim.set_coin("USDT", "1", spot="5000", contract="800")
        console.wait(lambda s: "RESOLVED usdt-spot-low" in s, "usdt-spot-low RESOLVED")
        console.wait(lambda s: "RESOLVED share-flap-guard" in s, "share-flap-guard RESOLVED")
        say(5, total, "a 20x BTC long opened at 60,000 drifts toward its liquidation at 57,240")
        open_position(sim, "BTC_USDT", "long", Decimal(100), Decimal(60000), 20)
        for price in ("59500", "59200", "58600"):  # 3.8%, 3.3%, then 2.3%: under 3%
            sim.assign({"BTC.price": price})
            time.sleep(self.step)
        console.wait(lambda s: "FIRING btc-liq-near" in s, "btc-liq-near FIRING")
        say(6, total, "the trader closes the position")
        open_position(sim, "BTC_USDT", "long", Decimal(0), Decimal(0), 20)
        console.wait(lambda s: "the position closed" in s, "btc-liq-near RESOLVED")
        say(7, total, "the exchange goes down (HTTP 503 on every request)")
        sim.inject("status", times=None, status=503, message="maintenance")
        console.wait(lambda s: "no successful poll" in s, "exchange-unreachable FIRING")
        say(8, total, "the exchange comes back")
        sim.clear_faults()
        console.wait(
            lambda s: "RESOLVED exchange-unreachable" in s, "exchange-unreachable RESOLVED"
        )

    def stop(self) -> int:
        process = self.process
        if process is None or process.poll() is not None:
            return process.returncode if process else 0
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
