"""Zalo Bot Platform: our own thin aiohttp client, and the adapter between its events and the handlers.

Thin on purpose, like the Telegram adapter: what to ask and what to keep is decided by the
channel-neutral handlers. The Zalo packages on PyPI are not used: they block inside async code
and never look at ``ok``.

What the Zalo Bot API documentation says (docs.zaloplatforms.com/docs/BOT, pages getMe,
getUpdates, setWebhook, webhook, sendMessage, sendPhoto, sendChatAction). The official pages
were not in our stored copy of the web; what follows was checked against public transcriptions
of them made in 2026 (one quoting "Stable v2.5.0"), which agree with each other:

- Calls: "https://bot-api.zaloplatforms.com/bot<BOT_TOKEN>/<functionName>", POST with a JSON
  body; function names are case-sensitive. Every answer is JSON ``{"ok": true, "result": …}``
  or ``{"ok": false, "error_code": 401, "description": "Unauthorized"}``. Documented codes:
  400 bad request, 401 "Token đã hết hạn hoặc không hợp lệ" (expired or invalid token),
  403, 404, 408 "Quá thời gian xử lý cho phép" (request timeout), 429 "Quota exceeded".
  Which HTTP status goes with ``ok: false`` is not documented; one integration reports that a
  wrong token gets an answer that is not JSON at all. We therefore trust neither: any answer
  that is not JSON with ``ok: true`` is a ZaloBotError.
- The token: "Bot Token (format: 12345689:abc-xyz)", i.e. digits, a colon, then letters.
- getUpdates: long polling, parameter ``timeout`` "tính bằng giây (mặc định: 30)" (seconds,
  default 30; the table says String, the example sends a number: we send a string, as working
  integrations do). "Response is a single JSON object similar to webhook data": one event per
  call, no offset, no update id, no acknowledgement. "getUpdates không hoạt động nếu bạn đang
  thiết lập Webhook. Phải gọi deleteWebhook trước" (it does not work while a webhook is set).
  When the long poll ends with nothing new the docs are silent; integrations in production
  see ``ok: false, error_code: 408``, which we read as "nothing new". Its sample answer has no
  ``event_name`` at all (``{"ok": true, "result": {"message": {"chat", "text", "message_id",
  "date", "from": {"id", "first_name"}}}}``, github.com/XuanNguyenNB/QuanLyThuChi_Bot_Telegram_Zalom,
  docs/ZALO_BOT_API.md, a transcription dated 10/12/2025): the kind is then read from the message's
  fields (``event_kind``), never dropped.
- setWebhook {url, secret_token}: "secret_token … (8 - 256 ký tự). Đính kèm trong header
  X-Bot-Api-Secret-Token ở mọi request từ Zalo" (sent in that header on every call); the URL
  must be public https. deleteWebhook and getWebhookInfo take ``{}`` and answer {url, updated_at}.
- Webhook body, quoted from the docs' sample: ``{"ok": true, "result": {"event_name":
  "message.text.received", "message": {"from": {"id": "6ede9afa66b88fe6d6a9", "display_name":
  "Ted", "is_bot": false}, "chat": {"id": "6ede9afa66b88fe6d6a9", "chat_type": "PRIVATE"},
  "text": "Xin chào", "message_id": "2d758cb5e222177a4e35", "date": 1750316131602}}}``.
  One integration reports bodies arriving without the ``ok``/``result`` wrapper: we take both.
  "dùng chat.id để gửi tin trả lời" (reply to chat.id); ``chat_type`` is PRIVATE or GROUP (beta).
  ``date`` is in milliseconds; ids are strings.
- Events: "message.text.received"; "message.image.received: Nhận tin nhắn hình ảnh (photo,
  caption)" — the image URL is in ``photo`` (a string), the text under it in ``caption``; one
  integration saw the URL in ``photo_url`` instead, so we read ``photo_url`` when ``photo`` is
  absent; "message.sticker.received (sticker, url)"; "message.voice.received (voice_url)";
  "message.unsupported.received: Nhận tin nhắn từ nhóm đối tượng đặc biệt (trẻ em, bảo vệ dữ
  liệu theo luật)" — content withheld by Zalo for protected users (children, data-protection law).
  The docs list no location, contact, file or video event, and no buttons of any kind.
- sendMessage {chat_id, text}: "text … (độ dài 1 đến 2000 ký tự)" (1 to 2,000 characters);
  optional parse_mode (markdown|html), which we never send: citizens' words are echoed in our
  texts and must not turn into formatting. sendPhoto {chat_id, photo: URL, caption 1–2000}.
  sendChatAction {chat_id, action: "typing"} ("upload_photo" is "sắp ra mắt", coming soon).
- Silent in the docs: whether ``message_id`` is unique per bot or per chat (we treat it as the
  update id, as it looks like an 80-bit random hex string); whether image/voice URLs need
  authentication (we fetch them with a plain GET); voice formats (sendVoice wants .aac).

Choices made here:
- Every event is decoded on its own, in polling and by webhook: one that cannot be read (not an
  object, no message, no chat id, or anything our decoder trips on) is counted in
  ``ZaloBotChannel.outcomes`` and logged as one line naming what was wrong, never its content,
  and the others go on. A webhook body that is not JSON, or too large, is answered 200 all the
  same (after the secret check) and counted: Zalo would only send it again.
- Evidence: an image is a photo, a voice note with a ``voice_url`` is a voice file: both are
  downloaded lazily, only when the conversation is at the evidence question, with a size cap.
  A voice event without a URL, a sticker, and "unsupported" content become ``unsupported``:
  the handlers answer those with a clear message.
- Groups and messages from bots are ignored: tips are private, as on Telegram.
- Zalo gives no language: ``language`` is None and the handlers use the configured default.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.channels.downloads import DownloadFailed, download_capped
from bot.channels.http_client import HttpClient, failure_line
from bot.delivery import Deliveries
from handlers.i18n import translator
from handlers.messages import IncomingFile, Inbound, Reply, Route, numbered_text, split_text
from handlers.router import TipLine

log = logging.getLogger(__name__)

CHANNEL = "zalo"
API_BASE = "https://bot-api.zaloplatforms.com"
TEXT_LIMIT = 2000
POLL_TIMEOUT = 30  # seconds Zalo holds a getUpdates call open; its own default
NOTHING_NEW = 408  # getUpdates' "Request timeout": the long poll ended without an event
UNAUTHORIZED = 401
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0

TEXT, IMAGE, STICKER, VOICE, UNSUPPORTED = (f"message.{kind}.received" for kind in
                                            ("text", "image", "sticker", "voice", "unsupported"))


class ZaloBotError(Exception):
    """A Zalo Bot API call that did not succeed: ``ok: false``, an HTTP error, a network failure.

    Carries what Zalo said (error_code, description) and the method, never the token or the URL."""

    def __init__(self, error_code: int | None, description: str, *, method: str = "") -> None:
        self.error_code, self.description, self.method = error_code, description, method
        code = f" {error_code}" if error_code is not None else ""
        super().__init__(f"Zalo Bot API {method or 'call'} failed:{code} {description}")


class ZaloBotClient(HttpClient):
    """The Zalo Bot API over aiohttp: one method per documented call, ``ok`` always checked."""

    def __init__(self, token: str, *, api_base: str = API_BASE, timeout: float = 20.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        if not token:
            raise ValueError("a Zalo Bot token is required")
        self._token = token
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        super().__init__(session)

    def __repr__(self) -> str:  # the default repr would not show the token, but be explicit
        return f"ZaloBotClient(api_base={self.api_base!r})"

    def _clean(self, text: Any, params: dict[str, Any]) -> str:
        # Zalo's own words end up in logs: keep them short, and never let them carry the token, nor
        # what we sent (a chat id, a citizen's words) should Zalo quote it back.
        text = str(text or "").replace(self._token, "<redacted>")
        for value in params.values():
            if isinstance(value, str) and len(value) >= 4:
                text = text.replace(value, "<redacted>")
        return text[:300]

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        """POST one method; the ``result`` on success, else ZaloBotError (a 200 with ok:false too)."""
        session = await self._http()
        url = f"{self.api_base}/bot{self._token}/{method}"
        failure: str | None = None
        try:
            async with session.post(url, json=params or {},
                                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:
            failure = "no answer in time"
        except aiohttp.ClientError as exc:
            # Only the class name: aiohttp's messages may quote the URL, and the URL holds the token.
            failure = f"network error ({type(exc).__name__})"
        if failure is not None:  # raised outside the except block so no exception with the URL is chained
            raise ZaloBotError(None, failure, method=method)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ZaloBotError(status if status >= 400 else None, f"HTTP {status}, answer is not Zalo JSON",
                               method=method)
        if body.get("ok") is not True or status >= 400:
            code = body.get("error_code")
            code = code if isinstance(code, int) else (status if status >= 400 else None)
            raise ZaloBotError(code, self._clean(body.get("description"), params or {}) or f"HTTP {status}",
                               method=method)
        return body.get("result")

    async def get_me(self) -> dict:
        return await self.call("getMe")

    async def get_updates(self, *, timeout: int = POLL_TIMEOUT) -> list[dict]:
        """Wait up to ``timeout`` seconds for the next event; [] when none came."""
        try:
            # Our HTTP timeout must outlast Zalo's long poll, or every quiet minute looks like a failure.
            result = await self.call("getUpdates", {"timeout": str(timeout)}, timeout=timeout + 15)
        except ZaloBotError as exc:
            if exc.error_code == NOTHING_NEW:
                return []
            raise
        return events_in(result)

    async def set_webhook(self, url: str, secret_token: str) -> dict:
        return await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> dict:
        return await self.call("deleteWebhook")

    async def get_webhook_info(self) -> dict:
        return await self.call("getWebhookInfo")

    async def send_message(self, chat_id: str, text: str) -> dict:
        return await self.call("sendMessage", {"chat_id": chat_id, "text": text})

    async def send_photo(self, chat_id: str, photo: str, caption: str | None = None) -> dict:
        params = {"chat_id": chat_id, "photo": photo}
        if caption:
            params["caption"] = caption
        return await self.call("sendPhoto", params)

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> Any:
        return await self.call("sendChatAction", {"chat_id": chat_id, "action": action})

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """A citizen's file from Zalo's URL; at most ``max_bytes + 1`` bytes, so the handlers can say "too large"."""
        try:
            return await download_capped(await self._http(), url, max_bytes=max_bytes, timeout=self.timeout)
        except DownloadFailed as exc:
            raise ZaloBotError(None, str(exc), method="download") from None


# --- events → Inbound ---------------------------------------------------------------------------

class UndecodableEvent(ValueError):
    """An event that cannot become an Inbound. Its words name the shape that was wrong, never the content."""


# Why an event was skipped, in the log and nowhere else: fixed words, so no payload can slip in.
NOT_AN_OBJECT, NO_MESSAGE, NO_CHAT = "not a JSON object", "no message object", "no chat id"


def events_in(body: Any) -> list[Any]:
    """The events in a getUpdates result or a webhook body, wrapped in {ok, result} or not, each left
    undecoded: one that turns out to be malformed must not take the others with it."""
    if isinstance(body, dict) and "event_name" not in body and "message" not in body and "result" in body:
        body = body["result"]
    if body is None or body == {}:
        return []
    return list(body) if isinstance(body, list) else [body]  # a list is not documented; harmless to take


def event_kind(event: dict, message: dict) -> str:
    """The event's name; when Zalo leaves it out, the kind its message's fields show.

    getUpdates answers without ``event_name`` (a transcription of the docs dated 10/12/2025 shows
    ``{"ok": true, "result": {"message": {chat, text, message_id, date, from}}}``: github.com/
    XuanNguyenNB/QuanLyThuChi_Bot_Telegram_Zalom, docs/ZALO_BOT_API.md), so the kind is read from the
    fields each documented event carries: photo (or photo_url), voice_url, sticker, text."""
    name = event.get("event_name")
    if isinstance(name, str) and name:
        return name
    if _url(message.get("photo")) or _url(message.get("photo_url")):
        return IMAGE
    if "voice_url" in message or "voice" in message:
        return VOICE
    if message.get("sticker"):
        return STICKER
    if "text" in message:
        return TEXT
    return UNSUPPORTED  # a message we cannot read: the citizen is told, rather than met with silence


def _update_id(message_id: Any) -> str | None:
    if isinstance(message_id, bool) or not isinstance(message_id, (str, int)) or message_id == "":
        return None
    text = str(message_id)
    # The processed-update table keeps 64 characters; a longer id keeps its uniqueness as a hash.
    return text if len(text) <= 64 else hashlib.sha256(text.encode()).hexdigest()


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _mime(url: str, default: str) -> str:
    guessed = mimetypes.guess_type(urlsplit(url).path)[0]
    return guessed if guessed and guessed.split("/")[0] == default.split("/")[0] else default


Fetcher = Callable[[str], Callable[[], Awaitable[bytes]]]


def to_inbound(event: Any, *, fetcher: Fetcher) -> Inbound | None:
    """A Zalo event as the handlers see it; None for what the tip line ignores (groups, other bots,
    events that are not messages); UndecodableEvent when it cannot be read at all."""
    if not isinstance(event, dict):
        raise UndecodableEvent(NOT_AN_OBJECT)
    message = event.get("message")
    name = event.get("event_name")
    if not isinstance(message, dict):
        if isinstance(name, str) and name and not name.startswith("message."):
            return None  # an event about something else than a message (none is documented yet)
        raise UndecodableEvent(NO_MESSAGE)
    chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
    sender = message.get("from") if isinstance(message.get("from"), dict) else {}
    chat_id = chat.get("id")
    if not isinstance(chat_id, (str, int)) or chat_id == "" or isinstance(chat_id, bool):
        raise UndecodableEvent(NO_CHAT)
    if str(chat.get("chat_type") or "PRIVATE").upper() != "PRIVATE" or sender.get("is_bot") is True:
        return None
    name = event_kind(event, message)
    inbound = Inbound(channel=CHANNEL, chat_id=str(chat_id), update_id=_update_id(message.get("message_id")))
    if name == TEXT:
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            inbound.text = text
        else:
            inbound.unsupported = "empty"
    elif name == IMAGE:
        caption = message.get("caption")
        inbound.text = caption if isinstance(caption, str) and caption.strip() else None
        url = _url(message.get("photo")) or _url(message.get("photo_url"))
        if url:
            inbound.files.append(IncomingFile("photo", None, fetcher(url), mime=_mime(url, "image/jpeg")))
        else:
            inbound.unsupported = "image"
    elif name == VOICE:
        url = _url(message.get("voice_url")) or _url(message.get("voice"))
        if url:
            inbound.files.append(IncomingFile("voice", None, fetcher(url), mime=_mime(url, "audio/aac")))
        else:
            inbound.unsupported = "voice"
    elif name == STICKER:
        inbound.unsupported = "sticker"
    elif name.startswith("message.") and name.endswith(".received"):
        # message.unsupported.received, and any message kind Zalo adds later: say we cannot take it.
        kind = name.split(".")[1]
        inbound.unsupported = kind if kind.isalpha() and len(kind) <= 24 else "unsupported"
    else:
        return None
    return inbound


# --- Reply → Zalo texts -------------------------------------------------------------------------

# Zalo has no buttons, and the docs list no location or contact event: the handlers accept a typed
# address or phone number, so the button becomes a line saying to type it. The hint is written in
# the language the handlers used for the button's label (the adapter is not told the chat's language).
_HINTS = {
    "📍 Send my location": {"vi": "✍️ Trên Zalo, hãy nhập địa chỉ (Zalo không gửi được vị trí cho bot).",
                            "en": "✍️ On Zalo, please type the address (Zalo cannot send a map pin to the bot)."},
    "📞 Share my phone number": {"vi": "✍️ Trên Zalo, hãy nhập số điện thoại của bạn.",
                                "en": "✍️ On Zalo, please type your phone number."},
}


def _hint(label: str) -> str:
    for msgid, texts in _HINTS.items():
        for lang in ("vi", "en"):
            if label == translator(lang)(msgid):
                return texts[lang]
    return f"✍️ {label}"  # a label we do not know: still tell the citizen it is there


def render(reply: Reply) -> list[str]:
    """The reply as Zalo messages: hints for missing buttons, numbered choices, 2,000-character parts."""
    text = reply.text
    for label in (reply.location_button, reply.contact_button):
        if label:
            text = f"{text}\n\n{_hint(label)}" if text else _hint(label)
    text = numbered_text(Reply(text, choices=reply.choices))
    return split_text(text, TEXT_LIMIT) if text.strip() else []


async def send_replies(client: ZaloBotClient, chat_id: str, replies: list[Reply]) -> int:
    """Send every part of every reply; a part Zalo refuses is logged and the rest still go. Returns failures."""
    failures = 0
    for reply in replies:
        if reply.files:
            # sendPhoto takes a URL only: the Zalo Bot API has no upload, and evidence is never put
            # at a public address. (A command menu, reply.commands_menu, does not exist on Zalo either.)
            log.warning("%d file(s) cannot be sent through Zalo; only the text was sent", len(reply.files))
        for part in render(reply):
            try:
                await client.send_message(chat_id, part)
            except ZaloBotError as exc:
                # Not retried: whether Zalo delivered it is unknown, and a citizen getting a question
                # twice is worse than resending their answer, which the handlers re-prompt for.
                failures += 1
                log.warning("a reply could not be sent to Zalo: %s", exc)
    return failures


# --- the channel --------------------------------------------------------------------------------

class ZaloBotChannel:
    """The tip line on Zalo: long polling or webhook events, each handled in its own task.

    One chat's events are handled (and answered) in the order they came; chats run side by side."""

    def __init__(self, *, client: ZaloBotClient, tipline: TipLine, deliveries: Deliveries | None = None,
                 poll_timeout: int = POLL_TIMEOUT) -> None:
        self.client = client
        self.tipline = tipline
        # Shared with the other channels of this process: a reply meant for another chat (a tipster's
        # answer to an officer on Telegram) goes there, never back to the Zalo chat that wrote.
        self.deliveries = deliveries or Deliveries()
        self.deliveries.register(CHANNEL, self.send)
        self.poll_timeout = poll_timeout
        # What became of each event Zalo sent: handled, ignored (groups, bots…), undecodable, failed.
        self.outcomes: Counter[str] = Counter()
        self._last_of_chat: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()

    def _fetcher(self, url: str) -> Callable[[], Awaitable[bytes]]:
        max_bytes = self.tipline.services.settings.limits.max_file_bytes

        async def fetch() -> bytes:
            return await self.client.download(url, max_bytes=max_bytes)
        return fetch

    def dispatch(self, event: Any) -> asyncio.Task | None:
        """Start handling one event; it waits for the chat's previous event to be answered first.

        Decoded on its own: one that cannot be read is counted and skipped, and the next goes on."""
        try:
            inbound = to_inbound(event, fetcher=self._fetcher)
        except UndecodableEvent as exc:
            self.skip(str(exc))
            return None
        except Exception as exc:  # a shape we did not foresee, or a bug of ours: still only this event
            self.skip(failure_line(exc))
            return None
        if inbound is None:
            self.outcomes["ignored"] += 1
            log.debug("a Zalo event was ignored (a group, a bot, or not a message)")
            return None
        chat_id = inbound.chat_id
        task = asyncio.create_task(self._in_turn(self._last_of_chat.get(chat_id), inbound))
        self._last_of_chat[chat_id] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(chat_id, done))
        return task

    def receive(self, raw: bytes) -> None:
        """A webhook body (its secret already checked): every event in it dispatched, each on its own."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser's depth
            self.skip("webhook body is not JSON")
            return
        events = events_in(body)
        if not events:
            self.skip("webhook body holds no event")
        for event in events:
            self.dispatch(event)

    def skip(self, reason: str) -> None:
        """Count an event (or a webhook body) that cannot be read; one log line, without its content."""
        self.outcomes["undecodable"] += 1
        log.warning("a Zalo event could not be read and was skipped: %s", reason)

    def _forget(self, chat_id: str, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._last_of_chat.get(chat_id) is task:  # idle chats are dropped so memory does not grow
            del self._last_of_chat[chat_id]

    async def _in_turn(self, previous: asyncio.Task | None, inbound: Inbound) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its own failure is logged there; only the order matters here
        await self.handle(inbound)

    async def handle(self, inbound: Inbound) -> None:
        """A citizen wrote, or sent an image, a voice note or a sticker: answer it."""
        try:
            if inbound.files:
                await self._typing(inbound.chat_id)  # downloading and cleaning a file takes a moment
            replies = await self.tipline.handle(inbound)
            await self.deliveries.send(replies, origin=Route(CHANNEL, inbound.chat_id))
        except Exception as exc:
            # Never the message or the chat id in the log: only what failed, and where.
            self.outcomes["failed"] += 1
            log.error("a Zalo event could not be answered: %s", failure_line(exc))
        else:
            self.outcomes["handled"] += 1

    async def send(self, chat_id: str, replies: list[Reply]) -> None:
        """Deliver replies to a Zalo chat (the one that wrote, or another one the handlers name)."""
        await send_replies(self.client, chat_id, replies)

    async def _typing(self, chat_id: str) -> None:
        try:
            await self.client.send_chat_action(chat_id, "typing")
        except ZaloBotError as exc:
            log.debug("zalo typing indicator failed: %s", exc)

    async def run_polling(self) -> None:
        """Ask Zalo for events one long poll at a time until stop(); back off while it fails."""
        delay, webhook_cleared = BACKOFF_START, False
        while not self._stopping.is_set():
            try:
                if not webhook_cleared:
                    await self._unless_stopped(self.client.delete_webhook())  # getUpdates ignores us otherwise
                    webhook_cleared = True
                events = await self._unless_stopped(self.client.get_updates(timeout=self.poll_timeout))
            except ZaloBotError as exc:
                level = logging.ERROR if exc.error_code == UNAUTHORIZED else logging.WARNING
                log.log(level, "zalo polling: %s; trying again in %.0f s", exc, delay)
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except Exception as exc:  # a bug of ours must not end the channel for every citizen
                log.error("zalo polling failed unexpectedly (%s); trying again in %.0f s", failure_line(exc), delay)
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if events is None:  # stop() was called during the long poll
                break
            delay = BACKOFF_START
            for event in events:  # each on its own: dispatch never raises, whatever the event holds
                self.dispatch(event)
        await self.drain()

    async def _unless_stopped(self, call: Awaitable[Any]) -> Any:
        """The call's result, or None as soon as stop() is called (the call is then abandoned)."""
        work = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        return work.result() if not work.cancelled() else None

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def drain(self, timeout: float = 30.0) -> None:
        """Let the events already taken finish, so no citizen loses an answer on shutdown."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def stop(self) -> None:
        self._stopping.set()

    async def start_webhook(self, url: str, secret: str) -> None:
        """Tell Zalo where to post events; the web server must already be listening (Zalo checks it)."""
        await self.client.set_webhook(url, secret)
