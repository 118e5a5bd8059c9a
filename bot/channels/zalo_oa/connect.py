"""`tinbao zalo-oa connect` and `status`: the first grant (permission address with PKCE, then the pasted
code), stored sealed; the stored pair's version, expiry and last failure, never the tokens."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from bot.channels.zalo_oa.client import OAuthError, ZaloOAClient
from bot.channels.zalo_oa.pkce import code_challenge, new_code_verifier, permission_url
from bot.channels.zalo_oa.tokens import TokenKeeper
from storage import zalo_oa as store


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

