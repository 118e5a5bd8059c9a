"""The OA OpenAPI and OAuth v4 over aiohttp: one method per call we use, ``error`` always checked.

Sources (docs/zalo-oa.md has the whole of what each says): Zalo's PHP SDK (ZaloEndPoint.php, MessageBuilder,
OAuth2Client), Java SDK (UploadImage.java), ZaloDotNetSDK (ZaloClient.cs), Chatwoot's Zalo OA channel
(app/models/channel/zalo_oa.rb, ``refresh_post``), and VinFleet's compiled spec (docs/ZALO_API.md §4.1, §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp

from bot.channels.zalo_common import ZaloCallError, ZaloHttpClient, clean, int_or_none, json_object


API_BASE = "https://openapi.zalo.me"
OAUTH_BASE = "https://oauth.zaloapp.com"
MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
# ZBS template by user_id, on the OA API's own host. Not business.openapi.zalo.me/message/template: that one
# addresses a phone number (and wants a tracking_id), which the bot never has (see the notes above).
TEMPLATE_PATH = "/v3.0/oa/message/template"
TOKEN_PATH = "/v4/oa/access_token"
EXPIRES_IN_DEFAULT = 90_000  # seconds; what Zalo answers ("expires_in": "90000")


# --- errors ------------------------------------------------------------------------------------------

class ZaloOAError(ZaloCallError):
    """An OpenAPI call that did not succeed: ``error != 0`` (even on HTTP 200), an HTTP error, a network failure.

    Carries Zalo's code and words, never a token, a user id or the text we sent."""

    platform = "Zalo OA"


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


# --- the client --------------------------------------------------------------------------------------

class ZaloOAClient(ZaloHttpClient):
    """The OA OpenAPI and OAuth v4 over aiohttp: one method per call we use, ``error`` always checked."""

    error = ZaloOAError

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

    async def call(self, path: str, *, access_token: str, json_body: dict | None = None,
                   form: aiohttp.FormData | None = None, base: str | None = None, hidden: Iterable[str] = (),
                   method: str = "") -> dict:
        """POST one OpenAPI call; its whole answer on ``error == 0``, else ZaloOAError."""
        what = method or path
        hidden = [access_token, *hidden]
        status, body = await self.post_json(f"{base or self.api_base}{path}", method=what, json=json_body, data=form,
                                            headers={"access_token": access_token})
        code = int_or_none(body.get("error"))
        if code != 0 or status >= 400:
            raise ZaloOAError(code if code not in (None, 0) else (status if status >= 400 else None),
                              clean(body.get("message"), hidden) or f"HTTP {status}", method=what)
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
        body = json_object(raw)
        if body is None:
            raise OAuthUnknown(f"HTTP {status}, answer is not JSON")
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            code = int_or_none(body.get("error"))
            words = body.get("error_name") or body.get("error_description") or body.get("message") or f"HTTP {status}"
            if status >= 500:
                raise OAuthUnknown(clean(words, hidden), error_code=code)
            raise OAuthRefused(clean(words, hidden), error_code=code)
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


