"""Telegram through aiogram 3: updates become Inbound, replies become messages and buttons.

Thin on purpose: what to ask and what to keep is decided by the channel-neutral handlers.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import typing
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiogram.types
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.enums import ChatType
from aiogram.exceptions import (ClientDecodeError, TelegramAPIError, TelegramBadRequest, TelegramForbiddenError,
                                TelegramNetworkError, TelegramRetryAfter, TelegramServerError,
                                TelegramUnauthorizedError)
from aiogram.methods import GetUpdates
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
    Update,
)
from aiohttp import web
from pydantic import ValidationError

from bot.channels.base import (BLOCKED, REJECTED, SENT, TRANSIENT, ChatQueue, Outcome, pause_unless_stopped,
                               unless_stopped)
from bot.config import ConfigError
from bot.delivery import Deliveries
from bot.logs import where
from bot.webhook import header_bytes, read_capped
from handlers.messages import Contact, IncomingFile, Inbound, Location, OutgoingFile, Reply, Route, split_text
from handlers.i18n import LANGUAGES
from handlers.reply_outbox import DeliveryUnknown
from storage.db import DatabaseAway
from handlers.router import TipLine, command_menu

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096
_DEFAULT_NAMES = {"photo": "photo.jpg", "video": "video.mp4", "voice": "voice.ogg", "audio": "audio", "document": "file"}


def make_bot(token: str, api_base: str) -> Bot:
    """The aiogram client; ``api_base`` may name a self-hosted Bot API server (no 20 MB file cap)."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    return Bot(token, session=session)


def _file_fetcher(bot: Bot, file_id: str) -> Callable:
    async def fetch() -> bytes:
        buffer = await bot.download(file_id)
        return buffer.getvalue()
    return fetch


def to_inbound(message: Message, bot: Bot, update_id: int | None) -> Inbound:
    """A Telegram message as the handlers see it; file ids live only in the lazy downloaders."""
    user = message.from_user
    inbound = Inbound(channel=CHANNEL, chat_id=str(message.chat.id),
                      update_id=str(update_id) if update_id is not None else None,
                      text=message.text or message.caption,
                      language=user.language_code if user else None, album=message.media_group_id)
    if message.photo:
        largest = message.photo[-1]
        inbound.files.append(IncomingFile("photo", largest.file_size, _file_fetcher(bot, largest.file_id),
                                          mime="image/jpeg"))
    for kind in ("document", "video", "voice", "audio", "video_note"):
        media = getattr(message, kind)
        if media is not None:
            inbound.files.append(IncomingFile("video" if kind == "video_note" else kind, media.file_size,
                                              _file_fetcher(bot, media.file_id),
                                              filename=getattr(media, "file_name", None),
                                              mime=getattr(media, "mime_type", None)))
    if message.location is not None:
        inbound.location = Location(message.location.latitude, message.location.longitude)
    if message.contact is not None:
        own = user is not None and message.contact.user_id == user.id
        inbound.contact = Contact(message.contact.phone_number, is_own=own)
    if message.sticker is not None:
        inbound.unsupported = "sticker"
    elif not (inbound.text or inbound.files or inbound.location or inbound.contact):
        inbound.unsupported = message.content_type
    return inbound


def _markup(reply: Reply):
    if reply.location_button or reply.contact_button:
        # Location and contact requests exist only on the reply keyboard, so every choice goes there
        # too, as text the handlers map back by label.
        special = KeyboardButton(text=reply.location_button, request_location=True) if reply.location_button \
            else KeyboardButton(text=reply.contact_button, request_contact=True)
        rows = [[special]] + [[KeyboardButton(text=c.label)] for c in reply.choices]
        return ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, one_time_keyboard=True)
    if reply.choices:
        buttons = [InlineKeyboardButton(text=c.label, callback_data=c.id) for c in reply.choices]
        width = max(1, reply.columns)
        return InlineKeyboardMarkup(inline_keyboard=[buttons[i:i + width] for i in range(0, len(buttons), width)])
    return ReplyKeyboardRemove()


async def _send_file(bot: Bot, chat_id, file: OutgoingFile) -> bool:
    upload = BufferedInputFile(file.data, filename=file.filename or _DEFAULT_NAMES.get(file.kind, "file"))
    method = {"photo": bot.send_photo, "video": bot.send_video, "voice": bot.send_voice,
              "audio": bot.send_audio}.get(file.kind, bot.send_document)
    return await _send(method, chat_id, upload)


SEND_ATTEMPTS = 4  # a reply is tried this often while Telegram answers 429 or 5xx, or cannot be reached
SEND_BACKOFF = 0.5  # seconds before the second try; doubled for each one after


async def _send(method, chat_id, *args, **kwargs) -> bool:
    """True once sent; False when the chat blocked the bot (the message is dropped). Telegram's 429 and
    5xx, and a connection that could not be made, are tried again a few times: none of them delivered
    anything. A timeout or a connection dropped after the request left may have: DeliveryUnknown, never
    a second try (a reply at most once)."""
    delay = SEND_BACKOFF
    for attempt in range(1, SEND_ATTEMPTS + 1):
        last = attempt == SEND_ATTEMPTS
        try:
            await method(chat_id, *args, **kwargs)
            return True
        except TelegramRetryAfter as exc:
            if last:
                raise
            log.warning("telegram asked us to wait %s s before sending", exc.retry_after)
            await asyncio.sleep(exc.retry_after)
        except TelegramForbiddenError:
            log.info("a chat has blocked the bot; message dropped")
            return False
        except TelegramServerError:
            if last:
                raise
            await asyncio.sleep(delay)
            delay *= 2
        except TelegramNetworkError as exc:
            # aiogram names the aiohttp error first: only a connection never made is known to have sent nothing.
            if last or not exc.message.startswith(("ClientConnectorError", "ClientConnectionResetError")):
                raise DeliveryUnknown() from None
            await asyncio.sleep(delay)
            delay *= 2
    return True


class ReminderSender:
    """Reminders through this bot: one message with its stop button, and what Telegram answered as an
    outcome (the dispatcher decides about waiting, retrying and unsubscribing)."""

    def __init__(self, bot: Bot, *, timeout: int = 15) -> None:
        self.bot, self.timeout = bot, timeout
        self._markups: dict[int, tuple[Reply, object]] = {}

    def _markup_of(self, reply: Reply):
        # Thousands of chats get the same reply object: its buttons are built once, not per message.
        cached = self._markups.get(id(reply))
        if cached is None or cached[0] is not reply:
            if len(self._markups) > 64:
                self._markups.clear()
            cached = self._markups[id(reply)] = (reply, _markup(reply))
        return cached[1]

    async def __call__(self, chat_id: str, reply: Reply) -> Outcome:
        try:
            # Reminders are kept under the 4,096-character cap, so one message: never half a reminder.
            await self.bot.send_message(int(chat_id), reply.text[:TEXT_LIMIT], reply_markup=self._markup_of(reply),
                                        request_timeout=self.timeout)
        except TelegramRetryAfter as exc:
            return Outcome.wait(exc.retry_after)
        except TelegramForbiddenError:
            return BLOCKED  # blocked the bot, or deleted the account
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError, TelegramUnauthorizedError):
            return TRANSIENT  # 5xx, timeouts, a proxy's HTML page; a token being replaced
        except TelegramAPIError:
            return REJECTED  # 400 "chat not found" and the like: trying again would not help
        return SENT


async def set_chat_commands(bot: Bot, chat_id, menu: str) -> None:
    """Officers get their commands in this chat only; citizens never see them in their menu."""
    scope = BotCommandScopeChat(chat_id=chat_id)
    if menu in ("officer", "supervisor"):
        commands = command_menu(menu, "vi")  # the officers' menu reads Vietnamese
        await bot.set_my_commands([BotCommand(command=c, description=d) for c, d in commands], scope=scope)
    else:
        await bot.delete_my_commands(scope=scope)


HANDLED, DUPLICATE, UNDECODABLE, IGNORED, FAILED = "handled", "duplicate", "undecodable", "ignored", "failed"
DEFERRED = "deferred"  # the database did not answer: not acknowledged, handled again later
ALLOWED_UPDATES = ["message", "callback_query"]  # the only kinds the tip line answers
POLL_TIMEOUT = 25  # seconds Telegram holds a getUpdates open when nothing is waiting
REPOLL_WHILE_BUSY = 0.5  # seconds: while a turn runs, newer updates are fetched this often
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0
STOP_TIMEOUT = 10.0  # seconds the turns already taken get to finish when polling stops
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # an update is a few kilobytes; files come as ids, not bytes
UNAUTHORIZED_HINT = "Telegram refused the bot token (401 Unauthorized): check TINBAO_TELEGRAM_TOKEN"


class _RawUpdates(GetUpdates):
    """getUpdates whose answer stays JSON: aiogram would decode the batch as one, and one update it
    rejects would fail them all and hold the offset for a day (aiogram issue #1840)."""

    __returning__ = list[Any]


@functools.cache
def _model_names() -> frozenset[str]:
    """Every field name, alias, tag and type name of aiogram's models: the words a decoding error may
    name in our log (anything else in its location could come from the input)."""
    names: set[str] = set()
    for value in vars(aiogram.types).values():
        if isinstance(value, type) and issubclass(value, TelegramObject):
            names.add(value.__name__)
            for field_name, field in value.model_fields.items():
                names.update(n for n in (field_name, field.alias) if n)
                names.update(a for a in typing.get_args(field.annotation) if isinstance(a, str))
                default = field.default
                if isinstance(default, str):
                    names.add(default)
    return frozenset(names)


def undecodable_reason(exc: ValidationError) -> str:
    """Why aiogram's models refused an update, without the input pydantic would quote: the kind of the
    first error and the fields leading to it."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not errors:
        return "rejected by aiogram's models"
    first = errors[0]
    known = _model_names()
    path = ".".join(str(p) if isinstance(p, int) or p in known else "?" for p in first.get("loc", ()))
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first.get('type', 'invalid')} at {path or 'the top'}{more}"


def update_kind(raw: dict) -> str:
    """The update's kind, if aiogram knows it; "unknown" for a kind it does not (never the input's word)."""
    for name in Update.model_fields:
        if name != "update_id" and raw.get(name) is not None:
            return name
    return "unknown"


class _Window:
    """Which update ids polling has taken: the offset passes an update only once it is handled, and
    an update fetched again while an earlier one is still being handled is not handled twice."""

    def __init__(self) -> None:
        self.offset: int | None = None
        self.asked: int | None = None  # the offset of the getUpdates under way: its answer starts there
        self.running: dict[int, asyncio.Task] = {}
        self.done: set[int] = set()  # handled or skipped, at or above the offset asked for
        self.highest: int | None = None

    def knows(self, update_id: int) -> bool:
        return update_id in self.running or update_id in self.done

    def finished(self, update_id: int) -> None:
        self.running.pop(update_id, None)
        self.done.add(update_id)
        self.advance()

    def seen(self, update_id: int) -> None:
        self.highest = update_id if self.highest is None else max(self.highest, update_id)

    def advance(self) -> None:
        if self.highest is None:
            return
        waiting = [uid for uid in self.running if self.offset is None or uid >= self.offset]
        offset = min(waiting) if waiting else self.highest + 1
        self.offset = offset if self.offset is None else max(self.offset, offset)
        # An answer to a getUpdates asked with an older offset may still bring those ids: they stay known.
        floor = self.offset if self.asked is None else min(self.offset, self.asked)
        self.done = {uid for uid in self.done if uid >= floor}

    def redelivered(self, update_id: int) -> bool:
        """Telegram sent again an update we had confirmed (it was below the offset we asked with)."""
        return self.asked is not None and update_id < self.asked


class TelegramChannel:
    """The tip line on Telegram: one router for messages, one for button taps."""

    name, label, webhook_path = CHANNEL, "Telegram", WEBHOOK_PATH

    backoff_start, backoff_max, poll_timeout = BACKOFF_START, BACKOFF_MAX, POLL_TIMEOUT

    def __init__(self, *, bot: Bot, tipline: TipLine, deliveries: Deliveries | None = None) -> None:
        self.bot = bot
        self.tipline = tipline
        self.deliveries = deliveries or Deliveries()
        self.deliveries.register(CHANNEL, self.send)
        # What became of each update taken (handled, duplicate, undecodable, ignored, failed): for metrics.
        self.outcomes: Counter[str] = Counter()
        self._stopping = asyncio.Event()
        self._chats = ChatQueue()  # one chat's updates are taken in the order Telegram sent them
        self._reminders = ReminderSender(bot)
        self.dispatcher = Dispatcher()
        private = Router(name="private-chats")
        private.message.filter(F.chat.type == ChatType.PRIVATE)
        private.message.register(self.on_message)
        private.callback_query.register(self.on_button)
        # Tips are private: groups and channels are ignored rather than answered in public.
        self.dispatcher.include_routers(private)

    async def on_message(self, message: Message, event_update: Update) -> None:
        """A citizen wrote, sent a file, a location or a contact."""
        replies = await self.tipline.handle(to_inbound(message, self.bot, event_update.update_id))
        await self.deliveries.send(replies, origin=Route(CHANNEL, str(message.chat.id)))

    async def on_button(self, query: CallbackQuery, event_update: Update) -> None:
        """A citizen tapped a button: stop the spinner, mark the choice, answer."""
        try:
            await query.answer()
        except TelegramAPIError:
            pass  # too late to stop the spinner (a tap handled again after an outage): the answer matters
        message = query.message
        if not isinstance(message, Message) or message.chat.type != ChatType.PRIVATE:
            return
        inbound = Inbound(channel=CHANNEL, chat_id=str(message.chat.id), update_id=str(event_update.update_id),
                          choice=query.data or "", language=query.from_user.language_code)
        replies = await self.tipline.handle(inbound)
        await self._show_chosen(message, query.data)
        await self.deliveries.send(replies, origin=Route(CHANNEL, str(message.chat.id)))

    async def send(self, chat_id: str, replies: list[Reply]) -> int:
        """Send each reply, split at Telegram's 4,096 characters; the buttons go with the last part.
        Returns how many messages did not go out (the chat blocked the bot)."""
        bot, chat, dropped = self.bot, int(chat_id), 0
        for reply in replies:
            parts = split_text(reply.text, TEXT_LIMIT) if reply.text else []
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                dropped += not await _send(bot.send_message, chat, part, reply_markup=_markup(reply) if last else None)
            for file in reply.files:
                dropped += not await _send_file(bot, chat, file)
            if reply.commands_menu:
                await set_chat_commands(bot, chat, reply.commands_menu)
        return dropped

    async def send_reminder(self, chat_id: str, reply: Reply) -> Outcome:
        """One reminder with its stop button; what Telegram answered as an Outcome."""
        return await self._reminders(chat_id, reply)

    async def serve(self) -> None:
        """Long polling until stop()."""
        await self.run_polling()

    async def announce(self, url: str, secret: str) -> None:
        """Tell Telegram where to post updates (the web server is already listening)."""
        await self.set_commands()
        await self.bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

    async def close(self) -> None:
        await self.bot.session.close()

    def add_routes(self, app: web.Application, secret: str) -> None:
        """POST /telegram/webhook: a call without the right X-Telegram-Bot-Api-Secret-Token header gets 401
        and nothing else happens. A good call's update is decoded on its own and handled before Telegram
        gets its 200; one that cannot be read or decoded is counted and answered 200 too (Telegram would
        only send it again, holding up the updates behind it)."""
        if not secret:  # without it any call would be taken: forged updates in any citizen's name
            raise ValueError("a Telegram webhook needs its secret token")
        expected = secret.encode()

        async def receive(request: web.Request) -> web.Response:
            if not hmac.compare_digest(header_bytes(request, SECRET_HEADER) or b"", expected):
                return web.Response(status=401)  # constant time, above: the secret is not guessed byte by byte
            raw = await read_capped(request, MAX_BODY)
            try:
                if raw is None:
                    raise ValueError("too large")
                update = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than Python goes
                self.outcomes[UNDECODABLE] += 1
                log.warning("a Telegram webhook call was skipped: its body is %s",
                            "too large" if raw is None else "not UTF-8" if isinstance(exc, UnicodeDecodeError)
                            else "not JSON")
                return web.Response(status=200)
            if await self.process(update) == DEFERRED:
                return web.Response(status=503)  # the database did not answer: Telegram sends it again later
            return web.Response(status=200)

        app.router.add_post(WEBHOOK_PATH, receive)

    async def _show_chosen(self, message: Message, data: str | None) -> None:
        # Keep the chat readable: the question stays, its buttons go, the choice is written under it.
        markup = message.reply_markup
        label = next((b.text for row in (markup.inline_keyboard if markup else []) for b in row
                      if b.callback_data == data), None)
        if label is None or not message.text:
            return
        try:
            await self.bot.edit_message_text(chat_id=message.chat.id, message_id=message.message_id,
                                             text=f"{message.text}\n\n» {label}", reply_markup=None)
        except TelegramBadRequest:
            pass  # the message is too old to edit, or already shows the choice

    async def set_commands(self) -> None:
        for lang in LANGUAGES:
            commands = command_menu("citizen", lang)
            await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in commands],
                                           scope=BotCommandScopeDefault(),
                                           language_code=None if lang == "vi" else lang)

    async def process(self, raw: Any, *, again: bool = False) -> str:
        """One update as Telegram sent it (JSON): decoded on its own, handled, and what became of it
        counted. Never raises for the update's sake, and never logs more than its id and a reason.

        ``again``: Telegram sent it after we had confirmed it. It still goes to the tip line, which knows
        it by its id and only re-sends the replies that had not gone out; it is counted as a duplicate."""
        outcome = await self._process(raw)
        if again and outcome == HANDLED:
            outcome = DUPLICATE
        self.outcomes[outcome] += 1
        return outcome

    async def _process_patiently(self, raw: Any, *, again: bool) -> str:
        """process(), again and again while the database does not answer (PostgreSQL restarting): the
        chat waits, its update is not lost; a stop leaves it unconfirmed for the next start."""
        delay = self.backoff_start
        while (outcome := await self.process(raw, again=again)) == DEFERRED and not self._stopping.is_set():
            await self._pause(delay)
            delay = min(delay * 2, 30.0)
        return outcome

    async def _process(self, raw: Any) -> str:
        update_id = _update_id(raw)
        if update_id is None:
            return UNDECODABLE
        kind = update_kind(raw)
        if kind not in ALLOWED_UPDATES:
            # Not fed to aiogram: an update kind it does not know makes it warn with the update's JSON.
            log.debug("Telegram update %d ignored: %s", update_id, kind)
            return IGNORED
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError as exc:
            log.warning("Telegram update %d skipped: %s", update_id, undecodable_reason(exc))
            return UNDECODABLE
        except Exception as exc:  # a validator of aiogram's failing some other way
            log.warning("Telegram update %d skipped: %s while decoding", update_id, type(exc).__name__)
            return UNDECODABLE
        try:
            result = await self.dispatcher.feed_update(self.bot, update)
        except DatabaseAway:
            return DEFERRED  # nothing was kept: the update is handled again once the database answers
        except Exception as exc:
            # A failure of ours, or Telegram refusing a reply: the same update would fail the same way
            # again and hold up everyone behind it, so it is counted and passed. The traceback that goes
            # to the log has its frames and exception classes, not their messages.
            log.error("Telegram update %d could not be handled: %s at %s", update_id, type(exc).__name__,
                      where(exc.__traceback__), exc_info=True)
            return FAILED
        return IGNORED if result is UNHANDLED else HANDLED

    async def run_polling(self) -> None:
        """Ask Telegram for updates one long poll at a time until stop(): each update on its own, the
        offset past it only once it is handled; failures are retried with growing waits."""
        delay, started, worked = self.backoff_start, False, False
        window = _Window()
        while not self._stopping.is_set():
            try:
                if not started:
                    await self._unless_stopped(self._start_polling())
                    started = worked = not self._stopping.is_set()  # the token was taken
                    continue
                busy = bool(window.running)
                window.asked = window.offset
                entries = await self._unless_stopped(self.bot(
                    _RawUpdates(offset=window.offset, timeout=0 if busy else self.poll_timeout,
                                allowed_updates=ALLOWED_UPDATES),
                    request_timeout=int(self.bot.session.timeout + self.poll_timeout)))
            except TelegramUnauthorizedError:
                if not worked:
                    raise ConfigError(f"telegram.token: {UNAUTHORIZED_HINT}") from None
                log.error("%s; trying again in %.0f s", UNAUTHORIZED_HINT, delay)
                delay = await self._back_off(delay)
                continue
            except TelegramRetryAfter as exc:
                log.warning("Telegram asked us to wait %s s before polling again", exc.retry_after)
                await self._pause(exc.retry_after)
                continue
            except Exception as exc:
                log.warning("Telegram polling failed (%s); trying again in %.0f s", _failure(exc), delay)
                delay = await self._back_off(delay)
                continue
            worked, delay = True, self.backoff_start
            if entries is None:  # stop() was called during the call
                break
            for raw in entries:
                self._take(window, raw)
            window.advance()
            if window.running:
                await self._while_busy(window)
        await self._finish(window)

    async def _start_polling(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)  # getUpdates is refused while one is set
        await self.set_commands()

    def _take(self, window: _Window, raw: Any) -> None:
        update_id = _update_id(raw)
        if update_id is None:
            self.outcomes[UNDECODABLE] += 1
            return
        if window.knows(update_id):
            return  # fetched again while an earlier update is still being handled: it is already taken
        again = window.redelivered(update_id)
        window.seen(update_id)
        task = self._chats.run(_chat_key(raw), lambda: self._process_patiently(raw, again=again))
        window.running[update_id] = task
        # Deferred until the stop: the offset stays below it, and Telegram hands it to the next start.
        task.add_done_callback(lambda done: None if _deferred(done) else window.finished(update_id))

    async def _while_busy(self, window: _Window) -> None:
        """Wait until the offset can move or a moment passed (newer updates behind a slow turn are
        fetched then), or stop() is called."""
        lowest = window.running[min(window.running)]
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({lowest, stopper}, timeout=REPOLL_WHILE_BUSY, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()

    async def _finish(self, window: _Window, timeout: float = STOP_TIMEOUT) -> None:
        """Let the turns already taken finish, then tell Telegram which updates are done."""
        if window.running:
            await asyncio.wait(set(window.running.values()), timeout=timeout)
        window.advance()
        if window.offset is None:
            return
        try:
            # An offset confirms every update below it; the one update this call may return stays unconfirmed.
            await self.bot(_RawUpdates(offset=window.offset, limit=1, timeout=0), request_timeout=5)
        except Exception as exc:
            log.warning("could not confirm the last updates to Telegram (%s); they will come again and be "
                        "recognised", _failure(exc))

    async def _unless_stopped(self, call: Awaitable[Any]) -> Any:
        return await unless_stopped(call, self._stopping)

    async def _back_off(self, delay: float) -> float:
        await self._pause(delay)
        return min(delay * 2, self.backoff_max)

    async def _pause(self, seconds: float) -> None:
        await pause_unless_stopped(seconds, self._stopping)

    async def stop(self) -> None:
        """Polling ends: no new update is taken, the ones taken are finished."""
        self._stopping.set()


def _deferred(task: asyncio.Task) -> bool:
    return not task.cancelled() and task.exception() is None and task.result() == DEFERRED


def _update_id(raw: Any) -> int | None:
    """The update's id, or None (logged as a skipped update) if it has none to name it by."""
    update_id = raw.get("update_id") if isinstance(raw, dict) else None
    if isinstance(update_id, int) and not isinstance(update_id, bool):
        return update_id
    log.warning("a Telegram update was skipped: %s", "not an object" if not isinstance(raw, dict) else "no update_id")
    return None


def _chat_key(raw: dict) -> int | None:
    """The private chat an update belongs to, read from the JSON before decoding (for the order of turns)."""
    for path in (("message", "chat", "id"), ("callback_query", "from", "id")):
        value: Any = raw
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _failure(exc: BaseException) -> str:
    """A failed call named without its URL (it holds the token) or the answer's body."""
    if isinstance(exc, TelegramNetworkError):
        cause = exc.__cause__
        return f"network: {type(cause).__name__ if cause is not None else 'timeout'}"
    if isinstance(exc, TelegramServerError):
        return f"Telegram server error: {type(exc).__name__}"
    if isinstance(exc, TelegramAPIError):
        return f"{type(exc).__name__}: {_first_words(exc.message)}"
    return type(exc).__name__


def _first_words(description: str) -> str:
    # Telegram's own description of a refusal ("Conflict: terminated by other getUpdates request"):
    # short, and about the call, not about any message; capped all the same.
    return description.split("\n", 1)[0][:120]
