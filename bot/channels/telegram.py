"""Telegram through aiogram 3: updates become Inbound, replies become messages and buttons.

Thin on purpose: what to ask and what to keep is decided by the channel-neutral handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
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

from bot.delivery import Deliveries
from bot.reminders import BLOCKED, REJECTED, SENT, TRANSIENT, Outcome
from handlers.messages import Contact, IncomingFile, Inbound, Location, OutgoingFile, Reply, Route, split_text
from handlers.tipline import TipLine

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096
# What citizens see in the command menu; officer commands are set per chat, never here.
CITIZEN_COMMANDS = {
    "vi": [("report", "Gửi tin báo tố giác tội phạm"), ("status", "Tra cứu tin báo bằng mã"),
           ("cancel", "Hủy tin báo đang viết"), ("remind", "Nhắc ngày hội"), ("language", "Đổi ngôn ngữ"),
           ("help", "Hướng dẫn")],
    "en": [("report", "Report a crime"), ("status", "Check a tip with its code"),
           ("cancel", "Cancel the tip you are writing"), ("remind", "Festival reminders"),
           ("language", "Change language"), ("help", "Help")],
}
OFFICER_COMMANDS = [("queue", "Tin báo đang chờ của đơn vị"), ("next", "Nhận tin báo tiếp theo"),
                    ("tip", "Xem tin báo: /tip MÃ"), ("valuable", "Có giá trị: /valuable MÃ"),
                    ("notvaluable", "Không có giá trị: /notvaluable MÃ LÝ_DO"), ("ask", "Hỏi người báo tin"),
                    ("note", "Ghi chú"), ("case", "Gắn vụ án: /case MÃ VỤ SỐ_ĐỐI_TƯỢNG"), ("release", "Trả lại hàng chờ"),
                    ("transfer", "Chuyển đơn vị"), ("whoami", "Thông tin cán bộ"),
                    ("event", "Sự kiện ngày hội: /event add"), ("broadcasts", "Tiến độ nhắc và thông báo"),
                    ("announce", "Thông báo (quản trị): /announce KHU_VỰC | NỘI_DUNG")]
SUPERVISOR_COMMANDS = [("stats", "Số liệu: /stats tuần|tháng|quý|năm"),
                       ("baocao", "Báo cáo phong trào: /baocao TỪ_NGÀY ĐẾN_NGÀY")]
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
                      language=user.language_code if user else None)
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


async def send_replies(bot: Bot, chat_id: int | str, replies: list[Reply]) -> None:
    """Send each reply, split at Telegram's 4,096 characters; the buttons go with the last part."""
    for reply in replies:
        parts = split_text(reply.text, TEXT_LIMIT) if reply.text else []
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            await _send(bot.send_message, chat_id, part, reply_markup=_markup(reply) if last else None)
        for file in reply.files:
            await _send_file(bot, chat_id, file)
        if reply.commands_menu:
            await set_chat_commands(bot, chat_id, reply.commands_menu)


async def _send_file(bot: Bot, chat_id, file: OutgoingFile) -> None:
    upload = BufferedInputFile(file.data, filename=file.filename or _DEFAULT_NAMES.get(file.kind, "file"))
    method = {"photo": bot.send_photo, "video": bot.send_video, "voice": bot.send_voice,
              "audio": bot.send_audio}.get(file.kind, bot.send_document)
    await _send(method, chat_id, upload)


async def _send(method, chat_id, *args, **kwargs) -> None:
    try:
        await method(chat_id, *args, **kwargs)
    except TelegramRetryAfter as exc:
        # Telegram said how long to wait; one patient retry beats losing the answer.
        log.warning("telegram asked us to wait %s s before sending", exc.retry_after)
        await asyncio.sleep(exc.retry_after)
        await method(chat_id, *args, **kwargs)
    except TelegramForbiddenError:
        log.info("a chat has blocked the bot; message dropped")


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
        commands = CITIZEN_COMMANDS["vi"] + OFFICER_COMMANDS + (SUPERVISOR_COMMANDS if menu == "supervisor" else [])
        await bot.set_my_commands([BotCommand(command=c, description=d) for c, d in commands], scope=scope)
    else:
        await bot.delete_my_commands(scope=scope)


class TelegramChannel:
    """The tip line on Telegram: one router for messages, one for button taps."""

    def __init__(self, *, bot: Bot, tipline: TipLine, deliveries: Deliveries | None = None) -> None:
        self.bot = bot
        self.tipline = tipline
        self.deliveries = deliveries or Deliveries()
        self.deliveries.register(CHANNEL, self.send)
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
        await query.answer()
        message = query.message
        if not isinstance(message, Message) or message.chat.type != ChatType.PRIVATE:
            return
        inbound = Inbound(channel=CHANNEL, chat_id=str(message.chat.id), update_id=str(event_update.update_id),
                          choice=query.data or "", language=query.from_user.language_code)
        replies = await self.tipline.handle(inbound)
        await self._show_chosen(message, query.data)
        await self.deliveries.send(replies, origin=Route(CHANNEL, str(message.chat.id)))

    async def send(self, chat_id: str, replies: list[Reply]) -> None:
        await send_replies(self.bot, int(chat_id), replies)

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
        for lang, commands in CITIZEN_COMMANDS.items():
            await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in commands],
                                           scope=BotCommandScopeDefault(),
                                           language_code=None if lang == "vi" else lang)

    async def run_polling(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.set_commands()
        await self.dispatcher.start_polling(self.bot, handle_signals=False, close_bot_session=False,
                                            allowed_updates=["message", "callback_query"])

    async def stop(self) -> None:
        try:
            await self.dispatcher.stop_polling()
        except RuntimeError:
            pass  # polling was not running
