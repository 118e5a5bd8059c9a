"""Telegram through aiogram 3: updates become Inbound, replies become messages and buttons.

Thin on purpose: what to ask and what to keep is decided by the channel-neutral handlers. Polling lives in
telegram_polling.py, the reading of an update's JSON before aiogram decodes it in telegram_updates.py.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.enums import ChatType
from aiogram.exceptions import (ClientDecodeError, TelegramAPIError, TelegramBadRequest, TelegramForbiddenError,
                                TelegramNetworkError, TelegramRetryAfter, TelegramServerError,
                                TelegramUnauthorizedError)
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
    Update,
)
from aiohttp import web
from pydantic import ValidationError

from bot.channels.base import BLOCKED, REJECTED, SENT, TRANSIENT, ChatQueue, Outcome, pause_unless_stopped
from bot.channels.telegram_albums import AlbumTracker
from bot.channels.telegram_polling import BACKOFF_MAX, BACKOFF_START, POLL_TIMEOUT, TelegramPolling
from bot.channels.telegram_updates import (ALLOWED_UPDATES, DEFERRED, DUPLICATE, FAILED, HANDLED, IGNORED,
                                           UNDECODABLE, chat_key, log, undecodable_reason, update_id_of,
                                           update_kind)
from bot.channels.telegram_session import TelegramSession
from bot.delivery import Deliveries
from bot.logs import where
from bot.webhook import header_bytes, read_capped
from handlers.messages import Contact, IncomingFile, Inbound, Location, OutgoingFile, Reply, Route, split_text
from handlers.i18n import LANGUAGES
from handlers.reply_outbox import DeliveryUnknown
from storage.db import DatabaseAway
from handlers.router import TipLine, command_menu


CHANNEL = "telegram"
TEXT_LIMIT = 4096
_DEFAULT_NAMES = {"photo": "photo.jpg", "video": "video.mp4", "voice": "voice.ogg", "audio": "audio", "document": "file"}


def make_bot(token: str, api_base: str) -> Bot:
    """The aiogram client; ``api_base`` may name a self-hosted Bot API server (no 20 MB file cap)."""
    session = TelegramSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
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


WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # an update is a few kilobytes; files come as ids, not bytes


class WebhookAnswer:
    """The Bot API call a webhook's 200 carries: a tap's answerCallbackQuery, which Telegram makes once it has
    the 200 (Bot API, "Making requests when getting updates"), instead of a request of our own.

    Telegram does not say whether a call made this way succeeded. For answerCallbackQuery that is acceptable:
    it only stops the progress shown on the button (which the app gives up on by itself after a while), and
    nothing the citizen sent or is sent depends on it. A reply never goes this way: the reply outbox
    (handlers/reply_outbox.py) marks each reply in flight and settles it on Telegram's answer, and a reply
    riding in a 200 that never arrives would be settled as sent and never sent again."""

    __slots__ = ("callback_query_id",)

    def __init__(self) -> None:
        self.callback_query_id: str | None = None

    def response(self) -> web.Response:
        """The 200 for a handled update: with the tap's answer if it was a tap, else empty."""
        if self.callback_query_id is None:
            return web.Response(status=200)
        return web.json_response({"method": "answerCallbackQuery", "callback_query_id": self.callback_query_id})


class TelegramChannel:
    """The tip line on Telegram: one router for messages, one for button taps."""

    name, label, webhook_path = CHANNEL, "Telegram", WEBHOOK_PATH

    backoff_start, backoff_max, poll_timeout = BACKOFF_START, BACKOFF_MAX, POLL_TIMEOUT  # read by the polling

    def __init__(self, *, bot: Bot, tipline: TipLine, deliveries: Deliveries | None = None) -> None:
        self.bot = bot
        self.tipline = tipline
        self.deliveries = deliveries or Deliveries()
        self.deliveries.register(CHANNEL, self.send)
        # What became of each update taken (handled, duplicate, undecodable, ignored, failed): for metrics.
        self.outcomes: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.chats = ChatQueue()  # one chat's updates are taken in the order Telegram sent them
        self.albums = AlbumTracker()  # the files of each album taken and not yet handled
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
        inbound = to_inbound(message, self.bot, event_update.update_id)
        if inbound.album is not None:  # more of its files right behind it: the album's last answers for all
            inbound.album_more = await self.albums.more_after(inbound.album, event_update.update_id)
        replies = await self.tipline.handle(inbound)
        await self.deliveries.send(replies, origin=Route(CHANNEL, str(message.chat.id)))

    async def on_button(self, query: CallbackQuery, event_update: Update,
                        webhook_answer: WebhookAnswer | None = None) -> None:
        """A citizen tapped a button: stop the spinner, mark the choice, answer."""
        if webhook_answer is not None:
            # By webhook the spinner is stopped by the 200, which goes once the update is handled: a Bot API
            # call saved. A tap that comes again is answered again: its first answer may never have reached
            # Telegram (that is why it came again), and a second one is harmless.
            webhook_answer.callback_query_id = query.id
        else:
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
        """Send each reply, split at Telegram's 4,096 characters; the buttons go with the last part, then its pin
        and its files.
        Returns how many messages did not go out (the chat blocked the bot)."""
        bot, chat, dropped = self.bot, int(chat_id), 0
        for reply in replies:
            parts = split_text(reply.text, TEXT_LIMIT) if reply.text else []
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                dropped += not await _send(bot.send_message, chat, part, reply_markup=_markup(reply) if last else None)
            if reply.location:  # the pin, under the text that has the map link: one tap opens it in the chat's map
                dropped += not await _send(bot.send_location, chat, reply.location.latitude, reply.location.longitude)
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
        gets its 200 (a tap's 200 carries its answerCallbackQuery, WebhookAnswer); one that cannot be read,
        decoded or handled is counted and answered with an empty 200 (Telegram would only send it again,
        holding up the updates behind it)."""
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
            answer = WebhookAnswer()
            outcome = await self.take(update, answer=answer)
            if outcome == DEFERRED:
                return web.Response(status=503)  # the database did not answer: Telegram sends it again later
            # Only a handled tap is answered: an update skipped or failed gets an empty 200, nothing more.
            return answer.response() if outcome == HANDLED else web.Response(status=200)

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

    async def process(self, raw: Any, *, again: bool = False, answer: WebhookAnswer | None = None) -> str:
        """One update as Telegram sent it (JSON): decoded on its own, handled, and what became of it
        counted. Never raises for the update's sake, and never logs more than its id and a reason.

        ``again``: Telegram sent it after we had confirmed it. It still goes to the tip line, which knows
        it by its id and only re-sends the replies that had not gone out; it is counted as a duplicate.
        ``answer``: it came by webhook, whose 200 answers a tap (polling answers it with a call of its own)."""
        outcome = await self._process(raw, answer)
        if again and outcome == HANDLED:
            outcome = DUPLICATE
        self.outcomes[outcome] += 1
        return outcome

    async def take(self, raw: Any, *, answer: WebhookAnswer | None = None) -> str:
        """An update posted to the webhook: handled after the chat's earlier ones (Telegram may post several
        at once), its album noted while it waits; what became of it, and in ``answer`` what its 200 carries."""
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if isinstance(update_id, int):
            self.albums.taken(raw, update_id)
        try:
            # Shielded: a caller that hangs up does not stop a turn half-way; its update comes again.
            return await asyncio.shield(self.chats.run(chat_key(raw) if isinstance(raw, dict) else None,
                                                       lambda: self.process(raw, answer=answer)))
        finally:
            if isinstance(update_id, int):
                self.albums.finished(update_id, raw)

    async def process_patiently(self, raw: Any, *, again: bool) -> str:
        """process(), again and again while the database does not answer (PostgreSQL restarting): the
        chat waits, its update is not lost; a stop leaves it unconfirmed for the next start."""
        delay = self.backoff_start
        while (outcome := await self.process(raw, again=again)) == DEFERRED and not self.stopping.is_set():
            await self._pause(delay)
            delay = min(delay * 2, 30.0)
        return outcome

    async def _process(self, raw: Any, answer: WebhookAnswer | None = None) -> str:
        update_id = update_id_of(raw)
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
            # aiogram hands ``webhook_answer`` to the handlers that name it (on_button).
            result = await self.dispatcher.feed_update(self.bot, update, webhook_answer=answer)
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
        """Long polling until stop(): the offset passes an update only once it is handled."""
        await TelegramPolling(self).run()

    async def _pause(self, seconds: float) -> None:
        await pause_unless_stopped(seconds, self.stopping)

    async def stop(self) -> None:
        """Polling ends: no new update is taken, the ones taken are finished."""
        self.stopping.set()
