"""A local fake of Telegram's Bot API that checks what the real one checks.

It follows https://core.telegram.org/bots/api: ``getMe`` answers a User; ``getUpdates``
serves updates at or above ``offset`` (the ones below count as confirmed and are gone),
at most ``limit`` (1-100, default 100), holding the request open up to ``timeout``;
``sendMessage`` is recorded, or refused as the real one refuses (400 for a text over
4,096 characters or HTML it cannot parse, 429 with ``retry_after`` when told to throttle);
a wrong token gets 401 "Unauthorized", as the real one does.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT_NAME = "watcher_test_bot"
TOKEN = "123456789:AAF-fake-bot-token-0123456789abcdef"


class FakeTelegram:
    """getUpdates serves queued updates by offset (holding the request open like Telegram's
    long polling); sendMessage is recorded. A wrong token gets 401, as the real one; ``junk``
    answers are served as they are, before any real one."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.offsets: list[int] = []
        self.encodings: list[str | None] = []  # Accept-Encoding of each getUpdates
        self.junk: list[tuple[int, bytes, dict[str, str]]] = []  # raw answers served first
        self.ready = threading.Condition()
        self.next_id = 1000
        self.limits: list[str | None] = []  # getUpdates' limit= of each call
        self.allowed: list[str | None] = []  # getUpdates' allowed_updates= of each call
        self.calls: list[float] = []  # when each getUpdates arrived
        self.instant_empty = False
        self.throttle = 0  # the next N sendMessage calls get 429 with retry_after 2
        self.throttled: list[float] = []
        self.sent_at: list[float] = []
        self.refusals: list[str] = []
        self.answers: list[dict[str, Any]] = []  # answerCallbackQuery calls
        self.answered: set[str] = set()
        self.edits: list[dict[str, Any]] = []  # editMessageText calls that succeeded
        self.menus: list[list[dict[str, str]]] = []  # setMyCommands calls
        self.confirmed = 0  # the highest offset asked for: every update below it is gone
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)  # a stopped bot may leave mid long-poll

            def method(self) -> str | None:
                parts = urlsplit(self.path).path.split("/")
                if len(parts) != 3 or parts[1] != f"bot{TOKEN}":
                    self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return None
                return parts[2]

            def params(self) -> dict[str, Any]:
                """The call's parameters, in any of the four ways the Bot API takes them
                (https://core.telegram.org/bots/api#making-requests): the query string,
                application/x-www-form-urlencoded, application/json, or multipart. In a
                form, an object-typed field (reply_markup, reply_parameters, commands,
                allowed_updates) is itself JSON-serialized, as the documentation says."""
                found: dict[str, Any] = {
                    k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()
                }
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if raw and "json" in ctype:
                    return found | json.loads(raw)
                if raw:
                    found |= {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                for name in JSON_FIELDS & found.keys():
                    if isinstance(found[name], str):
                        found[name] = json.loads(found[name])
                return found

            def do_GET(self) -> None:
                self.dispatch()

            def do_POST(self) -> None:
                self.dispatch()

            def dispatch(self) -> None:
                method = self.method()
                if method is None:
                    return
                body = self.params()
                if method == "getMe":  # https://core.telegram.org/bots/api#getme: a User
                    me = {"id": 7000001, "is_bot": True, "first_name": "watcher"}
                    return self.reply(200, {"ok": True, "result": {**me, "username": BOT_NAME}})
                if method == "deleteWebhook":  # bots/api#deletewebhook: True, none was set
                    return self.reply(200, {"ok": True, "result": True})
                if method == "getUpdates":
                    return self.get_updates(body)
                if method == "answerCallbackQuery":  # bots/api#answercallbackquery
                    ident = str(body.get("callback_query_id"))
                    if ident in owner.answered or len(str(body.get("text", ""))) > 200:
                        return self.reply(400, QUERY_INVALID)  # answered once, at most
                    owner.answered.add(ident)
                    owner.answers.append(body)
                    return self.reply(200, {"ok": True, "result": True})
                if method == "editMessageText":  # bots/api#editmessagetext
                    problem = refused(body) or keyboard_refused(body)
                    if problem or not body.get("message_id"):
                        said = problem or "Bad Request: message to edit not found"
                        return self.reply(
                            400, {"ok": False, "error_code": 400, "description": said}
                        )
                    body["chat_id"] = int(body["chat_id"])
                    owner.edits.append(body)
                    return self.reply(200, {"ok": True, "result": message_of(body)})
                if method == "setMyCommands":  # bots/api#setmycommands: names [a-z0-9_]{1,32}
                    commands = body.get("commands") or []
                    if not all(re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", "")))
                               and 1 <= len(str(c.get("description", ""))) <= 256
                               for c in commands):  # fmt: skip
                        return self.reply(400, {"ok": False, "description": "BOT_COMMAND_INVALID"})
                    owner.menus.append(commands)
                    return self.reply(200, {"ok": True, "result": True})
                if method != "sendMessage":
                    return self.reply(404, {"ok": False, "description": "Not Found"})
                if owner.throttle > 0:  # the Bot API's 429, with its ResponseParameters
                    owner.throttle -= 1
                    owner.throttled.append(time.monotonic())
                    return self.reply(429, TOO_MANY)
                body["chat_id"] = int(body["chat_id"])
                problem = refused(body) or keyboard_refused(body)
                if problem:
                    owner.refusals.append(problem)
                    return self.reply(400, {"ok": False, "error_code": 400, "description": problem})
                owner.sent.append(body)
                owner.sent_at.append(time.monotonic())
                self.reply(200, {"ok": True, "result": message_of(body)})

            def get_updates(self, query: dict[str, Any]) -> None:
                """bots/api#getupdates: updates at or above ``offset``; an offset confirms
                every update below it, and those are gone for good (a later, lower offset
                does not bring them back)."""
                owner.encodings.append(self.headers.get("Accept-Encoding"))
                owner.calls.append(time.monotonic())
                if owner.instant_empty:  # a broken API: empty at once, whatever the timeout
                    return self.reply(200, {"ok": True, "result": []})
                if owner.junk:
                    status, body, headers = owner.junk.pop(0)
                    self.send_response(status)
                    for name, value in {**headers, "Content-Length": str(len(body))}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                    return
                offset = int(query.get("offset") or 0)
                owner.limits.append(None if "limit" not in query else str(query["limit"]))
                allowed = query.get("allowed_updates")
                owner.allowed.append(None if allowed is None else json.dumps(allowed))
                wait = min(float(query.get("timeout") or 0), 1.0)
                owner.offsets.append(offset)
                with owner.ready:
                    owner.confirmed = max(owner.confirmed, offset)
                    start = owner.confirmed
                    owner.ready.wait_for(
                        lambda: any(u["update_id"] >= start for u in owner.updates), wait
                    )
                    result = [u for u in owner.updates if u["update_id"] >= start]
                limit = int(query.get("limit") or 100)  # Telegram: 1-100, default 100
                self.reply(200, {"ok": True, "result": result[: max(1, min(limit, 100))]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def say(self, text: str, chat: int = 111, user: int = 42, age: float = 0, **extra) -> int:
        with self.ready:
            self.next_id += 1
            message = {
                "message_id": self.next_id,
                "date": int(time.time() - age),
                "chat": {"id": chat, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "T", "username": "trader"},
                "text": text,
                **extra,
            }
            if text.startswith("/"):  # Telegram marks a leading command as an entity
                length = len(text.split(maxsplit=1)[0].encode("utf-16-le")) // 2
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            self.updates.append({"update_id": self.next_id, "message": message})
            self.ready.notify_all()
        return self.next_id

    def tap(self, data: str, message: dict[str, Any], user: int = 42, chat: int = 111) -> str:
        """A callback_query from a tap on a button of ``message`` (one that was sent); the
        same query id may be delivered again with ``again``."""
        with self.ready:
            self.next_id += 1
            ident = f"q{self.next_id}"
            query = {
                "id": ident,
                "from": {"id": user, "is_bot": False, "first_name": "T", "username": "trader"},
                "chat_instance": "-100",
                "data": data,
                "message": {
                    "message_id": 77,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private"},
                    "text": message["text"],
                    "reply_markup": message.get("reply_markup"),
                },
            }
            self.updates.append({"update_id": self.next_id, "callback_query": query})
            self.ready.notify_all()
        return ident

    def again(self, ident: str) -> None:
        """The same callback_query delivered once more, under a new update_id."""
        with self.ready:
            query = next(u["callback_query"] for u in self.updates
                         if u.get("callback_query", {}).get("id") == ident)  # fmt: skip
            self.next_id += 1
            self.updates.append({"update_id": self.next_id, "callback_query": query})
            self.ready.notify_all()

    def replies(self, chat: int = 111) -> list[str]:
        return [m["text"] for m in self.sent if m["chat_id"] == chat]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


JSON_FIELDS = {"reply_markup", "reply_parameters", "commands", "allowed_updates", "entities"}


def message_of(body: dict[str, Any]) -> dict[str, Any]:
    """The Message that sendMessage and editMessageText return (bots/api#message)."""
    return {
        "message_id": int(body.get("message_id") or 1),
        "date": int(time.time()),
        "chat": {"id": int(body["chat_id"]), "type": "private"},
        "text": body.get("text", ""),
    }


TOO_MANY = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 2",
    "parameters": {"retry_after": 2},
}
QUERY_INVALID = {
    "ok": False,
    "error_code": 400,
    "description": "Bad Request: query is too old and response timeout expired or query ID is "
    "invalid",
}
TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}


class _Entities(HTMLParser):
    """Telegram's HTML parse mode: only its tags, each closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in TAGS:
            self.problem = f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}"'
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.problem = f'Bad Request: can\'t parse entities: Unmatched end tag "{tag}"'


def keyboard_refused(body: dict[str, Any]) -> str | None:
    """An inline keyboard as Telegram takes it: callback_data of 1-64 bytes, a text each."""
    markup = body.get("reply_markup")
    if markup is None:
        return None
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = str(button.get("callback_data", "")).encode()
            if not 1 <= len(data) <= 64 or not button.get("text"):
                return "Bad Request: BUTTON_DATA_INVALID"
    return None


def refused(body: dict[str, Any]) -> str | None:
    """What the real sendMessage refuses with 400: text over 4,096 characters, and in
    HTML mode a tag that is unknown, unclosed or closed out of order."""
    text = str(body.get("text", ""))
    if not text.strip():
        return "Bad Request: message text is empty"
    if len(text) > 4096:
        return "Bad Request: message is too long"
    if body.get("parse_mode") == "HTML":
        parser = _Entities()
        parser.feed(text)
        parser.close()
        if parser.problem or parser.open:
            return parser.problem or "Bad Request: can't parse entities: unclosed tag"
    return None
