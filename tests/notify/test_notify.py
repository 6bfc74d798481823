"""Delivery through apprise to real local receivers, from a real SQLite outbox."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import apprise

from tests.support.helpers import at, ruleset
from tests.support.receivers import Mailbox, Receiver
from watcher.config.channels import Channel, parse_channel, url_key
from watcher.config.resolve import resolve
from watcher.core import logs
from watcher.core.secrets import MASKER
from watcher.engine.evaluate import FIRING, RESOLVED, Notice
from watcher.notify.adapter import Service, masked
from watcher.notify.delivery import Deliverer, compose, route
from watcher.store import Store


def notice(rule: str = "low", kind: str = FIRING, severity: str = "warning", **kw) -> Notice:
    fields = dict(
        rule=rule,
        currency=None,
        kind=kind,
        severity=severity,
        channels=("default",),
        value=Decimal("50"),
        threshold=Decimal("100"),
        since=at(0),
        at=at(0),
        condition="USDT.spot < 100",
    )
    fields.update(kw)
    return Notice(**fields)


def decide(store: Store, channels: dict[str, Channel], notices: list[Notice], when=None) -> None:
    """What the poll does: state change and outbox rows in one transaction."""
    store.commit({}, route(notices, channels, when or at(0)))


def test_grouped_message_to_json_receiver(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    decide(
        store,
        channels,
        [
            notice("low", severity="critical"),
            notice("heavy", currency="BTC", kind="repeat", value=Decimal("1234.5")),
            notice("old", kind=RESOLVED, value=Decimal("500.000"), at=at(minutes=12)),
        ],
    )
    report = Deliverer(store, channels, name="vps-1").deliver(at(1))
    assert (report.sent, report.messages, report.failed) == (3, 1, 0)
    (post,) = receiver.posts
    assert post["title"] == "watcher vps-1: 2 firing, 1 resolved (critical)"
    assert post["type"] == "failure"  # the worst severity among the active ones
    assert post["message"].splitlines() == [
        "FIRING low: USDT.spot < 100 (value 50, threshold 100)",
        "STILL FIRING heavy BTC for 0s: USDT.spot < 100 (value 1,234.5, threshold 100)",
        "RESOLVED old after 12m: USDT.spot < 100 no longer holds (value 500, threshold 100)",
    ]
    assert store.outbox_depth() == 0
    assert Deliverer(store, channels).deliver(at(2)).messages == 0


def test_notify_type_follows_severity() -> None:
    assert compose([notice(severity="warning")]).kind == "warning"
    assert compose([notice(severity="info")]).kind == "info"
    resolved = compose([notice(kind=RESOLVED, severity="critical")])
    assert (resolved.kind, resolved.severity) == ("success", "resolved")


def test_mail_to_local_smtp(state: Path | str, tmp_path: Path, mailbox: Mailbox) -> None:
    channels = {"default": parse_channel("default", mailbox.url())}
    store = Store(state)
    decide(store, channels, [notice()])
    assert Deliverer(store, channels).deliver(at(1)).sent == 1
    (mail,) = mailbox.messages
    assert "Subject: watcher: 1 firing (warning)" in mail
    assert "FIRING low: USDT.spot < 100 (value 50, threshold 100)" in mail


def test_failing_receiver_gets_every_message_exactly_once(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    deliverer = Deliverer(store, channels)
    receiver.fail = 2
    decide(store, channels, [notice("a")])
    assert deliverer.deliver(at(0)).failed == 1
    assert deliverer.deliver(at(29)).messages == 0  # backoff: 30 s
    decide(store, channels, [notice("b", at=at(40))], at(40))
    assert deliverer.deliver(at(40)).failed == 2  # a is due again: both, grouped
    assert deliverer.deliver(at(99)).messages == 0  # b did not reset the backoff: 60 s
    assert deliverer.deliver(at(100)).sent == 2  # the receiver is back
    for minute in range(2, 60):
        assert deliverer.deliver(at(minutes=minute)).messages == 0
    assert receiver.messages() == [
        "FIRING a: USDT.spot < 100 (value 50, threshold 100)\n"
        "FIRING b: USDT.spot < 100 (value 50, threshold 100)"
    ]


def test_backoff_doubles_to_fifteen_minutes(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    deliverer = Deliverer(store, channels)
    receiver.fail = 100
    decide(store, channels, [notice()])
    now, waits = at(0), []
    for _ in range(8):
        deliverer.deliver(now)
        due = store.next_due()
        waits.append(int((due - now).total_seconds()))
        now = due
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]


def test_two_urls_one_failing_does_not_resend_to_the_other(
    state: Path | str, tmp_path: Path
) -> None:
    good, bad = Receiver(), Receiver()
    try:
        channels = {"default": Channel("default", (good.url("a"), bad.url("b")))}
        store = Store(state)
        deliverer = Deliverer(store, channels)
        bad.fail = 2
        decide(store, channels, [notice()])
        first = deliverer.deliver(at(0))
        assert (first.sent, first.failed) == (1, 1)
        deliverer.deliver(at(30))
        deliverer.deliver(at(90))
        assert len(good.posts) == 1 and len(bad.posts) == 1
        assert store.outbox_depth() == 0
    finally:
        good.stop()
        bad.stop()


def test_kill_between_decided_and_sent_loses_nothing(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    decide(store, channels, [notice("a"), notice("b")])
    del store  # the process dies here: nothing was sent
    again = Store(state)
    assert again.outbox_depth() == 2
    assert Deliverer(again, channels).deliver(at(5)).sent == 2
    third = Store(state)
    assert Deliverer(third, channels).deliver(at(6)).messages == 0
    assert len(receiver.posts) == 1


def test_quiet_hours_hold_and_release_grouped(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    spec = {"urls": [receiver.url()], "quiet_hours": "23:00-07:00", "timezone": "UTC"}
    channels = {"default": parse_channel("default", spec)}
    store = Store(state)
    deliverer = Deliverer(store, channels)
    night = at(hours=23, minutes=30)
    decide(store, channels, [notice("a", at=night)], night)
    decide(store, channels, [notice("boom", severity="critical", at=night)], night)
    assert deliverer.deliver(night).sent == 1  # critical goes through
    later = night + timedelta(hours=3)
    decide(store, channels, [notice("b", kind=RESOLVED, at=later)], later)
    assert deliverer.deliver(later).messages == 0
    morning = at(hours=31)  # 07:00 next day
    assert deliverer.deliver(morning).sent == 2
    assert receiver.posts[0]["title"] == "watcher: 1 firing (critical)"
    assert receiver.posts[1]["title"] == "watcher: 1 firing, 1 resolved (warning)"


def test_quiet_hours_windows() -> None:
    spec = {"urls": ["json://127.0.0.1:9/"], "quiet_hours": "23:00-07:00", "timezone": "UTC"}
    quiet = parse_channel("c", spec).quiet_hours
    assert quiet.release(at(hours=22, minutes=59)) is None
    assert quiet.release(at(hours=23)) == at(hours=31)
    assert quiet.release(at(hours=30)) == at(hours=31)  # 06:00 next day
    assert quiet.release(at(hours=31)) is None
    berlin = {**spec, "quiet_hours": "12:00-13:00", "timezone": "Europe/Berlin"}
    day = parse_channel("c", berlin).quiet_hours
    assert day.release(at(hours=11, minutes=30)) == at(hours=12)  # 12:30 in Berlin (UTC+1)


def test_too_old_rows_are_dropped_with_an_error(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    receiver.fail = 1000
    decide(store, channels, [notice()])
    deliverer = Deliverer(store, channels)
    now, dropped = at(0), 0
    while store.outbox_depth() and now < at(hours=30):
        dropped += deliverer.deliver(now).dropped
        now = store.next_due() or now
    assert dropped == 1 and store.outbox_depth() == 0 and now >= at(hours=24)
    assert '"reason": "too old"' in stream.getvalue()


def test_a_clock_that_jumps_a_day_ahead_drops_nothing(
    state: Path | str, tmp_path: Path, receiver: Receiver
):
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    decide(store, channels, [notice("a")])
    receiver.fail = 1
    Deliverer(store, channels).deliver(at(0))
    for jump in (timedelta(hours=25), timedelta(days=3)):  # a VM resumed, an NTP step
        report = Deliverer(store, channels).deliver(at(0) + jump)
        if report.sent:
            break
    assert report.sent == 1 and report.dropped == 0 and len(receiver.posts) == 1


def test_rows_follow_an_edited_channel_and_only_a_removed_one_drops(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    old = {"default": Channel("default", ("json://127.0.0.1:9/old-token",))}
    store = Store(state)
    decide(store, old, [notice("a"), notice("b", at=at(5))])
    new = {"default": Channel("default", (receiver.url("new"), receiver.url("second")))}
    deliverer = Deliverer(store, new)
    deliverer.deliver(at(6))  # the rows move to the channel's current URLs
    report = deliverer.deliver(at(6))
    assert (report.sent, report.dropped) == (4, 0)
    assert sorted(receiver.paths) == ["/new", "/second"]
    assert all(m.splitlines()[0].startswith("FIRING a:") for m in receiver.messages())
    decide(store, new, [notice("c")])
    gone = Deliverer(store, {"other": Channel("other", (receiver.url(),))}).deliver(at(7))
    assert gone.dropped == 2 and store.outbox_depth() == 0


def test_long_messages_are_split_not_cut(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    service = Service("tgram://123456789:abcdefghijklmnopqrstuvwxyz0123456/1234567").plugin
    assert service.overflow_mode == apprise.common.OverflowMode.SPLIT
    assert Service("json://127.0.0.1:9/?overflow=truncate").plugin.overflow_mode == "truncate"
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    decide(store, channels, [notice(f"rule-{i}") for i in range(300)])
    Deliverer(store, channels).deliver(at(1))
    lines = "\n".join(receiver.messages()).splitlines()
    assert len(lines) == 300 and lines[-1].startswith("FIRING rule-299")


def test_outbox_and_logs_never_hold_a_url_token(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    token = "SECRETTOKEN0123456789"
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream=stream)
    url = receiver.url(f"{token}/x") + f"?token={token}"
    written = {"default": parse_channel("default", "json://${HOOK}")}
    channels = resolve(
        replace(ruleset("  - name: x\n    when: total > 1\n"), channels=written),
        env={"HOOK": url[7:]},
    ).channels
    store = Store(state)
    decide(store, channels, [notice()])
    receiver.fail = 1
    deliverer = Deliverer(store, channels)
    deliverer.deliver(at(0))
    deliverer.deliver(at(31))
    assert len(receiver.posts) == 1 and token in receiver.paths[0]
    store.close()
    assert token not in everything_stored(state)
    if isinstance(state, Path):  # the file itself, pages and WAL, not only its rows
        assert token.encode() not in state.read_bytes()
        wal = state.with_name("w.db-wal")
        assert not wal.exists() or token.encode() not in wal.read_bytes()
    assert token not in stream.getvalue() and "notification sent" in stream.getvalue()
    assert token not in masked(url)
    again = Store(state)
    assert {k for (k,) in again.db.execute("SELECT url_key FROM outbox")} <= {url_key(url)}
    MASKER.clear()


def everything_stored(state: Path | str) -> str:
    """Every row of every table, as text."""
    from watcher.store.copy import TABLES

    store = Store(state)
    rows = [store.db.execute(f"SELECT * FROM {table}").fetchall() for table in TABLES]
    store.close()
    return repr(rows)


def balanced_markdown(post: dict) -> bool:
    """What Telegram's parser checks: every unescaped * and _ has its pair."""
    text = re.sub(r"\\.", "", post["message"])
    return text.count("*") % 2 == 0 and text.count("_") % 2 == 0


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).replace("**", "")


def test_a_template_with_markdown_characters_arrives_intact(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.accept = balanced_markdown
    channels = {"default": Channel("default", (receiver.url() + "?format=markdown",))}
    store = Store(state)
    text = "USDT_spot is 80 *below* 100: top_up now * quickly"
    decide(store, channels, [notice("low_rule", text=text)])
    assert Deliverer(store, channels).deliver(at(1)).sent == 1
    (post,) = receiver.posts
    assert post["message"].startswith("FIRING **low\\_rule**: ")
    assert unescape(post["message"]) == f"FIRING low_rule: {text}"
    assert receiver.refused == []


def test_a_message_refused_for_its_formatting_is_sent_again_as_plain_text(
    state: Path | str, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.accept = lambda post: "**" not in post["message"]  # a service that hates markdown
    channels = {"default": Channel("default", (receiver.url() + "?format=markdown",))}
    store = Store(state)
    decide(store, channels, [notice("low")])
    report = Deliverer(store, channels).deliver(at(1))
    assert (report.sent, report.failed) == (1, 0) and len(receiver.refused) == 1
    # apprise renders the plain text safely for a markdown service: escaped, no emphasis
    message = receiver.posts[0]["message"]
    assert "**" not in message
    assert unescape(message) == "FIRING low: USDT.spot < 100 (value 50, threshold 100)"


def test_after_an_outage_the_last_word_is_the_state_now(
    state: Path | str, tmp_path: Path, receiver: Receiver
):
    """Down; the alert fires, resolves, fires again; back: one message, in order, ending FIRING."""
    from tests.support.helpers import ruleset
    from watcher.app.poll import Watcher
    from watcher.app.replay import build_overview
    from watcher.config.settings import Settings

    rules = ruleset("  - name: low\n    when: USDT.spot < 100\n".replace("json://127.0.0.1:9/", ""))
    channels = {"default": Channel("default", (receiver.url(),))}
    rules = replace(rules, channels=channels)
    clock = [at(0)]
    settings = Settings(web_key="WEB-x-123456", state=tmp_path / "w.db")
    w = Watcher.open(settings, rules, Store(state), clock=lambda: clock[0])
    receiver.fail = 10**6  # Telegram is down
    for minute, spot in [(0, "500"), (1, "50"), (5, "500"), (9, "50"), (10, "40")]:
        clock[0] = at(minutes=minute)
        w.process(clock[0], build_overview(clock[0], {"USDT": {"spot": spot}}, None), None)
        w.deliver()
    assert receiver.posts == []
    receiver.fail = 0  # back; and a new poll decides nothing new
    clock[0] = at(minutes=30)
    w.deliver()
    (post,) = receiver.posts
    assert post["message"] == (
        "low: FIRING 00:01 -> RESOLVED 00:05 -> FIRING 00:09 UTC (still firing); "
        "USDT.spot < 100 (value 50, threshold 100)"
    )
    assert post["title"] == f"watcher {settings.name}: 1 firing (warning)"
    assert w.store.outbox_depth() == 0


def test_a_url_in_backoff_holds_new_messages_behind_the_old(
    state: Path | str, tmp_path: Path, receiver: Receiver
):
    channels = {"default": Channel("default", (receiver.url(),))}
    store = Store(state)
    deliverer = Deliverer(store, channels)
    receiver.fail = 1
    decide(store, channels, [notice("a")])
    assert deliverer.deliver(at(0)).failed == 1  # a waits 30 s
    decide(store, channels, [notice("b", at=at(10))], at(10))
    assert deliverer.deliver(at(10)).messages == 0  # b may not overtake a
    assert deliverer.deliver(at(30)).sent == 2
    (post,) = receiver.posts
    assert [x.split(":")[0] for x in post["message"].splitlines()] == ["FIRING a", "FIRING b"]
