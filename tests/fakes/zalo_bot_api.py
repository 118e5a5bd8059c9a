"""A fake Zalo Bot API server (aiohttp.web) on 127.0.0.1 that our real client talks to over HTTP.

Usage in a test::

    fake = FakeZaloBot()
    await fake.start()
    client = ZaloBotClient(fake.token, api_base=fake.base_url)
    fake.send_text("chat-1", "/start")       # queue an event as the citizen
    ...                                        # the bot long-polls getUpdates, answers
    [reply] = await fake.wait_for_messages("chat-1", 1)
    await fake.close()

Shapes follow the Zalo Bot API docs (see the comment at the top of bot/channels/zalo_bot.py):
``POST /bot<TOKEN>/<method>`` answering ``{ok, result}`` or ``{ok: false, error_code, description}``;
getUpdates returns one event per call and, when the long poll ends with nothing new,
``ok: false, error_code: 408``. Events carry string ids and a ``date`` in milliseconds.

Deliberate choices where the docs are silent: a wrong token gets HTTP 401 with the JSON error
shape; getUpdates while a webhook is set is refused with 409; images and voice notes are served
by the fake itself under ``/files/…`` (no token in those URLs). Unlike Zalo, a webhook URL on
127.0.0.1 over plain http is accepted, so tests can receive pushed events; events for any other
webhook address are only kept in ``undelivered`` (the fake never reaches the network).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

SECRET_HEADER = "X-Bot-Api-Secret-Token"


@dataclass
class Failure:
    """A prepared failure for the next call of one method."""

    error_code: int
    description: str
    http_status: int = 200
    body: str | None = None  # a raw body instead of Zalo's JSON (e.g. an HTML error page)


class ApiError(Exception):
    def __init__(self, error_code: int, description: str, http_status: int = 200) -> None:
        super().__init__(description)
        self.error_code, self.description, self.http_status = error_code, description, http_status

    def response(self) -> web.Response:
        return web.json_response({"ok": False, "error_code": self.error_code, "description": self.description},
                                 status=self.http_status)


class FakeZaloBot:
    """In-process Zalo Bot API with helpers to act as a citizen and to inspect what the bot did."""

    def __init__(self, token: str = "4125987412:fake_Zalo-bot-token-0123456789abcdef") -> None:
        self.token = token
        self.base_url = ""
        self.bot = {"id": token.split(":")[0], "account_name": "bot.TinBao", "account_type": "BASIC",
                    "can_join_groups": False}
        self.sent: list[dict] = []  # sendMessage / sendPhoto records, in order
        self.calls: list[tuple[str, dict]] = []  # every API call that reached a method (good token)
        self.refused: list[tuple[str, int]] = []  # calls answered with a failure: (method, error_code)
        self.pushes: list[int] = []  # HTTP statuses our webhook answered to pushed events
        self.downloads = 0
        self.undelivered: list[dict] = []  # events for a webhook address that is not on this machine
        self.webhook_url = ""
        self.webhook_secret = ""
        self._pending: list[dict] = []
        self._history: dict[str, dict] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._file_ids = itertools.count(1)
        self._failures: dict[str, list[Failure]] = {}
        self._gates: dict[str, asyncio.Event] = {}  # methods whose calls wait for let_through()
        self.held: list[str] = []  # calls that waited at a gate, by method
        self._arrived = asyncio.Event()
        self._new_event = asyncio.Event()
        self._new_message = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._push_tasks: set[asyncio.Task] = set()
        self._handlers = {
            "getMe": self._get_me, "getUpdates": self._get_updates, "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook, "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message, "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
        }

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Listen on 127.0.0.1 with a free port and set base_url."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/files/{name}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = "http://127.0.0.1:%d" % self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop the server, ending any long poll in progress."""
        self._closing = True
        self._new_event.set()
        for gate in self._gates.values():
            gate.set()
        for task in list(self._push_tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ citizen actions
    def send_text(self, chat_id: str, text: str, **sender: Any) -> str:
        """Queue (or push to the webhook) a text message; returns its message_id."""
        return self._event(chat_id, "message.text.received", {"text": text}, **sender)

    def send_image(self, chat_id: str, data: bytes, *, caption: str | None = None, **sender: Any) -> str:
        """An image, served by the fake at the URL in the event's ``photo``."""
        content: dict[str, Any] = {"photo": self._serve(data, ".jpg", "image/jpeg")}
        if caption is not None:
            content["caption"] = caption
        return self._event(chat_id, "message.image.received", content, **sender)

    def send_sticker(self, chat_id: str, **sender: Any) -> str:
        return self._event(chat_id, "message.sticker.received",
                           {"sticker": "0e078a2fb66a5f34067b",
                            "url": self._serve(b"RIFF\x00\x00\x00\x00WEBPVP8 ", ".webp", "image/webp")}, **sender)

    def send_voice(self, chat_id: str, data: bytes | None = b"\xff\xf1fake-aac", **sender: Any) -> str:
        """A voice note; ``data=None`` sends the event without a voice_url."""
        content = {} if data is None else {"voice_url": self._serve(data, ".aac", "audio/aac")}
        return self._event(chat_id, "message.voice.received", content, **sender)

    def send_unsupported(self, chat_id: str, **sender: Any) -> str:
        """What Zalo sends instead of the content for protected users (children, data-protection law)."""
        return self._event(chat_id, "message.unsupported.received", {}, **sender)

    def send_raw(self, item: Any) -> None:
        """Deliver anything at all as the next event (polling: getUpdates' ``result``; webhook: the body's),
        to see what the bot does with an event that does not have Zalo's shape."""
        self._deliver(item)

    def redeliver(self, message_id: str) -> None:
        """Deliver the same event again (same message_id), as a retrying platform would."""
        self._deliver(copy.deepcopy(self._history[message_id]))

    def event(self, message_id: str) -> dict:
        """The event as Zalo shapes it (without the webhook's {ok, result} wrapper)."""
        return copy.deepcopy(self._history[message_id])

    def fail_next(self, method: str, error_code: int, description: str, http_status: int = 200, *,
                  body: str | None = None) -> None:
        """The next call of ``method`` fails: ok:false with a 200 by default, else that HTTP status."""
        self._failures.setdefault(method, []).append(Failure(error_code, description, http_status, body))

    def hold(self, method: str) -> None:
        """From now on, calls of ``method`` get no answer until let_through(), like a Zalo that hangs."""
        self._gates.setdefault(method, asyncio.Event())

    def let_through(self, method: str) -> None:
        self._gates.pop(method).set()

    async def wait_until_held(self, method: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until the bot has made (and waits on) ``count`` held calls of ``method``."""
        async with asyncio.timeout(timeout):
            while self.held.count(method) < count:
                self._arrived.clear()
                await self._arrived.wait()

    # ---------------------------------------------------------------- inspection
    @property
    def waiting(self) -> int:
        """Events queued for getUpdates and not yet taken."""
        return len(self._pending)

    def messages_to(self, chat_id: str) -> list[dict]:
        return [m for m in self.sent if m["chat_id"] == chat_id]

    def texts_to(self, chat_id: str) -> list[str]:
        return [m.get("text") or m.get("caption") or "" for m in self.messages_to(chat_id)]

    async def wait_for_messages(self, chat_id: str, count: int, timeout: float = 5.0) -> list[dict]:
        """Wait until the bot sent at least ``count`` messages to chat_id; return them all."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages_to(chat_id)) < count:
                    self._new_message.clear()
                    await self._new_message.wait()
        except TimeoutError:
            raise AssertionError(f"expected {count} messages to {chat_id} within {timeout}s, "
                                 f"got {self.texts_to(chat_id)}") from None
        return self.messages_to(chat_id)

    async def wait_until_polled(self, timeout: float = 5.0) -> None:
        """Wait until every queued event was taken by getUpdates."""
        async with asyncio.timeout(timeout):
            while self._pending:
                await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ server
    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            self.refused.append((method, 401))
            return ApiError(401, "Unauthorized", http_status=401).response()
        params = await self._params(request)
        if (queued := self._failures.get(method)):
            failure = queued.pop(0)
            self.refused.append((method, failure.error_code))
            if failure.body is not None:
                return web.Response(status=failure.http_status, text=failure.body, content_type="text/html")
            return ApiError(failure.error_code, failure.description, failure.http_status).response()
        handler = self._handlers.get(method)  # names are case-sensitive, as on Zalo
        if handler is None:
            self.refused.append((method, 404))
            return ApiError(404, "Not found").response()
        self.calls.append((method, params))
        if (gate := self._gates.get(method)) is not None:
            self.held.append(method)
            self._arrived.set()
            await gate.wait()
        try:
            result = await handler(params)
        except ApiError as exc:
            self.refused.append((method, exc.error_code))
            return exc.response()
        return web.json_response({"ok": True, "result": result} if result is not None else {"ok": True})

    @staticmethod
    async def _params(request: web.Request) -> dict:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update(dict(await request.post()))
        return params

    async def _handle_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files:
            return web.Response(status=404)
        self.downloads += 1
        data, mime = self._files[name]
        return web.Response(body=data, content_type=mime)

    # ----------------------------------------------------------------- methods
    async def _get_me(self, p: dict) -> dict:
        return dict(self.bot)

    async def _get_updates(self, p: dict) -> dict:
        if self.webhook_url:
            raise ApiError(409, "Conflict: getUpdates is not available while a webhook is set")
        try:
            timeout = min(float(p.get("timeout", 30)), 60.0)
        except (TypeError, ValueError):
            raise ApiError(400, "Bad request: timeout") from None
        try:
            async with asyncio.timeout(timeout):
                while not self._pending and not self._closing:
                    self._new_event.clear()
                    await self._new_event.wait()
        except TimeoutError:
            pass
        if not self._pending:
            raise ApiError(408, "Request timeout")
        return self._pending.pop(0)  # one event per call, and no offset: taken is taken

    async def _set_webhook(self, p: dict) -> dict:
        url, secret = p.get("url"), p.get("secret_token")
        if not isinstance(url, str) or not url.startswith(("https://", "http://127.0.0.1")):
            raise ApiError(400, "Bad request: url must be a public https address")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            raise ApiError(400, "Bad request: secret_token must be 8-256 characters")
        self.webhook_url, self.webhook_secret = url, secret
        return {"url": url, "updated_at": _now_ms()}

    async def _delete_webhook(self, p: dict) -> dict:
        self.webhook_url = self.webhook_secret = ""
        return {"url": "", "updated_at": _now_ms()}

    async def _get_webhook_info(self, p: dict) -> dict:
        return {"url": self.webhook_url, "updated_at": _now_ms()}

    async def _send_message(self, p: dict) -> dict:
        chat_id, text = self._chat(p), p.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 2000:
            raise ApiError(400, "Bad request: text must be 1-2000 characters")
        return self._record("sendMessage", chat_id, {"text": text}, p)

    async def _send_photo(self, p: dict) -> dict:
        chat_id, photo, caption = self._chat(p), p.get("photo"), p.get("caption")
        if not isinstance(photo, str) or not photo.startswith(("http://", "https://")):
            raise ApiError(400, "Bad request: photo must be an image URL")
        if caption is not None and (not isinstance(caption, str) or not 1 <= len(caption) <= 2000):
            raise ApiError(400, "Bad request: caption must be 1-2000 characters")
        return self._record("sendPhoto", chat_id, {"photo": photo, **({"caption": caption} if caption else {})}, p)

    async def _send_chat_action(self, p: dict) -> None:
        self._chat(p)
        if p.get("action") not in ("typing", "upload_photo"):
            raise ApiError(400, "Bad request: action")
        return None

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _chat(p: dict) -> str:
        chat_id = p.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            raise ApiError(400, "Bad request: chat_id")
        return chat_id

    def _record(self, method: str, chat_id: str, content: dict, p: dict) -> dict:
        result = {"message_id": secrets.token_hex(10), "date": _now_ms()}
        self.sent.append({"method": method, "chat_id": chat_id, **content, "message_id": result["message_id"],
                          "params": p})
        self._new_message.set()
        return result

    def _serve(self, data: bytes, extension: str, mime: str) -> str:
        name = f"{next(self._file_ids)}{extension}"
        self._files[name] = (data, mime)
        return f"{self.base_url}/files/{name}"

    def _event(self, chat_id: str, event_name: str, content: dict, *, display_name: str = "Nguyễn Văn A",
               chat_type: str = "PRIVATE", is_bot: bool = False, sender_id: str | None = None,
               named: bool = True) -> str:
        """``named=False``: the shape of getUpdates' sample answer, without ``event_name`` (and with
        ``from.first_name`` instead of display_name and is_bot), as transcribed in
        XuanNguyenNB/QuanLyThuChi_Bot_Telegram_Zalom, docs/ZALO_BOT_API.md."""
        sender = ({"id": sender_id or chat_id, "display_name": display_name, "is_bot": is_bot} if named
                  else {"id": sender_id or chat_id, "first_name": display_name})
        message = {"from": sender, "chat": {"id": chat_id, "chat_type": chat_type},
                   **content, "message_id": secrets.token_hex(10), "date": _now_ms()}
        event = {"event_name": event_name, "message": message} if named else {"message": message}
        self._history[message["message_id"]] = copy.deepcopy(event)
        self._deliver(event)
        return message["message_id"]

    def _deliver(self, event: Any) -> None:
        if self.webhook_url and not self.webhook_url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
            # A public address (as in production config): a test never reaches the network, so the
            # event is kept aside, as if Zalo could not deliver it.
            self.undelivered.append(event)
        elif self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._push(event))
            self._push_tasks.add(task)
            task.add_done_callback(self._push_tasks.discard)
        else:
            self._pending.append(event)
            self._new_event.set()

    async def _push(self, event: Any) -> None:
        """POST the event to the webhook with the secret header, as Zalo does."""
        body = json.dumps({"ok": True, "result": event}, ensure_ascii=False)
        async with aiohttp.ClientSession() as http:
            async with http.post(self.webhook_url, data=body.encode(),
                                 headers={"Content-Type": "application/json",
                                          SECRET_HEADER: self.webhook_secret}) as response:
                self.pushes.append(response.status)


def _now_ms() -> int:
    return int(time.time() * 1000)
