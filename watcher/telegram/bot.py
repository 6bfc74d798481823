"""watcher's Telegram bot, on python-telegram-bot: long polling, so no port opens.

python-telegram-bot (the ``telegram`` extra, imported only when ``commands:
telegram:`` is configured) runs in its own thread with its own event loop, beside
the scheduler. It polls with ``allowed_updates`` set, ignores commands addressed to
another bot (``/status@other_bot``), waits out a 429 for its ``retry_after`` (its
``AIORateLimiter``) and retries a Telegram that is down or refuses the token, while
polls and alerts go on; ``status`` shows the refusal in Telegram's words.

Only the listed chats (and, in groups, users) may command or tap; anyone else gets
no reply and is logged once, by id, never the text. A command older than ten
minutes (sent while watcher was down) is answered "too old, not applied". No
offset is stored: Telegram's own confirmation says where polling resumes, and the
ids of the updates acted on in the last 24 hours are remembered (before acting), so
a kill between acting and confirming, or a Bot API that serves an update again,
runs nothing twice. The token is in every URL, so no URL is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from datetime import UTC, timedelta
from typing import Any

from telegram import Bot as PtbBot
from telegram import BotCommand, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from watcher.config.model import TelegramCommands
from watcher.core import logs
from watcher.core.errors import WatcherError
from watcher.core.secrets import MASKER
from watcher.core.times import shown
from watcher.telegram.commands import Context, esc, handle, keyboard, tap
from watcher.telegram.request import BoundedRequest

LONG_POLL = 20  # seconds Telegram may hold getUpdates open
TOO_OLD = timedelta(minutes=10)
CLOCK_SLACK = timedelta(minutes=1)  # a message dated later than this is refused like an old one
ALLOWED_UPDATES = ["message", "callback_query"]  # commands, and taps on the buttons
KEPT = 24 * 3600  # seconds an update's or a tap's id is remembered
MOST_KEPT = 5000  # ids remembered at most: a Bot API inventing ids cannot grow the state
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
GAP = 1.0  # seconds between getUpdates calls: instant empty answers make no busy loop
STOP_WAIT = 3.0  # seconds ``stop`` waits for the thread (the daemon's budget is 8)
MAX_TEXT = 4096
log = logs.get("watcher.telegram")


class Bot:
    def __init__(self, spec: TelegramCommands, context: Context, long_poll: int = LONG_POLL):
        self.spec = spec
        self.context = context
        self.long_poll = long_poll
        self.thread = threading.Thread(target=self.run, daemon=True, name="telegram")
        self.stopping = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
        self.strangers: set[int] = set()
        self.state = "starting"
        self.lock = threading.Lock()  # the remembered ids: one read-modify-write at a time

    def start(self) -> Bot:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end (the running request is cut), and wait a little for it."""
        self.stopping.set()
        loop, wake = self.loop, self.wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(STOP_WAIT)

    # --- the thread -----------------------------------------------------------------
    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        """Start python-telegram-bot, again after a refusal (a 401, Telegram down), with a
        backoff of up to a minute, until ``stop``."""
        self.loop, self.wake = asyncio.get_running_loop(), asyncio.Event()
        wait = 1.0
        while not self.stopping.is_set():
            app = self.application()
            try:
                await app.initialize()  # getMe: this bot's name, for /cmd@name
            except TelegramError as exc:
                self.set_state(f"not connected ({said(exc)}); retrying")
                await self.pause(wait)
                wait = min(wait * 2, 60.0)
                continue
            try:
                await self.serve(app)
            finally:
                await self.close(app)
            return

    async def serve(self, app: Application) -> None:
        await self.set_menu(app)
        await app.start()
        await app.updater.start_polling(  # type: ignore[union-attr]
            poll_interval=GAP,
            timeout=self.long_poll,
            allowed_updates=ALLOWED_UPDATES,  # whatever an earlier client of the token asked
            drop_pending_updates=False,
            error_callback=self.polling_failed,
        )
        assert self.wake is not None
        await self.wake.wait()

    async def close(self, app: Application) -> None:
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        except TelegramError as exc:  # the last confirmation failed: the ids remembered cover it
            log.info("telegram commands stopped without a last word", error=said(exc))

    async def pause(self, seconds: float) -> None:
        assert self.wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    def application(self) -> Application:
        """python-telegram-bot with watcher's handlers, bounded requests and rate limits;
        ``base_url`` from ``api_url``, so a local Bot API (or a test's) works too."""
        request = BoundedRequest(self.heard)
        polling = BoundedRequest(self.heard)
        app = (
            Application.builder()
            .token(self.spec.token)
            .base_url(f"{self.spec.api_url}/bot")
            .base_file_url(f"{self.spec.api_url}/file/bot")
            .request(request)
            .get_updates_request(polling)
            .rate_limiter(AIORateLimiter(max_retries=2))  # a 429 waits its retry_after
            .job_queue(None)  # watcher's own scheduler runs the jobs
            .build()
        )
        allowed = filters.Chat(chat_id=list(self.spec.chats))
        if self.spec.users is not None:
            allowed = allowed & filters.User(user_id=list(self.spec.users))
        new = filters.UpdateType.MESSAGE  # an edited message never runs its command again
        app.add_handler(TypeHandler(Update, self.first_sight), group=-1)
        app.add_handler(MessageHandler(filters.COMMAND & new & allowed, self.on_command))
        app.add_handler(MessageHandler(filters.COMMAND & new & ~allowed, self.on_stranger))
        app.add_handler(CallbackQueryHandler(self.on_tap))
        app.add_error_handler(self.on_error)
        return app

    # --- what arrives ---------------------------------------------------------------
    async def first_sight(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        """Before any handler: an update acted on before (served again, or unconfirmed when
        watcher was killed) stops here. Its id is remembered before it is acted on."""
        if not self.remember("telegram_updates", str(update.update_id)):
            raise ApplicationHandlerStop

    async def on_command(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not message.text:
            return
        text = message.text[:MAX_TEXT]
        if not addressed_to(text, ctx.bot.username):
            return  # /status@other_bot: for another bot in the same group
        now = self.context.clock()
        sent = message.date.astimezone(UTC)
        if now - sent > TOO_OLD:
            reply = "too old, not applied (sent while watcher was not running)"
        elif sent - now > CLOCK_SLACK:
            reply = "dated in the future, not applied (check this server's clock)"
        else:
            replied = message.reply_to_message.text if message.reply_to_message else None
            user = message.from_user
            who = (user.username or str(user.id)) if user else str(message.chat_id)
            reply = handle(text.splitlines()[0], replied, self.context, f"telegram:{who}")
        command = text.split()[0].split("@")[0]
        markup = keyboard(self.context) if command == "/alerts" else None
        await self.send(ctx, message.chat_id, reply, message.message_id, markup)

    async def on_stranger(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is not None:
            self.stranger(message.chat_id, message.from_user.id if message.from_user else None)

    async def on_tap(self, update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        """A tap on a button: from an allowed user in an allowed chat, acted on once (a
        second delivery of the same tap is answered, not acted on), answered, and the
        message edited to say who did what and when. A stranger's tap does nothing."""
        query = update.callback_query
        if query is None or not query.data:
            return
        message = query.message
        chat = message.chat.id if message is not None else None
        if not self.allowed(chat, query.from_user.id):
            self.stranger(chat, query.from_user.id)
            await query.answer()  # stops the spinner on the stranger's phone, nothing more
            return
        if not self.remember("telegram_taps", query.id):
            await query.answer("already done")
            return
        who = query.from_user.username or str(query.from_user.id)
        try:
            result = tap(self.context, query.data[:64], f"telegram:{who}")
        except WatcherError as exc:
            result = str(exc)
        await query.answer(result[:200])  # Telegram shows 0-200 characters
        if message is None or chat is None:
            return
        when = shown(self.context.clock(), "%H:%M")
        before = getattr(message, "text", None) or ""
        await ctx.bot.edit_message_text(
            esc(before) + "\n" + esc(f"{result} ({who}, {when})"),
            chat_id=chat,
            message_id=message.message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=getattr(message, "reply_markup", None),
        )

    async def on_error(self, update: object, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        """A handler failed (a reply refused, an odd update): logged, never a dead bot."""
        error = ctx.error
        if isinstance(error, TelegramError):
            log.warning("a Telegram reply could not be sent", error=said(error))
        else:
            log.error("a Telegram update could not be handled; skipped", kind=type(error).__name__)

    # --- replies --------------------------------------------------------------------
    async def send(
        self, ctx: Any, chat: int, text: str, reply_to: int | None, markup: Any = None
    ) -> None:
        """The reply, in as many messages as it takes (4,096 characters each, split between
        lines so that every part is whole HTML), the first one replying to the command
        (sent even if the command was deleted meanwhile) and the last one carrying the
        buttons, if any."""
        parts = split_reply(text)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            await ctx.bot.send_message(
                chat,
                part,
                parse_mode=ParseMode.HTML,
                reply_parameters=(
                    ReplyParameters(reply_to, allow_sending_without_reply=True)
                    if index == 0 and reply_to is not None
                    else None
                ),
                reply_markup=InlineKeyboardMarkup.de_json(markup, None)
                if markup and last
                else None,
            )

    async def set_menu(self, app: Application) -> None:
        """Telegram's command menu lists watcher's commands (``setMyCommands``)."""
        try:
            await app.bot.set_my_commands([BotCommand(name, text) for name, text in MENU])
        except TelegramError as exc:
            log.warning("the command menu could not be set", error=said(exc))

    # --- small parts ----------------------------------------------------------------
    def allowed(self, chat: Any, user: Any) -> bool:
        return chat in self.spec.chats and (self.spec.users is None or user in self.spec.users)

    def stranger(self, chat: Any, user: Any) -> None:
        """Logged once per sender, by id, never the text."""
        sender = user if isinstance(user, int) else chat
        if isinstance(sender, int) and sender not in self.strangers:
            self.strangers.add(sender)
            log.warning(
                "a command from a chat or user not on the list was ignored", chat=chat, user=user
            )

    def remember(self, key: str, ident: str) -> bool:
        """Keep ``ident`` for a day (in the database, so a restart knows it too); False
        when it was kept already: seen before, not to be acted on again."""
        with self.lock:
            store = self.context.store
            try:
                seen = json.loads(store.meta().get(key) or "{}")
                seen = {k: v for k, v in seen.items() if isinstance(v, int | float)}
            except (ValueError, AttributeError):
                seen = {}
            now = time.time()
            if ident in seen and now - seen[ident] < KEPT:
                return False
            kept = sorted((v, k) for k, v in seen.items() if now - v < KEPT)[-(MOST_KEPT - 1) :]
            store.set_meta({key: json.dumps({k: v for v, k in kept} | {ident: now})})
            return True

    def heard(self, method: str, status: int) -> None:
        """Each Bot API answer: a getUpdates that came back means connected."""
        if method == "getUpdates" and status == 200:
            self.set_state("connected")

    def polling_failed(self, exc: TelegramError) -> None:
        """Polling failed; python-telegram-bot tries again with a backoff."""
        self.set_state(f"not connected ({said(exc)}); retrying")

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.context.store.set_meta({"telegram_state": state})
            log.info("telegram commands", state=state)


def who_am_i(spec: TelegramCommands) -> str:
    """This bot's username (``getMe``), as the running bot asks for it; ``TelegramError``
    when Telegram cannot say or refuses the token (``InvalidToken``)."""

    async def ask() -> str:
        bot = PtbBot(spec.token, base_url=f"{spec.api_url}/bot", request=BoundedRequest())
        async with bot:
            return bot.username

    return asyncio.run(ask())


STATUSES = ((InvalidToken, 401), (Conflict, 409), (RetryAfter, 429), (Forbidden, 403))


def said(exc: TelegramError) -> str:
    """Telegram's refusal in its own words (409: another instance or a webhook holds the
    updates; 401: a wrong token), shortened and masked, for the log and ``status``. A
    rejected token's message quotes the token: only its status is kept."""
    if isinstance(exc, InvalidToken):
        return "Telegram said 401: Unauthorized"
    status = next((code for kind, code in STATUSES if isinstance(exc, kind)), None)
    if status is None and isinstance(exc, BadRequest):
        status = 400
    words = MASKER.short(exc.message) if exc.message else type(exc).__name__
    return f"Telegram said {status}: {words}" if status else words


def addressed_to(text: str, name: str | None) -> bool:
    """``/status`` or ``/status@this_bot``; ``/status@other_bot`` is for another bot."""
    command = text.split(maxsplit=1)[0]
    if "@" not in command:
        return True
    return name is not None and command.split("@", 1)[1].lower() == name.lower()


TAG = re.compile(r"<(/?)([a-z]+)(?:\s[^>]*)?>")
MARGIN = 200  # room in a part for the tags that close it


def split_reply(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most ``limit`` characters, cut between lines, each valid HTML on its
    own: a tag still open at a cut (a ``<pre>`` table of balances) is closed at the end
    of the part and opened again at the start of the next. A single line longer than
    a part (never one of watcher's) is cut where no tag or entity is open."""
    parts: list[str] = []
    current, stack = "", []  # stack: the tags still open at the end of ``current``
    for line in text.split("\n"):
        for piece in pieces(line, limit - MARGIN):
            after = opened(stack, piece)
            joined = f"{current}\n{piece}" if current else piece
            if current and len(joined) + len(closing(after)) > limit:
                parts.append(current + closing(stack))
                joined = "".join(stack) + piece
            current, stack = joined, after
    parts.append(current + closing(stack))
    return [p for p in parts if p.strip()] or [text[:limit]]


def opened(stack: list[str], piece: str) -> list[str]:
    """The tags open after ``piece``, given those open before it."""
    after = list(stack)
    for match in TAG.finditer(piece):
        if not match.group(1):
            after.append(match.group(0))
        elif after:
            after.pop()
    return after


def closing(stack: list[str]) -> str:
    return "".join(f"</{TAG.match(tag).group(2)}>" for tag in reversed(stack))  # type: ignore[union-attr]


def pieces(line: str, size: int) -> list[str]:
    """A line as it is, or cut into pieces of at most ``size`` outside tags and entities."""
    found = []
    while len(line) > size:
        cut = _safe_cut(line, size)
        found.append(line[:cut])
        line = line[cut:]
    return [*found, line]


def _safe_cut(line: str, limit: int) -> int:
    """The last place at or before ``limit`` outside a tag and an entity."""
    cut = limit
    while cut > 1:
        head = line[:cut]
        if head.rfind("<") <= head.rfind(">") and head.rfind("&") <= head.rfind(";"):
            return cut
        cut -= 1
    return limit
