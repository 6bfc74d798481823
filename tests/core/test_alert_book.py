"""The alert book (#32): each account's instances apart, a firing count kept as they
change, and readers on other threads that see one poll's instances or the next one's."""

from __future__ import annotations

import sys
import threading

from tests.support.helpers import at
from watcher.core.alerts import FIRING, PENDING, Alert, AlertBook


def alert(account: str, rule: str, state: str = FIRING) -> Alert:
    return Alert(rule, None, state, at(0), account=account)


def test_each_account_apart_and_the_firing_count_kept() -> None:
    book = AlertBook({a.key: a for a in [alert("x", "low"), alert("y", "low", PENDING)]})
    assert book.firing == 1 and len(book) == 2
    assert list(book.of("y")) == [("y", "low", None)] and book.of("z") == {}
    book.replace("y", {("y", "low", None): alert("y", "low")})
    assert book.firing == 2
    copy = book.overlay({"x": {}})
    assert (copy.firing, len(copy)) == (1, 1) and (book.firing, len(book)) == (2, 2)
    book.replace("x", {})
    assert book.firing == 1 and dict(book.items()) == {("y", "low", None): alert("y", "low")}


def test_a_reader_on_another_thread_never_fails_while_accounts_change() -> None:
    book = AlertBook()
    stop, failures = threading.Event(), []

    def polls() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            for name in ("a", "b", "c"):
                keep = {(name, f"r{i}", None): alert(name, f"r{i}") for i in range(turn % 7)}
                book.replace(name, keep)

    writer = threading.Thread(target=polls)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often: the race shows if it exists
    writer.start()
    try:
        for _ in range(3000):
            try:
                states = [a.state for a in book.values()]
                assert all(s == FIRING for s in states)
            except (KeyError, RuntimeError) as exc:  # a key gone between list and lookup
                failures.append(exc)
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(switch)
    assert failures == []
