"""Conversation rows: one per chat pseudonym, locked while one update of that chat is handled."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Conversation, ProcessedUpdate, utcnow


def _insert(session: AsyncSession, table):
    dialect = session.bind.dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


async def lock_conversation(*, session: AsyncSession, chat_key: str, channel: str) -> Conversation:
    """The chat's row, created if new and row-locked on PostgreSQL so workers take turns."""
    now = utcnow()
    await session.exec(_insert(session, Conversation).values(
        chat_key=chat_key, channel=channel, created_at=now, updated_at=now).on_conflict_do_nothing())
    query = select(Conversation).where(Conversation.chat_key == chat_key)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await session.exec(query)).one()


async def mark_update_processed(*, session: AsyncSession, channel: str, update_id: str) -> bool:
    """Record a platform update id; False when it was handled before (a redelivery)."""
    result = await session.exec(_insert(session, ProcessedUpdate).values(
        channel=channel, update_id=update_id, handled_at=utcnow()).on_conflict_do_nothing())
    return result.rowcount == 1


async def stale_drafts(*, session: AsyncSession, untouched_since: datetime) -> list[Conversation]:
    query = select(Conversation).where(Conversation.draft_id.is_not(None),
                                       Conversation.updated_at < untouched_since)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())
