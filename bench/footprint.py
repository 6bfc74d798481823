"""Footprint: idle RSS of `watcher run`, wall time of `check` and `--help`, CPU per poll.

Goals (the libraries used through their public APIs, apprise fully loaded): idle RSS at
most 60 MB after 100 polls with one `tgram://` and one `json://` channel, measured in a
venv installed from `requirements.lock` alone (what `make install` puts on a server),
with the development venv beside it; `watcher check` at most 4x `watcher --help` in the
same run; a 20-rule cycle under 2 ms of CPU excluding the HTTP wait. The channels never
send (no rule fires), so nothing leaves 127.0.0.1. Polls run at the 1 s floor: about
two minutes for the 100.
Run: .venv/bin/python bench/footprint.py
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from common import account, milliseconds  # noqa: E402

from watcher.app.poll import Watcher  # noqa: E402
from watcher.config.rules_file import parse_rules  # noqa: E402
from watcher.config.settings import Settings  # noqa: E402
from watcher.sim.bot_api import TOKEN, FakeTelegram  # noqa: E402
from watcher.sim.exchange import SimExchange, sample_portfolio  # noqa: E402
from watcher.store import Store  # noqa: E402

KEY = "footprint-key-0123456789"
IDLE_RULES = """
channels:
  default: "json://127.0.0.1:9/never"
  phone: "tgram://123456789:AAHfootprintFootprintFootprint012/4242"
rules:
  - name: usdt-gone
    when: USDT.spot < 1
    notify: [default, phone]
  - name: heavy
    when: contract / total > 99%
"""
WATCHER = [sys.executable, "-m", "watcher"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


CCXT_RULES = """
accounts:
  official: {{source: ccxt, exchange: mexc, api_key: "${{K}}", secret: "${{S}}", base_url: "{url}"}}
channels:
  default: "json://127.0.0.1:9/never"
rules:
  - name: usdt-gone
    when: USDT.spot < 1
"""


BOT_RULES = (
    IDLE_RULES
    + """
commands:
  telegram: {{token: "${{TG}}", chats: [111], api_url: "{bot_api}"}}
"""
)


def idle_rss(
    tmp: Path,
    text: str = IDLE_RULES,
    requests: int = 200,
    command: list[str] = WATCHER,
    bot_api: str = "",
) -> tuple[float, float]:
    """RSS of a real `watcher run` after 100 polls of the simulated exchange, and how long
    its first poll took to arrive after the start."""
    sim = SimExchange(web_key=KEY)
    sample_portfolio(sim)
    rules = tmp / "idle.yaml"
    rules.write_text(text.format(url=sim.mexc_url, bot_api=bot_api))
    env = {
        "TG": TOKEN,
        "K": sim.official_key,
        "S": sim.official_secret,
        **{k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")},
        "WATCHER_WEB_KEY": KEY,
        "WATCHER_MEXC_URL": sim.mexc_url,
        "WATCHER_RULES": str(rules),
        "WATCHER_STATE": str(tmp / "run.db"),
        "WATCHER_INTERVAL": "1s",
        "WATCHER_LOG_LEVEL": "WARNING",
    }
    with sim:
        started = time.monotonic()
        process = subprocess.Popen(
            [*command, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while not sim.served and time.monotonic() - started < 60:
                time.sleep(0.01)
            first = time.monotonic() - started
            deadline = time.monotonic() + 240
            while sim.served < requests and time.monotonic() < deadline:
                time.sleep(0.1)
            rss = rss_mb(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    return rss, first


def lock_only_venv(tmp: Path) -> list[str]:
    """A venv from requirements.lock and watcher without its extras: a server's install."""
    venv = tmp / "lock-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(ROOT / "requirements.lock")], check=True)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True)
    return [str(venv / "bin" / "python"), "-m", "watcher"]


def wall(args: list[str], repeat: int = 7) -> float:
    samples = []
    env = {**os.environ, "WATCHER_WEB_KEY": KEY}  # check asks for what run needs
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=ROOT, env=env)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def rules_text(count: int) -> str:
    shapes = ["USDT.spot < {i}", "contract / total > 60%", "C{i:04d}.total < 5 and BTC.spot > 1"]
    lines = ["channels:", "  default: 'console://'", "rules:"]
    for i in range(count):
        lines += [f"  - name: r{i}", f"    when: {shapes[i % 3].format(i=2 + i % 400)}"]
    return "\n".join(lines) + "\n"


def cpu_per_cycle(tmp: Path, count: int) -> float:
    """CPU of one poll after the HTTP answer: evaluation plus the SQLite transaction."""
    rules = parse_rules(rules_text(count), "bench.yaml")
    settings = Settings(web_key=KEY, state=tmp / f"cpu{count}.db")
    watcher = Watcher.open(settings, rules, Store(settings.state))
    overview = account(500)
    now = overview.fetched_at
    samples = []
    for index in range(60):
        now += timedelta(minutes=1)
        snapshot = replace(overview, **{"fetched_at": now})
        started = time.process_time()
        watcher.process(now, snapshot, None)
        if index >= 10:
            samples.append(time.process_time() - started)
    return statistics.median(samples)


def main() -> dict[str, str]:
    from watcher.core import logs

    logs.configure("CRITICAL", "json")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "rules.yaml").write_text((ROOT / "rules.example.yaml").read_text())
        rss, start = idle_rss(tmp)
        server_rss, _ = idle_rss(tmp, command=lock_only_venv(tmp))
        ccxt_rss, ccxt_start = idle_rss(tmp, CCXT_RULES, requests=300)  # three requests a poll
        telegram = FakeTelegram()  # the Bot API, played locally: the bot polls it
        try:
            bot_rss, _ = idle_rss(tmp, BOT_RULES, bot_api=telegram.url)
        finally:
            telegram.stop()
        (tmp / "channels.yaml").write_text(IDLE_RULES)
        check_channels = wall([*WATCHER, "check", "--rules", str(tmp / "channels.yaml")])
        check = wall([*WATCHER, "check", "--rules", str(tmp / "rules.yaml")])
        helped = wall([*WATCHER, "--help"])
        cpu20, cpu1000 = cpu_per_cycle(tmp, 20), cpu_per_cycle(tmp, 1000)
    figures = {
        "idle RSS after 100 polls (tgram + json), lock-only venv": (
            f"{server_rss:.1f} MB (goal <= 60 MB)"
        ),
        "idle RSS after 100 polls (tgram + json), development venv": f"{rss:.1f} MB",
        "watcher check of rules.example.yaml (wall, median of 7)": (milliseconds(check)),
        "watcher check, a tgram:// and a json:// channel": milliseconds(check_channels),
        "watcher --help (wall, median of 7)": milliseconds(helped),
        "check / --help, same run": f"{check / helped:.1f}x (goal <= 4x)",
        "check with a tgram and a json channel / --help": f"{check_channels / helped:.1f}x",
        "start to first request, mexc source": milliseconds(start),
        "idle RSS after 100 polls, one ccxt account": f"{ccxt_rss:.1f} MB (the extra's cost)",
        "idle RSS after 100 polls, with the Telegram bot (python-telegram-bot)": (
            f"{bot_rss:.1f} MB ({bot_rss - rss:+.1f} MB against the same run without it)"
        ),
        "start to first request, ccxt account": milliseconds(ccxt_start),
        "CPU per poll, 20 rules, 500 currencies": f"{milliseconds(cpu20)} (goal < 2 ms)",
        "CPU per poll, 1,000 rules, 500 currencies": milliseconds(cpu1000),
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    return figures


if __name__ == "__main__":
    main()
