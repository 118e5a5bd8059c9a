"""The poller lease: one row per platform naming the process that long-polls it, until it expires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import PollerLease


async def take_lease(*, session: AsyncSession, channel: str, holder: str, now: datetime, ttl: timedelta,
                     holder_gone: Callable[[str], bool] = lambda name: False) -> PollerLease | None:
    """Take (or renew) the lease on ``channel``; returns None if taken, else the other holder's lease.
    ``holder_gone``: whether a holder is known to have died (its lease is then taken at once)."""
    # FOR UPDATE on PostgreSQL; on SQLite the transaction already began IMMEDIATE (one writer).
    row = (await session.exec(select(PollerLease).where(PollerLease.channel == channel).with_for_update())).first()
    if row is None:
        session.add(PollerLease(channel=channel, holder=holder, expires_at=now + ttl))
        await session.flush()  # two first takers at once: the second one's insert fails on the key
        return None
    if row.holder != holder and row.expires_at > now and not holder_gone(row.holder):
        return row
    row.holder, row.expires_at = holder, now + ttl
    return None


async def renew_lease(*, session: AsyncSession, channel: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Push the lease's end further; False if another process has taken it meanwhile."""
    done = await session.exec(update(PollerLease).where(PollerLease.channel == channel,
                                                        PollerLease.holder == holder)
                              .values(expires_at=now + ttl))
    return done.rowcount == 1


async def release_lease(*, session: AsyncSession, channel: str, holder: str) -> None:
    await session.exec(delete(PollerLease).where(PollerLease.channel == channel, PollerLease.holder == holder))
