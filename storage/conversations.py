"""Conversation rows: one per chat pseudonym, locked while one update of that chat is handled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Conversation, ProcessedUpdate, utcnow


def _insert(session: AsyncSession, table):
    dialect = session.bind.dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


# A conversation keeps the day it began, and the time of its last turn only while a draft is open (for the
# stale-draft wipe): a tip's time of arrival must not be found again on the conversation it came from.


def _day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def touch_conversation(*, conversation: Conversation, now: datetime) -> None:
    """Note the turn: while a draft is open, its time (the stale-draft wipe needs it); with no draft, the day
    the conversation began, so that the turn that sends a tip leaves no time behind."""
    conversation.updated_at = now if conversation.draft_id is not None else conversation.created_at


async def lock_conversation(*, session: AsyncSession, chat_key: str, channel: str) -> Conversation:
    """The chat's row, created if new and row-locked on PostgreSQL so workers take turns."""
    day = _day(utcnow())
    insert = _insert(session, Conversation).values(chat_key=chat_key, channel=channel, created_at=day,
                                                   updated_at=day)
    if session.bind.dialect.name == "postgresql":
        # One round trip, not an insert and a select: every update of every chat begins here. The conflict's
        # DO UPDATE row-locks the row until the turn commits, as SELECT … FOR UPDATE would.
        upsert = insert.on_conflict_do_update(index_elements=[Conversation.chat_key],
                                              set_={"chat_key": insert.excluded.chat_key}).returning(Conversation)
        return (await session.exec(upsert, execution_options={"populate_existing": True})).scalars().one()
    # SQLite (one writer, no round trip to save): DO UPDATE would write the row at every turn, and costs more
    # CPU than a read (bench/conversation_row.py).
    await session.exec(insert.on_conflict_do_nothing())
    return (await session.exec(select(Conversation).where(Conversation.chat_key == chat_key))).one()


async def peek_conversation(*, session: AsyncSession, chat_key: str) -> Conversation | None:
    """The chat's row as it stands, neither created nor locked."""
    return (await session.exec(select(Conversation).where(Conversation.chat_key == chat_key))).first()


async def mark_update_processed(*, session: AsyncSession, channel: str, update_id: str) -> bool:
    """Record a platform update id; False when it was handled before (a redelivery)."""
    result = await session.exec(_insert(session, ProcessedUpdate).values(
        channel=channel, update_id=update_id, handled_at=utcnow()).on_conflict_do_nothing())
    return result.rowcount == 1


async def was_processed(*, session: AsyncSession, channel: str, update_id: str) -> bool:
    """Whether this update was handled before (a redelivery), without recording anything."""
    found = await session.exec(select(ProcessedUpdate.update_id).where(ProcessedUpdate.channel == channel,
                                                                      ProcessedUpdate.update_id == update_id))
    return found.first() is not None


async def prune_processed_updates(*, session: AsyncSession, handled_before: datetime) -> int:
    """Forget update ids older than any redelivery; returns how many went."""
    result = await session.exec(delete(ProcessedUpdate).where(ProcessedUpdate.handled_at < handled_before))
    return result.rowcount


async def stale_drafts(*, session: AsyncSession, untouched_since: datetime) -> list[Conversation]:
    query = select(Conversation).where(Conversation.draft_id.is_not(None),
                                       Conversation.updated_at < untouched_since)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())
