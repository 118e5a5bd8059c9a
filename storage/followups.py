"""Questions waiting for a tipster's answer, keyed by pseudonym, with the tip they concern sealed."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import keys as key_store
from storage.crypto import Keyring
from storage.models import FollowUp
from storage.tips import new_id


async def open_follow_up(*, session: AsyncSession, keyring: Keyring, chat_key: str, content: str) -> FollowUp:
    follow_up_id = new_id()
    data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=follow_up_id)
    row = FollowUp(id=follow_up_id, chat_key=chat_key, sealed=data_key.seal("follow-up", content))
    session.add(row)
    await session.flush()
    return row


async def oldest_follow_up(*, session: AsyncSession, keyring: Keyring, chat_key: str) -> tuple[FollowUp, str] | None:
    row = (await session.exec(select(FollowUp).where(FollowUp.chat_key == chat_key)
                              .order_by(FollowUp.created_at).limit(1))).first()
    if row is None:
        return None
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.id)
    return row, data_key.open_text("follow-up", row.sealed)


async def close_follow_up(*, session: AsyncSession, follow_up: FollowUp) -> None:
    await key_store.delete_data_key(session=session, owner_id=follow_up.id)
    await session.delete(follow_up)


async def has_follow_up(*, session: AsyncSession, chat_key: str) -> bool:
    return (await session.exec(select(FollowUp.id).where(FollowUp.chat_key == chat_key).limit(1))).first() is not None


async def follow_ups_of(*, session: AsyncSession, keyring: Keyring, chat_key: str) -> list[tuple[FollowUp, str]]:
    rows = (await session.exec(select(FollowUp).where(FollowUp.chat_key == chat_key))).all()
    opened = []
    for row in rows:
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.id)
        opened.append((row, data_key.open_text("follow-up", row.sealed)))
    return opened
