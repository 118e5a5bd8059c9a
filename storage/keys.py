"""Data keys: one per tip, stored only wrapped by the keyring's key-encryption keys."""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from weakref import WeakKeyDictionary

from sqlalchemy import delete, func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DataKey, Keyring
from storage.db import insert_into
from storage.models import DataKeyRecord, utcnow

# The keyring's check value lives beside the data keys it opens, in a row of its own: the database then
# says which keyring it belongs to, with nothing a key could be recovered from (an HMAC of the pepper).
CHECK_ROW_ID = "keyring-check"
CHECK_KEK_ID = "check"

# The data keys of open drafts, unwrapped, per keyring: every turn of a tip-off opens its draft, and reading
# the wrapped key again each time was a round trip per update. Only drafts; a key leaves as soon as its
# draft is sent or deleted (and by age beyond the bound). A live server's memory is outside what the
# encryption protects (README), and a key kept here never reaches the database or a log.
OPEN_DRAFT_KEYS = 10_000
_open_drafts: WeakKeyDictionary[Keyring, OrderedDict[str, DataKey]] = WeakKeyDictionary()


async def create_data_key(*, session: AsyncSession, keyring: Keyring, owner_id: str) -> DataKey:
    """A fresh random key for a new draft/tip, saved wrapped under the active key."""
    data_key = DataKey.generate(owner_id)
    kek_id, wrapped = keyring.wrap(data_key)
    # Only the day: a follow-up's or a route's key made at the second of an audited act would name its owner.
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    session.add(DataKeyRecord(id=owner_id, kek_id=kek_id, wrapped=wrapped, created_at=day))
    await session.flush()
    return data_key


async def load_data_key(*, session: AsyncSession, keyring: Keyring, owner_id: str) -> DataKey | None:
    record = await session.get(DataKeyRecord, owner_id)
    if record is None:
        return None
    return keyring.unwrap(owner_id=owner_id, key_id=record.kek_id, wrapped=record.wrapped)


async def load_draft_key(*, session: AsyncSession, keyring: Keyring, owner_id: str) -> DataKey | None:
    """An open draft's data key, read from the database at its first turn in this process only."""
    kept = _open_drafts.setdefault(keyring, OrderedDict())
    if (key := kept.get(owner_id)) is not None:
        kept.move_to_end(owner_id)
        return key
    key = await load_data_key(session=session, keyring=keyring, owner_id=owner_id)
    if key is not None:
        kept[owner_id] = key
        if len(kept) > OPEN_DRAFT_KEYS:
            kept.popitem(last=False)
    return key


def forget_draft_key(*, owner_id: str) -> None:
    """The draft was sent or deleted: its key is no longer kept in memory."""
    for kept in _open_drafts.values():
        kept.pop(owner_id, None)


def kept_draft_keys(keyring: Keyring) -> list[str]:
    """Which drafts' keys are held in memory for this keyring (for tests and figures)."""
    return list(_open_drafts.get(keyring, ()))


async def shared_data_key(*, session: AsyncSession, keyring: Keyring, owner_id: str) -> DataKey:
    """The data key of ``owner_id``, made on first use (two workers making it at once keep the first one)."""
    found = await load_data_key(session=session, keyring=keyring, owner_id=owner_id)
    if found is not None:
        return found
    fresh = DataKey.generate(owner_id)
    kek_id, wrapped = keyring.wrap(fresh)
    insert = partial(insert_into, session)
    await session.exec(insert(DataKeyRecord).values(id=owner_id, kek_id=kek_id, wrapped=wrapped,
                                                    created_at=utcnow().replace(hour=0, minute=0, second=0,
                                                                                microsecond=0))
                       .on_conflict_do_nothing())
    return await load_data_key(session=session, keyring=keyring, owner_id=owner_id)


async def delete_data_key(*, session: AsyncSession, owner_id: str) -> None:
    """Crypto-shredding: without its data key a tip's sealed fields and blobs are unreadable."""
    forget_draft_key(owner_id=owner_id)
    await session.exec(delete(DataKeyRecord).where(DataKeyRecord.id == owner_id))


async def stored_check_value(*, session: AsyncSession) -> str | None:
    """The check value of the keyring this database belongs to; None before it was first stored."""
    record = await session.get(DataKeyRecord, CHECK_ROW_ID)
    return None if record is None else bytes(record.wrapped).decode("ascii")


async def store_check_value(*, session: AsyncSession, keyring: Keyring) -> str:
    """Tie this database to ``keyring`` unless it is tied already (at its first start; a database made before
    this version: at its next); returns the check value it is tied to. Two workers starting together on an
    empty database: the first one's stays, and the other reads it back."""
    insert = partial(insert_into, session)
    await session.exec(insert(DataKeyRecord).values(id=CHECK_ROW_ID, kek_id=CHECK_KEK_ID,
                                                    wrapped=keyring.check_value().encode("ascii"),
                                                    created_at=utcnow()).on_conflict_do_nothing())
    return await stored_check_value(session=session)


async def count_by_key_id(*, session: AsyncSession) -> dict[str, int]:
    rows = await session.exec(select(DataKeyRecord.kek_id, func.count()).where(DataKeyRecord.id != CHECK_ROW_ID)
                              .group_by(DataKeyRecord.kek_id))
    return {kek_id: n for kek_id, n in rows.all()}


async def rewrap_batch(*, session: AsyncSession, keyring: Keyring, limit: int = 500) -> int:
    """Re-wrap up to ``limit`` data keys still under a retired key; returns how many it did."""
    query = (select(DataKeyRecord).where(DataKeyRecord.kek_id != keyring.active_id, DataKeyRecord.id != CHECK_ROW_ID)
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
