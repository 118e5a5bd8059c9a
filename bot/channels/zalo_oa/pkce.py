"""PKCE and the permission address for `tinbao zalo-oa connect`, as Zalo's PHP SDK builds them
(src/Authentication/OAuth2Client.php ``getAuthorizationUrlByOA``, src/Util/PKCEUtil.php; see docs/zalo-oa.md)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from urllib.parse import urlencode


PERMISSION_PATH = "/v4/oa/permission"

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


