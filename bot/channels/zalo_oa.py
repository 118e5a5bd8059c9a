"""Zalo Official Account: our own thin aiohttp client, the OA's tokens, and the adapter between the
OA's webhook events and the handlers, so a police unit's existing OA can be the tip line.

Thin on purpose, like the Zalo Bot Platform adapter (bot/channels/zalo_bot.py): what to ask and what to
keep is decided by the channel-neutral handlers. No token, chat id or message text is ever logged.

What we could check, and against what. developers.zalo.me itself is not in our stored copy of the web; the
sources are Zalo's own SDKs (github.com/zaloplatform: zalo-java-sdk, zalo-php-sdk, ZaloDotNetSDK), Chatwoot's
Zalo OA channel (chatwoot/chatwoot), a 2026 compiled platform spec that quotes Zalo's pages
(github.com/VinFleet/jerkchillapp, docs/ZALO_API.md, "VinFleet" below) and third-party guides. VERIFIED
marks what Zalo's own code or two independent sources settle; NOT VERIFIED what rests on one guide.

- Webhook signature. VERIFIED: ``mac = sha256(app_id + raw body + timestamp + secret)``, a plain hash, not an
  HMAC: Zalo's Java SDK ``MacUtils.buildMac(appId, data, timeStamp, secretKey)`` concatenates exactly these
  four and hashes them (zaloplatform/zalo-java-sdk, src/main/java/com/vng/zalo/sdk/utils/MacUtils.java);
  Chatwoot checks ``Digest::SHA256.hexdigest("#{app_id}#{raw_post}#{params[:timestamp]}#{oa_secret_key}")``
  against X-ZEvent-Signature with "mac=" removed (chatwoot/chatwoot, app/controllers/webhooks/
  zalo_oa_controller.rb), the timestamp from the body. The secret is the OA Secret Key, not the App Secret
  Key: Chatwoot and hainh.me ("Zalo API - PHP Webhook Callback Official Account") say so; VinFleet §3.2 says
  the app secret (DISAGREEMENT; the SDK's parameter is only "secretKey"; we keep the OA Secret Key). Some
  integrations hash the OA id instead of the app id (hoangnd25/monorepo, wip/zalo-platform-integration.md);
  Zalo's SDK and Chatwoot use the app id, and so do we. The timestamp is the body's; X-ZEvent-Timestamp is
  also tried when present (both need the secret, so this weakens nothing) and lets a signed body that is not
  an event object be recognised as Zalo's. An unsigned body that is exactly ``{}`` (Zalo's check when the
  webhook URL is saved) gets 200 and nothing else; anything else unsigned or mis-signed gets 401.
- Webhook delivery and retries. VERIFIED (VinFleet §13.2; hoangnd25): answer 200 within 2 seconds; a failed
  delivery is retried after 30 s, 5 min, 15 min, 30 min and 1 h, with a ``num_retry`` header (one guide says
  "liên tục gửi lại trong vòng 12 giờ"). Chatwoot puts no time window on the timestamp at all. We accept a
  correctly signed event for 24 hours (ACCEPT_FOR: longer than either reading) and make replays harmless by
  msg_id, the dedup rows kept 3 days. NOT VERIFIED: that a retry carries the first delivery's timestamp and
  signature; either way it is accepted (a fresh one is accepted too).
- Event shapes. VERIFIED (VinFleet §13.4–13.5, hoangnd25, logged payloads): ``{"app_id", "event_name",
  "timestamp": "<epoch ms as a string>", "sender": {"id"}, "recipient": {"id"}, "message": {"msg_id", "text",
  "attachments": [{"type", "payload"}]}}``. A logged user_send_location: ``"attachments": [{"payload":
  {"coordinates": {"latitude": "10.7923119", "longitude": "106.7820651"}}, "type": "location"}]`` (strings).
  Images, audio, video, files carry ``payload.url`` (files also ``name`` and ``size``). follow/unfollow carry
  ``follower.id`` and ``oa_id`` instead of sender/recipient. Echoes of what the OA sent arrive as oa_send_*
  and as user_received_message / user_seen_message, and are ignored here. user_submit_info carries ``info:
  {"name", "phone": "84912345678", "user_dob", "gender", "full_address"}`` (VinFleet §13.5; we read
  ``info.phone`` as the citizen's own number).
- A button of type oa.query.hide: its payload comes back as a user_send_text whose text is the payload,
  not shown in the citizen's chat. VERIFIED: the type and its ``payload`` (Zalo's PHP SDK,
  src/Builder/MessageBuilder.php, ``buildActionQueryHide``). Shape used: ``"message": {"text": …,
  "attachment": {"type": "template", "payload": {"buttons": [{"title", "type": "oa.query.hide",
  "payload"}]}}}``. How many buttons: "up to five", payload "limited to 1,000 characters" (Zalo's page
  cau-truc-cua-tham-so-buttons, as quoted by a 2026 integration's README), while the PHP SDK's own error
  says "Only support 4 buttons": we send 4 (BUTTONS_PER_MESSAGE) and continue in further messages. NOT
  VERIFIED: the longest title (we cut at 100 characters; the old promotion messages took 35).
- Sending. VERIFIED: ``POST https://openapi.zalo.me/v3.0/oa/message/cs`` with the ``access_token`` header,
  JSON ``{"recipient": {"user_id"}, "message": {"text"}}`` (PHP SDK ZaloEndPoint.php
  API_OA_SEND_CONSULTATION_MESSAGE_V3 and MessageBuilder; ZaloDotNetSDK src/sdk/oa/ZaloClient.cs; Chatwoot
  app/models/channel/zalo_oa.rb); success is ``{"error": 0, "message": "Success", "data": {"message_id"}}``
  and an ``error != 0`` comes with HTTP 200 (Chatwoot reads ``response['error']``), so any answer that is not
  JSON with ``error == 0`` is a ZaloOAError here. Text: at most 2,000 characters (VinFleet §5.3).
- Images. VERIFIED: ``POST https://openapi.zalo.me/v2.0/oa/upload/image``, multipart field ``file``, answer
  ``data.attachment_id`` (PHP SDK API_OA_UPLOAD_PHOTO, Java SDK src/test/java/UploadImage.java, Chatwoot),
  then a message ``{"attachment": {"type": "template", "payload": {"template_type": "media", "elements":
  [{"media_type": "image", "attachment_id"}]}}}`` (Chatwoot ``image_body``, PHP SDK). The limit: "jpg/png,
  ≤ 1 MB" (VinFleet §5.3 and §5.8, from Zalo's upload page; Chatwoot caps images at 1,048,576 bytes and
  files at 5 MiB, lib/integrations/zalo/uploader.rb). Whether Zalo's MB is 1,000,000 or 1,048,576
  bytes is stated nowhere we looked (Chatwoot's reading is its own): we stay under 1,000,000
  (IMAGE_LIMIT), which is right under either reading, shrink larger photos to fit, and otherwise say in
  words that the file stays in the tip.
- Error codes: the table beside TOKEN_ERRORS below, with what each does to a reply and to a reminder.
- Tokens and OAuth v4. VERIFIED (PHP SDK OAuth2Client / ZaloRedirectLoginHelper::getZaloTokenByOA, Chatwoot
  ``refresh_post``, VinFleet §4.1): ``POST https://oauth.zaloapp.com/v4/oa/access_token``, form-encoded,
  header ``secret_key`` (the App Secret Key); ``grant_type=refresh_token`` with ``refresh_token`` and
  ``app_id``, or ``grant_type=authorization_code`` with ``code``, ``app_id``, ``code_verifier``. Answer
  ``{"access_token", "refresh_token", "expires_in": "90000"}`` (25 hours, a string); a refused one is an
  HTTP 200 with ``error``, ``error_name``, ``error_description`` and no access_token (Chatwoot reads
  ``error_description``). The refresh token lives 3 months and is single-use ("Refresh token chỉ có thể sử
  dụng 1 lần", hexasync.vn). NOT VERIFIED: that the old access token stops working the moment it is
  refreshed (no source says so in words); the fake OA assumes it, the stricter case, and the code survives
  it (a -216 re-reads the pair another worker stored). Permission URL: ``https://oauth.zaloapp.com/v4/oa/
  permission?app_id&redirect_uri&code_challenge&state``, VERIFIED: Zalo's PHP SDK builds exactly that
  (src/Authentication/OAuth2Client.php, ``getAuthorizationUrlByOA``); the redirect brings ``code``,
  ``oa_id`` and ``state``. PKCE: "Code verifier must be exactly 43 characters", challenge = Base64 of
  SHA-256 "without padding"; the same SDK makes it base64url (src/Util/PKCEUtil.php, RFC 7636). A verifier
  is still drawn again until its challenge has no "+", "/", "-" or "_", so both readings give the same
  string. DISAGREEMENT: VinFleet §4.1 says the OA flow wants one challenge saved in the app's console and
  the link Zalo makes from it; the SDK builds the link per request, as we do.
- The 7-day window, its 48 free hours, and templates outside it. VERIFIED (VinFleet §5.2, hoangnd25):
  consultation messages reach a citizen within 7 days of their last interaction, free for 48 hours. Outside,
  a ZBS template by user_id: ``POST https://openapi.zalo.me/v3.0/oa/message/template`` with ``{"user_id",
  "template_id", "template_data"}``, no ``tracking_id``, answered with ``data.message_id`` (Zalo's
  "ZBS_Template_Mesage_API_v1.pdf", stc-cms-developers.zdn.vn/2025/12/, as quoted by a 2026 integration's
  README; VinFleet §1.1 and §5.4: "tracking_id: not accepted", "Response id field: data.message_id"; two
  integrations in the store send exactly this body). Not business.openapi.zalo.me/message/template: that
  is the phone-number channel (``phone`` and a required ``tracking_id``; Chatwoot's ``zns_body``). One
  integration nests the recipient as ``recipient.user_id``, and Zalo's PHP SDK builds a "template" message
  as ``message.attachment.payload.elements[{template_id, template_data}]`` for the older /v2.0/oa/message
  call; neither is what the sources above describe for this endpoint. NOT VERIFIED against a live OA.
- Also noted, not used: replies sent with the citizen's ``message_id`` count as replies rather than
  proactive messages in Zalo's quota ("Nếu tin gửi đi có chỉ user_id và không có message_id thì tin sẽ
  được tính là tin chủ động", zalooa.freshdesk.com); Zalo's PHP SDK shows the shape (``"recipient":
  {"message_id"}``, MessageBuilder::withMessageId); we still always address ``user_id``.

Choices made here:
- An event is stored sealed (storage/zalo_oa.py) before Zalo gets its 200, deduplicated by msg_id, and
  handled after; a sweeper handles what a stopped worker left. The handlers' processed-update table makes
  a second handling of the same event change nothing.
- Each event is read on its own: a signed one that cannot be read (no event name, no sender, no message) is
  acknowledged, so Zalo stops sending it, counted in ``ZaloOAChannel.outcomes`` and logged as one line naming
  what was wrong, never its content.
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
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from sqlalchemy import text as sql

from bot.channels.downloads import DownloadFailed, download_capped
from bot.channels.http_client import HttpClient, failure_line
from bot.delivery import Deliveries
from bot.reminders import BLOCKED, REJECTED, SENT, TRANSIENT, Outcome
from handlers.i18n import translator
from handlers.messages import Choice, Contact, IncomingFile, Inbound, Location, OutgoingFile, Reply, Route, split_text
from handlers.router import TipLine
from storage import zalo_oa as store
from storage.officers import list_officers, officer_route

log = logging.getLogger(__name__)

CHANNEL = "zalo_oa"
API_BASE = "https://openapi.zalo.me"
OAUTH_BASE = "https://oauth.zaloapp.com"
MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
# ZBS template by user_id, on the OA API's own host. Not business.openapi.zalo.me/message/template: that one
# addresses a phone number (and wants a tracking_id), which the bot never has (see the notes above).
TEMPLATE_PATH = "/v3.0/oa/message/template"
TOKEN_PATH = "/v4/oa/access_token"
PERMISSION_PATH = "/v4/oa/permission"
SIGNATURE_HEADER = "X-ZEvent-Signature"
TIMESTAMP_HEADER = "X-ZEvent-Timestamp"

TEXT_LIMIT = 2000
BUTTONS_PER_MESSAGE = 4  # Zalo's page says up to 5 (see above); the PHP SDK's own message says 4: the smaller
BUTTON_TITLE_LIMIT = 100
# "jpg/png, ≤ 1 MB" (upload/image, see above). Read as 1,000,000 bytes, not 1 MiB (1,048,576): under either
# reading of Zalo's "MB" it is accepted; a photo over it is shrunk, else named in words.
IMAGE_LIMIT = 1_000_000
# How old a correctly signed event may be and still be taken. Zalo sends an event it could not deliver again,
# byte for byte (the same timestamp, the same signature), 30 s, 5 min, 15 min, 30 min and 1 h later (about
# 1 h 51 min in all; one guide says it keeps trying "within 12 hours"). 24 hours outlasts both readings and
# a clock that is off by minutes; within it, a replay is harmless: it is found by its msg_id (KEEP_EVENTS).
ACCEPT_FOR = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=10)  # an event from this far "in the future" is still Zalo's clock, not ours
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
# Dedup rows (by msg_id) must outlive ACCEPT_FOR, or a replay accepted after its row was purged would be
# handled twice; 3 days is that and then some (tests/bot/test_zalo_oa.py checks it after a purge).
KEEP_EVENTS = timedelta(days=3)
KEEP_BUTTONS = timedelta(days=30)

# Zalo's error codes and what each does here. Meanings: the OA error appendix as compiled, with Zalo's own
# messages, in github.com/VinFleet/jerkchillapp, docs/ZALO_API.md §14.2 (OA) and §14.3 (-124, ZBS), 2026;
# -216 → refresh and send again is also what Chatwoot's Zalo OA channel does (chatwoot/chatwoot,
# app/services/zalo/send_on_zalo_service.rb).
#
#   code  meaning                                            a reply                    a reminder
#   -216  access token is invalid                            refresh once, retry once   same; then transient
#   -220  access token is expired or removed                 refresh once, retry once   same; then transient
#   -124  access token invalid (ZBS family)                  refresh once, retry once   same; then transient
#   -32   the app or the OA reached its rate limit           wait 2 s, try once more    wait 30 s (all reminders)
#   -211  out of quota (the OA's)                            drop the rest of the chat  transient (tried later)
#   -218  out of quota receive (this citizen's)              drop the rest of the chat  rejected
#   -213  user has not followed the OA                       drop the rest of the chat  blocked: unsubscribed
#   -217  user has blocked invitations from the OA           drop the rest of the chat  rejected
#   -227  user banned, or inactive on Zalo for 45+ days      drop the rest of the chat  rejected
#   -230  no interaction with the OA in the past 7 days      drop the rest of the chat  the template, else outside_window
#   -232  no interaction, or the last one expired            drop the rest of the chat  the template, else outside_window
#   -244  user restricted this message type from the OA      drop the rest of the chat  the template, else rejected
#   -249  template does not support sending by UID           (templates only)           rejected; the operator is told
#   -221  the OA needs to be verified for this               drop the rest of the chat  rejected; the operator is told
#   -224  the OA needs a higher tier package                 drop the rest of the chat  rejected; the operator is told
#   -234  this message type cannot be sent at night          (never: replies go 24/24)  transient (tried later)
#   other (-201 invalid parameter, -240, -248 policy, …)    that part only             rejected; no answer: transient
TOKEN_ERRORS = (-216, -220, -124)
NOT_FOLLOWER = -213
OUTSIDE_WINDOW = (-230, -232)
OA_QUOTA, USER_QUOTA = -211, -218
RATE_LIMITED = -32
BLOCKED_INVITES, INACTIVE, RESTRICTED = -217, -227, -244
TEMPLATE_NOT_BY_UID = -249
OA_NOT_ELIGIBLE = (-221, -224)
NIGHT = -234
# A reply refused for one of these reasons would be refused for every other part of it too.
CHAT_UNREACHABLE = {NOT_FOLLOWER, *OUTSIDE_WINDOW, OA_QUOTA, USER_QUOTA, BLOCKED_INVITES, INACTIVE, RESTRICTED,
                    *OA_NOT_ELIGIBLE}
_WHY_UNREACHABLE = {
    NOT_FOLLOWER: "the citizen does not follow the OA", OA_QUOTA: "the OA's message quota is used up",
    USER_QUOTA: "this citizen's message quota is used up", BLOCKED_INVITES: "the citizen blocks the OA's messages",
    INACTIVE: "the citizen's Zalo account is banned or unused for 45 days", RESTRICTED:
    "the citizen restricted this kind of message", -221: "the OA must be verified for this",
    -224: "the OA's package does not allow this", -230: "outside the 7-day window", -232: "outside the 7-day window",
}

USER_MESSAGES = {f"user_send_{kind}" for kind in ("text", "image", "gif", "link", "audio", "video", "sticker",
                                                  "location", "business_card", "file")}
HANDLED_EVENTS = USER_MESSAGES | {"follow", "unfollow", "user_submit_info"}
ECHOES = {"user_received_message", "user_seen_message"}  # and every oa_send_*
BUTTON_PAYLOAD = re.compile(r"#tb([a-z2-7]{12})")
STALE_BUTTON = "zalo_oa:stale"  # an old button whose meaning is forgotten: the handlers answer it like any unknown one
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EVENT_NAME = re.compile(r"[a-z_]{1,48}")  # a name shown in the log only when it looks like Zalo's own


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
    event: dict | None = None  # the verified event (None: the probe, a refusal, or a signed body we cannot read)
    why: str | None = None  # a refusal's or an unreadable body's reason, in fixed words (for the log line)


BAD_SIGNATURE, TOO_OLD, NOT_AN_OBJECT = ("bad or missing signature", "signed, but older than Zalo retries",
                                         "signed, but not a JSON object")


def _as_text(value: str | bytes | None) -> str:
    """A header as ASCII text; any other byte makes it no signature at all (rather than an error)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return ""
    return (value or "").strip()


def verify_event(raw: bytes, signature: str | bytes | None, *, app_id: str, secret_key: str, now_ms: int,
                 timestamp_header: str | bytes | None = None) -> Verdict:
    """Check a webhook call over its raw bytes: 200 with the event, 200 for the unsigned ``{}`` probe, 200
    without an event for a signed body that is not an event object, else 401.

    Accepted for as long as Zalo retries (ACCEPT_FOR): a retry carries the first delivery's bytes, timestamp
    and signature, and refusing it would lose the event; replays within that time are found by msg_id."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser's depth
        body = None
    if body == {}:
        return Verdict(200)  # the check Zalo makes when the URL is saved: carries no event, changes nothing
    if not app_id or not secret_key:
        return Verdict(401, why=BAD_SIGNATURE)
    given = _as_text(signature).lower()
    given = given[4:].strip() if given.startswith("mac=") else given
    if not _HEX64.fullmatch(given):
        return Verdict(401, why=BAD_SIGNATURE)
    body_ts = str(body.get("timestamp")).strip() if isinstance(body, dict) and body.get("timestamp") is not None \
        else None
    stamps = [stamp for stamp in (body_ts, _as_text(timestamp_header)) if stamp and _ms(stamp) is not None]
    matched = [stamp for stamp in dict.fromkeys(stamps) if hmac.compare_digest(
        signature_of(app_id=app_id, raw=raw, timestamp=stamp, secret_key=secret_key), given)]
    if not matched:
        return Verdict(401, why=BAD_SIGNATURE)
    # The age is the body's own timestamp when it has one (the hash covers it), and every stamp that matched.
    ages = [now_ms - _ms(stamp) for stamp in ([body_ts] if body_ts and _ms(body_ts) is not None else []) + matched]
    if any(age > ACCEPT_FOR.total_seconds() * 1000 or age < -CLOCK_SKEW.total_seconds() * 1000 for age in ages):
        return Verdict(401, why=TOO_OLD)
    if not isinstance(body, dict):
        return Verdict(200, why=NOT_AN_OBJECT)  # Zalo's, and unreadable: acknowledged so it is not sent again
    return Verdict(200, body)


# --- the client --------------------------------------------------------------------------------------

class ZaloOAClient(HttpClient):
    """The OA OpenAPI and OAuth v4 over aiohttp: one method per call we use, ``error`` always checked."""

    def __init__(self, *, app_id: str, app_secret: str = "", api_base: str = API_BASE, oauth_base: str = OAUTH_BASE,
                 timeout: float = 20.0, oauth_timeout: float = 8.0, session: aiohttp.ClientSession | None = None) -> None:
        self.app_id, self._app_secret = app_id, app_secret
        self.api_base, self.oauth_base = api_base.rstrip("/"), oauth_base.rstrip("/")
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

    async def send_template(self, access_token: str, *, user_id: str, template_id: str, template_data: dict) -> dict:
        """An approved ZBS template to a follower by user_id; its ``data`` (``message_id``, …) on success.

        ``{"user_id", "template_id", "template_data"}`` and nothing else: no ``tracking_id`` (the phone
        channel's; this one does not take it) and no ``phone`` (see TEMPLATE_PATH and the notes above)."""
        body = await self.call(TEMPLATE_PATH, access_token=access_token, method="message/template", hidden=[user_id],
                               json_body={"user_id": user_id, "template_id": template_id,
                                          "template_data": template_data})
        return body.get("data") if isinstance(body.get("data"), dict) else {}

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
                except Exception as exc:
                    log.error("the admins could not be told about the failed Zalo OA refresh: %s", failure_line(exc))
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

class UndecodableEvent(ValueError):
    """A signed event that cannot become an Inbound. Its words name the shape that was wrong, never the content."""


NO_EVENT_NAME, NO_SENDER, NO_MESSAGE = "no event_name", "no sender id", "no message object"


def _msg_id(event: dict) -> str | None:
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    msg_id = message.get("msg_id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, (str, int)) or msg_id == "":
        return None
    return str(msg_id)


def _user_of(event: dict) -> str | None:
    holder = event.get("follower") if event.get("event_name") in ("follow", "unfollow") else event.get("sender")
    user = holder.get("id") if isinstance(holder, dict) else None
    if isinstance(user, bool) or not isinstance(user, (str, int)) or str(user) == "":
        return None
    return str(user)


def dedup_key(event: dict, oa_id: str) -> str:
    """sha256 of the msg_id; events without one (follow, …) by what they say and when (a retry says the same)."""
    msg_id = _msg_id(event)
    basis = (f"msg:{msg_id}" if msg_id is not None else
             f"event:{event.get('event_name')}:{_user_of(event)}:{event.get('timestamp')}")
    return hashlib.sha256(f"{oa_id}|{basis}".encode()).hexdigest()


def _update_id(event: dict, oa_id: str) -> str:
    msg_id = _msg_id(event)
    if msg_id is not None:
        return msg_id if len(msg_id) <= 64 else hashlib.sha256(msg_id.encode()).hexdigest()
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
    """An OA event as the handlers see it; None for events the tip line does not answer (unfollow, echoes, …);
    UndecodableEvent for one that cannot be read (no event name, no sender, no message).

    Lenient where the citizen can still be answered: a message whose parts are missing becomes
    ``unsupported``, and the handlers say so. A button's payload stays in ``text`` here; the channel turns
    it into the choice it stands for."""
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        raise UndecodableEvent(NO_EVENT_NAME)
    if name not in HANDLED_EVENTS:
        return None
    user = _user_of(event)
    if user is None:
        raise UndecodableEvent(NO_SENDER)
    if user == oa_id:
        return None
    if name in USER_MESSAGES and not isinstance(event.get("message"), dict):
        raise UndecodableEvent(NO_MESSAGE)
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
    message = event["message"]
    listed = message.get("attachments")
    attachments = [a for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []
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
        # What became of each webhook call: handled, ignored (echoes…), duplicate (Zalo's retries),
        # undecodable (signed, unreadable), failed (our side), refused (not Zalo's).
        self.outcomes: Counter[str] = Counter()
        self._told: set[int] = set()  # operator-side refusals already logged once (-249, -221, -224)
        self._last_of_chat: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._last_purge: datetime | None = None

    async def _alert(self, reason: str) -> None:
        told = await alert_admins(self.services, self.deliveries, reason)
        log.error("Zalo OA token refresh failed; %d admin(s) told", told)

    # --- receiving ---

    async def receive(self, raw: bytes, signature: str | bytes | None,
                      timestamp_header: str | bytes | None = None) -> int:
        """One webhook call: checked, stored durably, answered; the event is then handled in its own task."""
        now_ms = int(self.services.clock().timestamp() * 1000)
        verdict = verify_event(raw, signature, app_id=self.settings.app_id, secret_key=self.settings.secret_key,
                               now_ms=now_ms, timestamp_header=timestamp_header)
        if verdict.status != 200:
            self.refuse(verdict.why or BAD_SIGNATURE)
            return verdict.status
        if verdict.event is None:
            if verdict.why:
                self.skip(verdict.why)
            return 200  # the probe, or Zalo's own body that we cannot read: either way, not sent again
        event = verdict.event
        name = event.get("event_name")
        if isinstance(name, str) and (name.startswith("oa_send_") or name in ECHOES or name not in HANDLED_EVENTS):
            # Echoes of what the OA (the bot, or an officer typing in the OA inbox) sent: never answered.
            self.outcomes["ignored"] += 1
            log.debug("a Zalo OA event was ignored: %s", name if _EVENT_NAME.fullmatch(name) else "(unknown name)")
            return 200
        try:
            to_inbound(event, oa_id=self.settings.oa_id, fetcher=self._fetcher)  # readable? (decoded again later)
        except UndecodableEvent as exc:
            self.skip(str(exc))
            return 200
        except Exception as exc:
            self.skip(failure_line(exc))
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
        except Exception as exc:
            log.error("a Zalo OA event could not be stored (%s); Zalo is asked to retry", failure_line(exc))
            return 503
        if event_id is None:
            self.outcomes["duplicate"] += 1  # Zalo sent it again: stored (and handled) the first time
        else:
            self.dispatch(event, event_id)
        return 200

    def refuse(self, why: str) -> None:
        """Count a call that is not (provably) Zalo's; one log line, without its content."""
        self.outcomes["refused"] += 1
        log.warning("a Zalo OA webhook call was refused: %s", why)

    def skip(self, why: str) -> None:
        """Count a signed event that cannot be read; one log line, without its content."""
        self.outcomes["undecodable"] += 1
        log.warning("a signed Zalo OA event could not be read and was acknowledged: %s", why)

    def _stored_late(self, task: asyncio.Task, event: dict) -> None:
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            log.error("a Zalo OA event stored too late failed (%s); Zalo's retry will bring it", failure_line(exc))
        elif task.result() is not None:
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
        except UndecodableEvent as exc:  # stored by another version, or swept: read it as receive() would
            user = None
            self.skip(str(exc))
        except Exception as exc:
            # Never the message or the chat id in the log: only what failed, and where.
            self.outcomes["failed"] += 1
            log.error("a Zalo OA event could not be answered: %s", failure_line(exc))
        else:
            self.outcomes["handled"] += 1
        finally:
            try:
                await self._finish(event, event_id, user)
            except Exception as exc:
                log.error("a Zalo OA event could not be marked handled: %s", failure_line(exc))

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
                except Exception as exc:
                    log.error("Zalo OA maintenance failed (%s); retrying later", failure_line(exc))
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
        pays for it); otherwise the approved template, by user_id, if one is configured; otherwise refused
        as "outside_window", which /broadcasts counts. Never raises for an answer Zalo gave."""
        reply = Reply(reply) if isinstance(reply, str) else reply
        services = self.services
        async with services.db.transaction() as session:
            seen = await store.last_interaction(session=session, keyring=services.keyring,
                                                seen_key=seen_key(services.keyring, chat_id))
        age = services.clock() - seen if seen is not None else None
        limit = WINDOW if self.settings.reminders_in_paid_window else FREE_WINDOW
        without_template = Outcome.refused("outside_window")
        if age is not None and age <= limit:
            try:
                part = Part(reply.text[:TEXT_LIMIT], list(reply.choices[:BUTTONS_PER_MESSAGE]))
                await self.send_part(chat_id, part)
                return SENT
            except NotConnected:
                return TRANSIENT
            except ZaloOAError as exc:
                if exc.error_code == RESTRICTED:
                    # The citizen turned consultation messages off; a template is another kind of message.
                    without_template = REJECTED
                elif exc.error_code not in OUTSIDE_WINDOW:
                    return self._reminder_outcome(exc)
                # Zalo counts the window differently from our record: the template, if there is one.
        return await self._send_template(chat_id, reply, without=without_template)

    async def _send_template(self, chat_id: str, reply: Reply, *, without: Outcome) -> Outcome:
        template_id = self.settings.reminder_template_id
        if not template_id:
            return without
        data = {self.settings.reminder_template_param: reply.text[:400]}
        try:
            sent = await self._with_token(lambda token: self.client.send_template(
                token, user_id=chat_id, template_id=template_id, template_data=data))
        except NotConnected:
            return TRANSIENT
        except ZaloOAError as exc:
            return self._reminder_outcome(exc)
        if not sent.get("message_id"):
            # error 0 is Zalo's word that it was sent; sending again could deliver it twice.
            log.warning("Zalo answered a template with error 0 but no data.message_id; counted as sent")
        return SENT

    def _reminder_outcome(self, exc: ZaloOAError) -> Outcome:
        """What a refused reminder becomes in the outbox (the table at the top, column "a reminder")."""
        code = exc.error_code
        if code == NOT_FOLLOWER:
            return BLOCKED  # no longer follows the OA: unsubscribed, like a Telegram user who blocked the bot
        if code in OUTSIDE_WINDOW:
            return Outcome.refused("outside_window")
        if code == RATE_LIMITED:
            return Outcome.wait(30)
        if code is None or code in TOKEN_ERRORS or code in (OA_QUOTA, NIGHT) or code >= 500:
            return TRANSIENT  # network, a token being replaced, the OA's quota, the night: tried later, a few times
        if code == TEMPLATE_NOT_BY_UID or code in OA_NOT_ELIGIBLE:
            if code not in self._told:  # every reminder would say the same: one line for the operator
                self._told.add(code)
                log.error("Zalo OA refuses reminders with %s (%s): %s", code, exc.description,
                          "zalo_oa.reminder_template_id must be a template approved for sending by user_id"
                          if code == TEMPLATE_NOT_BY_UID else "the OA's verification or package must be fixed")
            return REJECTED
        return REJECTED  # -218, -217, -227, -244, -201 …: this message would be refused again


def _title(label: str) -> str:
    return label if len(label) <= BUTTON_TITLE_LIMIT else label[:BUTTON_TITLE_LIMIT - 1] + "…"


async def send_replies(channel: ZaloOAChannel, chat_id: str, replies: list[Reply]) -> int:
    """Send every part of every reply; returns how many parts were not sent.

    What each refusal does (the table at the top, column "a reply"): -216/-220/-124 refresh once and retry
    once (in the channel); -32 waits a moment and tries that part once more; a refusal that says the chat
    cannot be reached (CHAT_UNREACHABLE: not a follower, outside the window, a quota, an inactive or
    restricting citizen, the OA's own standing) drops the rest of this chat's messages, since each would be
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
            if code in CHAT_UNREACHABLE:
                log.warning("Zalo OA refused a reply (%s: %s); the rest of it is dropped", code, _WHY_UNREACHABLE[code])
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
    if section.template_api_base:
        # Kept readable so an older config.toml still starts; templates now go by user_id through api_base.
        log.warning("zalo_oa.template_api_base is no longer used (reminder templates go by user_id through "
                    "zalo_oa.api_base); remove it from the config")
    image_max_bytes = section.image_max_kb * 1000
    if image_max_bytes > IMAGE_LIMIT:
        log.warning("zalo_oa.image_max_kb = %d is over Zalo's 1 MB (1,000,000 bytes); %d is used",
                    section.image_max_kb, IMAGE_LIMIT // 1000)
        image_max_bytes = IMAGE_LIMIT
    client = ZaloOAClient(app_id=section.app_id, app_secret=section.app_secret.get_secret_value(),
                          api_base=section.api_base, oauth_base=section.oauth_base)
    settings = OASettings(app_id=section.app_id, oa_id=section.oa_id, secret_key=section.secret_key.get_secret_value(),
                          image_max_bytes=image_max_bytes,
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
