"""apprise through its public API: one ``Apprise`` per URL, apprise's own URL preparation,
and the slow receiver of the second adversarial round (finding 6)."""

from __future__ import annotations

import ast
import io
import time
from pathlib import Path

from tests.support.helpers import at
from tests.support.receivers import Receiver
from watcher.config.channels import Channel
from watcher.core import logs
from watcher.notify.adapter import Message, Service, prepared
from watcher.notify.delivery import Deliverer, route
from watcher.store import Store

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"


def test_no_private_apprise_path_or_parse_url_anywhere_in_watcher() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("apprise.plugins"), path
            if isinstance(node, ast.Attribute):
                assert node.attr != "parse_url", path


def test_a_slack_channel_target_is_kept() -> None:
    """The fast path skipped apprise's URL preparation and lost ``#general``."""
    service = Service("slack://T1ABCDEFG/B1ABCDEFG/abcdefghijklmnopqrstuvwx/#general")
    assert service.ok and service.plugin.channels == ["#general"]


def test_watchers_defaults_never_override_what_the_url_says() -> None:
    assert prepared("json://h/x") == "json://h/x?overflow=split&rto=15&cto=5"
    assert (
        prepared("json://h/x?rto=3&overflow=truncate") == "json://h/x?rto=3&overflow=truncate&cto=5"
    )
    assert prepared("console://") == "console://"


def notice_rows(channels, name="low"):
    from tests.notify.test_notify import notice

    return route([notice(name)], channels, at(0))


def test_a_receiver_slower_than_apprises_default_timeout_gets_one_copy(tmp_path) -> None:
    """It takes 6 s and answers 200 every time: waited for (rto 15 s), sent once."""
    slow = Receiver()
    slow.delay = 6.0
    try:
        channels = {"default": Channel("default", (slow.url(),))}
        store = Store(tmp_path / "w.db")
        store.commit({}, notice_rows(channels))
        deliverer = Deliverer(store, channels, budget=8.0)
        for second in (0, 30, 60, 90):  # four delivery cycles of the daemon
            deliverer.deliver(at(second))
        assert len(slow.posts) == 1 and store.outbox_depth() == 0
    finally:
        slow.stop()


def test_a_timeout_after_sending_is_maybe_delivered_never_resent_as_plain_text(
    tmp_path,
) -> None:
    """A markdown URL whose read timeout (1 s) is shorter than the receiver (3 s): the
    message went out once; no plain-text copy follows, and the retry waits longer."""
    slow = Receiver()
    slow.delay = 3.0
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream=stream)
    try:
        url = slow.url() + "?format=markdown&rto=1"
        channels = {"default": Channel("default", (url,))}
        store = Store(tmp_path / "w.db")
        store.commit({}, notice_rows(channels))
        deliverer = Deliverer(store, channels, budget=2.0)
        deliverer.deliver(at(0))
        deliverer.deliver(at(30))  # the first retry would be due by now after a refusal
        deadline = time.monotonic() + 10
        while len(slow.posts) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.5)  # any second copy would have arrived by now
        assert len(slow.posts) == 1
        assert "notification may have arrived; will retry later" in stream.getvalue()
    finally:
        logs.reset()
        slow.stop()


def test_one_apprise_object_per_url_is_reused_across_sends_and_reloads(tmp_path) -> None:
    receiver = Receiver()
    try:
        channels = {"default": Channel("default", (receiver.url(),))}
        deliverer = Deliverer(Store(tmp_path / "w.db"), channels)
        first = deliverer.services[receiver.url()]
        deliverer.set_channels(dict(channels))
        assert deliverer.services[receiver.url()] is first
        sent = [first.send(Message("t", f"body {i}", "info", "info")) for i in range(3)]
        assert all(s.ok for s in sent) and len(receiver.posts) == 3
    finally:
        receiver.stop()


def test_console_is_apprises_custom_notification(capsys) -> None:
    assert Service("console://").send(Message("title", "body", "failure", "critical")).ok
    assert capsys.readouterr().out == "[critical] title\nbody\n"


def test_a_refused_connection_is_not_reported_as_a_refused_message() -> None:
    """#30, 14: apprise's own warning tells the two apart; watcher's words follow it."""
    from watcher.sim.receiver import free_port

    message = Message("t", "body", "info", "info")
    closed = Service(f"json://127.0.0.1:{free_port()}/hook?cto=1")
    sent = closed.send(message)
    assert not sent.ok and sent.error.startswith("could not connect to the service")
    refusing = Receiver()
    refusing.fail = 1
    try:
        sent = Service(refusing.url("tok-refused-0123456789")).send(message)
        assert not sent.ok and sent.error.startswith("the service did not accept the message")
        assert "tok-refused-0123456789" not in sent.error
    finally:
        refusing.stop()
