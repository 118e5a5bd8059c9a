"""Key rotation end to end on a real database (SQLite, and PostgreSQL when configured): every tip stays
readable at every step, the re-wrap converges while the bot keeps creating tips, and a retired key is
really gone."""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage.crypto import DecryptionError, Keyring
from storage.db import Database
from storage.keys import count_by_key_id, create_data_key, load_data_key, rewrap_batch
from storage.models import DataKeyRecord, Tip, TipField
from storage.tips import create_tip, new_id, read_tip_fields

TIP_COUNT = 30


async def _make_tip(db: Database, keyring: Keyring, n: int) -> tuple[str, dict[str, str]]:
    fields = {
        "text": f"Tin báo số {n}: có người trộm xe máy trước chợ Bến Thành lúc 21 giờ.",
        "address": f"{n} đường Lê Lợi, phường Bến Thành",
        "contact": f"0903 000 {n:03d}",
        "reply_route": f"tg:70010{n:04d}",
    }
    async with db.transaction() as session:
        data_key = await create_data_key(session=session, keyring=keyring, owner_id=new_id())
        await create_tip(session=session, data_key=data_key, channel="tg", category="theft",
                         area_code="79.26734", urgent=n % 5 == 0,
                         receipt_hash=keyring.receipt_hash(f"TB{n:08d}"), fields=fields)
    return data_key.owner_id, fields


async def _make_tips(db: Database, keyring: Keyring, count: int = TIP_COUNT) -> dict[str, dict[str, str]]:
    return dict([await _make_tip(db, keyring, n) for n in range(count)])


async def _read_all(db: Database, keyring: Keyring) -> dict[str, dict[str, str]]:
    """What an officer's tool would do: unwrap each tip's key and open every sealed field."""
    out = {}
    async with db.transaction() as session:
        tip_ids = (await session.exec(select(Tip.id))).all()
        for tip_id in tip_ids:
            data_key = await load_data_key(session=session, keyring=keyring, owner_id=tip_id)
            assert data_key is not None, f"tip {tip_id} has no data key"
            out[tip_id] = await read_tip_fields(session=session, data_key=data_key)
    return out


async def _counts(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return await count_by_key_id(session=session)


async def _rewrap_until_done(db: Database, keyring: Keyring, batch: int = 7) -> int:
    total = 0
    for _ in range(100):
        async with db.transaction() as session:
            done = await rewrap_batch(session=session, keyring=keyring, limit=batch)
        if not done:
            return total
        total += done
    raise AssertionError("re-wrapping does not converge")


async def _wrapped(db: Database) -> dict[str, tuple[str, bytes]]:
    async with db.transaction() as session:
        rows = (await session.exec(select(DataKeyRecord))).all()
    return {row.id: (row.kek_id, bytes(row.wrapped)) for row in rows}


async def test_tips_are_sealed_in_the_database(db: Database, keyring: Keyring) -> None:
    tips = await _make_tips(db, keyring, count=3)
    async with db.transaction() as session:
        rows = (await session.exec(select(TipField))).all()
    assert len(rows) == 3 * 4
    for row in rows:
        plain = tips[row.tip_id][row.name].encode()
        assert plain not in bytes(row.sealed)
    assert await _read_all(db, keyring) == tips


async def test_full_rotation_keeps_every_tip_readable(db: Database, keyring: Keyring) -> None:
    tips = await _make_tips(db, keyring)
    assert await _counts(db) == {"k1": TIP_COUNT}
    assert await _read_all(db, keyring) == tips
    before = await _wrapped(db)

    # `tinbao keys rotate` in another process: the new key is active at once.
    rotator = Keyring.load(keyring.path)
    new_key = rotator.add_active_key()
    assert new_key == "k2"
    assert await _read_all(db, rotator) == tips
    assert await _read_all(db, keyring) == tips  # the bot, still on the old key in memory
    assert await _read_all(db, Keyring.load(keyring.path)) == tips

    # Half-way: one batch done.
    async with db.transaction() as session:
        assert await rewrap_batch(session=session, keyring=rotator, limit=7) == 7
    assert await _counts(db) == {"k1": TIP_COUNT - 7, "k2": 7}
    assert await _read_all(db, rotator) == tips
    assert await _read_all(db, keyring) == tips
    assert await _read_all(db, Keyring.load(keyring.path)) == tips

    # The rest.
    assert await _rewrap_until_done(db, rotator) == TIP_COUNT - 7
    assert await _counts(db) == {"k2": TIP_COUNT}
    after = await _wrapped(db)
    assert after.keys() == before.keys()
    for owner_id, (kek_id, wrapped) in after.items():
        assert kek_id == "k2"
        assert wrapped != before[owner_id][1]
    assert await _read_all(db, rotator) == tips

    # Retire the old key; a freshly started process has only the new one and reads everything.
    rotator.remove_key("k1")
    fresh = Keyring.load(keyring.path)
    assert set(fresh.keys) == {"k2"} and fresh.active_id == "k2"
    assert await _read_all(db, fresh) == tips


async def test_data_key_under_a_removed_key_fails_naming_the_key(db: Database, keyring: Keyring) -> None:
    tips = await _make_tips(db, keyring, count=2)
    rotator = Keyring.load(keyring.path)
    rotator.add_active_key()
    # Retired too early (without re-wrapping): the tips under k1 are lost, and the error says why.
    rotator.remove_key("k1")
    fresh = Keyring.load(keyring.path)
    async with db.transaction() as session:
        for tip_id in tips:
            with pytest.raises(DecryptionError, match=r"\bk1\b"):
                await load_data_key(session=session, keyring=fresh, owner_id=tip_id)
    # A tip made after the rotation is fine.
    new_tip, fields = await _make_tip(db, fresh, 99)
    async with db.transaction() as session:
        data_key = await load_data_key(session=session, keyring=fresh, owner_id=new_tip)
        assert await read_tip_fields(session=session, data_key=data_key) == fields


async def test_rewrap_picks_up_keys_the_bot_wraps_under_the_old_key_during_rotation(
        db: Database, keyring: Keyring) -> None:
    tips = await _make_tips(db, keyring, count=12)
    bot = Keyring.load(keyring.path)  # the running bot, loaded before the rotation

    rotator = Keyring.load(keyring.path)
    rotator.add_active_key()

    # The bot has not noticed the new file yet (it looks at most once a second) and wraps under k1.
    late_id, late_fields = await _make_tip(db, bot, 100)
    tips[late_id] = late_fields
    assert bot.active_id == "k1", "precondition: the bot still had the old key active"
    assert (await _wrapped(db))[late_id][0] == "k1"

    async with db.transaction() as session:
        assert await rewrap_batch(session=session, keyring=rotator, limit=5) == 5
    assert await _counts(db) == {"k1": 13 - 5, "k2": 5}
    # ... and again while the rotation is half done.
    later_id, later_fields = await _make_tip(db, bot, 101)
    tips[later_id] = later_fields
    assert (await _wrapped(db))[later_id][0] == "k1"
    assert await _read_all(db, rotator) == tips

    assert await _rewrap_until_done(db, rotator) == 13 - 5 + 1
    assert await _counts(db) == {"k2": 14}

    rotator.remove_key("k1")
    assert await _read_all(db, Keyring.load(keyring.path)) == tips
    # The bot itself follows the file once it looks again, and keeps reading every tip.
    bot.refresh(min_interval=0)
    assert bot.active_id == "k2" and "k1" not in bot.keys
    assert await _read_all(db, bot) == tips


async def test_rewrap_with_nothing_to_do_changes_nothing(db: Database, keyring: Keyring) -> None:
    tips = await _make_tips(db, keyring, count=4)
    before = await _wrapped(db)
    async with db.transaction() as session:
        assert await rewrap_batch(session=session, keyring=keyring, limit=7) == 0
    assert await _wrapped(db) == before
    assert await _read_all(db, keyring) == tips


async def test_two_rotations_in_a_row(db: Database, keyring: Keyring) -> None:
    tips = await _make_tips(db, keyring, count=9)
    rotator = Keyring.load(keyring.path)
    rotator.add_active_key()
    async with db.transaction() as session:
        await rewrap_batch(session=session, keyring=rotator, limit=4)
    # A second rotation before the first finished: keys under k1 and k2 all move to k3.
    assert rotator.add_active_key() == "k3"
    assert await _rewrap_until_done(db, rotator) == 9
    assert await _counts(db) == {"k3": 9}
    rotator.remove_key("k1")
    rotator.remove_key("k2")
    assert await _read_all(db, Keyring.load(keyring.path)) == tips
