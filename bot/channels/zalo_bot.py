"""Zalo Bot Platform: our own thin aiohttp client, and the adapter between its events and the handlers.

Thin on purpose, like the Telegram adapter: what to ask and what to keep is decided by the
channel-neutral handlers. The Zalo packages on PyPI are not used: they block inside async code
and never look at ``ok``.

The API as its documentation describes it (docs.zaloplatforms.com/docs/BOT: getMe, getUpdates, setWebhook,
webhook, sendMessage, sendPhoto, sendChatAction), checked against public transcriptions of those pages made in
2026 (one of them github.com/XuanNguyenNB/QuanLyThuChi_Bot_Telegram_Zalom, docs/ZALO_BOT_API.md), is in
docs/zalo-bot.md, with what each point rests on and the choices made here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.base import (BLOCKED, REJECTED, SENT, TRANSIENT, ChatQueue, Outcome, pause_unless_stopped,
                               unless_stopped)
from bot.channels.http_client import failure_line
from bot.channels.zalo_common import Fetcher, ZaloCallError, ZaloHttpClient, clean, mime_of, url_of, with_hint
from bot.delivery import Deliveries
from bot.webhook import header_bytes, read_capped
from handlers.messages import IncomingFile, Inbound, Reply, Route, TypeInstead, numbered_text, split_text
from handlers.router import TipLine
from storage.db import DatabaseAway, out_of_reach
from storage.received_updates import LEFT_AFTER, claim_left_received, forget_received, keep_received

log = logging.getLogger(__name__)

CHANNEL = "zalo"
API_BASE = "https://bot-api.zaloplatforms.com"
TEXT_LIMIT = 2000
POLL_TIMEOUT = 30  # seconds Zalo holds a getUpdates call open; its own default
# The first getUpdates after a start waits only this long: the operator's /healthz then sees Zalo answer within
# a second or two, not a whole quiet long poll later (its seconds, like the long poll's, are Zalo's own).
FIRST_POLL_TIMEOUT = 1
NOTHING_NEW = 408  # getUpdates' "Request timeout": the long poll ended without an event
UNAUTHORIZED = 401
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0
STORE_AGAIN_MAX = 30.0  # seconds at most between two tries to store a held getUpdates answer
WEBHOOK_PATH = "/zalo/webhook"
SECRET_HEADER = "X-Bot-Api-Secret-Token"
MAX_BODY = 256 * 1024  # an event is a few hundred bytes; images and voice notes come as URLs

TEXT, IMAGE, STICKER, VOICE, UNSUPPORTED = (f"message.{kind}.received" for kind in
                                            ("text", "image", "sticker", "voice", "unsupported"))


class ZaloBotError(ZaloCallError):
    """A Zalo Bot API call that did not succeed: ``ok: false``, an HTTP error, a network failure.

    Carries what Zalo said (error_code, description) and the method, never the token or the URL."""

    platform = "Zalo Bot API"


class ZaloBotClient(ZaloHttpClient):
    """The Zalo Bot API over aiohttp: one method per documented call, ``ok`` always checked."""

    error = ZaloBotError

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

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        """POST one method; the ``result`` on success, else ZaloBotError (a 200 with ok:false too)."""
        status, body = await self.post_json(f"{self.api_base}/bot{self._token}/{method}", method=method,
                                            timeout=timeout, json=params or {})
        if body.get("ok") is not True or status >= 400:
            code = body.get("error_code")
            code = code if isinstance(code, int) else (status if status >= 400 else None)
            # Zalo's words end up in logs: never the token, nor what we sent should Zalo quote it back.
            hidden = [self._token, *(params or {}).values()]
            raise ZaloBotError(code, clean(body.get("description"), hidden) or f"HTTP {status}", method=method)
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
    if url_of(message.get("photo")) or url_of(message.get("photo_url")):
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


# Events that carry a file by URL: (the file's kind, the fields its URL may be in, in order, the MIME type
# when the URL shows none, what the citizen is told is missing without one).
_FILE_EVENTS = {IMAGE: ("photo", ("photo", "photo_url"), "image/jpeg", "image"),
                VOICE: ("voice", ("voice_url", "voice"), "audio/aac", "voice")}


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
    elif name in _FILE_EVENTS:
        if name == IMAGE:
            caption = message.get("caption")
            inbound.text = caption if isinstance(caption, str) and caption.strip() else None
        kind, fields, default_mime, missing = _FILE_EVENTS[name]
        url = next((found for found in (url_of(message.get(f)) for f in fields) if found), None)
        if url:
            inbound.files.append(IncomingFile(kind, None, fetcher(url), mime=mime_of(url, default_mime)))
        else:
            inbound.unsupported = missing
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
# address or phone number, so the button becomes a line saying to type it, in the reply's language.
_HINTS = {
    TypeInstead.ADDRESS: {"vi": "✍️ Trên Zalo, hãy nhập địa chỉ (Zalo không gửi được vị trí cho bot).",
                          "en": "✍️ On Zalo, please type the address (Zalo cannot send a map pin to the bot)."},
    TypeInstead.PHONE: {"vi": "✍️ Trên Zalo, hãy nhập số điện thoại của bạn.",
                        "en": "✍️ On Zalo, please type your phone number."},
}


def render(reply: Reply) -> list[str]:
    """The reply as Zalo messages: hints for missing buttons, numbered choices, 2,000-character parts."""
    text = with_hint(reply, _HINTS)
    text = numbered_text(Reply(text, choices=reply.choices))
    return split_text(text, TEXT_LIMIT) if text.strip() else []


# --- the channel --------------------------------------------------------------------------------

class ZaloBotChannel:
    """The tip line on Zalo: long polling or webhook events, each handled in its own task.

    One chat's events are handled (and answered) in the order they came; chats run side by side."""

    name, label, webhook_path = CHANNEL, "Zalo", WEBHOOK_PATH

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
        self._chats = ChatQueue()
        self._stopping = asyncio.Event()
        # A getUpdates answer not stored yet; kept on the channel, not in the polling task, so that polling
        # paused by its lease (bot/polling_alone.py cancels it) and resumed stores it before anything else.
        self._held: list[Any] = []

    def _fetcher(self, url: str) -> Callable[[], Awaitable[bytes]]:
        return self.client.fetcher(self.tipline.services.settings.limits.max_file_bytes)(url)

    def dispatch(self, event: Any, kept: int) -> asyncio.Task:
        """Start handling one stored event; it waits for the chat's previous event to be answered first.

        Decoded on its own: one that cannot be read is counted and skipped, and the next goes on.
        ``kept``: the row the event is stored in until handled (storage/received_updates.py)."""
        try:
            inbound = to_inbound(event, fetcher=self._fetcher)
        except UndecodableEvent as exc:
            self.skip(str(exc))
            inbound = None
        except Exception as exc:  # a shape we did not foresee, or a bug of ours: still only this event
            self.skip(failure_line(exc))
            inbound = None
        else:
            if inbound is None:
                self.outcomes["ignored"] += 1
                log.debug("a Zalo event was ignored (a group, a bot, or not a message)")
        if inbound is None:
            return self._chats.run(None, lambda: self._forget(kept))
        return self._chats.run(inbound.chat_id, lambda: self._handle_kept(inbound, kept))

    async def take(self, events: list[Any]) -> bool:
        """Events Zalo handed over (a getUpdates answer, a webhook body): stored sealed first, in one
        transaction, then each dispatched; Zalo sends none of them again, so a worker killed now leaves
        them to the next. False if they could not be stored (nothing is dispatched then)."""
        services = self.tipline.services
        try:
            async with services.db.transaction() as session:
                kept = [await keep_received(session=session, keyring=services.keyring, channel=CHANNEL,
                                            raw=json.dumps(event, ensure_ascii=False).encode(), now=services.clock())
                        for event in events]
        except Exception as exc:  # noqa: BLE001  (the database is away: the caller decides what Zalo hears)
            if out_of_reach(exc):
                log.warning("%d Zalo event(s) could not be stored (the database did not answer)", len(events))
            else:
                log.error("%d Zalo event(s) could not be stored: %s", len(events), failure_line(exc))
            return False
        for event, row_id in zip(events, kept):
            self.dispatch(event, row_id)
        return True

    async def take_left_over(self) -> int:
        """Events a killed worker had stored and not handled: handled now; returns how many."""
        services = self.tipline.services
        now = services.clock()
        async with services.db.transaction() as session:
            left = await claim_left_received(session=session, keyring=services.keyring, channel=CHANNEL,
                                             claimed_before=now - LEFT_AFTER, now=now)
        for row_id, raw in left:
            self.dispatch(json.loads(raw), row_id)
        return len(left)

    async def _handle_kept(self, inbound: Inbound, kept: int) -> None:
        delay = BACKOFF_START
        while True:
            try:
                await self.handle(inbound)
                break
            except DatabaseAway:
                # PostgreSQL restarting: this chat waits, the event is kept; a stop leaves it to the next start.
                if self._stopping.is_set():
                    return
                await self._pause(delay)
                delay = min(delay * 2, 30.0)
        await self._forget(kept)

    async def _forget(self, kept: int) -> None:
        try:
            async with self.tipline.services.db.transaction() as session:
                await forget_received(session=session, row_id=kept)
        except Exception as exc:  # noqa: BLE001  (left for the sweep: the turn knows it by its id)
            log.warning("a handled Zalo event could not be forgotten now: %s", failure_line(exc))

    async def receive(self, raw: bytes) -> bool:
        """A webhook body (its secret already checked): its events stored, then each dispatched on its own.
        False only when they could not be stored (Zalo should then send them again)."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser's depth
            self.skip("webhook body is not JSON")
            return True
        events = events_in(body)
        if not events:
            self.skip("webhook body holds no event")
            return True
        return await self.take(events)

    def skip(self, reason: str) -> None:
        """Count an event (or a webhook body) that cannot be read; one log line, without its content."""
        self.outcomes["undecodable"] += 1
        log.warning("a Zalo event could not be read and was skipped: %s", reason)

    async def handle(self, inbound: Inbound) -> None:
        """A citizen wrote, or sent an image, a voice note or a sticker: answer it."""
        try:
            if inbound.files:
                await self._typing(inbound.chat_id)  # downloading and cleaning a file takes a moment
            replies = await self.tipline.handle(inbound)
            await self.deliveries.send(replies, origin=Route(CHANNEL, inbound.chat_id))
        except DatabaseAway:
            raise  # the caller waits for the database and tries again
        except Exception as exc:
            # Never the message or the chat id in the log: only what failed, and where.
            self.outcomes["failed"] += 1
            log.error("a Zalo event could not be answered: %s", failure_line(exc))
        else:
            self.outcomes["handled"] += 1

    async def send(self, chat_id: str, replies: list[Reply]) -> int:
        """Deliver replies to a Zalo chat (the one that wrote, or another one the handlers name): every part
        of every reply; a part Zalo refuses is logged and the rest still go. Returns how many failed."""
        failures = 0
        for reply in replies:
            if reply.files:
                # sendPhoto takes a URL only: the Zalo Bot API has no upload, and evidence is never put
                # at a public address. (A command menu, reply.commands_menu, does not exist on Zalo either.)
                log.warning("%d file(s) cannot be sent through Zalo; only the text was sent", len(reply.files))
            for part in render(reply):
                try:
                    await self.client.send_message(chat_id, part)
                except ZaloBotError as exc:
                    # Not retried: whether Zalo delivered it is unknown, and a citizen getting a question
                    # twice is worse than resending their answer, which the handlers re-prompt for.
                    failures += 1
                    log.warning("a reply could not be sent to Zalo: %s", exc)
        return failures

    async def send_reminder(self, chat_id: str, reply: Reply) -> Outcome:
        """A reminder: its errors as outcomes. Zalo shows no buttons, so only the text goes, which already
        says how to stop (/remind off)."""
        try:
            await self.client.send_message(chat_id, reply.text)
        except ZaloBotError as exc:
            code = exc.error_code
            if code == 429:
                return Outcome.wait(5)  # Zalo names no wait; a few seconds, and the pace for everyone
            if code == 403:
                return BLOCKED
            if code is None or code in (401, 408) or code >= 500:
                return TRANSIENT
            return REJECTED
        return SENT

    async def serve(self) -> None:
        """Long polling until stop()."""
        await self.run_polling()

    async def close(self) -> None:
        if self._held:  # stopped while polling was paused with an answer still unstored
            self._lost(len(self._held))
            self._held = []
        await self.client.close()

    async def _typing(self, chat_id: str) -> None:
        try:
            await self.client.send_chat_action(chat_id, "typing")
        except ZaloBotError as exc:
            log.debug("zalo typing indicator failed: %s", exc)

    async def run_polling(self) -> None:
        """Ask Zalo for events one long poll at a time until stop(); back off while it fails."""
        delay, webhook_cleared, polled = BACKOFF_START, False, False
        if self._held:  # a pause cut the last try short: that answer goes before Zalo is asked for more
            await self._store_before_more(self._held)
        while not self._stopping.is_set():
            try:
                if not webhook_cleared:
                    await self._unless_stopped(self.client.delete_webhook())  # getUpdates ignores us otherwise
                    webhook_cleared = True
                events = await self._unless_stopped(self.client.get_updates(
                    timeout=self.poll_timeout if polled else min(FIRST_POLL_TIMEOUT, self.poll_timeout)))
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
            delay, polled = BACKOFF_START, True
            if events:
                await self._store_before_more(events)
        await self.drain()

    async def _store_before_more(self, events: list[Any]) -> None:
        """A getUpdates answer, which Zalo never sends again: stored sealed, then each event dispatched.

        While the database is away the answer is held in memory and stored again (1 s … 30 s apart), and
        Zalo is asked for nothing more until it is stored: at most this one answer is only in memory. A stop
        first makes one last try, then says in one line how many events it could not keep."""
        delay, told = BACKOFF_START, False
        self._held = events
        try:
            while not await self.take(events):
                if self._stopping.is_set():
                    self._lost(len(events))
                    self._held = []
                    return
                if not told:
                    log.warning("getUpdates waits until the %d Zalo event(s) it returned are stored (Zalo does "
                                "not send them again); they are held in memory meanwhile", len(events))
                    told = True
                await self._pause(delay)  # a stop cuts the pause short: the loop then tries once more
                delay = min(delay * 2, STORE_AGAIN_MAX)
        except asyncio.CancelledError:
            if self._stopping.is_set():  # the stop's grace ran out during a try
                self._lost(len(events))
                self._held = []
            # else polling paused (its lease): the answer stays held for the resumed poll, or for close()
            raise
        self._held = []
        if told:
            log.info("the %d held Zalo event(s) are stored; getUpdates goes on", len(events))

    def _lost(self, count: int) -> None:
        self.outcomes["lost"] += count
        log.error("%d Zalo event(s) could not be kept: the database did not take them before the stop, and Zalo "
                  "does not send them again", count)

    async def _unless_stopped(self, call: Awaitable[Any]) -> Any:
        return await unless_stopped(call, self._stopping)

    async def _pause(self, seconds: float) -> None:
        await pause_unless_stopped(seconds, self._stopping)

    async def drain(self, timeout: float = 30.0) -> None:
        """Let the events already taken finish, so no citizen loses an answer on shutdown."""
        await self._chats.drain(timeout)

    async def stop(self) -> None:
        self._stopping.set()

    def add_routes(self, app: web.Application, secret: str) -> None:
        """POST /zalo/webhook: a call without the right X-Bot-Api-Secret-Token header gets 401, and
        nothing else happens (its body is not even read). A good call's events are stored sealed before the
        200 (a 503 if the database cannot take them), then each is handled in its own task, so Zalo never
        waits for its own sendMessage and a worker killed after the 200 leaves them to the next.
        A body that cannot be read (not JSON, not an event, over MAX_BODY) still gets 200 and is
        counted: Zalo would only send the same bytes again, and nothing in them can be answered."""
        if not secret:
            raise ValueError("a Zalo webhook needs its secret token")
        expected = secret.encode()

        async def receive(request: web.Request) -> web.Response:
            given = header_bytes(request, SECRET_HEADER)
            # Constant time: the secret is not guessed byte by byte.
            if given is None or not hmac.compare_digest(given, expected):
                return web.Response(status=401)
            raw = await read_capped(request, MAX_BODY)
            if raw is None:
                self.skip(f"webhook body over {MAX_BODY // 1024} KiB")
            elif not await self.receive(raw):  # stored before the 200, each event then on its own
                return web.Response(status=503)  # not stored: Zalo is asked to send it again
            return web.json_response({"ok": True})

        app.router.add_post(WEBHOOK_PATH, receive)

    async def announce(self, url: str, secret: str) -> None:
        """Tell Zalo where to post events; the web server must already be listening (Zalo checks it)."""
        await self.client.set_webhook(url, secret)
