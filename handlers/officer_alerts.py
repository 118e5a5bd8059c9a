"""Alerts the admins get in the bot about its own standing, in their language, through their own channel."""

from __future__ import annotations

from handlers.context import Services
from handlers.i18n import translator
from handlers.messages import Reply, Route
from storage.officers import list_officers, officer_route


async def zalo_oa_refresh_failed(services: Services, *, reason: str) -> list[Reply]:
    """Every enrolled admin is told the Zalo OA's token could not be refreshed, and how to reconnect it."""
    replies = []
    async with services.db.transaction() as session:
        for officer in await list_officers(session=session):
            if officer.role != "admin" or officer.revoked_at is not None:
                continue
            route = await officer_route(session=session, keyring=services.keyring, officer=officer)
            if route is None:
                continue
            _ = translator(route.get("language") or "vi")
            text = _("⚠️ Zalo OA: the OA's access token could not be refreshed ({reason}). The old one is kept and "
                     "used until it expires. An admin needs to run `tinbao zalo-oa connect` to connect the OA "
                     "again.").format(reason=reason[:120])
            replies.append(Reply(text, to=Route(route["channel"], route["chat_id"])))
    return replies
