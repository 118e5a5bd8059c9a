"""Zalo Official Account: our own thin aiohttp client, the OA's tokens, and the adapter between the
OA's webhook events and the handlers, so a police unit's existing OA can be the tip line.

Thin on purpose, like the Zalo Bot Platform adapter (bot/channels/zalo_bot.py): what to ask and what to
keep is decided by the channel-neutral handlers. No token, chat id or message text is ever logged.

What we could check, and against what. developers.zalo.me itself is not in our stored copy of the web;
what follows is from third-party transcriptions and integrations (stored in 2026), quoted where they
agree with each other, and marked where they do not:

- Webhook signature. hainh.me ("Zalo API - PHP Webhook Callback Official Account", also copied on
  tinhoc88.com): "so sánh giá trị trong header X-ZEvent-Signature với mã hash SHA256 của chuỗi kết hợp
  4 thông tin sau theo thứ tự: ID của ứng dụng. Chuỗi JSON trả về trong body. Timestamp được lấy từ chuỗi
  JSON trên. Mã bí mật của Official Account được liên kết", and "OA Secret Key … không phải là khóa bí mật
  của ứng dụng (App Secret Key)". Working integrations strip a "mac=" prefix before comparing, as the
  issue describes. DISAGREEMENTS: one guide (hoangnd25/monorepo, wip/zalo-platform-integration.md) hashes
  the OA id instead of the app id; one integration takes the timestamp from an X-ZEvent-Timestamp header
  ("sha256(app_id+raw_body+header_ts+secret)"); another computes an HMAC keyed with the secret (no
  integration we found that way shows it working). Chosen: sha256(app_id + raw body + timestamp + OA
  secret key) over the raw bytes, with our configured app id; the timestamp from the body, or from
  X-ZEvent-Timestamp when that header is present (both need the secret, so accepting either weakens
  nothing); the ±5-minute window is always checked on the body's timestamp, which the hash covers; the
  "mac=" prefix is optional. An unsigned body that is exactly ``{}`` (Zalo's check when the webhook URL
  is saved) gets 200 and nothing else; anything else unsigned or mis-signed gets 401 and nothing else.
- Webhook delivery. Both guides: answer "HTTP Code 200 OK và phải phản hồi trong vòng 2 giây"; failed
  deliveries are retried ("liên tục gửi lại trong vòng 12 giờ" says one, "30s, 5m, 15m, 30m, 1h" says the
  other). NOT VERIFIED: whether a retry keeps the first timestamp. If it does, retries later than 5 minutes
  are refused by the replay window; the first delivery is stored before we answer, so only an event we
  never received in time can be lost that way.
- Event shapes (guides and logged payloads agree): ``{"app_id", "event_name", "timestamp": "<epoch ms as
  a string>", "sender": {"id"}, "recipient": {"id"}, "message": {"msg_id", "text", "attachments":
  [{"type", "payload"}]}}``. A logged user_send_location: ``"attachments": [{"payload": {"coordinates":
  {"latitude": "10.7923119", "longitude": "106.7820651"}}, "type": "location"}]`` (strings). Images,
  audio, video, files carry ``payload.url`` (files also ``name`` and ``size``). follow/unfollow carry
  ``follower.id`` and ``oa_id`` instead of sender/recipient. Echoes of what the OA sent arrive as
  oa_send_* and as user_received_message / user_seen_message, and are ignored here. NOT VERIFIED: the
  shape of user_submit_info (we read ``info.phone`` and treat it as the citizen's own number).
- A button of type oa.query.hide: its payload comes back as a user_send_text whose text is the payload
  ("The message.text field contains the payload value configured in the button that was clicked"), not
  shown in the citizen's chat. Payloads in every example start with "#". Shape used, from the one example
  that sends text and buttons together: ``"message": {"text": …, "attachment": {"type": "template",
  "payload": {"buttons": [{"title", "type": "oa.query.hide", "payload"}]}}}``; others wrap the buttons
  with ``"template_type": "button"``. NOT VERIFIED: the most buttons per message (we send 4, the smallest
  limit seen, and continue in further messages) and the longest title (we cut at 100 characters).
- Sending. ``POST https://openapi.zalo.me/v3.0/oa/message/cs`` with the ``access_token`` header, JSON
  ``{"recipient": {"user_id"}, "message": {"text"}}``; success is ``{"error": 0, "message": "Success",
  "data": {"message_id"}}`` and integrations check ``data.error !== 0`` even on HTTP 200: so any answer
  that is not JSON with ``error == 0`` is a ZaloOAError here. The 2,000-character text limit is from the
  issue; no source we found states it (the Zalo Bot Platform's sendMessage has the same one).
- Images: ``POST https://openapi.zalo.me/v2.0/oa/upload/image``, multipart field ``file``, answer
  ``data.attachment_id``, then a message ``{"attachment": {"type": "template", "payload": {"template_type":
  "media", "elements": [{"media_type": "image", "attachment_id"}]}}}``. One integration lists the upload
  under /v3.0; most use /v2.0, which we use. NOT VERIFIED: the size limit; we keep the issue's "about
  1 MB" (configurable), shrink larger photos to fit, and otherwise say in words that the file stays in
  the tip.
- Error codes, as one guide tabulates them: -216 "Access token is invalid", -220 "access_token is expired
  or removed", -213 "User has not followed OA", -230 "User has not interacted with OA in past 7 days",
  -232 "User has not interacted, or last interaction expired", -211 "Out of quota", -218 "Out of quota
  receive" (this user's), -32 "Your application reached limit call api". What each does here: see
  ``send_replies`` and ``ZaloOAChannel.send_reminder``.
- Tokens and OAuth v4 (the same guide, and every integration): ``POST https://oauth.zaloapp.com/v4/oa/
  access_token``, form-encoded, header ``secret_key`` (the App Secret Key); ``grant_type=refresh_token``
  with ``refresh_token`` and ``app_id``, or ``grant_type=authorization_code`` with ``code``, ``app_id``,
  ``code_verifier``. Answer ``{"access_token", "refresh_token", "expires_in": "90000"}`` (25 hours, a
  string); a refused one is an HTTP 200 with ``error``, ``error_name``, ``error_description`` and no
  access_token. "Refresh Token | 3 months | Refresh access token (single-use, rotates)". Permission URL:
  ``https://oauth.zaloapp.com/v4/oa/permission?app_id&redirect_uri&code_challenge&state``; the redirect
  brings ``code``, ``oa_id`` and ``state``; "Code verifier must be exactly 43 characters with uppercase,
  lowercase, and numbers", "code_challenge = Base64.encode(SHA-256.hash(ASCII(code_verifier))) - without
  padding". DISAGREEMENT: that formula says Base64, the guide's own code makes it URL-safe (RFC 7636).
  Chosen: a verifier is drawn again until its challenge has no "+", "/", "-" or "_", so both readings
  give the same string.
- The 7-day window and its 48 free hours, and templates outside it: the guide (consultation messages
  "Free within 48 hours of user interaction, paid after 48 hours (up to 7 days)"; outside, "ZBS Template
  Message", ``POST https://business.openapi.zalo.me/message/template`` with ``access_token``,
  ``template_id``, ``template_data``, ``tracking_id`` and a ``phone`` or, it says, a ``user_id``).
  NOT VERIFIED: sending a template by user_id (another integration nests it as ``recipient.user_id``);
  we send ``user_id`` at the top level, and only when an operator configured an approved template.
- Also noted, not used: replies sent with the citizen's ``message_id`` count as replies rather than
  proactive messages in Zalo's quota ("Nếu tin gửi đi có chỉ user_id và không có message_id thì tin sẽ
  được tính là tin chủ động", zalooa.freshdesk.com); the shape of that recipient was not found, so we
  always address ``user_id``.

Choices made here:
- An event is stored sealed (storage/zalo_oa.py) before Zalo gets its 200, deduplicated by msg_id, and
  handled after; a sweeper handles what a stopped worker left. The handlers' processed-update table makes
  a second handling of the same event change nothing.
- Refreshing: one worker at a time under a lock on the OA's token row (PostgreSQL: SELECT … FOR UPDATE,
  with lock and idle-in-transaction timeouts longer than the OAuth call; SQLite: the single writer), the
  row re-read under the lock, the new pair committed before anyone uses it. A refresh token whose fate is
  unknown (sent, but no answer) is never sent again: the admins are told to reconnect. Known limit: if the
  process dies between Zalo's answer and our commit, that answer is lost and the next refresh resends a
  token Zalo may already have spent (it then fails, and the admins are told).
- Every citizen's last interaction is kept sealed, under a key unlike their conversation's.
- Zalo gives no language: ``language`` is None and the handlers use the configured default.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import math
import mimetypes
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from sqlalchemy import text as sql

from bot.channels.downloads import DownloadFailed, download_capped
from bot.channels.http_client import HttpClient
from bot.delivery import Deliveries
from bot.reminders import BLOCKED, REJECTED, SENT, TRANSIENT, Outcome
from handlers.i18n import translator
from handlers.messages import Choice, Contact, IncomingFile, Inbound, Location, OutgoingFile, Reply, Route, split_text
from handlers.tipline import TipLine
from storage import zalo_oa as store
from storage.officers import list_officers, officer_route

log = logging.getLogger(__name__)

CHANNEL = "zalo_oa"
API_BASE = "https://openapi.zalo.me"
OAUTH_BASE = "https://oauth.zaloapp.com"
TEMPLATE_BASE = "https://business.openapi.zalo.me"
MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
TEMPLATE_PATH = "/message/template"
TOKEN_PATH = "/v4/oa/access_token"
PERMISSION_PATH = "/v4/oa/permission"
SIGNATURE_HEADER = "X-ZEvent-Signature"
TIMESTAMP_HEADER = "X-ZEvent-Timestamp"

TEXT_LIMIT = 2000
BUTTONS_PER_MESSAGE = 4  # the smallest limit seen in integrations; Zalo's own is not documented for us
BUTTON_TITLE_LIMIT = 100
IMAGE_LIMIT = 1024 * 1024  # "about 1 MB" (the issue); configurable
REPLAY_WINDOW = timedelta(minutes=5)
WINDOW = timedelta(days=7)  # consultation messages reach a citizen this long after they last interacted
FREE_WINDOW = timedelta(hours=48)  # … and cost nothing for this long
EXPIRES_IN_DEFAULT = 90_000  # seconds; what Zalo answers ("expires_in": "90000")
STORE_DEADLINE = 1.5  # seconds to store an event before Zalo's 2 s are up; later, Zalo is told to retry
EVENT_LEASE = timedelta(minutes=2)  # a stored event nobody finished by then is taken by the sweeper
RETRY_FAILED_REFRESH = timedelta(hours=1)  # after Zalo refused a refresh, not tried again sooner
# A pair this new that is already refused is not fixed by another refresh (the OA may have withdrawn the
# app's permission): not refreshed again sooner, so one dead token does not spend a refresh per message.
FRESH_PAIR = timedelta(minutes=5)
RATE_LIMIT_PAUSE = 2.0  # -32 on a reply: one more try after this long
KEEP_EVENTS = timedelta(days=3)  # dedup rows outlive Zalo's retries (at most 12 hours)
KEEP_BUTTONS = timedelta(days=30)

TOKEN_ERRORS = (-216, -220)  # invalid / expired access token: refresh once, retry once
NOT_FOLLOWER = -213
OUTSIDE_WINDOW = (-230, -232)
OA_QUOTA, USER_QUOTA = -211, -218
RATE_LIMITED = -32

USER_MESSAGES = {f"user_send_{kind}" for kind in ("text", "image", "gif", "link", "audio", "video", "sticker",
                                                  "location", "business_card", "file")}
HANDLED_EVENTS = USER_MESSAGES | {"follow", "unfollow", "user_submit_info"}
ECHOES = {"user_received_message", "user_seen_message"}  # and every oa_send_*
BUTTON_PAYLOAD = re.compile(r"#tb([a-z2-7]{12})")
STALE_BUTTON = "zalo_oa:stale"  # an old button whose meaning is forgotten: the handlers answer it like any unknown one
_HEX64 = re.compile(r"[0-9a-f]{64}")


# --- errors ------------------------------------------------------------------------------------------

class ZaloOAError(Exception):
    """An OpenAPI call that did not succeed: ``error != 0`` (even on HTTP 200), an HTTP error, a network failure.

    Carries Zalo's code and words, never a token, a user id or the text we sent."""

    def __init__(self, error_code: int | None, description: str, *, method: str = "") -> None:
        self.error_code, self.description, self.method = error_code, description, method
        code = f" {error_code}" if error_code is not None else ""
        super().__init__(f"Zalo OA {method or 'call'} failed:{code} {description}")


class OAuthError(Exception):
    """A token request that gave no new pair; the subclass says whether the refresh token may be spent."""

    def __init__(self, description: str, *, error_code: int | None = None) -> None:
        self.error_code, self.description = error_code, description
        super().__init__(description)


class OAuthRefused(OAuthError):
    """Zalo answered, without a pair (an HTTP 200 with ``error``): the token was refused, not spent."""


class OAuthUnknown(OAuthError):
    """The request was sent but no usable answer came: Zalo may have spent the refresh token."""


class OAuthUnreachable(OAuthError):
    """The request never left (no connection): the refresh token is untouched."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int = EXPIRES_IN_DEFAULT


# --- PKCE and the permission URL ---------------------------------------------------------------------

_VERIFIER_ALPHABET = string.ascii_letters + string.digits


def code_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def new_code_verifier() -> str:
    """43 letters and digits, drawn until the challenge reads the same in Base64 and in Base64url."""
    while True:
        verifier = "".join(secrets.choice(_VERIFIER_ALPHABET) for _ in range(43))
        if not set(code_challenge(verifier)) & set("+/-_"):
            return verifier


def permission_url(*, oauth_base: str, app_id: str, redirect_uri: str, challenge: str, state: str) -> str:
    query = urlencode({"app_id": app_id, "redirect_uri": redirect_uri, "code_challenge": challenge, "state": state})
    return f"{oauth_base.rstrip('/')}{PERMISSION_PATH}?{query}"


# --- the webhook signature ---------------------------------------------------------------------------

def signature_of(*, app_id: str, raw: bytes, timestamp: str, secret_key: str) -> str:
    """hex(sha256(app_id + raw body + timestamp + OA secret key)): what Zalo puts after "mac=" (see above)."""
    return hashlib.sha256(app_id.encode() + raw + timestamp.encode() + secret_key.encode()).hexdigest()


def _ms(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not text.isdigit():
        return None
    number = int(text)
    return number * 1000 if number < 100_000_000_000 else number  # seconds, should Zalo ever send them


@dataclass(frozen=True)
class Verdict:
    status: int  # what the webhook answers
    event: dict | None = None  # the verified event (None: the probe, or a refusal)


def verify_event(raw: bytes, signature: str | None, *, app_id: str, secret_key: str, now_ms: int,
                 timestamp_header: str | None = None) -> Verdict:
    """Check a webhook call over its raw bytes: 200 with the event, 200 for the unsigned ``{}`` probe, else 401."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        body = None
    if body == {}:
        return Verdict(200)  # the check Zalo makes when the URL is saved: carries no event, changes nothing
    if not isinstance(body, dict) or not app_id or not secret_key:
        return Verdict(401)
    given = (signature or "").strip().lower()
    given = given[4:].strip() if given.startswith("mac=") else given
    body_ts = body.get("timestamp")
    sent_at = _ms(body_ts)
    if not _HEX64.fullmatch(given) or sent_at is None:
        return Verdict(401)
    stamps = [str(body_ts).strip()]
    if timestamp_header and timestamp_header.strip() not in stamps and _ms(timestamp_header) is not None:
        stamps.append(timestamp_header.strip())
    matched = [stamp for stamp in stamps if hmac.compare_digest(
        signature_of(app_id=app_id, raw=raw, timestamp=stamp, secret_key=secret_key), given)]
    window = REPLAY_WINDOW.total_seconds() * 1000
    if not matched or any(abs(now_ms - _ms(stamp)) > window for stamp in [str(body_ts)] + matched):
        return Verdict(401)
    return Verdict(200, body)


# --- the client --------------------------------------------------------------------------------------

class ZaloOAClient(HttpClient):
    """The OA OpenAPI and OAuth v4 over aiohttp: one method per call we use, ``error`` always checked."""

    def __init__(self, *, app_id: str, app_secret: str = "", api_base: str = API_BASE, oauth_base: str = OAUTH_BASE,
                 template_base: str = TEMPLATE_BASE, timeout: float = 20.0, oauth_timeout: float = 8.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.app_id, self._app_secret = app_id, app_secret
        self.api_base, self.oauth_base = api_base.rstrip("/"), oauth_base.rstrip("/")
        self.template_base = template_base.rstrip("/")
        self.timeout, self.oauth_timeout = timeout, oauth_timeout
        super().__init__(session)

    # oauth_timeout is short on purpose: a refresh holds the OA's token row (on SQLite, the database's one
    # writer) until Zalo answers, and other processes on a SQLite file wait at most 10 s for it.

    def __repr__(self) -> str:
        return f"ZaloOAClient(api_base={self.api_base!r}, oauth_base={self.oauth_base!r})"

    @staticmethod
    def _clean(text: Any, hidden: Iterable[str]) -> str:
        # Zalo's words end up in logs: short, and never quoting a token or what we sent.
        text = str(text or "")
        for value in hidden:
            if isinstance(value, str) and len(value) >= 4:
                text = text.replace(value, "<redacted>")
        return text[:300]

    async def call(self, path: str, *, access_token: str, json_body: dict | None = None,
                   form: aiohttp.FormData | None = None, base: str | None = None, hidden: Iterable[str] = (),
                   method: str = "") -> dict:
        """POST one OpenAPI call; its whole answer on ``error == 0``, else ZaloOAError."""
        session = await self._http()
        what = method or path
        hidden = [access_token, *hidden]
        failure: str | None = None
        try:
            async with session.post(f"{base or self.api_base}{path}", json=json_body, data=form,
                                    headers={"access_token": access_token},
                                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:
            failure = "no answer in time"
        except aiohttp.ClientError as exc:
            failure = f"network error ({type(exc).__name__})"  # the class only: never a URL or header
        if failure is not None:
            raise ZaloOAError(None, failure, method=what)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ZaloOAError(status if status >= 400 else None, f"HTTP {status}, answer is not Zalo JSON", method=what)
        code = body.get("error")
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        if code != 0 or status >= 400:
            raise ZaloOAError(code if code not in (None, 0) else (status if status >= 400 else None),
                              self._clean(body.get("message"), hidden) or f"HTTP {status}", method=what)
        return body

    async def send_message(self, access_token: str, user_id: str, message: dict) -> dict:
        body = await self.call(MESSAGE_PATH, access_token=access_token, method="message/cs", hidden=[user_id],
                               json_body={"recipient": {"user_id": user_id}, "message": message})
        return body.get("data") or {}

    async def upload_image(self, access_token: str, data: bytes, *, filename: str, mime: str) -> str:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type=mime)
        body = await self.call(UPLOAD_IMAGE_PATH, access_token=access_token, form=form, method="upload/image")
        attachment_id = (body.get("data") or {}).get("attachment_id")
        if not isinstance(attachment_id, str) or not attachment_id:
            raise ZaloOAError(None, "upload answered without an attachment_id", method="upload/image")
        return attachment_id

    async def send_template(self, access_token: str, *, user_id: str, template_id: str, template_data: dict,
                            tracking_id: str) -> dict:
        body = await self.call(TEMPLATE_PATH, access_token=access_token, base=self.template_base,
                               method="message/template", hidden=[user_id],
                               json_body={"user_id": user_id, "template_id": template_id,
                                          "template_data": template_data, "tracking_id": tracking_id})
        return body.get("data") or {}

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """A citizen's file from Zalo's URL; at most ``max_bytes + 1`` bytes, so the handlers can say "too large"."""
        try:
            return await download_capped(await self._http(), url, max_bytes=max_bytes, timeout=self.timeout)
        except DownloadFailed as exc:
            raise ZaloOAError(None, str(exc), method="download") from None

    # --- OAuth v4 ---

    async def _token_request(self, form: dict[str, str]) -> TokenPair:
        session = await self._http()
        hidden = [v for k, v in form.items() if k != "grant_type"] + [self._app_secret]
        try:
            async with session.post(f"{self.oauth_base}{TOKEN_PATH}", data=form,
                                    headers={"secret_key": self._app_secret},
                                    timeout=aiohttp.ClientTimeout(total=self.oauth_timeout)) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            failure: OAuthError = OAuthUnreachable(f"could not connect ({type(exc).__name__})")
        except TimeoutError:
            failure = OAuthUnknown("no answer in time")
        except aiohttp.ClientError as exc:
            failure = OAuthUnknown(f"network error ({type(exc).__name__})")
        else:
            failure = None
        if failure is not None:
            raise failure
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OAuthUnknown(f"HTTP {status}, answer is not JSON")
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            code = body.get("error")
            try:
                code = int(code) if code is not None else None
            except (TypeError, ValueError):
                code = None
            words = body.get("error_name") or body.get("error_description") or body.get("message") or f"HTTP {status}"
            if status >= 500:
                raise OAuthUnknown(self._clean(words, hidden), error_code=code)
            raise OAuthRefused(self._clean(words, hidden), error_code=code)
        try:
            expires_in = int(str(body.get("expires_in") or EXPIRES_IN_DEFAULT))
        except ValueError:
            expires_in = EXPIRES_IN_DEFAULT
        refresh = body.get("refresh_token")
        return TokenPair(access, refresh if isinstance(refresh, str) else "", max(expires_in, 60))

    async def refresh(self, refresh_token: str) -> TokenPair:
        return await self._token_request({"refresh_token": refresh_token, "app_id": self.app_id,
                                          "grant_type": "refresh_token"})

    async def exchange_code(self, code: str, code_verifier: str) -> TokenPair:
        return await self._token_request({"code": code, "app_id": self.app_id, "grant_type": "authorization_code",
                                          "code_verifier": code_verifier})


# --- the token pair ----------------------------------------------------------------------------------

class NotConnected(Exception):
    """No token pair is stored yet: `tinbao zalo-oa connect` has not been run."""


_ALERTS = {
    "vi": "⚠️ Zalo OA: không làm mới được mã truy cập (access token) của OA ({reason}). Mã cũ vẫn được giữ và "
          "dùng đến khi hết hạn. Quản trị viên cần chạy lệnh `tinbao zalo-oa connect` để kết nối lại OA.",
    "en": "⚠️ Zalo OA: the OA's access token could not be refreshed ({reason}). The old one is kept and used "
          "until it expires. An admin needs to run `tinbao zalo-oa connect` to connect the OA again.",
}


class TokenKeeper:
    """The OA's access token for every caller in this process, refreshed under a database lock.

    The lock is the OA's token row (PostgreSQL: SELECT … FOR UPDATE; SQLite: the single writer), held
    through the OAuth call; the row is re-read under it, so a worker that waited finds the pair another
    one stored and spends nothing."""

    def __init__(self, services, client: ZaloOAClient, oa_id: str, *, refresh_every: timedelta = timedelta(hours=20),
                 on_failure: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.services, self.client, self.oa_id = services, client, oa_id
        self.refresh_every = refresh_every
        self.on_failure = on_failure
        self._cached: tuple[str, int] | None = None
        self.refreshes = 0  # pairs this keeper obtained from Zalo (tests, logs)

    async def current(self) -> tuple[str, int]:
        """(access token, its version): from memory, else from the database."""
        if self._cached is None:
            async with self.services.db.transaction() as session:
                stored = await store.load_tokens(session=session, keyring=self.services.keyring, oa_id=self.oa_id)
            if stored is None:
                raise NotConnected("no Zalo OA tokens are stored; run `tinbao zalo-oa connect`")
            self._cached = (stored.access_token, stored.version)
        return self._cached

    async def store_first(self, pair: TokenPair) -> int:
        """`tinbao zalo-oa connect`: the pair from the first grant replaces whatever was stored."""
        async with self.services.db.transaction() as session:
            version = await store.save_tokens(session=session, keyring=self.services.keyring, oa_id=self.oa_id,
                                              access_token=pair.access_token, refresh_token=pair.refresh_token,
                                              expires_in=pair.expires_in, now=self.services.clock())
        self._cached = (pair.access_token, version)
        return version

    def _due(self, stored: store.StoredTokens, now: datetime) -> bool:
        return (now - stored.refreshed_at >= self.refresh_every
                or stored.access_expires_at - now <= timedelta(hours=2))

    async def refresh_if_due(self) -> bool:
        """The scheduled refresh (about every 20 h, or when the access token has little time left)."""
        async with self.services.db.transaction() as session:
            stored = await store.load_tokens(session=session, keyring=self.services.keyring, oa_id=self.oa_id)
        if stored is None or not self._due(stored, self.services.clock()):
            return False
        return await self.refresh(stale_version=stored.version, scheduled=True) is not None

    async def refresh(self, *, stale_version: int | None, scheduled: bool = False) -> str | None:
        """A fresh access token after ``stale_version`` stopped working (or fell due); None if there is none.

        Never spends a refresh token twice: the row is locked and re-read, and a token that may have been
        spent (an answer that never came) is not sent again. Shielded: a caller that gives up (a reminder's
        send timeout) does not cut a refresh short between Zalo's answer and our commit."""
        return await asyncio.shield(self._refresh(stale_version=stale_version, scheduled=scheduled))

    async def _refresh(self, *, stale_version: int | None, scheduled: bool) -> str | None:
        db, keyring = self.services.db, self.services.keyring
        problem: tuple[str, bool] | None = None  # (what to say, whether to alert the admins)
        fresh: tuple[str, int] | None = None
        async with db.transaction() as session:
            if not db.is_sqlite:
                # The lock lives as long as this transaction. Waiters must outwait the OAuth call, and the
                # server must not end this transaction while the call is out (another worker could then
                # spend the same refresh token).
                hold = int(self.client.oauth_timeout * 2 + 30)
                connection = await session.connection()
                await connection.execute(sql(f"SET LOCAL lock_timeout = '{hold}s'"))
                await connection.execute(sql(f"SET LOCAL idle_in_transaction_session_timeout = '{hold}s'"))
            stored = await store.load_tokens(session=session, keyring=keyring, oa_id=self.oa_id, lock=True)
            now = self.services.clock()
            if stored is None:
                raise NotConnected("no Zalo OA tokens are stored; run `tinbao zalo-oa connect`")
            if stale_version is not None and stored.version != stale_version:
                fresh = (stored.access_token, stored.version)  # another worker (or `connect`) stored a new pair
            elif scheduled and not self._due(stored, now):
                fresh = (stored.access_token, stored.version)
            elif stored.refresh_state == "unknown" or not stored.refresh_token:
                problem = ("the refresh token may already have been used; reconnect the OA", False)
            elif stored.refresh_state == "failed" and stored.failed_at and now - stored.failed_at < RETRY_FAILED_REFRESH:
                problem = (f"Zalo refused the last refresh ({stored.failure}); not retried yet", False)
            elif not scheduled and now - stored.refreshed_at < FRESH_PAIR:
                problem = ("a pair obtained minutes ago is already refused; the OA may have withdrawn the app's "
                           "permission", False)
            else:
                try:
                    pair = await self.client.refresh(stored.refresh_token)
                except OAuthUnreachable as exc:
                    problem = (f"Zalo OAuth unreachable: {exc.description}", False)  # nothing was spent
                except OAuthRefused as exc:
                    reason = f"{exc.error_code} {exc.description}".strip()
                    await store.record_refresh_failure(session=session, oa_id=self.oa_id, state="failed",
                                                       failure=reason, now=now)
                    problem = (reason, True)
                except OAuthUnknown as exc:
                    await store.record_refresh_failure(session=session, oa_id=self.oa_id, state="unknown",
                                                       failure=exc.description, now=now)
                    problem = (f"{exc.description}; the refresh token may be spent", True)
                else:
                    version = await store.save_tokens(
                        session=session, keyring=keyring, oa_id=self.oa_id, access_token=pair.access_token,
                        refresh_token=pair.refresh_token, expires_in=pair.expires_in, now=now,
                        refresh_state="ok" if pair.refresh_token else "unknown",
                        failure=None if pair.refresh_token else "answer without a refresh token")
                    fresh = (pair.access_token, version)
                    self.refreshes += 1
                    if not pair.refresh_token:
                        problem = ("Zalo answered without a new refresh token", True)
        # Committed: only now is the new pair used, by this worker or any other.
        if fresh is not None:
            if fresh != self._cached:
                log.info("Zalo OA access token %s (version %d)", "refreshed" if self.refreshes else "reloaded", fresh[1])
            self._cached = fresh
        if problem is not None:
            reason, alert = problem
            log.error("Zalo OA token refresh failed: %s; the stored pair is kept", reason)
            if alert and self.on_failure is not None:
                try:
                    await self.on_failure(reason)
                except Exception:
                    log.exception("the admins could not be told about the failed Zalo OA refresh")
        return fresh[0] if fresh is not None else None


async def alert_admins(services, deliveries: Deliveries, reason: str) -> int:
    """Tell every enrolled admin, in their language and through their own channel; returns how many."""
    replies = []
    async with services.db.transaction() as session:
        for officer in await list_officers(session=session):
            if officer.role != "admin" or officer.revoked_at is not None:
                continue
            route = await officer_route(session=session, keyring=services.keyring, officer=officer)
            if route is None:
                continue
            text = _ALERTS.get(route.get("language"), _ALERTS["vi"]).format(reason=reason[:120])
            replies.append(Reply(text, to=Route(route["channel"], route["chat_id"])))
    await deliveries.send(replies, origin=Route("system", "-"))
    return len(replies)


# --- events → Inbound --------------------------------------------------------------------------------

def _user_of(event: dict) -> str | None:
    holder = event.get("follower") if event.get("event_name") in ("follow", "unfollow") else event.get("sender")
    user = holder.get("id") if isinstance(holder, dict) else None
    if isinstance(user, bool) or not isinstance(user, (str, int)) or str(user) == "":
        return None
    return str(user)


def dedup_key(event: dict, oa_id: str) -> str:
    """sha256 of the msg_id; events without one (follow, …) by what they say and when."""
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    msg_id = message.get("msg_id")
    basis = (f"msg:{msg_id}" if msg_id not in (None, "") else
             f"event:{event.get('event_name')}:{_user_of(event)}:{event.get('timestamp')}")
    return hashlib.sha256(f"{oa_id}|{basis}".encode()).hexdigest()


def _update_id(event: dict, oa_id: str) -> str:
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    msg_id = message.get("msg_id")
    if msg_id not in (None, ""):
        text = str(msg_id)
        return text if len(text) <= 64 else hashlib.sha256(text.encode()).hexdigest()
    return dedup_key(event, oa_id)


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _mime(url: str, default: str) -> str:
    guessed = mimetypes.guess_type(urlsplit(url).path)[0]
    return guessed if guessed and guessed.split("/")[0] == default.split("/")[0] else default


def _size(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _coordinate(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


Fetcher = Callable[[str], Callable[[], Awaitable[bytes]]]
_FILE_KINDS = {"user_send_image": ("photo", "image/jpeg"), "user_send_audio": ("voice", "audio/aac"),
               "user_send_video": ("video", "video/mp4"), "user_send_file": ("document", "application/octet-stream")}


def to_inbound(event: dict, *, oa_id: str, fetcher: Fetcher) -> Inbound | None:
    """An OA event as the handlers see it; None for events the tip line does not answer (unfollow, …).

    A button's payload stays in ``text`` here; the channel turns it into the choice it stands for."""
    name = event.get("event_name")
    user = _user_of(event)
    if not isinstance(name, str) or user is None or user == oa_id:
        return None
    inbound = Inbound(channel=CHANNEL, chat_id=user, update_id=_update_id(event, oa_id))
    if name == "follow":
        inbound.text = "/start"  # a new follower is greeted like /start: who we are, and what to tap
        return inbound
    if name == "user_submit_info":
        info = event.get("info") if isinstance(event.get("info"), dict) else {}
        phone = info.get("phone")
        if isinstance(phone, (str, int)) and str(phone).strip():
            inbound.contact = Contact(str(phone).strip(), is_own=True)  # from the citizen's own Zalo profile
        else:
            inbound.unsupported = "user_info"
        return inbound
    if name not in USER_MESSAGES:
        return None
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    attachments = [a for a in message.get("attachments") or [] if isinstance(a, dict)]
    text = message.get("text") if isinstance(message.get("text"), str) and message.get("text").strip() else None
    if name == "user_send_text":
        if text:
            inbound.text = text
        else:
            inbound.unsupported = "empty"
    elif name == "user_send_location":
        payload = attachments[0].get("payload") if attachments and isinstance(attachments[0].get("payload"), dict) else {}
        coordinates = payload.get("coordinates") if isinstance(payload.get("coordinates"), dict) else {}
        lat, lon = _coordinate(coordinates.get("latitude")), _coordinate(coordinates.get("longitude"))
        if lat is not None and lon is not None:
            inbound.location = Location(lat, lon)  # the place's name Zalo adds as text is not an answer
        else:
            inbound.unsupported = "location"
    elif name in _FILE_KINDS:
        kind, default_mime = _FILE_KINDS[name]
        inbound.text = text
        for attachment in attachments:
            payload = attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
            url = _url(payload.get("url"))
            if url:
                filename = payload.get("name") if isinstance(payload.get("name"), str) else None
                inbound.files.append(IncomingFile(kind, _size(payload.get("size")), fetcher(url), filename=filename,
                                                  mime=_mime(filename or url, default_mime)))
        if not inbound.files:
            inbound.unsupported = kind
    elif name == "user_send_link":
        payload = attachments[0].get("payload") if attachments and isinstance(attachments[0].get("payload"), dict) else {}
        inbound.text = text or _url(payload.get("url"))  # a scammer's link is a fine answer to "which account"
        if not inbound.text:
            inbound.unsupported = "link"
    else:  # sticker, gif, business card: nothing the tip line can keep
        inbound.unsupported = name.removeprefix("user_send_")
    return inbound


def seen_key(keyring, user_id: str) -> str:
    """The key of a citizen's last-interaction row: unlike their conversation's key, so the two do not link."""
    return keyring.pseudonym("zoa-seen", user_id)


def button_binding(keyring, user_id: str) -> str:
    return keyring.pseudonym("zoa-btn", user_id)


# --- Reply → OA messages -----------------------------------------------------------------------------

_HINTS = {
    "📍 Send my location": {"vi": "📍 Trên Zalo, bạn có thể gửi vị trí bằng mục «Vị trí», hoặc nhập địa chỉ.",
                            "en": "📍 On Zalo you can send a location with «Location», or type the address."},
    "📞 Share my phone number": {"vi": "✍️ Trên Zalo, hãy nhập số điện thoại của bạn.",
                                "en": "✍️ On Zalo, please type your phone number."},
}
_FILE_NOTICES = {
    "vi": "📎 Một tệp ({kind}, {size}) không gửi được qua Zalo OA; tệp vẫn được lưu trong tin báo.",
    "en": "📎 A file ({kind}, {size}) cannot be sent through Zalo OA; it is still kept with the tip.",
}


def _hint(label: str) -> str:
    for msgid, texts in _HINTS.items():
        for lang in ("vi", "en"):
            if label == translator(lang)(msgid):
                return texts[lang]
    return f"✍️ {label}"


@dataclass
class Part:
    """One OA message: text, and the buttons that go under it."""

    text: str
    choices: list[Choice] = field(default_factory=list)


def render(reply: Reply) -> list[Part]:
    """The reply as OA messages: hints for what OA has no button for, 2,000-character parts, buttons under
    the last part, BUTTONS_PER_MESSAGE at a time (further ones under a "…" of their own)."""
    text = reply.text
    for label in (reply.location_button, reply.contact_button):
        if label:
            text = f"{text}\n\n{_hint(label)}" if text else _hint(label)
    parts = [Part(p) for p in split_text(text, TEXT_LIMIT)] if text.strip() else []
    chunks = [reply.choices[i:i + BUTTONS_PER_MESSAGE] for i in range(0, len(reply.choices), BUTTONS_PER_MESSAGE)]
    for index, chunk in enumerate(chunks):
        if index == 0 and parts:
            parts[-1].choices = chunk
        else:
            parts.append(Part("…", chunk))
    return parts


def _fit_image(data: bytes, limit: int) -> tuple[bytes, str] | None:
    """The image as a JPEG of at most ``limit`` bytes, shrunk if need be; None when it cannot be made to fit."""
    from PIL import Image, UnidentifiedImageError
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    if len(data) <= limit and image.format in ("JPEG", "PNG"):
        return data, "image/jpeg" if image.format == "JPEG" else "image/png"
    image = image.convert("RGB")
    for side, quality in ((2048, 85), (1600, 80), (1280, 70), (960, 60), (640, 50)):
        copy = image.copy()
        copy.thumbnail((side, side))
        out = io.BytesIO()
        copy.save(out, format="JPEG", quality=quality)
        if out.tell() <= limit:
            return out.getvalue(), "image/jpeg"
    return None


def _human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{max(1, size // 1024)} KB"


# --- the channel -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OASettings:
    """The [zalo_oa] section, as the channel uses it."""

    app_id: str
    oa_id: str
    secret_key: str = field(repr=False)
    image_max_bytes: int = IMAGE_LIMIT
    reminder_template_id: str = ""
    reminder_template_param: str = "content"
    reminders_in_paid_window: bool = False
    welcome_on_follow: bool = True
    refresh_every: timedelta = timedelta(hours=20)


class ZaloOAChannel:
    """The tip line behind a unit's own OA: webhook events in, consultation messages out.

    One chat's events are handled (and answered) in the order they came; chats run side by side."""

    def __init__(self, *, client: ZaloOAClient, tipline: TipLine, settings: OASettings,
                 deliveries: Deliveries | None = None, tokens: TokenKeeper | None = None,
                 worker: str | None = None) -> None:
        self.client, self.tipline, self.settings = client, tipline, settings
        self.services = tipline.services
        # Shared with the other channels of this process: a verdict written on Telegram reaches a tipster here.
        self.deliveries = deliveries or Deliveries()
        self.deliveries.register(CHANNEL, self.send)
        self.tokens = tokens or TokenKeeper(self.services, client, settings.oa_id,
                                            refresh_every=settings.refresh_every, on_failure=self._alert)
        self.worker = worker or f"oa-{secrets.token_hex(6)}"
        self._last_of_chat: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._last_purge: datetime | None = None

    async def _alert(self, reason: str) -> None:
        told = await alert_admins(self.services, self.deliveries, reason)
        log.error("Zalo OA token refresh failed; %d admin(s) told", told)

    # --- receiving ---

    async def receive(self, raw: bytes, signature: str | None, timestamp_header: str | None = None) -> int:
        """One webhook call: checked, stored durably, answered; the event is then handled in its own task."""
        verdict = verify_event(raw, signature, app_id=self.settings.app_id, secret_key=self.settings.secret_key,
                               now_ms=int(time.time() * 1000), timestamp_header=timestamp_header)
        if verdict.event is None:
            if verdict.status != 200:
                log.warning("a Zalo OA webhook call was refused: bad or missing signature, or too old")
            return verdict.status
        event = verdict.event
        name = event.get("event_name")
        if not isinstance(name, str) or name.startswith("oa_send_") or name in ECHOES or name not in HANDLED_EVENTS:
            # Echoes of what the OA (the bot, or an officer typing in the OA inbox) sent: never answered.
            log.debug("zalo oa event ignored: %s", str(name)[:48])
            return 200
        storing = asyncio.ensure_future(self._store(event, raw))
        done, _ = await asyncio.wait({storing}, timeout=STORE_DEADLINE)
        if not done:
            # Zalo will retry; if the insert still lands, the event is handled when it does (and the retry
            # is a duplicate), so nothing is lost either way.
            storing.add_done_callback(lambda late: self._stored_late(late, event))
            log.warning("a Zalo OA event could not be stored within %.1f s; Zalo is asked to retry", STORE_DEADLINE)
            return 503
        try:
            event_id = storing.result()
        except Exception:
            log.exception("a Zalo OA event could not be stored; Zalo is asked to retry")
            return 503
        if event_id is not None:
            self.dispatch(event, event_id)
        return 200

    def _stored_late(self, task: asyncio.Task, event: dict) -> None:
        if not task.cancelled() and task.exception() is None and task.result() is not None:
            self.dispatch(event, task.result())

    async def _store(self, event: dict, raw: bytes):
        async with self.services.db.transaction() as session:
            event_id = await store.store_event(session=session, keyring=self.services.keyring,
                                               dedup_key=dedup_key(event, self.settings.oa_id),
                                               event_name=event["event_name"], raw=raw, worker=self.worker,
                                               now=self.services.clock())
        return event_id

    def dispatch(self, event: dict, event_id: int) -> asyncio.Task:
        """Handle one stored event after the chat's previous one."""
        chat = _user_of(event) or "-"
        task = asyncio.create_task(self._in_turn(self._last_of_chat.get(chat), event, event_id))
        self._last_of_chat[chat] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forget(chat, done))
        return task

    def _forget(self, chat: str, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._last_of_chat.get(chat) is task:
            del self._last_of_chat[chat]

    async def _in_turn(self, previous: asyncio.Task | None, event: dict, event_id: int) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self.handle(event, event_id)

    async def handle(self, event: dict, event_id: int | None = None) -> None:
        """A citizen wrote, tapped a button, sent a file or a location, followed the OA: answer it."""
        user = _user_of(event)
        try:
            inbound = to_inbound(event, oa_id=self.settings.oa_id, fetcher=self._fetcher)
            if inbound is not None and event.get("event_name") == "follow" and not self.settings.welcome_on_follow:
                inbound = None
            if inbound is not None:
                await self._resolve_button(inbound)
                replies = await self.tipline.handle(inbound)
                await self.deliveries.send(replies, origin=Route(CHANNEL, inbound.chat_id))
        except Exception:
            log.exception("a Zalo OA event could not be answered")  # never the message or the chat id
        finally:
            try:
                await self._finish(event, event_id, user)
            except Exception:
                log.exception("a Zalo OA event could not be marked handled")

    async def _finish(self, event: dict, event_id: int | None, user: str | None) -> None:
        """Handled: the event's payload is shredded, and the citizen's last interaction is noted."""
        services = self.services
        now = services.clock()
        sent_at = _ms(event.get("timestamp"))
        at = min(datetime.fromtimestamp(sent_at / 1000, timezone.utc), now) if sent_at else now
        async with services.db.transaction() as session:
            if user is not None and user != self.settings.oa_id:
                key = seen_key(services.keyring, user)
                if event.get("event_name") == "unfollow":
                    await store.forget_interaction(session=session, seen_key=key)  # nothing kept of who left
                else:
                    await store.record_interaction(session=session, keyring=services.keyring, seen_key=key, at=at)
            if event_id is not None:
                await store.finish_event(session=session, event_id=event_id, now=now)

    async def _resolve_button(self, inbound: Inbound) -> None:
        """A tapped oa.query.hide button arrives as text: turn it back into its choice, never into words."""
        match = BUTTON_PAYLOAD.fullmatch((inbound.text or "").strip())
        if match is None:
            return
        async with self.services.db.transaction() as session:
            choice = await store.resolve_button(session=session, keyring=self.services.keyring, token=match.group(1),
                                                binding=button_binding(self.services.keyring, inbound.chat_id))
        inbound.text, inbound.choice = None, choice or STALE_BUTTON

    def _fetcher(self, url: str) -> Callable[[], Awaitable[bytes]]:
        max_bytes = self.services.settings.limits.max_file_bytes

        async def fetch() -> bytes:
            return await self.client.download(url, max_bytes=max_bytes)
        return fetch

    async def sweep(self) -> int:
        """Handle the events that were stored but never finished (a worker stopped, or stored them late)."""
        now = self.services.clock()
        async with self.services.db.transaction() as session:
            left = await store.claim_stale_events(session=session, keyring=self.services.keyring, worker=self.worker,
                                                  claimed_before=now - EVENT_LEASE, now=now)
        for event_id, raw in left:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {}
            self.dispatch(event if isinstance(event, dict) else {}, event_id)
        if left:
            log.info("%d Zalo OA event(s) left unhandled are being handled now", len(left))
        return len(left)

    async def drain(self, timeout: float = 30.0) -> None:
        """Let the events already taken finish, so no citizen loses an answer on shutdown."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def maintain(self, *, every: float = 60.0) -> None:
        """`tinbao run`'s OA job: finish events left behind, refresh the token about every 20 h, purge old rows."""
        while True:
            for job in (self.sweep, self.tokens.refresh_if_due, self.purge):
                try:
                    await job()
                except NotConnected as exc:
                    log.error("%s", exc)
                except Exception:
                    log.exception("Zalo OA maintenance failed; retrying later")
            await asyncio.sleep(every)

    async def purge(self) -> None:
        """Once a day: handled events past Zalo's retries, old button payloads, interactions past the window."""
        now = self.services.clock()
        if self._last_purge is not None and now - self._last_purge < timedelta(days=1):
            return
        async with self.services.db.transaction() as session:
            await store.purge_events(session=session, before=now - KEEP_EVENTS)
            await store.purge_buttons(session=session, before=now - KEEP_BUTTONS)
            await store.purge_interactions(session=session, keyring=self.services.keyring, before=now - WINDOW)
        self._last_purge = now

    # --- sending ---

    async def _with_token(self, call: Callable[[str], Awaitable[Any]]) -> Any:
        """The call with the current access token; on -216/-220 the token is refreshed once and the call retried once."""
        token, version = await self.tokens.current()
        try:
            return await call(token)
        except ZaloOAError as exc:
            if exc.error_code not in TOKEN_ERRORS:
                raise
            expired = exc
        fresh = await self.tokens.refresh(stale_version=version)
        if fresh is None:
            raise expired
        return await call(fresh)

    async def _save_buttons(self, chat_id: str, choices: list[Choice]) -> list[str]:
        async with self.services.db.transaction() as session:
            return await store.save_buttons(session=session, keyring=self.services.keyring,
                                            binding=button_binding(self.services.keyring, chat_id),
                                            choice_ids=[c.id for c in choices], now=self.services.clock())

    async def _message(self, chat_id: str, part: Part) -> dict:
        message: dict[str, Any] = {"text": part.text}
        if part.choices:
            tokens = await self._save_buttons(chat_id, part.choices)
            message["attachment"] = {"type": "template", "payload": {"buttons": [
                {"title": _title(choice.label), "type": "oa.query.hide", "payload": f"#tb{token}"}
                for choice, token in zip(part.choices, tokens)]}}
        return message

    async def send_part(self, chat_id: str, part: Part) -> None:
        message = await self._message(chat_id, part)
        await self._with_token(lambda token: self.client.send_message(token, chat_id, message))

    async def send(self, chat_id: str, replies: list[Reply]) -> None:
        """Deliver replies to an OA chat (the one that wrote, or another one the handlers name)."""
        await send_replies(self, chat_id, replies)

    async def send_file(self, chat_id: str, file: OutgoingFile) -> None:
        """A photo goes as an uploaded image (shrunk to fit if need be); anything else is named in words."""
        fitted = None
        if file.kind == "photo" or (file.mime or "").startswith("image/"):
            fitted = await asyncio.to_thread(_fit_image, file.data, self.settings.image_max_bytes)
        if fitted is None:
            lang = self.services.settings.default_language
            notice = _FILE_NOTICES.get(lang, _FILE_NOTICES["en"]).format(kind=file.kind, size=_human_size(len(file.data)))
            await self.send_part(chat_id, Part(notice))
            return
        data, mime = fitted
        name = "image.jpg" if mime == "image/jpeg" else "image.png"
        attachment_id = await self._with_token(
            lambda token: self.client.upload_image(token, data, filename=name, mime=mime))
        message = {"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "image", "attachment_id": attachment_id}]}}}
        await self._with_token(lambda token: self.client.send_message(token, chat_id, message))

    # --- reminders (the outbox dispatcher's sender for this channel) ---

    async def send_reminder(self, chat_id: str, reply: Reply | str) -> Outcome:
        """A festival reminder: a consultation message inside the free 48 hours (to 7 days if the operator
        pays for it); otherwise the approved template if one is configured; otherwise refused as
        "outside_window", which /broadcasts counts. Never raises for an answer Zalo gave."""
        reply = Reply(reply) if isinstance(reply, str) else reply
        services = self.services
        async with services.db.transaction() as session:
            seen = await store.last_interaction(session=session, keyring=services.keyring,
                                                seen_key=seen_key(services.keyring, chat_id))
        age = services.clock() - seen if seen is not None else None
        limit = WINDOW if self.settings.reminders_in_paid_window else FREE_WINDOW
        if age is not None and age <= limit:
            try:
                part = Part(reply.text[:TEXT_LIMIT], list(reply.choices[:BUTTONS_PER_MESSAGE]))
                await self.send_part(chat_id, part)
                return SENT
            except NotConnected:
                return TRANSIENT
            except ZaloOAError as exc:
                if exc.error_code not in OUTSIDE_WINDOW:
                    return _reminder_outcome(exc)
                # Zalo counts the window differently from our record: the template, if there is one.
        return await self._send_template(chat_id, reply)

    async def _send_template(self, chat_id: str, reply: Reply) -> Outcome:
        template_id = self.settings.reminder_template_id
        if not template_id:
            return Outcome.refused("outside_window")
        data = {self.settings.reminder_template_param: reply.text[:400]}
        tracking = secrets.token_hex(8)
        try:
            await self._with_token(lambda token: self.client.send_template(
                token, user_id=chat_id, template_id=template_id, template_data=data, tracking_id=tracking))
        except NotConnected:
            return TRANSIENT
        except ZaloOAError as exc:
            return _reminder_outcome(exc)
        return SENT


def _title(label: str) -> str:
    return label if len(label) <= BUTTON_TITLE_LIMIT else label[:BUTTON_TITLE_LIMIT - 1] + "…"


def _reminder_outcome(exc: ZaloOAError) -> Outcome:
    code = exc.error_code
    if code == NOT_FOLLOWER:
        return BLOCKED  # no longer follows the OA: unsubscribed, like a Telegram user who blocked the bot
    if code in OUTSIDE_WINDOW:
        return Outcome.refused("outside_window")
    if code == RATE_LIMITED:
        return Outcome.wait(30)
    if code == USER_QUOTA:
        return REJECTED  # this citizen's own receiving limit: trying again soon would not help
    if code is None or code in TOKEN_ERRORS or code == OA_QUOTA or code >= 500:
        return TRANSIENT  # network, a token being replaced, the OA's quota: tried again later, a few times
    return REJECTED


async def send_replies(channel: ZaloOAChannel, chat_id: str, replies: list[Reply]) -> int:
    """Send every part of every reply; returns how many parts were not sent.

    What each refusal does: -216/-220 refresh once and retry once (in the channel); -32 waits a moment and
    tries that part once more; -213 (not a follower), -230/-232 (outside the 7-day window), -211 (the OA's
    quota) and -218 (this citizen's quota) drop the rest of this chat's messages, since each would be
    refused too; anything else drops that part only."""
    failures = 0
    parts: list[Part | OutgoingFile] = []
    for reply in replies:
        parts += render(reply)
        parts += reply.files
    for index, part in enumerate(parts):
        try:
            await _send_one(channel, chat_id, part)
        except NotConnected as exc:
            log.error("a reply could not be sent: %s", exc)
            return len(parts) - index
        except ZaloOAError as exc:
            if exc.error_code == RATE_LIMITED:
                await asyncio.sleep(RATE_LIMIT_PAUSE)
                try:
                    await _send_one(channel, chat_id, part)
                    continue
                except ZaloOAError as again:
                    exc = again
            failures += 1
            code = exc.error_code
            if code == NOT_FOLLOWER or code in OUTSIDE_WINDOW or code in (OA_QUOTA, USER_QUOTA):
                what = {NOT_FOLLOWER: "the citizen does not follow the OA", OA_QUOTA: "the OA's message quota is used up",
                        USER_QUOTA: "this citizen's message quota is used up"}.get(code, "outside the 7-day window")
                log.warning("Zalo OA refused a reply (%s: %s); the rest of it is dropped", code, what)
                return failures + len(parts) - index - 1
            # Not retried: whether Zalo delivered it is unknown, and a question twice is worse than a re-prompt.
            log.warning("a reply could not be sent through Zalo OA: %s", exc)
    return failures


async def _send_one(channel: ZaloOAChannel, chat_id: str, part: Part | OutgoingFile) -> None:
    if isinstance(part, OutgoingFile):
        await channel.send_file(chat_id, part)
    else:
        await channel.send_part(chat_id, part)


def channel_from_config(section, *, tipline: TipLine, deliveries: Deliveries) -> ZaloOAChannel:
    """The OA channel `tinbao run` serves, from the [zalo_oa] section of config.toml."""
    client = ZaloOAClient(app_id=section.app_id, app_secret=section.app_secret.get_secret_value(),
                          api_base=section.api_base, oauth_base=section.oauth_base,
                          template_base=section.template_api_base)
    settings = OASettings(app_id=section.app_id, oa_id=section.oa_id, secret_key=section.secret_key.get_secret_value(),
                          image_max_bytes=section.image_max_kb * 1024,
                          reminder_template_id=section.reminder_template_id,
                          reminder_template_param=section.reminder_template_param,
                          reminders_in_paid_window=section.reminders_in_paid_window,
                          welcome_on_follow=section.welcome_on_follow,
                          refresh_every=timedelta(hours=section.refresh_every_hours))
    return ZaloOAChannel(client=client, tipline=tipline, settings=settings, deliveries=deliveries)


# --- `tinbao zalo-oa connect` / `status` ----------------------------------------------------------------

class ConnectError(ValueError):
    """The first grant could not be made; one line for the operator, never a secret in it."""


def parse_grant(answer: str) -> tuple[str, str | None, str | None]:
    """What the OA admin pasted: the bare code, or the whole address Zalo sent them to: (code, state, oa_id)."""
    answer = answer.strip()
    if "code=" not in answer:
        return answer, None, None
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer).query or answer).items()}
    return query.get("code", ""), query.get("state"), query.get("oa_id")


async def connect(section, services, *, ask: Callable[[str], str], say: Callable[[str], None]) -> int:
    """Walk an OA admin through the first grant (permission URL with PKCE, then the pasted code) and store
    the pair sealed. Returns the stored version."""
    missing = [key for key in ("app_id", "oa_id", "redirect_uri") if not getattr(section, key)]
    if not section.app_secret.get_secret_value():
        missing.append("app_secret")
    if missing:
        raise ConnectError(f"zalo_oa.{missing[0]}: required to connect the OA (see config.example.toml)")
    verifier, state = new_code_verifier(), secrets.token_urlsafe(16)
    url = permission_url(oauth_base=section.oauth_base, app_id=section.app_id, redirect_uri=section.redirect_uri,
                         challenge=code_challenge(verifier), state=state)
    say("1. An admin of the OA opens this address in a browser where they are logged in to Zalo, chooses the OA "
        f"{section.oa_id} and agrees:\n\n    {url}\n\n2. Zalo then opens {section.redirect_uri}?code=…: copy that "
        "whole address (or only the code) and paste it here within 10 minutes.")
    code, returned_state, granted_oa = parse_grant(await asyncio.to_thread(ask, "Code or address: "))
    if not code:
        raise ConnectError("no code was pasted; run `tinbao zalo-oa connect` again")
    if returned_state is not None and not hmac.compare_digest(returned_state, state):
        raise ConnectError("the address pasted belongs to another attempt (its state differs); start again")
    if granted_oa is not None and granted_oa != section.oa_id:
        raise ConnectError(f"zalo_oa.oa_id: the grant is for OA {granted_oa}, not {section.oa_id}; "
                           "choose the right OA, or fix the config")
    client = ZaloOAClient(app_id=section.app_id, app_secret=section.app_secret.get_secret_value(),
                          oauth_base=section.oauth_base)
    try:
        pair = await client.exchange_code(code, verifier)
    except OAuthError as exc:
        raise ConnectError(f"Zalo refused the code ({exc.error_code} {exc.description}); start again, the code "
                           "is valid for 10 minutes and once") from None
    finally:
        await client.close()
    if not pair.refresh_token:
        raise ConnectError("Zalo answered without a refresh token; nothing was stored")
    version = await TokenKeeper(services, client, section.oa_id).store_first(pair)
    say(f"Connected: the OA's tokens are stored encrypted (version {version}); `tinbao run` refreshes them about "
        f"every {section.refresh_every_hours} hours.")
    return version


async def status(section, services) -> str:
    """One line about the stored pair, without the tokens."""
    async with services.db.transaction() as session:
        stored = await store.load_tokens(session=session, keyring=services.keyring, oa_id=section.oa_id)
    if stored is None:
        return f"OA {section.oa_id}: not connected; run `tinbao zalo-oa connect`"
    line = (f"OA {section.oa_id}: token pair version {stored.version}, refreshed {stored.refreshed_at:%Y-%m-%d %H:%M} "
            f"UTC, access token valid until {stored.access_expires_at:%Y-%m-%d %H:%M} UTC, refresh {stored.refresh_state}")
    if stored.failure:
        line += f" (last failure {stored.failed_at:%Y-%m-%d %H:%M} UTC: {stored.failure})"
    return line
