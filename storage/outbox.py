"""The reminder outbox: claiming rows to send, the shared pace of all senders, and recording outcomes.

A row moves pending → sending (claimed) → sent | failed | skipped, or back to pending (retry, 429,
quiet hours, released unsent). A row left in "sending" by a worker that died is never sent again:
it becomes "unknown" and is counted, because its message may or may not have gone out (at most once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DecryptionError, Keyring
from storage.db import insert_into
from storage.models import (Conversation, DataKeyRecord, ReminderBroadcast, ReminderOutbox, ReminderPace,
                            ReminderSubscriber)

log = logging.getLogger(__name__)
PACE = "reminders"  # one schedule for every channel and worker: the issue asks for one global limit


@dataclass
class ClaimedMessage:
    """A claimed outbox row with what sending it needs; ``route`` is None if the subscriber has left."""

    id: int
    broadcast_id: int
    subscriber_id: int
    attempts: int
    channel: str
    language: str
    route: dict | None


def _postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


# --- the shared pace -------------------------------------------------------------------------------

async def lock_pace(*, session: AsyncSession, now: datetime) -> ReminderPace:
    """The schedule row, locked until the transaction ends so two workers never book the same slots."""
    insert = partial(insert_into, session)
    await session.exec(insert(ReminderPace).values(name=PACE, next_at=now).on_conflict_do_nothing())
    query = select(ReminderPace).where(ReminderPace.name == PACE)
    if _postgres(session):
        query = query.with_for_update()
    return (await session.exec(query)).one()


def book_slots(*, pace: ReminderPace, count: int, rate: float, now: datetime) -> datetime:
    """Book ``count`` consecutive slots, 1/rate seconds apart; returns the first one's time."""
    start = max(pace.next_at, now)
    pace.next_at = start + timedelta(seconds=count / rate)
    return start


async def pause_pace(*, session: AsyncSession, until: datetime) -> None:
    """After a 429 every worker waits: no slot is handed out before ``until``."""
    pace = await lock_pace(session=session, now=until)
    if pace.next_at < until:
        pace.next_at = until
        session.add(pace)


# --- claiming --------------------------------------------------------------------------------------

async def claim_due(*, session: AsyncSession, keyring: Keyring, worker: str, channels: Sequence[str],
                    now: datetime, limit: int) -> list[ClaimedMessage]:
    """Mark up to ``limit`` due rows "sending" for this worker and open their routes.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint rows without waiting;
    SQLite has a single writer, so the one UPDATE is already exclusive."""
    due = (select(ReminderOutbox.id)
           .join(ReminderSubscriber, ReminderSubscriber.id == ReminderOutbox.subscriber_id)
           .where(ReminderOutbox.status == "pending", ReminderOutbox.not_before <= now,
                  ReminderSubscriber.channel.in_(list(channels)))
           .order_by(ReminderOutbox.not_before, ReminderOutbox.id).limit(limit))
    if _postgres(session):
        due = due.with_for_update(of=ReminderOutbox, skip_locked=True)
    # A CTE, not "id IN (subquery)": PostgreSQL may run such a subquery more than once, and each run
    # skips other rows, so one claim could take more than ``limit``. A locking CTE runs exactly once.
    chosen = due.cte("due")
    claim = (update(ReminderOutbox).where(ReminderOutbox.id == chosen.c.id, ReminderOutbox.status == "pending")
             .values(status="sending", claimed_by=worker, claimed_at=now).returning(ReminderOutbox.id))
    ids = list((await session.exec(claim)).scalars().all())
    if not ids:
        return []
    rows = await session.exec(
        select(ReminderOutbox.id, ReminderOutbox.broadcast_id, ReminderOutbox.subscriber_id, ReminderOutbox.attempts,
               ReminderSubscriber.active, ReminderSubscriber.channel, ReminderSubscriber.language,
               ReminderSubscriber.route_key_id, ReminderSubscriber.route, DataKeyRecord.kek_id, DataKeyRecord.wrapped,
               Conversation.language)
        .join(ReminderSubscriber, ReminderSubscriber.id == ReminderOutbox.subscriber_id)
        .outerjoin(DataKeyRecord, DataKeyRecord.id == ReminderSubscriber.route_key_id)
        .outerjoin(Conversation, Conversation.chat_key == ReminderSubscriber.chat_key)
        .where(ReminderOutbox.id.in_(ids)).order_by(ReminderOutbox.id))
    claimed = []
    for (row_id, broadcast_id, subscriber_id, attempts, active, channel, language, key_id, sealed, kek_id, wrapped,
         chosen_language) in rows.all():
        route = None
        if active and key_id and sealed and wrapped:
            try:
                data_key = keyring.unwrap(owner_id=key_id, key_id=kek_id, wrapped=wrapped)
                route = json.loads(data_key.open_text("route", sealed))
            except DecryptionError:
                log.warning("a subscriber's route does not open; that message is skipped")
        claimed.append(ClaimedMessage(row_id, broadcast_id, subscriber_id, attempts, channel,
                                      chosen_language or language, route))
    return claimed


# --- outcomes --------------------------------------------------------------------------------------

def _claimed(ids: Sequence[int]):
    # Only rows still "sending": a row the stale sweep already called unknown keeps that verdict.
    return update(ReminderOutbox).where(ReminderOutbox.id.in_(list(ids)), ReminderOutbox.status == "sending")


async def finish(*, session: AsyncSession, ids: Sequence[int], status: str, now: datetime,
                 reason: str | None = None) -> int:
    """The final word on these rows: sent, failed, skipped or unknown."""
    if not ids:
        return 0
    result = await session.exec(_claimed(ids).values(status=status, reason=reason, finished_at=now))
    return result.rowcount


async def release(*, session: AsyncSession, ids: Sequence[int], not_before: datetime | None = None) -> int:
    """Rows claimed but never attempted go back to pending (later, if ``not_before``), unchanged otherwise."""
    if not ids:
        return 0
    values: dict = {"status": "pending", "claimed_by": None, "claimed_at": None}
    if not_before is not None:
        values["not_before"] = not_before
    return (await session.exec(_claimed(ids).values(**values))).rowcount


async def retry_later(*, session: AsyncSession, ids: Sequence[int], not_before: datetime) -> int:
    """A failed attempt that may succeed later (5xx, timeout): counted, and tried again after a wait."""
    if not ids:
        return 0
    return (await session.exec(_claimed(ids).values(status="pending", claimed_by=None, claimed_at=None,
                                                    not_before=not_before,
                                                    attempts=ReminderOutbox.attempts + 1))).rowcount


async def mark_stale_unknown(*, session: AsyncSession, claimed_before: datetime, now: datetime) -> int:
    """Rows a dead worker left "sending": their outcome is unknown, so they are never sent again."""
    result = await session.exec(update(ReminderOutbox).where(
        ReminderOutbox.status == "sending", ReminderOutbox.claimed_at < claimed_before).values(
        status="unknown", reason="worker_lost", finished_at=now))
    return result.rowcount


async def skip_unsendable(*, session: AsyncSession, now: datetime) -> dict[str, int]:
    """Pending rows that must not go out any more: their event began, or their subscriber left."""
    expired = await session.exec(update(ReminderOutbox).where(
        ReminderOutbox.status == "pending",
        ReminderOutbox.broadcast_id.in_(select(ReminderBroadcast.id).where(ReminderBroadcast.expires_at <= now)))
        .values(status="skipped", reason="expired", finished_at=now))
    left = await session.exec(update(ReminderOutbox).where(
        ReminderOutbox.status == "pending",
        ReminderOutbox.subscriber_id.in_(select(ReminderSubscriber.id).where(ReminderSubscriber.active.is_(False))))
        .values(status="skipped", reason="unsubscribed", finished_at=now))
    return {"expired": expired.rowcount, "unsubscribed": left.rowcount}


async def count_by_status(*, session: AsyncSession) -> dict[str, int]:
    rows = await session.exec(select(ReminderOutbox.status, func.count()).group_by(ReminderOutbox.status))
    return {status: n for status, n in rows.all()}


async def count_pending(*, session: AsyncSession, channels: Sequence[str], due_by: datetime | None = None) -> int:
    """Rows still to send through these channels (due by ``due_by``, if given)."""
    query = (select(func.count()).select_from(ReminderOutbox)
             .join(ReminderSubscriber, ReminderSubscriber.id == ReminderOutbox.subscriber_id)
             .where(ReminderOutbox.status == "pending", ReminderSubscriber.channel.in_(list(channels))))
    if due_by is not None:
        query = query.where(ReminderOutbox.not_before <= due_by)
    return int((await session.exec(query)).one())
