"""Data keys: one per tip, stored only wrapped by the keyring's key-encryption keys."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DataKey, Keyring
from storage.models import DataKeyRecord


async def create_data_key(*, session: AsyncSession, keyring: Keyring, owner_id: str) -> DataKey:
    """A fresh random key for a new draft/tip, saved wrapped under the active key."""
    data_key = DataKey.generate(owner_id)
    kek_id, wrapped = keyring.wrap(data_key)
    session.add(DataKeyRecord(id=owner_id, kek_id=kek_id, wrapped=wrapped))
    await session.flush()
    return data_key


async def load_data_key(*, session: AsyncSession, keyring: Keyring, owner_id: str) -> DataKey | None:
    record = await session.get(DataKeyRecord, owner_id)
    if record is None:
        return None
    return keyring.unwrap(owner_id=owner_id, key_id=record.kek_id, wrapped=record.wrapped)


async def delete_data_key(*, session: AsyncSession, owner_id: str) -> None:
    """Crypto-shredding: without its data key a tip's sealed fields and blobs are unreadable."""
    await session.exec(delete(DataKeyRecord).where(DataKeyRecord.id == owner_id))


async def count_by_key_id(*, session: AsyncSession) -> dict[str, int]:
    rows = await session.exec(select(DataKeyRecord.kek_id, func.count()).group_by(DataKeyRecord.kek_id))
    return {kek_id: n for kek_id, n in rows.all()}


async def rewrap_batch(*, session: AsyncSession, keyring: Keyring, limit: int = 500) -> int:
    """Re-wrap up to ``limit`` data keys still under a retired key; returns how many it did."""
    query = (select(DataKeyRecord).where(DataKeyRecord.kek_id != keyring.active_id)
             .order_by(DataKeyRecord.id).limit(limit))
    if session.bind.dialect.name == "postgresql":
        # Several rotations (or a bot deleting a draft) may touch the same rows; skip what is taken.
        query = query.with_for_update(skip_locked=True)
    records = (await session.exec(query)).all()
    for record in records:
        data_key = keyring.unwrap(owner_id=record.id, key_id=record.kek_id, wrapped=record.wrapped)
        record.kek_id, record.wrapped = keyring.wrap(data_key)
        session.add(record)
    await session.flush()
    return len(records)
