"""python-telegram-bot's networking through watcher's bounded reader.

``BaseRequest`` is python-telegram-bot's documented extension point for its HTTP
backend. This one sends with ``requests`` and reads each answer as an exchange's
answer is read: within its deadline, at most ``MAX_ANSWER`` bytes after
decompression, nested no deeper than JSON answers need. A broken or hostile Bot API
can then neither fill the memory nor stop the bot's thread, and every failure is a
``NetworkError`` whose text holds no URL (the URL holds the token).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from typing import Any

import requests
from telegram import Update
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from watcher.core import logs
from watcher.core.errors import WatcherError
from watcher.net.client import read_body, too_deep

MAX_ANSWER = 2 * 1024 * 1024  # getUpdates gives at most 100 updates of a few KB each
log = logs.get("watcher.telegram")
CONNECT = 5.0
READ = 15.0


class BoundedRequest(BaseRequest):
    """One ``requests`` session; ``heard`` is told each answer's method and status."""

    def __init__(self, heard: Callable[[str, int], None] = lambda method, status: None):
        self.session = requests.Session()
        self.session.trust_env = False  # the Bot API URL decides where requests go
        self.session.headers["Accept-Encoding"] = "gzip, deflate"  # what read_body inflates
        self.heard = heard

    async def initialize(self) -> None:
        """Nothing to open: the session connects on first use."""

    async def shutdown(self) -> None:
        self.session.close()

    @property
    def read_timeout(self) -> float:
        return READ

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        seconds = read_timeout if isinstance(read_timeout, int | float) else READ
        fields = request_data.json_parameters if request_data else None
        return await asyncio.to_thread(self.send, url, method, fields, float(seconds))

    def send(
        self, url: str, verb: str, fields: dict[str, str] | None, seconds: float
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]  # the Bot API method; never the URL (its token)
        try:
            response = self.session.request(
                verb, url, data=fields, timeout=(CONNECT, seconds), stream=True
            )
        except requests.Timeout:
            raise TimedOut(f"{name}: Telegram did not answer in time") from None
        except requests.RequestException as exc:
            raise NetworkError(f"{name}: cannot reach Telegram ({type(exc).__name__})") from None
        try:
            body = read_body(response, time.monotonic() + seconds, MAX_ANSWER)
        except WatcherError as exc:
            raise NetworkError(f"{name}: {exc}") from None
        finally:
            response.close()
        if too_deep(body):
            raise NetworkError(f"{name}: the answer nests deeper than JSON answers need")
        if name == "getUpdates" and response.status_code == 200:
            body = updates_only(body)
        self.heard(name, response.status_code)
        return response.status_code, body


def updates_only(body: bytes) -> bytes:
    """A getUpdates answer as the Bot API documents it (a list of Update objects, each
    with an integer ``update_id``), or a ``NetworkError``: python-telegram-bot would
    otherwise fail on an odd shape outside its retry loop and stop polling for good.
    Entries that are not updates are left out."""
    try:
        data = json.loads(body)
    except ValueError:
        raise NetworkError(
            "getUpdates: Telegram said 200 with an answer that is not JSON"
        ) from None
    if not isinstance(data, dict) or data.get("ok") is not True:
        return body  # an error answer: python-telegram-bot reads its description
    result = data.get("result")
    if not isinstance(result, list):
        raise NetworkError("getUpdates: the answer's result is not a list of updates")
    kept = [u for u in result if readable(u)]
    if len(kept) < len(result):
        log.warning(
            "updates Telegram sent could not be read; skipped", count=len(result) - len(kept)
        )
        return json.dumps({**data, "result": kept}).encode()
    return body


def readable(update: Any) -> bool:
    """An Update python-telegram-bot can build (a malformed one is skipped, never a crash
    of the polling task)."""
    if not isinstance(update, dict) or type(update.get("update_id")) is not int:
        return False
    try:
        Update.de_json(copy.deepcopy(update), None)
    except Exception:  # whatever the odd shape makes the library raise
        return False
    return True
