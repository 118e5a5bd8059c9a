"""CPU per turn of taking a chat's conversation row, three ways, in isolation: the insert-and-select of
main, the one upsert of storage/conversations.py, and the same upsert read through ``from_statement``; then
one autocommitted statement (a reply's in-flight mark). Not a test: run it by hand.

    .venv/bin/python bench/conversation_row.py sqlite:////tmp/row.db      (a migrated database)
    .venv/bin/python bench/conversation_row.py postgresql://postgres@127.0.0.1:5432/tinbao_row
"""

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade_sync  # noqa: E402
from storage.models import Conversation  # noqa: E402
from storage import conversations as c  # noqa: E402
URL = sys.argv[1]
async def old(session, key):
    day = c._day(c.utcnow())
    await session.exec(c._insert(session, Conversation).values(chat_key=key, channel="telegram", created_at=day, updated_at=day).on_conflict_do_nothing())
    q = select(Conversation).where(Conversation.chat_key == key)
    if session.bind.dialect.name == "postgresql": q = q.with_for_update()
    return (await session.exec(q)).one()
async def fromstmt(session, key):
    day = c._day(c.utcnow())
    ins = c._insert(session, Conversation).values(chat_key=key, channel="telegram", created_at=day, updated_at=day)
    up = ins.on_conflict_do_update(index_elements=[Conversation.chat_key], set_={"chat_key": ins.excluded.chat_key}).returning(*Conversation.__table__.c)
    return (await session.exec(select(Conversation).from_statement(up), execution_options={"populate_existing": True})).scalars().one()
async def main():
    db = Database(URL)
    for name, fn in [("old", old), ("orm-upsert", lambda s, k: c.lock_conversation(session=s, chat_key=k, channel="telegram")), ("from_statement", fromstmt)] * 2:
        t = time.process_time()
        for i in range(400):
            async with db.transaction() as s:
                if fn is not None:
                    conv = await fn(s, f"k{i % 20}")
                    assert conv.chat_key == f"k{i % 20}"
        print(name, round((time.process_time() - t) / 400 * 1000, 3), "ms CPU per turn")
    from sqlalchemy import text
    t = time.process_time()
    for i in range(400):
        await db.run_statement(text("UPDATE conversation SET channel = channel WHERE id = -1"))
    print("one autocommitted statement", round((time.process_time() - t) / 400 * 1000, 3), "ms CPU")
    await db.dispose()
upgrade_sync(URL)
asyncio.run(main())
