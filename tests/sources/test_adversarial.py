"""Nothing blinds it, nothing floods it, nothing leaks: each class of the adversarial trial,
with several variants, asserting the outcome the issue names."""

from __future__ import annotations

import io
import json
import logging
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.notify.test_notify import notice
from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.helpers import at, fill_disk
from tests.support.receivers import Receiver
from tests.support.socks import Socks5Proxy
from watcher.cli.main import main
from watcher.config.channels import Channel
from watcher.config.model import Policy
from watcher.config.settings import Settings, load_settings
from watcher.core import logs
from watcher.core.alerts import FIRING, PENDING, Alert
from watcher.core.errors import BadResponse, ConfigError, TransportError
from watcher.core.secrets import MASKER
from watcher.engine.evaluate import advance
from watcher.notify.adapter import masked
from watcher.notify.delivery import Deliverer, route
from watcher.sim.exchange import SimExchange
from watcher.sources import open_source
from watcher.store import Store

RULES = 'channels:\n  default: "{url}"\nrules:\n  - name: low\n    when: USDT.spot < 100\n'


def fetch(settings: Settings):
    return open_source(settings, lambda: datetime.now(UTC), backoff=0.01).fetch(True, False)


# --- 1. any failure of a poll is a failed poll; settings that can never work ------------------


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("WATCHER_WEB_KEY", "WEB123\u2026", "WATCHER_WEB_KEY: contains a character"),
        ("WATCHER_WEB_KEY", "WEB 123456", "WATCHER_WEB_KEY: contains a character"),
        ("WATCHER_API_KEY", "k\u00e9y-123456", "WATCHER_API_KEY: contains a character"),
        ("WATCHER_WEB_KEY_ISSUED", "9999-12-31T23:59:59+00:00", "WATCHER_WEB_KEY_ISSUED: must be"),
        ("WATCHER_WEB_KEY_ISSUED", "0001-01-01T00:00:00+00:00", "WATCHER_WEB_KEY_ISSUED: must be"),
        ("WATCHER_INTERVAL", "100000w", "WATCHER_INTERVAL: a duration can be at most 366d"),
        ("WATCHER_STALE_AFTER", "-5m", "WATCHER_STALE_AFTER: expected a duration"),
    ],
)
def test_settings_that_can_never_work_stop_the_start_with_one_line(
    monkeypatch, capsys, name: str, value: str, line: str
) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", "WEB-fine-123456")
    monkeypatch.setenv(name, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"watcher: {line}") and err.count("\n") == 1
    if "KEY" in name and "ISSUED" not in name:
        assert value not in err  # a key is never repeated, not even a broken one


@pytest.mark.parametrize(
    ("kind", "params", "error", "text"),
    [
        ("raw", {"status": 200, "body": "[" * 100_000 + "]" * 100_000}, BadResponse, "nests"),
        (
            "raw",
            {"status": 200, "body": '{"data": ' + "[" * 70 + "]" * 70 + "}"},
            BadResponse,
            "nests",
        ),
        ("gzipbomb", {}, BadResponse, "larger than 20 MB once decompressed"),
        ("raw", {"status": 200, "body": "x" * 21_000_000}, BadResponse, "larger than 20 MB"),
        ("drip", {"delay": 0.2}, TransportError, "too slowly"),
        ("driphead", {"delay": 0.2}, TransportError, "too slowly"),
    ],
)
def test_answers_are_bounded_in_depth_size_and_time(
    sim: SimExchange, settings: Settings, kind: str, params: dict, error: type, text: str
) -> None:
    quick = settings.replace(**{"interval": timedelta(seconds=3)})
    sim.inject(kind, times=None, **params)
    started = time.monotonic()
    with pytest.raises(error, match=text):
        fetch(quick)
    assert time.monotonic() - started < 5


def test_dripping_headers_through_a_socks_proxy_are_cut_at_the_deadline(
    sim: SimExchange, settings: Settings
) -> None:
    """PySocks has connection classes of its own; the watchdog watches them too."""
    proxy = Socks5Proxy("me", "pw-socks")
    try:
        quick = settings.replace(interval=timedelta(seconds=3), proxy=proxy.url())
        sim.inject("driphead", times=None, delay=0.2)
        started = time.monotonic()
        with pytest.raises(TransportError, match="too slowly"):
            fetch(quick)
        assert time.monotonic() - started < 5 and proxy.connects
    finally:
        proxy.stop()


def test_a_key_with_a_bad_byte_given_directly_is_a_failed_poll_not_a_crash(
    sim: SimExchange, tmp_path: Path, receiver: Receiver
) -> None:
    """Settings built in code skip no check: the web key is validated on construction too."""
    with pytest.raises(ConfigError, match="cannot be sent"):
        Settings(web_key="WEB\u2026")


# --- 3. one slow receiver never holds up another ----------------------------------------------


class DrippingReceiver:
    """Accepts a POST and answers one byte a second: apprise waits, read timeout or not."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.drip, args=(conn,), daemon=True).start()

    def drip(self, conn: socket.socket) -> None:
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
            if self.stop.is_set():
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
            time.sleep(1)
        conn.close()

    def url(self) -> str:
        return f"json://127.0.0.1:{self.sock.getsockname()[1]}/slow"

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_dripping_receiver_does_not_hold_up_a_healthy_one(tmp_path: Path, receiver) -> None:
    slow = DrippingReceiver()
    try:
        channels = {
            "default": Channel("default", (receiver.url(),)),
            "slow": Channel("slow", (slow.url(),)),
        }
        store = Store(tmp_path / "w.db")
        store.commit({}, route([notice("a", channels=("slow", "default"))], channels, at(0)))
        deliverer = Deliverer(store, channels, budget=2.0)  # builds its services (load time)
        started = time.monotonic()
        report = deliverer.deliver(at(0))
        assert time.monotonic() - started < 3 and report.sent == 1
        assert len(receiver.posts) == 1
        assert deliverer.deliver(at(1)).messages == 0  # the slow one is in flight: not resent
    finally:
        slow.close()


# --- 4. a full disk is not a notification storm -----------------------------------------------


def test_a_full_disk_sends_once_warns_once_and_recovers(small_disk: Path, receiver) -> None:
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(small_disk / "w.db")
    store.commit({}, route([notice("a")], channels, at(0)))
    filler = fill_disk(small_disk)
    deliverer = Deliverer(store, channels, name="vps-1")
    for second in range(6):  # every delivery cycle of half a minute
        deliverer.deliver(at(second))
    alerts = [p for p in receiver.posts if p["message"].startswith("FIRING a")]
    warnings = [p for p in receiver.posts if "cannot write its state database" in p["message"]]
    assert len(alerts) == 1 and len(warnings) == 1
    assert warnings[0]["title"] == "watcher vps-1: state not writable"
    filler.unlink()
    deliverer.deliver(at(10))
    assert store.outbox_depth() == 0 and len(receiver.posts) == 2
    store.commit({}, route([notice("b")], channels, at(11)))
    assert deliverer.deliver(at(11)).sent == 1 and len(receiver.posts) == 3


# --- 5. secrets, all of them ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("json://127.0.0.1:9/hook?+Authorization=Bearer%20abc123xyz", "abc123xyz"),
        ("json://127.0.0.1:9/hook?+Authorization=Bearer abc123xyz", "abc123xyz"),
        ("json://127.0.0.1:9/hook?+X-Token=s3", "s3"),
        ("json://127.0.0.1:9/hook?%2BX-Token=q9zz", "q9zz"),
        ("ntfy://private-topic-7", "private-topic-7"),
        ("ntfys://ntfy.sh/another-topic", "another-topic"),
        ("json://127.0.0.1:9/tok9", "tok9"),
        ("json://user:pw-secret@127.0.0.1:9/", "pw-secret"),
    ],
)
def test_every_part_of_a_url_that_can_be_a_secret_is_masked(url: str, secret: str) -> None:
    shown = masked(url)
    assert secret not in shown and "***" in shown
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream=stream)
    MASKER.add(url)
    logs.get("t").info("sending", url=url)
    assert secret not in stream.getvalue()
    MASKER.clear()


def test_a_record_is_masked_before_any_handler_sees_it() -> None:
    """Not only our handler: anything else on the root logger (a journald handler, pytest's
    capture) receives the event already masked, its traceback included."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(str(record.msg) + (str(record.exc_info) if record.exc_info else ""))

    logs.configure("DEBUG", "json", secrets=["hunter2-key"], stream=io.StringIO())
    other = Collect()
    logging.getLogger().addHandler(other)
    try:
        logs.get("t").info("sending", url="json://u:hunter2-key@127.0.0.1:9/")
        try:
            raise RuntimeError("echoed hunter2-key")
        except RuntimeError:
            logs.get("t").exception("boom")
    finally:
        logging.getLogger().removeHandler(other)
        MASKER.clear()
    assert len(seen) == 2 and "***" in seen[0] and "RuntimeError" in seen[1]
    assert not any("hunter2-key" in line for line in seen)


def test_test_notify_prints_no_header_value(tmp_path: Path, receiver, capsys) -> None:
    url = receiver.url() + "?+Authorization=Bearer%20abc123xyz&+K=s3"
    (tmp_path / "rules.yaml").write_text(RULES.format(url=url))
    assert main(["test-notify", "--rules", str(tmp_path / "rules.yaml")]) == 0
    out = capsys.readouterr().out
    assert "abc123xyz" not in out and "s3" not in out.split("?")[-1].replace("***", "")
    assert receiver.posts and "abc123xyz" not in json.dumps(receiver.posts[0])


def test_exchange_text_is_scrubbed_before_it_is_cut(sim: SimExchange, settings: Settings) -> None:
    """A key that straddles the 200-character cut must not survive in part."""
    for lead in (190, 195, 199):
        message = "x" * lead + WEB_KEY
        sim.clear_faults()
        sim.inject("code", times=None, code=600, message=message)
        with pytest.raises(Exception) as caught:
            fetch(settings)
        text = str(caught.value)
        assert WEB_KEY[:8] not in text and WEB_KEY[-8:] not in text


def test_retry_after_junk_is_neither_repeated_nor_fatal(
    sim: SimExchange, bypass_settings: Settings
) -> None:
    for value in (f"{WEB_KEY}", "-5", "99999999999999999999"):
        sim.clear_faults()
        sim.inject("status", times=None, status=429, message="slow", retry_after=value)
        with pytest.raises(Exception) as caught:
            fetch(bypass_settings)
        assert WEB_KEY not in str(caught.value) and "99999999999999999999" not in str(caught.value)


def test_a_proxy_password_alone_is_a_secret(monkeypatch) -> None:
    monkeypatch.setenv("WATCHER_PROXY", "socks5://me:hunter2-proxy@10.9.8.7:1080")
    secrets = load_settings().secret_values()
    assert "hunter2-proxy" in secrets
    stream = io.StringIO()
    logs.configure("DEBUG", "json", secrets=secrets, stream=stream)
    logs.get("t").warning("proxy said", text="auth hunter2-proxy refused")
    assert "hunter2-proxy" not in stream.getvalue()


# --- 7. clock jumps ---------------------------------------------------------------------------


def test_a_clock_that_steps_back_leaves_nothing_in_the_future() -> None:
    policy = Policy(for_=timedelta(minutes=5))
    future = at(hours=6)
    pending = Alert("low", None, PENDING, since=future)
    after, kind = advance(pending, True, False, policy, at(0), ("low", None))
    assert after is not None and after.since == at(0) and kind is None
    after, kind = advance(after, True, False, policy, at(minutes=5), ("low", None))
    assert after.state == FIRING and kind == FIRING  # 5 minutes later, not 6 hours
    firing = Alert("low", None, FIRING, since=future, fired_at=future, last_notified=future)
    repeat = Policy(repeat=timedelta(hours=1))
    after, _ = advance(firing, True, False, repeat, at(0), ("low", None))
    assert after.last_notified == at(0)
    assert advance(after, True, False, repeat, at(hours=1), ("low", None))[1] == "repeat"


# --- 8. one daemon per state database ---------------------------------------------------------


def test_a_second_daemon_exits_naming_the_first_and_once_turns_dry(
    tmp_path: Path, sim: SimExchange, receiver, monkeypatch, capsys
) -> None:
    first = DaemonProcess(tmp_path, sim, RULES.format(url=receiver.url()))
    try:
        first.start()
        wait_for(lambda: "watcher started" in first.output(), what="first daemon")
        second = subprocess.run(
            [sys.executable, "-m", "watcher", "run"],
            env=first.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert second.returncode == 2
        assert f"another watcher (PID {first.process.pid}) is running" in second.stderr
        assert "Traceback" not in second.stderr
        for name, value in first.env.items():
            if name.startswith("WATCHER_"):
                monkeypatch.setenv(name, value)
        sim.set_coin("USDT", "1", spot="50")
        code = main(["once"])
        err = capsys.readouterr().err
        assert code == 1 and "this was a dry run: nothing written, nothing sent" in err
        assert f"PID {first.process.pid}" in err
    finally:
        first.close()


# --- 9. watcher check catches what would blow up later ----------------------------------------


def check(tmp_path: Path, capsys, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    code = main(["check", "--rules", str(path)])
    return code, capsys.readouterr().err.splitlines()


HEAD = 'channels:\n  default: "console://"\nrules:\n  - name: a\n'


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ('    when: USDT.spot < 1\n    message: "{value:>2147483647}"\n', "6:14: rule a: message"),
        ('    when: USDT.spot < 1\n    message: "{value:.500f}"\n', "above 100"),
        ('    when: USDT.spot < 1\n    message: "{value:{threshold}}"\n', "inside a format"),
        ("    when: change(BTC.total, 100000w) < 1\n", "5:29: rule a: when: a duration can"),
        ("    when: USDT.spot < 1\n    for: 1000d\n", "at most 366d"),
        ("    when: USDT.spot < 1\n    repeat: 9999999999\n", "at most 366d"),
        ("    when: " + "(" * 5000 + "USDT.spot" + ")" * 5000 + " < 1\n", "nests deeper"),
        ("    when: " + " + ".join(["USDT.spot"] * 500) + " < 1\n", "chains more than"),
        ("    when: '" + "- " * 300 + "USDT.spot < 1'\n", "nests deeper"),
        ("    when: " + "not " * 300 + "USDT.spot < 1\n", "nests deeper"),
    ],
)
def test_check_refuses_what_would_blow_up_later(tmp_path, capsys, body: str, expect: str) -> None:
    code, err = check(tmp_path, capsys, HEAD + body)
    assert code == 2 and len(err) == 1 and expect in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("? [a, b]\n: 1\n", ":1:3: YAML syntax: a key must be a plain name"),
        ("? {a: 1}\n: 1\n", "a key must be a plain name"),
        (HEAD + "    when: USDT.spot < 1\x00\n", ":5:24: character #x0000 is not allowed"),
        ("a: &a [1]\nb: [" + ",".join(["*a"] * 100) + "]\n", "more than 64 aliases"),
        (
            "x-0: &l0 [1,1,1,1,1,1,1,1,1]\n"
            + "".join(f"x-{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)),
            "more than 64 aliases",
        ),
    ],
)
def test_hostile_yaml_is_one_located_line(tmp_path, capsys, text: str, expect: str) -> None:
    code, err = check(tmp_path, capsys, text)
    assert code == 2 and expect in err[0] and "Traceback" not in "".join(err)


def test_yaml_merge_keys_work_with_overrides(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", WEB_KEY)  # check asks for what run needs
    text = (
        "x-common: &common {when: USDT.spot < 1, severity: info, for: 5m}\n"
        'channels:\n  default: "console://"\nrules:\n'
        "  - <<: *common\n    name: a\n    severity: critical\n"
        "  - <<: *common\n    name: b\n"
    )
    code, err = check(tmp_path, capsys, text)
    assert (code, err) == (0, [])
    from watcher.config.rules_file import parse_rules

    rules = parse_rules(text)
    assert rules.get("a").policy.severity == "critical" and rules.get("b").policy.severity == "info"
    assert rules.get("a").policy.for_ == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("body", "warning"),
    [
        ("    when: contract / total > 60\n", "5:30: rule a: warning: when: a ratio compared"),
        ("    when: 60 < contract / total\n", "did you mean 60%?"),
        ("    each: currency\n    when: USDT.spot < 5\n", "reads no field of the current"),
    ],
)
def test_check_warns_about_likely_mistakes_and_exits_0(
    tmp_path, capsys, monkeypatch, body, warning
) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", WEB_KEY)  # check asks for what run needs
    code, err = check(tmp_path, capsys, HEAD + body)
    assert code == 0 and len(err) == 1 and warning in err[0]


def test_silence_warns_about_a_currency_that_cannot_match(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "rules.yaml").write_text(
        HEAD + "    when: USDT.spot < 1\n  - name: b\n    each: currency\n    when: spot < 1\n"
    )
    monkeypatch.setenv("WATCHER_RULES", str(tmp_path / "rules.yaml"))
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    assert main(["silence", "a", "--currency", "BTC", "--for", "1h"]) == 0
    assert "has no 'each: currency'" in capsys.readouterr().err
    assert main(["silence", "b", "--currency", "btc", "--for", "1h"]) == 0
    captured = capsys.readouterr()
    assert "using BTC" in captured.err and "b BTC" not in captured.out
    assert [s.currency for s in Store(tmp_path / "w.db").silences()] == ["BTC", "BTC"]


# --- 10. no traceback for a user or a damaged file --------------------------------------------


def test_damaged_or_edited_state_is_one_line_and_the_daemon_state_survives(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    (tmp_path / "w.db").write_bytes(b"this is not a database at all" * 100)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "move it aside (mv " in err
    good = tmp_path / "good.db"
    store = Store(good)
    store.set_meta({"schema_version": "one"})
    store.close()
    monkeypatch.setenv("WATCHER_STATE", str(good))
    assert main(["status"]) == 2
    assert "unreadable schema version" in capsys.readouterr().err
    edited = tmp_path / "edited.db"
    Store(edited).commit({"main": {("main", "low", None): Alert("low", None, FIRING, at(0))}})
    with sqlite3.connect(edited) as db:
        db.execute("UPDATE alerts SET since='yesterday', state='burning'")
        db.execute(
            "INSERT INTO outbox (channel, url_key, created, due, notice) "
            "VALUES ('default', 'k', 0, 0, '{broken')"
        )
    again = Store(edited)
    assert again.load_alerts() == {} and again.pending() == [] and again.outbox_depth() == 0
    monkeypatch.setenv("WATCHER_STATE", str(edited))
    assert main(["status"]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["silence", "low", "--for", "100000w"],
        ["silence", "low", "--for", "-3h"],
        ["replay", "--since", "9999999999999d"],
        ["replay", "--for", "soon"],
    ],
)
def test_out_of_range_cli_durations_are_one_line(tmp_path, capsys, monkeypatch, argv) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(url="console://"))
    monkeypatch.setenv("WATCHER_RULES", str(tmp_path / "rules.yaml"))
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "text",
    ["cases: [", "rules: rules.yaml\ncases: 7\n", "rules: [1]\ncases: []\n", "- 1\n- 2\n"],
)
def test_a_malformed_test_file_is_located(tmp_path: Path, capsys, text: str) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(url="console://"))
    (tmp_path / "t.yaml").write_text(text)
    assert main(["test", str(tmp_path / "t.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"watcher: {tmp_path / 't.yaml'}:") and "Traceback" not in err


@pytest.mark.parametrize("address", ["busy", "nosuchhost.invalid:9108"])
def test_a_metrics_address_that_cannot_be_served_is_one_line(
    tmp_path: Path, sim: SimExchange, receiver, address: str
) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    if address == "busy":
        address = f"127.0.0.1:{holder.getsockname()[1]}"
    daemon = DaemonProcess(
        tmp_path, sim, RULES.format(url=receiver.url()), WATCHER_METRICS_ADDR=address
    )
    try:
        daemon.start()
        assert daemon.process.wait(timeout=20) == 2
        out = daemon.output()
        assert f"watcher: WATCHER_METRICS_ADDR {address}:" in out and "Traceback" not in out
    finally:
        daemon.close()
        holder.close()


# --- 11. operating commands need only what they use -------------------------------------------


def test_status_and_silence_work_without_the_channel_variables(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(url="tgram://${TELEGRAM_BOT_TOKEN}/${TELEGRAM_CHAT_ID}"))
    state = tmp_path / "service.db"
    Store(state).close()
    flags = ["--rules", str(rules), "--state", str(state)]
    assert main(["status", *flags]) == 0
    assert main(["silence", "low", "--for", "2h", *flags]) == 0
    assert main(["silence", "--list", *flags]) == 0
    assert main(["unsilence", "1", *flags]) == 0
    out = capsys.readouterr().out
    assert "silence 1: low muted for 2h" in out and "silence 1 removed" in out
    assert main(["check", *flags]) == 2  # check does need them, and says which
    assert "TELEGRAM_BOT_TOKEN is not set" in capsys.readouterr().err


def test_every_command_but_test_and_demo_takes_rules_and_state() -> None:
    from watcher.cli.main import COMMANDS, build_parser

    parser = build_parser()
    for name in COMMANDS:
        if name in ("test", "demo", "setup", "schema"):
            continue
        args = ["--rules", "r.yaml", "--state", "s.db"]
        extra = {
            "unsilence": ["1"],
            "record": ["--to", "x"],
            "migrate": ["--to", "x"],
            "ack": ["low"],
        }
        extra = extra.get(name, [])
        parsed = parser.parse_args([name, *extra, *args])
        assert (parsed.rules, parsed.state) == ("r.yaml", "s.db")


def test_a_delivery_on_a_full_disk_is_recorded_so_a_restart_does_not_send_it_again(
    small_disk: Path, receiver
) -> None:
    """The soak's one duplicate (#26): sent, then killed before the full disk let the
    delivery be recorded. The store keeps a reserve beside the database for that write."""
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(small_disk / "w.db")
    reserve = small_disk / "w.db.reserve"
    assert reserve.stat().st_size == 256 * 1024
    store.commit({}, route([notice("a")], channels, at(0)))
    filler = fill_disk(small_disk)
    Deliverer(store, channels, name="vps-1").deliver(at(1))
    assert not reserve.exists() and store.outbox_depth() == 0
    store.close()  # the kill: nothing in memory survives
    again = Store(small_disk / "w.db")
    assert again.outbox_depth() == 0
    Deliverer(again, channels, name="vps-1").deliver(at(2))
    fired = [p for p in receiver.posts if p["message"].startswith("FIRING a")]
    warned = [p for p in receiver.posts if "reserve" in p["message"]]
    assert len(fired) == 1 and len(warned) == 1
    filler.unlink()
    again.commit({}, route([notice("b")], channels, at(3)))
    assert Deliverer(again, channels, name="vps-1").deliver(at(3)).sent == 1
    assert reserve.stat().st_size == 256 * 1024  # made again once there was room


def test_the_trust_bundle_cannot_be_planted_by_another_user(tmp_path: Path) -> None:
    """WATCHER_CA_FILE's bundle: a fresh private file (0600, a name no one can guess),
    never one found at a fixed name in a shared /tmp, where a local user could put a CA
    of their own and have it trusted."""
    import stat
    import tempfile

    from watcher.net.client import trust_bundle

    extra = tmp_path / "ca.pem"
    extra.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    name = trust_bundle(str(extra))
    assert Path(name).parent == Path(tempfile.gettempdir())
    assert stat.S_IMODE(Path(name).stat().st_mode) == 0o600
    assert Path(name).read_bytes().endswith(extra.read_bytes())
    assert trust_bundle(str(extra)) == name  # made once per process
