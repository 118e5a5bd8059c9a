"""A fake Zalo Official Account on 127.0.0.1: the OpenAPI (consultation messages, image upload, templates),
the OAuth v4 token endpoint, and Zalo's side of the webhook, which POSTs signed events to our server.

Usage in a test::

    fake = FakeZaloOA()
    await fake.start()
    fake.webhook_url = str(server.make_url("/zalo-oa/webhook"))
    access, refresh = fake.issue_pair()          # what `tinbao zalo-oa connect` would have stored
    await fake.send_text("1234567890", "/start")  # the citizen writes; the fake signs and posts the event
    [reply] = await fake.wait_for_messages("1234567890", 1)
    await fake.click("1234567890", "Báo tin")     # taps an oa.query.hide button: its payload comes back as text
    await fake.close()

Shapes follow the comment at the top of bot/channels/zalo_oa.py: answers are ``{"error": 0, "message":
"Success", "data": …}`` or ``{"error": <negative>, "message": …}`` with HTTP 200; a refused token request
is an HTTP 200 with ``error``/``error_name``/``error_description`` and no access_token; events carry
``timestamp`` as a string of epoch milliseconds and are signed ``mac=`` + sha256(app_id + body + timestamp
+ OA secret key).

Templates (ZBS) go by user_id to ``POST /v3.0/oa/message/template`` on the OA API, with exactly
``{"user_id", "template_id", "template_data"}``, and are answered with ``data.message_id``; a body with a
``tracking_id``, a ``phone`` or a ``recipient`` is refused with -201, as is the old call to the phone channel
(``/message/template``) without a phone number (-108). See bot/channels/zalo_oa.py for the sources.

A refresh token can be used once (a second use is refused with error -14014 and recorded in
``reused_refresh``): "Refresh token chỉ có thể sử dụng 1 lần" (hexasync.vn, "Zalo OA API: Hướng dẫn cách
lấy Access Token từ Refresh token"). A successful refresh also invalidates the access token issued with that
refresh token ("Mỗi access token được tạo sẽ có một refresh token đi kèm", same page): -216 from then on. No
source we found says in so many words that the old access token dies at once; it is the stricter reading,
and the one a worker still holding the old token must survive.

Deliberate choices where the sources are silent: at most 5 buttons per message; images over 1,000,000
bytes are refused with -210; a user not in ``followers`` gets -213, one in ``outside_window`` gets -230.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

APP_ID = "3141592653589793238"
OA_ID = "2718281828459045235"
OA_SECRET = "fake-OA-Secret_key-0123456789"
APP_SECRET = "fake-App-Secret_key-9876543210"


@dataclass
class Failure:
    error: int
    message: str


class FakeZaloOA:
    """In-process Zalo OA with helpers to act as citizens and to inspect what the bot did."""

    def __init__(self, *, app_id: str = APP_ID, oa_id: str = OA_ID, oa_secret: str = OA_SECRET,
                 app_secret: str = APP_SECRET) -> None:
        self.app_id, self.oa_id, self.oa_secret, self.app_secret = app_id, oa_id, oa_secret, app_secret
        self.base_url = ""
        self.webhook_url = ""
        self.sent: list[dict] = []  # consultation messages, in order
        self.templates: list[dict] = []  # template messages
        self.uploads: dict[str, bytes] = {}  # attachment_id → bytes
        self.refused: list[tuple[str, int]] = []  # (path, error) of calls answered with an error
        self.pushes: list[int] = []  # HTTP statuses our webhook answered
        self.followers: set[str] = set()
        self.outside_window: set[str] = set()
        self.access_tokens: dict[str, bool] = {}  # token → still valid
        self.refresh_tokens: dict[str, str] = {}  # token → "live" | "spent"
        self._issued_with: dict[str, str] = {}  # refresh token → the access token issued beside it
        self.refresh_calls: list[str] = []  # every refresh token presented, in order
        self.reused_refresh: list[str] = []  # refresh tokens presented after they were spent
        self.refresh_delay = 0.0  # seconds the token endpoint takes (concurrency tests)
        self.hang_after_spending = 0.0  # > 0: spend the refresh token, then answer only after this long
        self.max_buttons = 5
        self.image_limit = 1_000_000
        self.downloads = 0
        self._refresh_failures: list[dict] = []
        self._failures: dict[str, list[Failure]] = {}
        self._codes: dict[str, tuple[str, bool]] = {}  # authorization code → (code_challenge, used)
        self._files: dict[str, tuple[bytes, str]] = {}
        self._file_ids = itertools.count(1)
        self._history: dict[str, tuple[bytes, dict]] = {}  # msg_id → (body, headers) as posted
        self._last_post: tuple[bytes, dict] = (b"", {})
        self._new_message = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v3.0/oa/message/cs", self._message_cs)
        app.router.add_post("/v2.0/oa/upload/image", self._upload_image)
        app.router.add_post("/v3.0/oa/message/template", self._template)
        app.router.add_post("/message/template", self._phone_template)
        app.router.add_post("/v4/oa/access_token", self._access_token)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = "http://127.0.0.1:%d" % self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------- tokens
    def issue_pair(self) -> tuple[str, str]:
        access, refresh = "AT-" + secrets.token_urlsafe(24), "RT-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = True
        self.refresh_tokens[refresh] = "live"
        self._issued_with[refresh] = access
        return access, refresh

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (-216), as after 25 hours."""
        for token in self.access_tokens:
            self.access_tokens[token] = False

    def fail_next_refresh(self, body: dict | None = None) -> None:
        """The next refresh is answered HTTP 200 without an access_token (Zalo refusing it)."""
        self._refresh_failures.append(body or {"error": -14014, "error_name": "Invalid refresh token",
                                               "error_description": "Refresh token is invalid or expired"})

    def fail_next(self, path: str, error: int, message: str) -> None:
        """The next call of ``path`` ("/v3.0/oa/message/cs", …) is answered with this error (HTTP 200)."""
        self._failures.setdefault(path, []).append(Failure(error, message))

    def permission_code(self, url: str) -> tuple[str, str]:
        """The OA admin opens the permission URL and agrees: (code, state) as Zalo's redirect brings them."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert urlsplit(url).path == "/v4/oa/permission", url
        assert query["app_id"] == self.app_id and query.get("redirect_uri") and query.get("code_challenge")
        code = "CODE-" + secrets.token_urlsafe(16)
        self._codes[code] = (query["code_challenge"], False)
        return code, query.get("state", "")

    # ------------------------------------------------------------ citizen actions
    async def send_text(self, user: str, text: str, **options: Any) -> str:
        return await self._user_event(user, "user_send_text", {"text": text}, **options)

    async def send_image(self, user: str, data: bytes, *, caption: str | None = None, **options: Any) -> str:
        url = self._serve(data, ".jpg", "image/jpeg")
        message: dict[str, Any] = {"attachments": [{"type": "image", "payload": {"url": url, "thumbnail": url}}]}
        if caption:
            message["text"] = caption
        return await self._user_event(user, "user_send_image", message, **options)

    async def send_location(self, user: str, latitude: str, longitude: str, **options: Any) -> str:
        """Coordinates as strings, as Zalo sends them; Zalo adds the place's name as text."""
        return await self._user_event(user, "user_send_location", {
            "text": "Quán cà phê", "attachments": [{"type": "location", "payload": {"coordinates": {
                "latitude": latitude, "longitude": longitude}}}]}, **options)

    async def send_sticker(self, user: str, **options: Any) -> str:
        return await self._user_event(user, "user_send_sticker", {"attachments": [
            {"type": "sticker", "payload": {"id": "abc", "url": self._serve(b"RIFF", ".webp", "image/webp")}}]},
            **options)

    async def click(self, user: str, title: str) -> str:
        """Tap the button whose title contains ``title`` on the latest message that has one: Zalo sends its
        payload back as the citizen's text (oa.query.hide: not shown in the chat)."""
        payload = self.button_payload(user, title)
        return await self.send_text(user, payload)

    async def follow(self, user: str, **options: Any) -> int:
        self.followers.add(user)
        return await self.push({"app_id": self.app_id, "oa_id": self.oa_id, "event_name": "follow",
                                "follower": {"id": user}, "source": "testing", "timestamp": _ms()}, **options)

    async def unfollow(self, user: str, **options: Any) -> int:
        self.followers.discard(user)
        return await self.push({"app_id": self.app_id, "oa_id": self.oa_id, "event_name": "unfollow",
                                "follower": {"id": user}, "source": "testing", "timestamp": _ms()}, **options)

    async def echo(self, event_name: str, user: str, **options: Any) -> int:
        """What Zalo posts about the OA's own messages: oa_send_*, user_received_message, user_seen_message."""
        return await self.push({"app_id": self.app_id, "event_name": event_name, "sender": {"id": self.oa_id},
                                "recipient": {"id": user}, "message": {"msg_id": secrets.token_hex(10),
                                                                       "text": "tin nhắn từ OA"},
                                "timestamp": _ms()}, **options)

    async def redeliver(self, msg_id: str) -> int:
        """The same call again, byte for byte (same signature), as a retrying Zalo would."""
        body, headers = self._history[msg_id]
        return await self._post(body, headers)

    def event(self, msg_id: str) -> dict:
        return json.loads(self._history[msg_id][0])

    async def _user_event(self, user: str, name: str, message: dict, *, follower: bool = True,
                          **options: Any) -> str:
        if follower:
            self.followers.add(user)
        msg_id = secrets.token_hex(10)
        event = {"app_id": self.app_id, "user_id_by_app": "55" + user, "event_name": name,
                 "sender": {"id": user}, "recipient": {"id": self.oa_id},
                 "message": {**message, "msg_id": msg_id}, "timestamp": _ms()}
        await self.push(event, **options)
        return msg_id

    # ---------------------------------------------------------------- the webhook
    def sign(self, body: bytes, timestamp: str, secret: str | None = None) -> str:
        digest = hashlib.sha256(self.app_id.encode() + body + timestamp.encode() +
                                (self.oa_secret if secret is None else secret).encode()).hexdigest()
        return f"mac={digest}"

    async def push(self, event: dict, *, sign: bool = True, secret: str | None = None, signature: str | None = None,
                   timestamp: str | None = None, indent: int | None = None) -> int:
        """POST an event to the webhook, signed as Zalo signs it (unless told otherwise); returns the status."""
        if timestamp is not None:
            event = {**event, "timestamp": timestamp}
        body = json.dumps(event, ensure_ascii=False, indent=indent,
                          separators=None if indent else (",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-ZEvent-Signature"] = signature
        elif sign:
            headers["X-ZEvent-Signature"] = self.sign(body, str(event.get("timestamp", "")), secret)
        message = event.get("message") if isinstance(event, dict) else None
        msg_id = message.get("msg_id") if isinstance(message, dict) else None
        if isinstance(msg_id, str) and msg_id:
            self._history[msg_id] = (body, headers)
        return await self._post(body, headers)

    async def redeliver_last(self) -> int:
        """The last call again, byte for byte (for events without a msg_id: follow, unfollow, …)."""
        return await self._post(*self._last_post)

    async def _post(self, body: bytes, headers: dict) -> int:
        assert self.webhook_url.startswith("http://127.0.0.1:"), "a test never reaches the network"
        self._last_post = (body, headers)
        async with aiohttp.ClientSession() as http:
            async with http.post(self.webhook_url, data=body, headers=headers) as response:
                self.pushes.append(response.status)
                return response.status

    # ---------------------------------------------------------------- inspection
    def messages_to(self, user: str) -> list[dict]:
        return [m for m in self.sent if m["user_id"] == user]

    def texts_to(self, user: str) -> list[str]:
        return [m.get("text") or "" for m in self.messages_to(user)]

    def buttons(self, message: dict) -> list[dict]:
        attachment = message["message"].get("attachment") or {}
        return list((attachment.get("payload") or {}).get("buttons") or [])

    def button_payload(self, user: str, title: str) -> str:
        for message in reversed(self.messages_to(user)):
            for button in self.buttons(message):
                if title in button["title"]:
                    return button["payload"]
        raise AssertionError(f"no button {title!r} sent to {user}: "
                             f"{[b['title'] for m in self.messages_to(user) for b in self.buttons(m)]}")

    async def wait_for_messages(self, user: str, count: int, timeout: float = 10.0) -> list[dict]:
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages_to(user)) < count:
                    self._new_message.clear()
                    await self._new_message.wait()
        except TimeoutError:
            raise AssertionError(f"expected {count} messages to {user} within {timeout}s, "
                                 f"got {self.texts_to(user)}") from None
        return self.messages_to(user)

    # ------------------------------------------------------------------ server
    def _error(self, path: str, error: int, message: str) -> web.Response:
        self.refused.append((path, error))
        return web.json_response({"error": error, "message": message})

    def _check_token(self, request: web.Request) -> web.Response | None:
        path = request.path
        if (queued := self._failures.get(path)):
            failure = queued.pop(0)
            return self._error(path, failure.error, failure.message)
        token = request.headers.get("access_token", "")
        if token not in self.access_tokens:
            return self._error(path, -216, "Access token is invalid")
        if not self.access_tokens[token]:
            return self._error(path, -216, "Access token is invalid")
        return None

    async def _message_cs(self, request: web.Request) -> web.Response:
        if (refused := self._check_token(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return self._error(request.path, -201, "body is invalid")
        user = ((body.get("recipient") or {}).get("user_id"))
        message = body.get("message") or {}
        if not isinstance(user, str) or not user:
            return self._error(request.path, -201, "user_id is invalid")
        if user not in self.followers:
            return self._error(request.path, -213, "User has not followed OA")
        if user in self.outside_window:
            return self._error(request.path, -230, "User has not interacted with OA in past 7 days")
        text = message.get("text")
        attachment = message.get("attachment")
        if text is None and attachment is None:
            return self._error(request.path, -201, "message is invalid")
        if text is not None and (not isinstance(text, str) or not 1 <= len(text) <= 2000):
            return self._error(request.path, -201, "text is invalid")
        if attachment is not None:
            payload = attachment.get("payload") or {}
            if attachment.get("type") != "template":
                return self._error(request.path, -201, "attachment is invalid")
            if payload.get("template_type") == "media":
                element = (payload.get("elements") or [{}])[0]
                if element.get("media_type") != "image" or element.get("attachment_id") not in self.uploads:
                    return self._error(request.path, -100, "attachment_id was expired")
            else:
                buttons = payload.get("buttons") or []
                if not 1 <= len(buttons) <= self.max_buttons or text is None:
                    return self._error(request.path, -201, "buttons are invalid")
                for button in buttons:
                    if (button.get("type") != "oa.query.hide" or not isinstance(button.get("payload"), str)
                            or not button.get("title")):
                        return self._error(request.path, -201, "button is invalid")
        message_id = secrets.token_hex(10)
        self.sent.append({"user_id": user, "text": text, "message": copy.deepcopy(message), "message_id": message_id})
        self._new_message.set()
        return web.json_response({"error": 0, "message": "Success", "data": {"message_id": message_id,
                                                                           "user_id": user}})

    async def _upload_image(self, request: web.Request) -> web.Response:
        if (refused := self._check_token(request)) is not None:
            return refused
        post = await request.post()
        upload = post.get("file")
        if upload is None or not hasattr(upload, "file"):
            return self._error(request.path, -201, "file is invalid")
        data = upload.file.read()
        if len(data) > self.image_limit:
            return self._error(request.path, -210, "File size exceeds the limit")
        attachment_id = "ATT-" + secrets.token_hex(8)
        self.uploads[attachment_id] = data
        return web.json_response({"error": 0, "message": "Success", "data": {"attachment_id": attachment_id}})

    async def _template(self, request: web.Request) -> web.Response:
        """ZBS template by user_id: exactly user_id, template_id, template_data; no tracking_id."""
        if (refused := self._check_token(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return self._error(request.path, -201, "body is invalid")
        if not isinstance(body, dict):
            return self._error(request.path, -201, "body is invalid")
        for extra in ("tracking_id", "phone", "recipient"):
            if extra in body:
                return self._error(request.path, -201, f"{extra} is invalid")
        user = body.get("user_id")
        if not isinstance(user, str) or not user:
            return self._error(request.path, -201, "user_id is invalid")
        if user not in self.followers:
            return self._error(request.path, -213, "User has not followed OA")
        if not body.get("template_id") or not isinstance(body.get("template_data"), dict):
            return self._error(request.path, -201, "template is invalid")
        message_id = secrets.token_hex(10)
        self.templates.append({**body, "message_id": message_id})
        self._new_message.set()
        return web.json_response({"error": 0, "message": "Success", "data": {
            "message_id": message_id, "user_id": user, "sent_time": _ms(),
            "quota": {"quota_type": "purchase_quota", "remain": 4821}}})

    async def _phone_template(self, request: web.Request) -> web.Response:
        """The phone channel (business.openapi.zalo.me/message/template): by phone number only."""
        if (refused := self._check_token(request)) is not None:
            return refused
        body = await request.json()
        if not isinstance(body, dict) or not body.get("phone"):
            return self._error(request.path, -108, "Phone number is invalid")
        return self._error(request.path, -124, "this fake sends no message by phone")

    async def _access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"error": -14001, "error_name": "Invalid request"})
        if request.headers.get("secret_key") != self.app_secret or form.get("app_id") != self.app_id:
            return web.json_response({"error": -14002, "error_name": "Invalid app_id or secret_key"})
        if self.refresh_delay:
            await asyncio.sleep(self.refresh_delay)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            token = str(form.get("refresh_token") or "")
            self.refresh_calls.append(token)
            if self._refresh_failures:
                return web.json_response(self._refresh_failures.pop(0))
            if self.refresh_tokens.get(token) != "live":
                if token in self.refresh_tokens:
                    self.reused_refresh.append(token)
                return web.json_response({"error": -14014, "error_name": "Invalid refresh token",
                                          "error_description": "Refresh token is invalid or was already used"})
            self.refresh_tokens[token] = "spent"
            self.access_tokens[self._issued_with[token]] = False  # the pair is replaced: its access token dies
            if self.hang_after_spending:
                await asyncio.sleep(self.hang_after_spending)  # spent, but the answer never arrives in time
        elif grant == "authorization_code":
            code, verifier = str(form.get("code") or ""), str(form.get("code_verifier") or "")
            challenge, used = self._codes.get(code, ("", True))
            digest = hashlib.sha256(verifier.encode()).digest()
            matches = challenge in (base64.urlsafe_b64encode(digest).decode().rstrip("="),
                                    base64.b64encode(digest).decode().rstrip("="))
            if used or not matches or len(verifier) != 43:
                return web.json_response({"error": -14019, "error_name": "Invalid code or code_verifier"})
            self._codes[code] = (challenge, True)
        else:
            return web.json_response({"error": -14003, "error_name": "Invalid grant_type"})
        access, refresh = self.issue_pair()
        return web.json_response({"access_token": access, "refresh_token": refresh, "expires_in": "90000"})

    async def _file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files:
            return web.Response(status=404)
        self.downloads += 1
        data, mime = self._files[name]
        return web.Response(body=data, content_type=mime)

    def _serve(self, data: bytes, extension: str, mime: str) -> str:
        name = f"{next(self._file_ids)}{extension}"
        self._files[name] = (data, mime)
        return f"{self.base_url}/files/{name}"


def _ms() -> str:
    return str(int(time.time() * 1000))
