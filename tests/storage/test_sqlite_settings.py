"""SQLite as the README promises it: WAL, secure_delete and full sync on every connection the bot opens,
so deleted tip data is overwritten in the file and an acknowledged tip survives a power cut.

SQLite builds differ in their defaults (Debian's has secure_delete on and synchronous FULL; many others
have secure_delete off), so a check on one machine could pass without the bot asking for anything. Each
connection here therefore starts from the least safe settings a build may have, set before the bot's
own connect hook runs: what is read back is what the bot itself set.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database

# PRAGMA synchronous reads back as a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
OFF, FULL = 0, 2
SAFE = {"journal_mode": "wal", "secure_delete": 1, "synchronous": FULL, "foreign_keys": 1}


def _least_safe_build(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=DELETE", "secure_delete=OFF", "synchronous=OFF", "foreign_keys=OFF"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


@pytest.fixture
async def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/tinbao.db")
    event.listen(database.engine.sync_engine, "connect", _least_safe_build, insert=True)  # before the bot's hook
    yield database
    await database.dispose()


async def _settings(conn) -> dict:
    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # no BEGIN IMMEDIATE: nothing is written
    return {name: (await conn.execute(text(f"PRAGMA {name}"))).scalar() for name in SAFE}


async def test_every_connection_has_wal_secure_delete_and_full_sync(sqlite_db):
    # secure_delete and synchronous belong to each connection, not to the file: two open at once.
    async with sqlite_db.engine.connect() as first, sqlite_db.engine.connect() as second:
        assert await _settings(first) == SAFE
        assert await _settings(second) == SAFE
    async with sqlite_db.transaction() as session:  # the way every handler and job reaches the database
        for name, value in SAFE.items():
            assert (await session.exec(text(f"PRAGMA {name}"))).scalar() == value, name


async def test_the_check_above_sees_a_connection_the_bot_did_not_set_up(tmp_path):
    """Without the bot's hook the same reading shows the unsafe settings: the check can fail."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/plain.db")
    event.listen(engine.sync_engine, "connect", _least_safe_build)
    try:
        async with engine.connect() as conn:
            assert await _settings(conn) == {"journal_mode": "delete", "secure_delete": 0, "synchronous": OFF,
                                             "foreign_keys": 0}
    finally:
        await engine.dispose()


async def test_deleted_rows_are_overwritten_in_the_file(sqlite_db):
    """What secure_delete is for: once deleted and checkpointed, a text is nowhere in the database file."""
    canary = "CANARY-deleted-tip-7f3a9"
    async with sqlite_db.transaction() as session:
        await session.exec(text("CREATE TABLE scratch (body TEXT)"))
        for n in range(50):
            await session.exec(text("INSERT INTO scratch VALUES (:body)").bindparams(body=f"{canary} {n}"))
    await sqlite_db.checkpoint()
    path = sqlite_db.engine.url.database
    with open(path, "rb") as fh:
        assert canary.encode() in fh.read()  # the scan finds it while it is there
    async with sqlite_db.transaction() as session:
        await session.exec(text("DELETE FROM scratch"))
    await sqlite_db.checkpoint()
    for suffix in ("", "-wal"):
        try:
            with open(path + suffix, "rb") as fh:
                content = fh.read()
        except FileNotFoundError:
            continue
        assert canary.encode() not in content, f"a deleted row is still readable in {path + suffix}"
