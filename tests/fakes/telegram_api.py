"""A fake Telegram Bot API server (aiohttp.web) that the real aiogram client can talk to.

Usage in a test::

    fake = FakeTelegram()
    await fake.start()
    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
    fake.send_text(42, "/start")            # queue an update as the user
    ...                                      # bot polls getUpdates, answers
    [reply] = await fake.wait_for_messages(42, 1)
    await fake.close()

Shapes follow https://core.telegram.org/bots/api closely enough for aiogram's models.
Deliberate simplifications: every chat is private, message text is stored as sent
(HTML/Markdown is not parsed into entities), media have fixed dimensions/durations.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import mimetypes
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

# Form values arrive as strings; aiogram JSON-encodes everything that is not a str
# (ints, bools, markups), so we JSON-decode all params except these free-text ones.
_STRING_PARAMS = frozenset(
    {"text", "caption", "parse_mode", "callback_query_id", "url", "file_id", "action",
     "language_code", "secret_token", "inline_message_id", "business_connection_id",
     "photo", "document", "voice", "video", "sticker", "emoji", "message_effect_id"}
)
# Telegram only marks ASCII command words ending at a space or end of text.
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?=\s|$)")
_MEDIA_SHAPE: dict[str, dict[str, Any]] = {
    "photo": {"width": 1280, "height": 720},
    "document": {},
    "voice": {"duration": 1, "mime_type": "audio/ogg"},
    "video": {"width": 640, "height": 360, "duration": 1, "mime_type": "video/mp4"},
    "sticker": {"type": "regular", "width": 512, "height": 512, "is_animated": False,
                "is_video": False, "emoji": "👍"},
}
_FILE_PATH = {"photo": ("photos", ".jpg"), "document": ("documents", ""), "voice": ("voice", ".oga"),
              "video": ("videos", ".mp4"), "sticker": ("stickers", ".webp")}
_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                 "markup are exactly the same as a current content and reply markup of the message")


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    data: bytes


class ApiError(Exception):
    """A Telegram error answer; the HTTP status equals error_code."""

    def __init__(self, error_code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.error_code, self.description, self.parameters = error_code, description, parameters

    def response(self) -> web.Response:
        """Render Telegram's error JSON."""
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return web.json_response(body, status=self.error_code)


def _coerce(key: str, value: Any) -> Any:
    if not isinstance(value, str) or key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel"


class FakeTelegram:
    """In-process Bot API server with helpers to act as a user and inspect what the bot did."""

    def __init__(self, token: str = "123456:TEST-token-abcdef", bot_username: str = "tinbao_test_bot"):
        """Create a stopped server; call start() before use."""
        self.token = token
        self.base_url = ""
        self.bot_user = {"id": int(token.split(":")[0]), "is_bot": True,
                         "first_name": "Tinbao", "username": bot_username}
        self.sent: list[dict] = []  # edits update these records in place; deletes add "deleted": True
        self.calls: list[tuple[str, dict]] = []  # every Bot API request the bot made, in order
        self.bodies: list[tuple[str, str]] = []  # (method, content type) of each of those requests
        self.webhook_calls: list[tuple[str, dict]] = []  # calls carried in webhook answers (take_webhook_answer)
        self.commands: dict[tuple[str, int | None, str], list[dict]] = {}  # (scope type, chat_id, lang)
        self.webhook_url = ""
        self.offsets: list[int] = []  # the offset of every getUpdates call, in order of arrival
        self._pending: list[list] = []  # [update_id, entry as served, ignores_offset_once], by update_id
        self._history: dict[int, dict] = {}
        self._next_update_id = 100_000_001
        self._other_ids = itertools.count(1)  # file / callback-query ids
        self._message_ids: dict[int, itertools.count] = {}
        self._chats: dict[int, dict] = {}
        self._messages: dict[tuple[int, int], dict] = {}  # bot messages, Telegram-shaped
        self._records: dict[tuple[int, int], dict] = {}
        self._files: dict[str, dict] = {}
        self._failures: dict[str, list[ApiError]] = {}
        self._holds: dict[str, list[float]] = {}
        self._drops: dict[str, list[bool]] = {}
        self._new_update = asyncio.Event()
        self._new_message = asyncio.Event()
        self._new_offset = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._handlers = {
            "getme": self._get_me, "getupdates": self._get_updates,
            "setwebhook": self._set_webhook, "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info, "setmycommands": self._set_my_commands,
            "deletemycommands": self._delete_my_commands, "getmycommands": self._get_my_commands,
            "sendmessage": self._send_message, "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_reply_markup, "deletemessage": self._delete_message,
            "answercallbackquery": self._true, "sendchataction": self._true,
            "sendphoto": self._send_media, "senddocument": self._send_media,
            "sendvoice": self._send_media, "sendvideo": self._send_media, "getfile": self._get_file,
            "sendlocation": self._send_location,
        }

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Listen on 127.0.0.1 with a free port and set base_url."""
        app = web.Application(client_max_size=60 * 1024 * 1024)  # Telegram accepts 50 MB uploads
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = "http://127.0.0.1:%d" % self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop the server, ending any long poll in progress."""
        self._closing = True
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------- user actions
    def send_text(self, chat_id: int, text: str, *, language_code: str = "vi", first_name: str = "Nguyen",
                  username: str = "citizen", user_id: int | None = None) -> int:
        """Queue a text message from the user; a leading /command gets a bot_command entity."""
        content: dict[str, Any] = {"text": text}
        if match := _COMMAND.match(text):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": match.end()}]
        return self._user_message(chat_id, content, language_code=language_code, first_name=first_name,
                                  username=username, user_id=user_id)

    def send_photo(self, chat_id: int, data: bytes, *, caption: str | None = None, media_group_id: str | None = None,
                   **user: Any) -> int:
        """Queue a photo (one PhotoSize) from the user; photos with one media_group_id form an album."""
        extra = {} if caption is None else {"caption": caption}
        if media_group_id is not None:
            extra["media_group_id"] = media_group_id
        return self._user_message(chat_id, {"photo": self._new_media("photo", data), **extra}, **user)

    def send_document(self, chat_id: int, data: bytes, *, file_name: str, mime_type: str, **user: Any) -> int:
        """Queue a document from the user."""
        document = self._new_media("document", data, file_name=file_name, mime_type=mime_type)
        return self._user_message(chat_id, {"document": document}, **user)

    def send_voice(self, chat_id: int, data: bytes, **user: Any) -> int:
        """Queue a voice note from the user."""
        return self._user_message(chat_id, {"voice": self._new_media("voice", data)}, **user)

    def send_video(self, chat_id: int, data: bytes, **user: Any) -> int:
        """Queue a video from the user."""
        return self._user_message(chat_id, {"video": self._new_media("video", data)}, **user)

    def send_sticker(self, chat_id: int, **user: Any) -> int:
        """Queue a (regular, static) sticker from the user."""
        sticker = self._new_media("sticker", b"RIFF\x00\x00\x00\x00WEBPVP8 ")
        return self._user_message(chat_id, {"sticker": sticker}, **user)

    def send_location(self, chat_id: int, latitude: float, longitude: float, **user: Any) -> int:
        """Queue a location from the user."""
        location = {"latitude": latitude, "longitude": longitude}
        return self._user_message(chat_id, {"location": location}, **user)

    def send_contact(self, chat_id: int, phone_number: str, *, contact_user_id: int | None = None,
                     **user: Any) -> int:
        """Queue a contact; by default the sender's own (as the request_contact button does)."""
        sender, _ = self._user(chat_id, **user)
        contact = {"phone_number": phone_number, "first_name": sender["first_name"],
                   "user_id": sender["id"] if contact_user_id is None else contact_user_id}
        return self._user_message(chat_id, {"contact": contact}, **user)

    def click(self, chat_id: int, data: str, *, message_id: int | None = None, **user: Any) -> int:
        """Queue a callback query for an inline button (default: latest bot message with a keyboard)."""
        if message_id is None:
            keyboards = [m for (c, _), m in self._messages.items() if c == chat_id and "reply_markup" in m]
            if not keyboards:
                raise AssertionError(f"no bot message with an inline keyboard in chat {chat_id}")
            message = keyboards[-1]
        elif (message := self._messages.get((chat_id, message_id))) is None:
            raise AssertionError(f"bot message {message_id} in chat {chat_id} does not exist")
        sender, _ = self._user(chat_id, **user)
        query = {"id": str(4_000_000_000 + next(self._other_ids)), "from": sender,
                 "message": copy.deepcopy(message), "chat_instance": str(-chat_id - 7), "data": data}
        return self._queue({"callback_query": query})

    def redeliver(self, update_id: int) -> None:
        """Queue the same update again; the next getUpdates returns it even if its offset passed it."""
        self._pending.append([update_id, copy.deepcopy(self._history[update_id]), True])
        self._pending.sort(key=lambda entry: entry[0])
        self._new_update.set()

    def queue_raw(self, entry: Any) -> int:
        """Queue any JSON value as one entry of getUpdates' answer, served exactly as given: nothing is
        added or fixed, so a test can send what aiogram's models reject (a Bot API shape newer than
        aiogram, an entry without update_id, one that is not an object).

        A dict entry with an integer ``update_id`` takes its place in the queue by that id (not below the
        next free one); any other entry takes the next free id as its place, hidden from the bot: it is
        confirmed once an offset passes that place, as a real update would be. Returns the place."""
        own = entry.get("update_id") if isinstance(entry, dict) else None
        place = own if isinstance(own, int) and not isinstance(own, bool) else self._next_update_id
        if place < self._next_update_id:
            raise AssertionError(f"update_id {place} is below the next free id {self._next_update_id}")
        self._next_update_id = place + 1
        self._history[place] = copy.deepcopy(entry)
        self._pending.append([place, copy.deepcopy(entry), False])
        self._new_update.set()
        return place

    def next_update_id(self) -> int:
        """The id the next queued update will get (so a test can build a raw update with it)."""
        return self._next_update_id

    # --------------------------------------------------------------- inspection
    def messages_to(self, chat_id: int) -> list[dict]:
        """Records of every message the bot sent to chat_id, in order."""
        return [m for m in self.sent if m["chat_id"] == chat_id]

    async def wait_for_messages(self, chat_id: int, count: int, timeout: float = 5.0) -> list[dict]:
        """Wait until the bot sent at least `count` messages to chat_id; return them all."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages_to(chat_id)) < count:
                    self._new_message.clear()
                    await self._new_message.wait()
        except TimeoutError:
            seen = [(m["method"], m.get("text", m.get("caption"))) for m in self.messages_to(chat_id)]
            raise AssertionError(
                f"expected {count} messages to chat {chat_id} within {timeout}s, got {seen}") from None
        return self.messages_to(chat_id)

    async def wait_for_offset(self, at_least: int, timeout: float = 5.0) -> None:
        """Wait until the bot called getUpdates with an offset of at least ``at_least`` (it confirmed
        every update below it)."""
        try:
            async with asyncio.timeout(timeout):
                while max(self.offsets, default=0) < at_least:
                    self._new_offset.clear()
                    await self._new_offset.wait()
        except TimeoutError:
            raise AssertionError(f"no getUpdates with offset >= {at_least} within {timeout}s; "
                                 f"offsets: {self.offsets[-5:]}") from None

    def pending_count(self) -> int:
        """Updates not yet confirmed by an offset."""
        return len(self._pending)

    @staticmethod
    def buttons(message: dict) -> list[tuple[str, str]]:
        """(text, callback_data) of the message's inline keyboard, flattened; [] if none."""
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    def fail_next(self, method: str, *, error_code: int, description: str,
                  retry_after: int | None = None) -> None:
        """Make the next call of `method` answer with a Telegram error."""
        params = {"retry_after": retry_after} if retry_after is not None else None
        self._failures.setdefault(method.lower(), []).append(ApiError(error_code, description, params))

    def hold_next(self, method: str, seconds: float) -> None:
        """Make the next call of `method` wait `seconds` before it is carried out and answered, as a slow
        Telegram does: a client that gives up sooner sees a timeout, yet the call still takes effect."""
        self._holds.setdefault(method.lower(), []).append(seconds)

    def drop_next(self, method: str, *, after_doing_it: bool = True) -> None:
        """Make the next call of `method` end with the connection closed and no answer: by default after
        the call took effect (the client cannot tell whether it did), or before, when it did not."""
        self._drops.setdefault(method.lower(), []).append(after_doing_it)

    async def take_webhook_answer(self, content_type: str, body: bytes) -> tuple[str, dict] | None:
        """Do what Telegram does with the body of a webhook's 200 (Bot API, "Making requests when getting
        updates"): one that names a ``method`` is that call, made now and recorded in ``webhook_calls``
        (not in ``calls``), its result and any error told to nobody; an empty body, or one without a
        method, is nothing. JSON and URL-encoded forms are read (aiogram's multipart form is not modelled:
        a test that meets one fails here rather than pass on a call silently skipped)."""
        if not body.strip():
            return None
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind == "application/json":
            params = json.loads(body)
            if not isinstance(params, dict):
                return None
        elif kind == "application/x-www-form-urlencoded":
            params = {k: _coerce(k, v) for k, v in parse_qsl(body.decode(), keep_blank_values=True)}
        else:
            raise AssertionError(f"a webhook answer of type {content_type!r} is not modelled by the fake")
        method = params.pop("method", None)
        if not isinstance(method, str):
            return None
        self.webhook_calls.append((method, params))
        if (handler := self._handlers.get(method.lower())) is not None:
            try:
                await handler(method, params)
            except ApiError:
                pass  # Telegram does not say whether a call made this way succeeded
        return method, params

    # ------------------------------------------------------------------- HTTP
    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._read_params(request)
        self.calls.append((method, params))
        self.bodies.append((method, request.content_type))  # how it came: JSON, a form, or a multipart upload
        if request.match_info["token"] != self.token:
            return ApiError(401, "Unauthorized").response()
        handler = self._handlers.get(method.lower())
        if handler is None:
            return ApiError(404, "Not Found: method not found").response()
        if holds := self._holds.get(method.lower()):
            await asyncio.sleep(holds.pop(0))
        drop = self._drops[method.lower()].pop(0) if self._drops.get(method.lower()) else None
        try:
            if failures := self._failures.get(method.lower()):
                raise failures.pop(0)
            if drop is not False:
                result = await handler(method, params)
        except ApiError as error:
            return error.response()
        if drop is not None:
            assert request.transport is not None
            request.transport.close()  # the client sees the connection end with no answer
            return web.Response(status=200)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return ApiError(401, "Unauthorized").response()
        for file in self._files.values():
            if file["file_path"] == request.match_info["path"]:
                return web.Response(body=file["data"], content_type="application/octet-stream")
        return ApiError(404, "Not Found").response()

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return {**request.query, **await request.json()}
        form = await request.post() if request.can_read_body else {}
        # aiogram uploads each file under a random part name and passes "attach://<name>"
        # as the parameter value; a part named like the parameter itself is also valid.
        uploads = {k: Upload(v.filename, v.file.read())
                   for k, v in form.items() if isinstance(v, web.FileField)}
        params = {k: _coerce(k, v) for k, v in {**request.query, **form}.items() if k not in uploads}
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("attach://"):
                params[key] = uploads.pop(value.removeprefix("attach://"))
        return params | uploads

    # --------------------------------------------------------------- handlers
    async def _true(self, method: str, p: dict) -> bool:
        return True

    async def _get_me(self, method: str, p: dict) -> dict:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _get_updates(self, method: str, p: dict) -> list[dict]:
        if self.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset, limit = int(p.get("offset") or 0), min(max(int(p.get("limit") or 100), 1), 100)
        self.offsets.append(offset)
        self._new_offset.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(p.get("timeout") or 0)
        while True:
            self._new_update.clear()
            if offset < 0:  # "-N": forget all but the last N updates
                self._pending = self._pending[offset:]
            elif offset:
                self._pending = [e for e in self._pending if e[2] or e[0] >= offset]
            batch = self._pending[:limit]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                for entry in batch:
                    entry[2] = False
                return [entry[1] for entry in batch]
            try:
                await asyncio.wait_for(self._new_update.wait(), remaining)
            except TimeoutError:
                pass

    async def _set_webhook(self, method: str, p: dict) -> bool:
        self.webhook_url = p.get("url") or ""
        if p.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _delete_webhook(self, method: str, p: dict) -> bool:
        return await self._set_webhook(method, {**p, "url": ""})

    async def _get_webhook_info(self, method: str, p: dict) -> dict:
        return {"url": self.webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._pending)}

    @staticmethod
    def _scope_key(p: dict) -> tuple[str, int | None, str]:
        scope = p.get("scope") or {"type": "default"}
        return scope["type"], scope.get("chat_id"), p.get("language_code") or ""

    async def _set_my_commands(self, method: str, p: dict) -> bool:
        commands = p.get("commands") or []
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[self._scope_key(p)] = commands
        return True

    async def _delete_my_commands(self, method: str, p: dict) -> bool:
        self.commands.pop(self._scope_key(p), None)
        return True

    async def _get_my_commands(self, method: str, p: dict) -> list[dict]:
        return self.commands.get(self._scope_key(p), [])

    async def _send_message(self, method: str, p: dict) -> dict:
        text = p.get("text") or ""
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:  # Telegram counts after entity parsing; close enough for plain text
            raise ApiError(400, "Bad Request: message is too long")
        return self._bot_message(method, p, {"text": text})

    async def _send_media(self, method: str, p: dict) -> dict:
        kind = method[4:].lower()  # sendPhoto -> photo
        value = p.get(kind)
        if isinstance(value, Upload):
            mime_type = mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
            file = self._register(kind, value.data, file_name=value.filename, mime_type=mime_type)
        elif (file := self._files.get(value)) is None:  # type: ignore[arg-type]
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        content: dict[str, Any] = {kind: self._media_json(kind, file)}
        if caption := p.get("caption"):
            if len(caption) > 1024:
                raise ApiError(400, "Bad Request: message caption is too long")
            content["caption"] = caption
        return self._bot_message(method, p, content, {kind: file["data"]})

    async def _send_location(self, method: str, p: dict) -> dict:
        try:
            lat, lon = float(p["latitude"]), float(p["longitude"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: wrong latitude or longitude") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ApiError(400, "Bad Request: wrong latitude or longitude")
        location = {"latitude": lat, "longitude": lon}
        return self._bot_message(method, p, {"location": location}, {"location": location})

    async def _get_file(self, method: str, p: dict) -> dict:
        if (file := self._files.get(p.get("file_id"))) is None:  # type: ignore[arg-type]
            raise ApiError(400, "Bad Request: invalid file_id")
        return {k: file[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    async def _edit_message_text(self, method: str, p: dict) -> dict:
        message, record = self._find(p, "edit")
        text = p.get("text") or ""
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        # Like Telegram, omitting reply_markup in an edit removes the inline keyboard.
        markup = self._check_markup(p.get("reply_markup"))
        if message["text"] == text and message.get("reply_markup") == self._inline(markup):
            raise ApiError(400, _NOT_MODIFIED)
        message["text"] = record["text"] = text
        return self._apply_edit(message, record, markup)

    async def _edit_reply_markup(self, method: str, p: dict) -> dict:
        message, record = self._find(p, "edit")
        markup = self._check_markup(p.get("reply_markup"))
        if message.get("reply_markup") == self._inline(markup):
            raise ApiError(400, _NOT_MODIFIED)
        return self._apply_edit(message, record, markup)

    async def _delete_message(self, method: str, p: dict) -> bool:
        message, record = self._find(p, "delete")
        del self._messages[(record["chat_id"], message["message_id"])]
        record["deleted"] = True
        return True

    # ---------------------------------------------------------------- helpers
    def _user(self, chat_id: int, *, language_code: str = "vi", first_name: str = "Nguyen",
              username: str = "citizen", user_id: int | None = None) -> tuple[dict, dict]:
        user = {"id": chat_id if user_id is None else user_id, "is_bot": False, "first_name": first_name,
                "username": username, "language_code": language_code}
        chat = self._chats[chat_id] = {"id": chat_id, "type": "private", "first_name": first_name,
                                       "username": username}
        return user, chat

    def _next_message_id(self, chat_id: int) -> int:
        # Both sides of a private chat share one message_id sequence.
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def update_json(self, update_id: int) -> dict:
        """An update as Telegram would post it to a webhook (one queued by send_text, send_photo …)."""
        return copy.deepcopy(self._history[update_id])

    def _user_message(self, chat_id: int, content: dict, **user: Any) -> int:
        sender, chat = self._user(chat_id, **user)
        message = {"message_id": self._next_message_id(chat_id), "date": int(time.time()),
                   "chat": chat, "from": sender, **content}
        return self._queue({"message": message})

    def _queue(self, body: dict) -> int:
        update = {"update_id": self._next_update_id, **body}
        self._next_update_id += 1
        self._history[update["update_id"]] = copy.deepcopy(update)
        self._pending.append([update["update_id"], update, False])
        self._new_update.set()
        return update["update_id"]

    def _register(self, kind: str, data: bytes, **meta: Any) -> dict:
        n = next(self._other_ids)
        folder, ext = _FILE_PATH[kind]
        if kind == "document":
            ext = "." + meta["file_name"].rsplit(".", 1)[-1] if "." in meta.get("file_name", "") else ""
        file = {"file_id": f"fake-{kind}-{n}", "file_unique_id": f"uniq{n}", "file_size": len(data),
                "file_path": f"{folder}/file_{n}{ext}", "data": data, **meta}
        self._files[file["file_id"]] = file
        return file

    def _new_media(self, kind: str, data: bytes, **meta: Any) -> Any:
        return self._media_json(kind, self._register(kind, data, **meta))

    @staticmethod
    def _media_json(kind: str, file: dict) -> Any:
        media = {k: file[k] for k in ("file_id", "file_unique_id", "file_size")} | _MEDIA_SHAPE[kind]
        if kind == "document":
            media |= {"file_name": file["file_name"], "mime_type": file["mime_type"]}
        return [media] if kind == "photo" else media

    @staticmethod
    def _inline(markup: dict | None) -> dict | None:
        # Only inline keyboards are echoed back in Message.reply_markup.
        return markup if markup and "inline_keyboard" in markup else None

    @staticmethod
    def _check_markup(markup: dict | None) -> dict | None:
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _bot_message(self, method: str, p: dict, content: dict, files: dict | None = None) -> dict:
        chat_id = p.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        markup = self._check_markup(p.get("reply_markup"))
        chat = self._chats.get(chat_id, {"id": chat_id, "type": "private", "first_name": "Nguyen"})
        message = {"message_id": self._next_message_id(chat_id), "date": int(time.time()),
                   "chat": chat, "from": self.bot_user, **content}
        if self._inline(markup):
            message["reply_markup"] = markup
        record = {"method": method, "chat_id": chat_id, "message_id": message["message_id"],
                  **{k: content[k] for k in ("text", "caption") if k in content},
                  "reply_markup": markup, **(files or {}), "params": p}
        self._messages[(chat_id, message["message_id"])] = message
        self._records[(chat_id, message["message_id"])] = record
        self.sent.append(record)
        self._new_message.set()
        return message

    def _find(self, p: dict, verb: str) -> tuple[dict, dict]:
        key = (p.get("chat_id"), p.get("message_id"))
        if key not in self._messages:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        return self._messages[key], self._records[key]

    def _apply_edit(self, message: dict, record: dict, markup: dict | None) -> dict:
        record["reply_markup"] = markup
        message.pop("reply_markup", None)
        if self._inline(markup):
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return message
