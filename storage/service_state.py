"""What /healthz and /metrics read from the database: clear counting columns only, nothing personal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Tip, ZaloOaToken


async def database_answers(*, session: AsyncSession) -> bool:
    return (await session.exec(select(text("1")))).one() is not None


async def tips_by_status(*, session: AsyncSession) -> dict[str, int]:
    rows = await session.exec(select(Tip.status, func.count()).group_by(Tip.status))
    return {status: n for status, n in rows.all()}


async def zalo_oa_token_expiry(*, session: AsyncSession) -> datetime | None:
    """When the OA's current access token runs out (None: no OA connected)."""
    return (await session.exec(select(func.min(ZaloOaToken.access_expires_at)))).one()
