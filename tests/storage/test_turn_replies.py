"""A turn's replies in the database: each one marked in flight once, in order, and the mark committed on its
own, whatever connection of the pool it runs on."""

from __future__ import annotations

from storage import turn_replies as store


async def _stored_turn(db, keyring, update_id: str, total: int) -> int:
    async with db.transaction() as session:
        return await store.save_turn_replies(session=session, keyring=keyring, channel="telegram",
                                             update_id=update_id, payload=b"replies", total=total)


async def test_each_reply_is_taken_once_in_order_and_the_mark_is_kept(db, keyring):
    row_id = await _stored_turn(db, keyring, "1", 3)
    assert await store.take_reply(db=db, row_id=row_id, index=0, after_own=False)
    assert not await store.take_reply(db=db, row_id=row_id, index=0, after_own=False)  # another worker's now
    assert await store.take_reply(db=db, row_id=row_id, index=1, after_own=True)
    assert not await store.take_reply(db=db, row_id=row_id, index=1, after_own=True)
    async with db.transaction() as session:
        stored = await store.load_turn_replies(session=session, keyring=keyring, channel="telegram", update_id="1")
    assert (stored.next_index, stored.in_flight, stored.payload) == (1, True, b"replies")


async def test_a_mark_holds_on_a_connection_lent_in_autocommit_before(db, keyring):
    # The WAL truncation borrows pool connections in AUTOCOMMIT; SQLAlchemy hands them back in sqlite3's implicit
    # transactions, where a mark would be rolled back by the pool's reset and the turn's next reply never sent.
    for _ in range(3):
        await db.checkpoint()
    row_id = await _stored_turn(db, keyring, "2", 2)
    for _ in range(3):
        await db.checkpoint()
    assert await store.take_reply(db=db, row_id=row_id, index=0, after_own=False)
    for _ in range(3):
        await db.checkpoint()
    assert await store.take_reply(db=db, row_id=row_id, index=1, after_own=True)
