"""Updates kept sealed from the moment a platform handed them over until their turn is handled, for the
platforms that never send one again (Zalo Bot): a worker killed in between leaves them to the next."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DecryptionError, Keyring
from storage.models import ReceivedUpdate


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def _field(token: str) -> str:
    return f"received_update:{token}"


async def keep_received(*, session: AsyncSession, keyring: Keyring, channel: str, raw: bytes, now: datetime) -> int:
    """Store one update as it came, sealed, claimed by this worker; returns its row id."""
    token = secrets.token_hex(16)
    row = ReceivedUpdate(channel=channel, token=token, claimed_at=_minute(now),
                         sealed=keyring.transit_key(f"received:{channel}").seal(_field(token), raw))
    session.add(row)
    await session.flush()
    return row.id


async def forget_received(*, session: AsyncSession, row_id: int) -> None:
    """Its turn is handled (and its replies stored with it): the update is shredded."""
    await session.exec(delete(ReceivedUpdate).where(ReceivedUpdate.id == row_id))


async def claim_left_received(*, session: AsyncSession, keyring: Keyring, channel: str, claimed_before: datetime,
                              now: datetime, limit: int = 100) -> list[tuple[int, bytes]]:
    """Updates a dead worker had taken and not handled, claimed for this one and opened, oldest first.
    PostgreSQL: SKIP LOCKED, so two workers never take the same one."""
    query = (select(ReceivedUpdate).where(ReceivedUpdate.channel == channel,
                                          ReceivedUpdate.claimed_at < claimed_before)
             .order_by(ReceivedUpdate.id).limit(limit))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    key = keyring.transit_key(f"received:{channel}")
    found = []
    for row in (await session.exec(query)).all():
        try:
            raw = key.open(_field(row.token), row.sealed)
        except DecryptionError:
            await session.delete(row)  # sealed under another keyring: nothing can be done with it
            continue
        row.claimed_at = _minute(now)
        session.add(row)
        found.append((row.id, raw))
    return found


LEFT_AFTER = timedelta(minutes=3)  # a live worker handles what it took within seconds
