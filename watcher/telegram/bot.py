"""watcher's own Telegram bot: long polling, so no port opens on the VPS.

It runs in its own thread with timeouts and backoff: when Telegram is down,
polls and deliveries go on, and ``status`` says the bot is not connected.
Only the listed chats (and, in groups, users) may command; anyone else gets no
reply and is logged once, by id, without the text. A command older than ten
minutes (sent while watcher was down) is answered "too old, not applied". The
update offset is stored after each handled update, so a restart re-applies
nothing. The token is a secret: it is in every URL, so no URL is ever logged.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from watcher.config.model import TelegramCommands
from watcher.core import logs
from watcher.core.errors import WatcherError
from watcher.core.secrets import MASKER
from watcher.core.times import shown
from watcher.net.client import Answer, decode_json, read_body
from watcher.telegram.commands import Context, esc, handle, keyboard, tap

LONG_POLL = 20  # seconds Telegram may hold getUpdates open
TOO_OLD = timedelta(minutes=10)
CLOCK_SLACK = timedelta(minutes=1)  # a message dated later than this is refused like an old one
ALLOWED_UPDATES = ["message", "callback_query"]  # commands, and taps on the buttons
TAPS_KEPT = 24 * 3600  # seconds a tap's id is remembered: a second delivery does nothing
MENU = [  # setMyCommands: what Telegram's command menu lists
    ("status", "each account's last poll, what fires, the outbox"),
    ("alerts", "pending and firing, with one-tap actions"),
    ("balances", "the latest balances"),
    ("positions", "open positions and their distance to liquidation"),
    ("ack", "no repeats until it resolves (or reply /ack to an alert)"),
    ("silence", "mute a rule for a while, e.g. /silence usdt-spot-low 4h"),
    ("unsilence", "end a silence"),
    ("help", "the commands"),
]
BATCH = 100  # updates asked for per poll (getUpdates limit=), at most
MIN_GAP = 1.0  # seconds between getUpdates calls that came back empty at once
MAX_TEXT = 4096
MAX_ANSWER = 2 * 1024 * 1024  # getUpdates gives at most 100 updates of a few KB each
log = logs.get("watcher.telegram")


class Bot:
    def __init__(self, spec: TelegramCommands, context: Context, long_poll: int = LONG_POLL):
        self.spec = spec
        self.context = context
        self.long_poll = long_poll
        self.session = requests.Session()
        self.session.headers["Accept-Encoding"] = "gzip, deflate"  # what read_body can inflate
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True, name="telegram")
        self.strangers: set[int] = set()
        self.state = "starting"
        self.me: str | None = None  # the bot's username, from getMe

    def start(self) -> Bot:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    # --- the loop -------------------------------------------------------------------
    def loop(self) -> None:
        wait = 1.0
        menu = False
        while not self.stop_event.is_set():
            if not menu:
                menu = self.set_menu()
            try:
                updates = self.updates()
            except (requests.RequestException, WatcherError, ValueError, KeyError) as exc:
                # requests' own messages carry the URL, and so the token: only their name
                said = type(exc).__name__ if isinstance(exc, requests.RequestException) else exc
                self.set_state(f"not connected ({said}); retrying")
                self.stop_event.wait(wait)
                wait = min(wait * 2, 60.0)
                continue
            wait = 1.0
            self.set_state("connected")
            for update in updates:
                self.handle(update)

    def updates(self) -> list[dict[str, Any]]:
        """One long poll. The answer is read like an exchange's: within its deadline, at
        most ``MAX_ANSWER`` bytes, nested no deeper than JSON answers need, so a broken
        endpoint can neither fill the memory nor stop this thread. At most ``BATCH``
        updates a poll, and an empty answer that came back at once is followed by a pause:
        a broken Bot API cannot turn this thread into a busy loop."""
        offset = self.offset()
        read_timeout = self.long_poll + 10
        asked = time.monotonic()
        answer = self.call(
            "GET",
            "getUpdates",
            read_timeout,
            params={
                "offset": offset,
                "timeout": self.long_poll,
                "limit": BATCH,
                # what this bot reads, whatever an earlier client of the token asked for
                "allowed_updates": json.dumps(ALLOWED_UPDATES),
            },
        )
        data, _ = decode_json(answer)
        if not isinstance(data, dict) or not data.get("ok"):
            raise ValueError(telegram_said(answer.status, data))
        result = data.get("result")
        found = [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []
        if not found and time.monotonic() - asked < MIN_GAP:
            self.stop_event.wait(MIN_GAP)
        return found[:BATCH]

    def offset(self) -> int:
        text = self.context.store.meta().get("telegram_offset", "0") or "0"
        return int(text) if text.isascii() and text.isdigit() else 0

    def handle(self, update: dict[str, Any]) -> None:
        """One update: checked, answered once, and its offset stored, whatever happens. An
        update below the offset was confirmed already: a Bot API that serves it again gets
        nothing done twice, and the offset never goes down."""
        ident = update.get("update_id")
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < self.offset():
            return
        try:
            self.command(update)
        except Exception:  # a malformed update is skipped, never a crash of the bot
            log.exception("a Telegram update could not be handled; skipped")
        finally:
            self.context.store.set_meta({"telegram_offset": str(ident + 1)})

    def set_menu(self) -> bool:
        """Telegram's command menu lists watcher's commands (``setMyCommands``), once."""
        commands = [{"command": name, "description": text} for name, text in MENU]
        try:
            answer = self.call("POST", "setMyCommands", 15, json={"commands": commands})
        except (requests.RequestException, WatcherError):
            return False
        return answer.status < 500

    def command(self, update: dict[str, Any]) -> None:
        if isinstance(update.get("callback_query"), dict):
            return self.tapped(update["callback_query"])
        message = update.get("message")  # an edited message never runs its command again
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            return
        chat = message.get("chat", {}).get("id")
        user = (message.get("from") or {}).get("id")
        if not self.allowed(chat, user):
            return
        text = message["text"][:MAX_TEXT]
        if not text.startswith("/") or not self.addressed_to_me(text):
            return
        date = message.get("date")
        sent = datetime.fromtimestamp(date if isinstance(date, int) else 0, UTC)
        now = self.context.clock()
        if now - sent > TOO_OLD:
            reply = "too old, not applied (sent while watcher was not running)"
        elif sent - now > CLOCK_SLACK:
            reply = "dated in the future, not applied (check this server's clock)"
        else:
            replied = (message.get("reply_to_message") or {}).get("text")
            who = (message.get("from") or {}).get("username") or str(user)
            reply = handle(text.splitlines()[0], replied, self.context, f"telegram:{who}")
        markup = keyboard(self.context) if text.split()[0].split("@")[0] == "/alerts" else None
        self.send(chat, reply, message.get("message_id"), markup)

    def tapped(self, query: dict[str, Any]) -> None:
        """A tap on a button: from an allowed user in an allowed chat, acted on once (a
        second delivery of the same tap is answered, not acted on), answered, and the
        message edited to say who did what and when. A stranger's tap does nothing."""
        ident, data = query.get("id"), query.get("data")
        message = query.get("message") if isinstance(query.get("message"), dict) else {}
        chat = (message.get("chat") or {}).get("id")
        user = (query.get("from") or {}).get("id")
        if not isinstance(ident, str) or not isinstance(data, str):
            return
        if not self.allowed(chat, user):
            self.answer(ident, None)  # stops the spinner on the stranger's phone, nothing more
            return
        if not self.first_tap(ident):
            self.answer(ident, "already done")
            return
        who = (query.get("from") or {}).get("username") or str(user)
        try:
            result = tap(self.context, data[:64], f"telegram:{who}")
        except WatcherError as exc:
            result = str(exc)
        self.answer(ident, result)
        when = shown(self.context.clock(), "%H:%M")
        text = esc(str(message.get("text") or "")) + "\n" + esc(f"{result} ({who}, {when})")
        payload = {"chat_id": chat, "message_id": message.get("message_id"), "text": text}
        payload |= {"parse_mode": "HTML"}
        if isinstance(message.get("reply_markup"), dict):
            payload["reply_markup"] = message["reply_markup"]
        self.post(payload, "editMessageText")

    def first_tap(self, ident: str) -> bool:
        """Remember a tap before acting on it (24 h, in the database): after a second
        delivery or a restart it is not acted on again."""
        meta = self.context.store.meta().get("telegram_taps") or "{}"
        try:
            seen = {k: v for k, v in json.loads(meta).items() if isinstance(v, int | float)}
        except (ValueError, AttributeError):
            seen = {}
        now = time.time()
        seen = {k: v for k, v in seen.items() if now - v < TAPS_KEPT}
        if ident in seen:
            return False
        seen[ident] = now
        self.context.store.set_meta({"telegram_taps": json.dumps(seen)})
        return True

    def answer(self, ident: str, text: str | None) -> None:
        payload: dict[str, Any] = {"callback_query_id": ident}
        if text:
            payload["text"] = text[:200]  # Telegram shows 0-200 characters
        self.post(payload, "answerCallbackQuery")

    def addressed_to_me(self, text: str) -> bool:
        """``/status`` or ``/status@this_bot``; ``/status@other_bot`` is for another bot in
        the same group, as Telegram's clients and python-telegram-bot read it."""
        command = text.split(maxsplit=1)[0]
        if "@" not in command:
            return True
        name = self.username()
        return name is not None and command.split("@", 1)[1].lower() == name.lower()

    def username(self) -> str | None:
        """This bot's own name (``getMe``), asked once; None while Telegram cannot say."""
        if self.me is None:
            try:
                data, _ = decode_json(self.call("GET", "getMe", 15))
                result = data.get("result") if isinstance(data, dict) else None
                name = result.get("username") if isinstance(result, dict) else None
                self.me = name if isinstance(name, str) else None
            except (requests.RequestException, WatcherError):
                return None
        return self.me

    def allowed(self, chat: Any, user: Any) -> bool:
        ok = chat in self.spec.chats and (self.spec.users is None or user in self.spec.users)
        sender = user if isinstance(user, int) else chat
        if not ok and isinstance(sender, int) and sender not in self.strangers:
            self.strangers.add(sender)  # logged once per sender, by id, never the text
            log.warning(
                "a command from a chat or user not on the list was ignored", chat=chat, user=user
            )
        return ok

    def send(self, chat: int, text: str, reply_to: Any, markup: Any = None) -> None:
        """The reply, in as many messages as it takes (4,096 characters each, split between
        lines so that every part is whole HTML), the first one replying to the command and
        the last one carrying the buttons, if any."""
        parts = split_reply(text)
        for index, part in enumerate(parts):
            payload: dict[str, Any] = {"chat_id": chat, "text": part, "parse_mode": "HTML"}
            if markup is not None and index == len(parts) - 1:
                payload["reply_markup"] = markup
            if index == 0 and isinstance(reply_to, int):
                # the command may be deleted meanwhile: the reply goes out all the same
                payload["reply_parameters"] = {
                    "message_id": reply_to,
                    "allow_sending_without_reply": True,
                }
            if not self.post(payload):
                return

    def post(self, payload: dict[str, Any], method: str = "sendMessage") -> bool:
        """One sendMessage (or another method that posts); a 429 is waited out once for its
        ``retry_after`` (at most a minute), as Telegram asks. The answer is read only for
        that."""
        for _ in range(2):
            try:
                answer = self.call("POST", method, 15, json=payload)
            except (requests.RequestException, WatcherError) as exc:
                log.warning("a Telegram reply could not be sent", error=type(exc).__name__)
                return False
            if answer.status != 429:
                break
            wait = retry_after(answer)
            log.warning("Telegram asked to slow down; the reply waits", seconds=wait)
            if self.stop_event.wait(wait):
                return False
        if answer.status >= 400:
            log.warning("a Telegram reply was refused", status=answer.status)
            return False
        return True

    def call(self, verb: str, method: str, seconds: float, **kwargs: Any) -> Answer:
        """One Bot API request, its answer read like an exchange's: within ``seconds``, at
        most ``MAX_ANSWER`` bytes, so a broken endpoint cannot fill the memory or pin this
        thread."""
        response = self.session.request(
            verb, self.url(method), timeout=(5, seconds), stream=True, **kwargs
        )
        try:
            body = read_body(response, time.monotonic() + seconds, MAX_ANSWER)
        finally:
            response.close()
        return Answer(response.status_code, body, response.headers)

    def url(self, method: str) -> str:
        return f"{self.spec.api_url}/bot{self.spec.token}/{method}"

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.context.store.set_meta({"telegram_state": state})
            log.info("telegram commands", state=state)


def telegram_said(status: int, data: Any) -> str:
    """Telegram's refusal in its own words (409: another instance or a webhook holds the
    updates; 401: a wrong token), shortened and masked, for the log and ``status``."""
    described = data.get("description") if isinstance(data, dict) else None
    words = MASKER.short(described) if described else "no description"
    return f"Telegram said {status}: {words}"


def retry_after(answer: Answer) -> float:
    """``parameters.retry_after`` of a 429 (https://core.telegram.org/bots/api#responseparameters),
    within 1 to 60 seconds."""
    try:
        data, _ = decode_json(answer)
        wait = data["parameters"]["retry_after"]
    except (WatcherError, KeyError, TypeError):
        return 1.0
    return float(min(max(wait, 1), 60)) if isinstance(wait, int | float) else 1.0


def split_reply(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most ``limit`` characters, cut between lines. watcher's replies keep
    every tag on one line, so each part is valid HTML on its own; a single line longer
    than the limit (never one of watcher's) is cut where no tag or entity is open."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = _safe_cut(line, limit)
            parts += [current] if current else []
            current = ""
            parts.append(line[:cut])
            line = line[cut:]
        joined = f"{current}\n{line}" if current else line
        if len(joined) > limit:
            parts.append(current)
            joined = line
        current = joined
    return [p for p in [*parts, current] if p.strip()] or [text[:limit]]


def _safe_cut(line: str, limit: int) -> int:
    """The last place at or before ``limit`` outside a tag and an entity."""
    cut = limit
    while cut > 1:
        head = line[:cut]
        if head.rfind("<") <= head.rfind(">") and head.rfind("&") <= head.rfind(";"):
            return cut
        cut -= 1
    return limit
