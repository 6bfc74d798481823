"""Silence means healthy: the heartbeat pings and the daily digest."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WEB_KEY
from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.pings import PingServer
from tests.support.receivers import Receiver
from watcher.app.poll import Watcher
from watcher.app.replay import build_overview
from watcher.cli.main import main
from watcher.config.model import Heartbeat
from watcher.config.rules_file import parse_rules
from watcher.config.settings import Settings
from watcher.core.alerts import FIRING, Alert
from watcher.notify.heartbeat import TIMEOUT, Pinger
from watcher.sim.exchange import SimExchange
from watcher.store import Store


def rules_with(receiver: Receiver, extra: str) -> str:
    return (
        f'channels:\n  default: "{receiver.url()}"\n{extra}'
        "rules:\n  - name: low\n    when: USDT.spot < 100\n"
    )


def test_pings_after_good_polls_at_most_once_per_every_then_the_failure_form(
    tmp_path: Path, sim: SimExchange, receiver: Receiver
) -> None:
    pings = PingServer()
    url = pings.url("/ping/abc123token")
    beat = f'heartbeat:\n  - {{url: "{url}", every: 1s, style: healthchecks}}\n'
    daemon = DaemonProcess(tmp_path, sim, rules_with(receiver, beat), WATCHER_INTERVAL="1s")
    try:
        daemon.start()
        wait_for(lambda: len(pings.hits) >= 3, timeout=20, what="three pings")
        times = [t for t, _ in pings.hits]
        assert all(b - a >= 0.9 for a, b in zip(times, times[1:], strict=False))
        assert {p for _, p in pings.hits} == {"/ping/abc123token"}
        sim.inject("disconnect", times=None)
        wait_for(lambda: pings.hits[-1][1] == "/ping/abc123token/fail", timeout=20, what="/fail")
        path, reason = pings.bodies[-1]  # healthchecks keeps the body: the reason, one line
        assert path == "/ping/abc123token/fail" and reason.startswith(b"no successful poll: ")
        assert b"\n" not in reason and len(reason) <= 200
        assert "abc123token" not in daemon.output()
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()
        pings.stop()


def test_kuma_style_and_a_hanging_service_that_does_not_delay_polls(
    tmp_path: Path, sim: SimExchange, receiver: Receiver
) -> None:
    kuma, hanging = PingServer(), PingServer(hang=True)
    beat = (
        "heartbeat:\n"
        f'  - {{url: "{kuma.url("/api/push/kumaTOKEN42")}", every: 1s}}\n'
        f'  - {{url: "{hanging.url("/stuck")}", every: 1s}}\n'
    )
    daemon = DaemonProcess(tmp_path, sim, rules_with(receiver, beat), WATCHER_INTERVAL="1s")
    try:
        daemon.start()
        wait_for(lambda: kuma.hits, what="a kuma ping")
        assert kuma.hits[0][1].startswith("/api/push/kumaTOKEN42?status=up&msg=OK")
        served, pinged = sim.served, len(kuma.hits)
        time.sleep(5)
        assert sim.served - served >= 4  # one poll a second (the floor), the hanging ping or not
        assert len(kuma.hits) - pinged >= 2  # and kuma beside it
        # still waiting: skipped, never stacked. A new ping may start only once the last
        # one timed out, so hits are at least the read timeout apart (the window above is
        # as long as that timeout, so a second hit right at its end is fine)
        starts = [at for at, _ in hanging.hits]
        assert starts and all(b - a >= TIMEOUT[1] - 0.1 for a, b in pairwise(starts))
        assert "heartbeat ping skipped: the last one is still waiting" in daemon.output()
        sim.inject("disconnect", times=None)
        wait_for(lambda: "status=down" in kuma.hits[-1][1], timeout=20, what="status=down")
        started = time.monotonic()
        assert daemon.stop()[0] == 0
        assert time.monotonic() - started < 3  # the hanging ping does not hold the stop
    finally:
        daemon.close()
        kuma.stop()
        hanging.stop()


def test_a_ping_answer_is_never_read_so_an_endless_one_costs_nothing() -> None:
    """Only the status matters: a service that streams without end must not pin a thread
    (and its memory) so that every later ping of that URL is skipped."""
    endless = PingServer(endless=True)
    url = endless.url("/ping/abc123token")
    pinger = Pinger([Heartbeat(url, timedelta(seconds=1), "plain")])
    try:
        pinger.ping([url])
        wait_for(lambda: not pinger.busy, timeout=5, what="the ping to finish")
        assert len(endless.hits) == 1 and pinger.failures == 0
    finally:
        endless.stop()


DIGEST = (
    'channels:\n  default: "json://127.0.0.1:9/x"\n'
    'digest: {at: "08:00", timezone: Europe/Berlin}\n'
    "rules:\n  - name: low\n    when: USDT.spot < 100\n"
)
BERLIN_8 = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # 08:00 in Berlin (UTC+1)


class Source:
    """The exchange as the digest reads it: fixed balances."""

    def __init__(self) -> None:
        self.rows = {"USDT": {"spot": "2300"}, "BTC": {"spot": "3000", "contract": "600"}}

    def fetch(self, rows: bool, totals: bool):
        return build_overview(BERLIN_8, self.rows, {"total": "5900", "spot": "5300"})

    def close(self) -> None: ...

    def describe(self) -> str:
        return "fixed"


def watcher_at(tmp_path: Path, when: datetime) -> Watcher:
    settings = Settings(
        web_key=WEB_KEY,
        web_key_issued=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        state=tmp_path / "w.db",
        name="vps-1",
    )
    rules = parse_rules(DIGEST)
    return Watcher.open(
        settings, rules, Store(tmp_path / "w.db"), source=Source(), clock=lambda: when
    )


def digests(tmp_path: Path) -> list[Any]:
    return [r for r in Store(tmp_path / "w.db").pending() if r.notice.kind == "digest"]


def test_exactly_one_digest_a_day_across_restarts(tmp_path: Path) -> None:
    first = BERLIN_8 - timedelta(hours=1)
    assert watcher_at(tmp_path, first).daily.maybe(first) is False  # first start: from 08:00
    before = BERLIN_8 - timedelta(seconds=1)  # 07:59:59 Berlin, a restart
    assert watcher_at(tmp_path, before).daily.maybe(before) is False
    after = BERLIN_8 + timedelta(seconds=1)  # 08:00:01, another restart
    assert watcher_at(tmp_path, after).daily.maybe(after) is True
    for later in (after, after + timedelta(minutes=1), after + timedelta(hours=12)):
        assert watcher_at(tmp_path, later).daily.maybe(later) is False
    assert len(digests(tmp_path)) == 1
    tomorrow = BERLIN_8 + timedelta(days=1, seconds=5)
    assert watcher_at(tmp_path, tomorrow).daily.maybe(tomorrow) is True
    assert len(digests(tmp_path)) == 2


def test_a_day_missed_while_down_is_sent_late_once(tmp_path: Path) -> None:
    start = BERLIN_8 - timedelta(days=3, hours=1)
    watcher_at(tmp_path, start).daily.maybe(start)
    back = BERLIN_8 + timedelta(hours=2, minutes=30)  # down from before 08:00 until 10:30
    w = watcher_at(tmp_path, back)
    assert w.daily.maybe(back) is True and w.daily.maybe(back) is False
    (row,) = digests(tmp_path)
    assert row.notice.text.splitlines()[0] == (
        "Daily digest for 2026-11-27 08:00 Europe/Berlin (late: watcher was not running then; "
        "sent 2026-11-27 09:30 UTC) (amounts as the exchange converts them)"
    )


def test_the_digest_text_all_clear_and_with_alerts(tmp_path: Path) -> None:
    now = BERLIN_8 + timedelta(seconds=30)
    w = watcher_at(tmp_path, now)
    w.store.commit({}, samples=[("ACCOUNT.total", now - timedelta(hours=25), Decimal("5000"))])
    assert w.daily.text(now) == (
        "Daily digest for 2026-11-27 08:00 Europe/Berlin (amounts as the exchange converts them)\n"
        "Account total: 5,900 (+18% in 24 h)\n"
        "Largest holdings: BTC 3,600, USDT 2,300\n"
        "All clear: nothing is firing.\n"
        "Outbox: empty, every message was delivered.\n"
        "Web key: expires 2026-11-30 09:00 UTC (in 3d1h59m)"
    )
    w.alerts = {
        (("low", None)): Alert(
            "low",
            None,
            FIRING,
            since=now - timedelta(hours=3),
            fired_at=now - timedelta(hours=3, minutes=-5),
        ),
    }
    w.store.add_silence("low", "BTC", now, timedelta(hours=4), "topping up")
    text = w.daily.text(now)
    assert text.splitlines()[3:6] == [
        "Firing: low for 2h55m",
        "Silenced: low BTC until 2026-11-27 11:00 UTC",
        "Outbox: empty, every message was delivered.",
    ]


def test_watcher_digest_prints_and_sends(
    tmp_path: Path, sim: SimExchange, receiver, monkeypatch, capsys
):
    (tmp_path / "rules.yaml").write_text(DIGEST.replace("json://127.0.0.1:9/x", receiver.url()))
    for name, value in {
        "WATCHER_RULES": str(tmp_path / "rules.yaml"),
        "WATCHER_STATE": str(tmp_path / "w.db"),
        "WATCHER_WEB_KEY": WEB_KEY,
        "WATCHER_MEXC_URL": sim.mexc_url,
        "WATCHER_NAME": "vps-1",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["digest"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Daily digest for ") and "All clear: nothing is firing." in out
    assert receiver.posts == []
    assert main(["digest", "--send"]) == 0
    (post,) = receiver.posts
    assert post["title"] == "watcher vps-1: daily digest"
    assert "Largest holdings: BTC 3,600, USDT 2,300" in post["message"]


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ('heartbeat: {url: "ftp://x/y"}\n', "the url must be http(s)"),
        ('heartbeat: {url: "http://h/p", every: 0s}\n', "at least 1s"),
        (
            'heartbeat: {url: "http://h/p", styel: kuma}\n',
            "heartbeat: unknown key 'styel'; did you mean 'style'?",
        ),
        ('heartbeat: {url: "${NOPE_HC}"}\n', "NOPE_HC is not set"),
        ('digest: {at: "25:00"}\n', "a time of day"),
        ('digest: {at: "08:00", timezone: Mars/Base}\n', "unknown time zone"),
        ('digest: {at: "08:00", notify: [phone]}\n', "no channel named 'phone'"),
    ],
)
def test_bad_heartbeat_and_digest_sections_are_located(
    tmp_path: Path, capsys, section: str, problem: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text('channels:\n  default: "console://"\n' + section + "rules: []\n")
    assert main(["check", "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and problem in err


def test_a_preview_or_a_digest_sent_on_request_is_never_late(tmp_path: Path) -> None:
    """Issue "What a newcomer tripped on", point 2: at 05:02 UTC, with the digest at 08:00
    Berlin, the preview and --send said "late: watcher was not running then; sent"."""
    early = datetime(2026, 11, 27, 5, 2, tzinfo=UTC)
    w = watcher_at(tmp_path, early)
    head = w.daily.text(early).splitlines()[0]
    assert head == (
        "Daily digest for 2026-11-26 08:00 Europe/Berlin (amounts as the exchange converts them)"
    )
    assert w.daily.maybe(early, force=True) is True
    (row,) = digests(tmp_path)
    assert "late" not in row.notice.text and "sent" not in row.notice.text.splitlines()[0]


def test_the_digest_names_the_unit_where_the_source_knows_it() -> None:
    """#30, 9: a ccxt account's amounts are in its quote; MEXC's converted amounts are
    said to be the exchange's conversion once, in the header, not shown as dollars."""
    from dataclasses import replace as changed

    from tests.support.helpers import at, overview, row
    from watcher.config.model import Digest
    from watcher.notify.digest import Book, Facts, compose

    book = overview(row("BTC", spot="61000"), total="61000")
    spec = Digest(at=datetime.min.time())
    mexc = compose(spec, Facts("vps-1", at(hours=1), (Book(None, book),)))
    assert "(amounts as the exchange converts them)" in mexc.splitlines()[0]
    assert "Account total: 61,000 (" in mexc
    ccxt = changed(book, quote="EUR")
    text = compose(spec, Facts("vps-1", at(hours=1), (Book(None, ccxt),)))
    assert "converts them" not in text and "Account total: 61,000 EUR" in text
    assert "BTC 61,000 EUR" in text


def test_the_digest_names_the_position_nearest_to_liquidation() -> None:
    from dataclasses import replace as changed
    from decimal import Decimal as D

    from tests.support.helpers import at, overview, row
    from watcher.config.model import Digest
    from watcher.core.positions import Position
    from watcher.notify.digest import Book, Facts, compose

    near = Position("BTC_USDT", "long", "isolated", D(100), D("0.0001"), D(60000),
                    D(60000), D(57240), D(20), D(300), D(0))  # fmt: skip
    book = changed(overview(row("USDT", spot="100"), total="100"), positions=(near,))
    text = compose(Digest(at=datetime.min.time()), Facts("vps-1", at(hours=1), (Book(None, book),)))
    assert "Positions: 1 open, nearest to liquidation BTC_USDT long at 4.6%" in text


@pytest.mark.parametrize(
    ("url", "style"),
    [
        ("https://hc-ping.com/0b1f5c6e-4a3b-4f6e-9d2a-1c2b3d4e5f60", "healthchecks"),
        ("https://eu.healthchecks.io/ping/abc", "healthchecks"),
        ("https://kuma.example.org/api/push/Tk4mPushTok3n", "kuma"),
        ("https://cronitor.link/p/abc/watcher", "plain"),
        ("https://my-hc.example.org/ping/abc", "plain"),  # self-hosted: say style: healthchecks
    ],
)
def test_the_style_is_inferred_only_from_what_the_url_says_for_sure(url: str, style: str) -> None:
    """#29, 7: /fail is appended only to healthchecks' URLs; plain never gets anything."""
    from watcher.config.model import Heartbeat
    from watcher.config.resolve import inferred_style
    from watcher.notify.heartbeat import ping_url

    assert inferred_style(url) == style
    beat = Heartbeat(url, style=style)
    assert ping_url(beat, True, "OK") == (
        (url, None) if style != "kuma" else ping_url(beat, True, "OK")
    )
    failed = ping_url(beat, False, "no successful poll: cannot reach\nthe exchange")
    if style == "plain":
        assert failed is None
    elif style == "healthchecks":
        assert failed == (url + "/fail", b"no successful poll: cannot reach the exchange")
    else:
        assert "status=down" in failed[0] and failed[1] is None
