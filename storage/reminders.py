"""Reminder subscribers, festival events and broadcasts (an event's reminder, or an announcement)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import delete, func, literal, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.sqltypes import UTCDateTime

from storage import keys as key_store
from storage.crypto import Keyring
from storage.db import insert_into
from storage.models import (ReminderBroadcast, ReminderEvent, ReminderOutbox, ReminderSubscriber,
                            ReminderSubscriberArea)
from storage.tips import new_id

MAX_AREAS = 5  # a home and a workplace, a parent's ward: a few, not a way to hear every ward


def _insert(session: AsyncSession, table):
    return insert_into(session, table)


def _postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


# --- subscribers -----------------------------------------------------------------------------------

async def subscriber_by_key(*, session: AsyncSession, chat_key: str, lock: bool = False) -> ReminderSubscriber | None:
    query = select(ReminderSubscriber).where(ReminderSubscriber.chat_key == chat_key)
    if lock and _postgres(session):
        query = query.with_for_update()
    return (await session.exec(query)).one_or_none()


async def subscribe(*, session: AsyncSession, keyring: Keyring, chat_key: str, channel: str, route: dict,
                    language: str, now: datetime) -> ReminderSubscriber:
    """Opt in (again): the chat id goes only into a route sealed under a fresh data key."""
    subscriber = await subscriber_by_key(session=session, chat_key=chat_key, lock=True)
    if subscriber is None:
        subscriber = ReminderSubscriber(chat_key=chat_key, channel=channel, language=language, opted_in_at=now)
    if subscriber.active and subscriber.route_key_id:
        subscriber.language = language
        session.add(subscriber)
        return subscriber
    route_key_id = new_id()
    data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=route_key_id)
    subscriber.channel, subscriber.language, subscriber.active = channel, language, True
    subscriber.route_key_id, subscriber.route = route_key_id, data_key.seal("route", json.dumps(route))
    subscriber.opted_in_at, subscriber.opted_out_at, subscriber.opt_out_reason = now, None, None
    session.add(subscriber)
    await session.flush()
    return subscriber


async def unsubscribe(*, session: AsyncSession, subscriber_ids: Sequence[int], reason: str, now: datetime) -> int:
    """Opt out (or blocked the bot): the sealed route is shredded and the chosen areas forgotten."""
    if not subscriber_ids:
        return 0
    rows = (await session.exec(select(ReminderSubscriber).where(ReminderSubscriber.id.in_(subscriber_ids),
                                                                ReminderSubscriber.active))).all()
    for subscriber in rows:
        if subscriber.route_key_id:
            await key_store.delete_data_key(session=session, owner_id=subscriber.route_key_id)
        subscriber.active, subscriber.route_key_id, subscriber.route = False, None, None
        subscriber.opted_out_at, subscriber.opt_out_reason = now, reason
        session.add(subscriber)
    await session.exec(delete(ReminderSubscriberArea).where(ReminderSubscriberArea.subscriber_id.in_(
        [s.id for s in rows])))
    await session.flush()
    return len(rows)


async def subscriber_route(*, session: AsyncSession, keyring: Keyring, subscriber: ReminderSubscriber) -> dict | None:
    if not subscriber.route_key_id or not subscriber.route:
        return None
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=subscriber.route_key_id)
    return json.loads(data_key.open_text("route", subscriber.route)) if data_key else None


async def areas_of(*, session: AsyncSession, subscriber_id: int) -> list[str]:
    return list((await session.exec(select(ReminderSubscriberArea.area_code).where(
        ReminderSubscriberArea.subscriber_id == subscriber_id).order_by(ReminderSubscriberArea.area_code))).all())


async def add_area(*, session: AsyncSession, subscriber_id: int, area_code: str) -> bool:
    """False when the area was already chosen or the subscriber has the most areas allowed."""
    chosen = await areas_of(session=session, subscriber_id=subscriber_id)
    if area_code in chosen or len(chosen) >= MAX_AREAS:
        return False
    session.add(ReminderSubscriberArea(subscriber_id=subscriber_id, area_code=area_code))
    await session.flush()
    return True


async def remove_area(*, session: AsyncSession, subscriber_id: int, area_code: str) -> bool:
    result = await session.exec(delete(ReminderSubscriberArea).where(
        ReminderSubscriberArea.subscriber_id == subscriber_id, ReminderSubscriberArea.area_code == area_code))
    return result.rowcount == 1


def _reaching(area_codes: Sequence[str] | None):
    """Active subscribers an event or announcement for these areas reaches (None: all of them)."""
    query = select(ReminderSubscriber.id).where(ReminderSubscriber.active)
    if area_codes is not None:
        query = query.where(ReminderSubscriber.id.in_(select(ReminderSubscriberArea.subscriber_id).where(
            ReminderSubscriberArea.area_code.in_(list(area_codes)))))
    return query


async def count_reaching(*, session: AsyncSession, area_codes: Sequence[str] | None) -> int:
    return int((await session.exec(select(func.count()).select_from(_reaching(area_codes).subquery()))).one())


# --- events ----------------------------------------------------------------------------------------

async def upsert_calendar_event(*, session: AsyncSession, key: str, values: dict, now: datetime) -> None:
    """A calendar (file) event as it reads now; reminders already made keep their key. Safe when
    several workers start at once: the insert and the update are one statement."""
    row = {**values, "key": key, "source": "calendar", "created_at": now, "updated_at": now, "cancelled_at": None}
    changed = {**values, "updated_at": now, "cancelled_at": None}
    await session.exec(_insert(session, ReminderEvent).values(**row).on_conflict_do_update(
        index_elements=["key"], set_=changed))


async def retire_calendar_events(*, session: AsyncSession, keep_keys: Sequence[str], now: datetime) -> int:
    """Calendar events no longer in the file stop; local events are untouched."""
    result = await session.exec(update(ReminderEvent).where(
        ReminderEvent.source == "calendar", ReminderEvent.key.not_in(list(keep_keys)),
        ReminderEvent.cancelled_at.is_(None)).values(cancelled_at=now, updated_at=now))
    return result.rowcount


async def add_local_event(*, session: AsyncSession, values: dict, now: datetime) -> ReminderEvent:
    event = ReminderEvent(key=f"local:{new_id()}", source="local", created_at=now, updated_at=now, **values)
    session.add(event)
    await session.flush()
    return event


async def active_events(*, session: AsyncSession) -> list[ReminderEvent]:
    return list((await session.exec(select(ReminderEvent).where(ReminderEvent.cancelled_at.is_(None))
                                    .order_by(ReminderEvent.id))).all())


async def cancel_event(*, session: AsyncSession, event: ReminderEvent, now: datetime) -> int:
    """The event stops; whatever of its reminders is still unsent is withdrawn. Returns how many messages."""
    event.cancelled_at, event.updated_at = now, now
    session.add(event)
    ids = (await session.exec(select(ReminderBroadcast.id).where(ReminderBroadcast.event_id == event.id))).all()
    withdrawn = 0
    for broadcast_id in ids:
        withdrawn += await _withdraw(session=session, broadcast_id=broadcast_id, now=now)
    return withdrawn


# --- broadcasts ------------------------------------------------------------------------------------

async def create_broadcast(*, session: AsyncSession, key: str, kind: str, send_at: datetime, now: datetime,
                           event_id: int | None = None, occurs_on: date | None = None,
                           reminder_offset: str | None = None, area_code: str | None = None,
                           text: str | None = None, status: str = "scheduled", expires_at: datetime | None = None,
                           created_by: int | None = None) -> bool:
    """Record a broadcast under its unique key; False when it exists already (another scheduler made it)."""
    result = await session.exec(_insert(session, ReminderBroadcast).values(
        key=key, kind=kind, event_id=event_id, occurs_on=occurs_on, reminder_offset=reminder_offset,
        area_code=area_code, text=text, status=status, send_at=send_at, expires_at=expires_at,
        created_by=created_by, created_at=now).on_conflict_do_nothing())
    return result.rowcount == 1


async def broadcast_by_key(*, session: AsyncSession, key: str) -> ReminderBroadcast | None:
    return (await session.exec(select(ReminderBroadcast).where(ReminderBroadcast.key == key))).one_or_none()


async def broadcast_by_id(*, session: AsyncSession, broadcast_id: int, lock: bool = False) -> ReminderBroadcast | None:
    query = select(ReminderBroadcast).where(ReminderBroadcast.id == broadcast_id)
    if lock and _postgres(session):
        query = query.with_for_update()
    return (await session.exec(query)).one_or_none()


async def due_broadcasts(*, session: AsyncSession, now: datetime, limit: int = 20) -> list[ReminderBroadcast]:
    """Scheduled broadcasts whose time has come; on PostgreSQL another scheduler skips the ones taken."""
    query = (select(ReminderBroadcast).where(ReminderBroadcast.status == "scheduled", ReminderBroadcast.send_at <= now)
             .order_by(ReminderBroadcast.send_at).limit(limit))
    if _postgres(session):
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())


async def fan_out(*, session: AsyncSession, broadcast: ReminderBroadcast, area_codes: Sequence[str] | None,
                  not_before: datetime, now: datetime) -> int:
    """One pending outbox row per subscriber reached, in one statement; the unique key makes a repeat harmless."""
    recipients = _reaching(area_codes).subquery()
    # The WHERE is for SQLite, whose parser needs one before ON CONFLICT in an INSERT … SELECT.
    rows = (select(recipients.c.id, *[_literal(v) for v in (broadcast.id, "pending", 0, not_before)])
            .where(recipients.c.id.is_not(None)))
    statement = _insert(session, ReminderOutbox).from_select(
        ["subscriber_id", "broadcast_id", "status", "attempts", "not_before"], rows).on_conflict_do_nothing()
    result = await session.exec(statement)
    broadcast.status, broadcast.queued_at = "queued", now
    session.add(broadcast)
    await session.flush()
    return max(result.rowcount, 0)


def _literal(value):
    return literal(value, UTCDateTime()) if isinstance(value, datetime) else literal(value)


async def cancel_broadcast(*, session: AsyncSession, broadcast: ReminderBroadcast, now: datetime) -> int:
    """Stop a broadcast; messages not yet handed to a channel are withdrawn. Returns how many."""
    broadcast.status, broadcast.cancelled_at = "cancelled", now
    session.add(broadcast)
    return await _withdraw(session=session, broadcast_id=broadcast.id, now=now)


async def _withdraw(*, session: AsyncSession, broadcast_id: int, now: datetime) -> int:
    await session.exec(update(ReminderBroadcast).where(
        ReminderBroadcast.id == broadcast_id, ReminderBroadcast.status.in_(("draft", "scheduled"))).values(
        status="cancelled", cancelled_at=now))
    result = await session.exec(update(ReminderOutbox).where(
        ReminderOutbox.broadcast_id == broadcast_id, ReminderOutbox.status == "pending").values(
        status="skipped", reason="cancelled", finished_at=now))
    return result.rowcount


async def recent_broadcasts(*, session: AsyncSession, area_codes: Sequence[str] | None, include_everyone: bool,
                            since: datetime, limit: int = 10) -> list[ReminderBroadcast]:
    """Newest first: what went out lately, what is queued, and what is still to come."""
    query = select(ReminderBroadcast).where(
        ReminderBroadcast.status != "draft",
        (ReminderBroadcast.send_at >= since) | ReminderBroadcast.status.in_(("scheduled", "queued")))
    if area_codes is not None:
        scope = ReminderBroadcast.area_code.in_(list(area_codes))
        query = query.where(scope | ReminderBroadcast.area_code.is_(None) if include_everyone else scope)
    return list((await session.exec(query.order_by(ReminderBroadcast.send_at.desc(), ReminderBroadcast.id.desc())
                                    .limit(limit))).all())


async def broadcast_counts(*, session: AsyncSession, broadcast_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per broadcast: messages by status, and by "skipped:<reason>" / "failed:<reason>"."""
    counts: dict[int, dict[str, int]] = {i: {} for i in broadcast_ids}
    if not broadcast_ids:
        return counts
    rows = await session.exec(select(ReminderOutbox.broadcast_id, ReminderOutbox.status, ReminderOutbox.reason,
                                     func.count()).where(ReminderOutbox.broadcast_id.in_(list(broadcast_ids)))
                              .group_by(ReminderOutbox.broadcast_id, ReminderOutbox.status, ReminderOutbox.reason))
    for broadcast_id, status, reason, n in rows.all():
        bucket = counts[broadcast_id]
        bucket[status] = bucket.get(status, 0) + n
        if reason and status in ("skipped", "failed"):
            bucket[f"{status}:{reason}"] = bucket.get(f"{status}:{reason}", 0) + n
    return counts
