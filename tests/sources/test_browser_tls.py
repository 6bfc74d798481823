"""#29, 1: a browser's TLS handshake (curl_cffi) through a front that reads the ClientHello.

The front refuses handshakes without GREASE (OpenSSL's) with its 403 page, and passes
Chrome-like ones to the simulator. Its certificate comes from a CA made for the test,
trusted through WATCHER_CA_FILE; nothing here skips verification.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.support.tls_front import TlsFront, make_certificates
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.errors import BadResponse, Blocked, ConfigError, TransportError
from watcher.sim.exchange import SimExchange
from watcher.sources import open_source

pytest.importorskip("curl_cffi", reason="the browser-tls extra: pip install 'watcher[browser-tls]'")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def front(sim: SimExchange, certificates) -> Iterator[TlsFront]:
    ca, cert, key = certificates
    front = TlsFront(("127.0.0.1", sim.port), cert, key)
    yield front
    front.close()


def settings_for(front: TlsFront, certificates, **more: str) -> Settings:
    values = {
        "web_key": WEB_KEY,
        "mexc_url": front.url,
        "interval": "5s",
        "timeout": "2s",
        "ca_file": str(certificates[0]),
    }
    return Settings(**(values | more))


def fetch(settings: Settings):
    return open_source(settings, lambda: datetime.now(UTC)).fetch(rows=True, totals=True)


def test_pythons_handshake_is_refused_and_the_message_says_what_is_in_use(
    front, certificates
) -> None:
    with pytest.raises(Blocked) as caught:
        fetch(settings_for(front, certificates, tls="python"))
    text = str(caught.value)
    assert "this is not your web key" in text and "WATCHER_TLS=browser" in text
    assert text.endswith("In use now: Python's TLS handshake, direct")
    assert front.handshakes == ["other"]


def test_a_browsers_handshake_passes_the_front(front, certificates) -> None:
    overview = fetch(settings_for(front, certificates, tls="browser"))
    assert overview.currencies["USDT"].spot > 0 and overview.totals is not None
    assert set(front.handshakes) == {"browser"}


def test_auto_switches_once_for_the_life_of_the_source(front, certificates) -> None:
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    src = open_source(settings_for(front, certificates), lambda: datetime.now(UTC))
    assert src.fetch(rows=True, totals=False).currencies  # refused, switched, asked again
    assert src.fetch(rows=True, totals=False).currencies
    assert front.handshakes[0] == "other" and set(front.handshakes[1:]) == {"browser"}
    said = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert (
        said.count(
            "MEXC's web front refused Python's TLS handshake; a browser's is used from now on"
        )
        == 1
    )
    assert "browser TLS" in src.describe() and WEB_KEY not in stream.getvalue()


def test_without_the_ca_file_the_front_is_not_trusted(front, certificates) -> None:
    settings = settings_for(front, certificates, tls="browser").replace(ca_file=None)
    with pytest.raises(TransportError, match="TLS certificate could not be verified"):
        fetch(settings)


@pytest.mark.parametrize(
    ("fault", "params", "error", "words"),
    [
        ("drip", {"delay": 0.5}, TransportError, "too slowly"),
        ("gzipbomb", {}, BadResponse, "larger than"),
        ("redirect", {}, TransportError, "nothing was followed"),
    ],
)
def test_the_bounds_of_net_hold_with_a_browsers_handshake(
    front, certificates, sim, fault, params, error, words
) -> None:
    sim.inject(fault, times=None, **params)
    with pytest.raises(error, match=words) as caught:
        fetch(settings_for(front, certificates, tls="browser"))
    assert WEB_KEY not in str(caught.value)


def test_a_ca_file_that_holds_no_certificate_is_one_line(tmp_path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="WATCHER_CA_FILE: .* holds no PEM certificate"):
        Settings(ca_file=str(tmp_path / "ca.pem"))
