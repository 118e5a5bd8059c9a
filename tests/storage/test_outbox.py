"""The reminder outbox in the database: one row per (broadcast, subscriber), claims that never overlap
(PostgreSQL: FOR UPDATE SKIP LOCKED across connections), the shared pace, and the at-most-once rule."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func
from sqlmodel import select

from storage import outbox
from storage import reminders as store
from storage.db import Database
from storage.models import ReminderBroadcast, ReminderOutbox, ReminderSubscriber
from tests.support.reminders import add_subscribers

NOW = datetime(2026, 8, 12, 1, 0, tzinfo=timezone.utc)  # 08:00 in Vietnam


async def broadcast(services, *, key="announce:x", area=None, expires_at=None) -> ReminderBroadcast:
    async with services.db.transaction() as session:
        await store.create_broadcast(session=session, key=key, kind="announcement", send_at=NOW, now=NOW,
                                     area_code=area, text="Xin chào", expires_at=expires_at)
        return await store.broadcast_by_key(session=session, key=key)


async def fan_out(services, made: ReminderBroadcast, areas=None) -> int:
    async with services.db.transaction() as session:
        found = await store.broadcast_by_id(session=session, broadcast_id=made.id)
        return await store.fan_out(session=session, broadcast=found, area_codes=areas, not_before=NOW, now=NOW)


async def statuses(services) -> dict[str, int]:
    async with services.db.transaction() as session:
        return await outbox.count_by_status(session=session)


async def test_one_row_per_subscriber_reached_and_a_repeat_adds_none(services):
    await add_subscribers(services, range(1, 6), areas=("79.26734",))
    await add_subscribers(services, range(6, 9), areas=("79.26737",))
    await add_subscribers(services, range(9, 11))  # national days only
    async with services.db.transaction() as session:
        leaver = (await session.exec(select(ReminderSubscriber).order_by(ReminderSubscriber.id))).first()
        await store.unsubscribe(session=session, subscriber_ids=[leaver.id], reason="citizen", now=NOW)
    ward = await broadcast(services, key="announce:ward", area="79.26734")
    assert await fan_out(services, ward, ["79.26734"]) == 4  # the one who left gets nothing
    everyone = await broadcast(services, key="announce:all")
    assert await fan_out(services, everyone) == 9
    assert await fan_out(services, everyone) == 0  # a second scheduler doing the same: the unique key holds
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(ReminderOutbox))).one() == 13
        made = await store.create_broadcast(session=session, key="announce:all", kind="announcement", send_at=NOW,
                                            now=NOW)
    assert made is False


async def test_claims_are_exclusive_and_a_dead_workers_rows_become_unknown(services):
    await add_subscribers(services, range(1, 21))
    await fan_out(services, await broadcast(services))
    async with services.db.transaction() as session:
        first = await outbox.claim_due(session=session, keyring=services.keyring, worker="a", channels=["telegram"],
                                       now=NOW, limit=8)
    async with services.db.transaction() as session:
        second = await outbox.claim_due(session=session, keyring=services.keyring, worker="b", channels=["telegram"],
                                        now=NOW, limit=50)
        none_for_zalo = await outbox.claim_due(session=session, keyring=services.keyring, worker="c",
                                               channels=["zalo"], now=NOW, limit=50)
    assert len(first) == 8 and len(second) == 12 and none_for_zalo == []
    assert not {m.id for m in first} & {m.id for m in second}
    assert {m.route["chat_id"] for m in first + second} == {str(i) for i in range(1, 21)}
    async with services.db.transaction() as session:
        await outbox.finish(session=session, ids=[m.id for m in second], status="sent", now=NOW)
        # Worker "a" died holding its rows. Before the lease runs out they are left alone…
        assert await outbox.mark_stale_unknown(session=session, claimed_before=NOW, now=NOW) == 0
    async with services.db.transaction() as session:
        # …after it, they are "unknown": never claimed again, and counted.
        assert await outbox.mark_stale_unknown(session=session, claimed_before=NOW + timedelta(minutes=10),
                                               now=NOW + timedelta(minutes=10)) == 8
        assert await outbox.claim_due(session=session, keyring=services.keyring, worker="d", channels=["telegram"],
                                      now=NOW + timedelta(hours=1), limit=50) == []
        # A late word from the dead worker cannot turn an unknown row into another state.
        assert await outbox.finish(session=session, ids=[m.id for m in first], status="sent", now=NOW) == 0
    assert await statuses(services) == {"sent": 12, "unknown": 8}


async def test_retries_wait_and_count_attempts_release_does_not(services):
    await add_subscribers(services, range(1, 4))
    await fan_out(services, await broadcast(services))
    later = NOW + timedelta(seconds=30)
    async with services.db.transaction() as session:
        claimed = await outbox.claim_due(session=session, keyring=services.keyring, worker="a", channels=["telegram"],
                                         now=NOW, limit=3)
        await outbox.retry_later(session=session, ids=[claimed[0].id], not_before=later)
        await outbox.release(session=session, ids=[claimed[1].id], not_before=later)
        await outbox.release(session=session, ids=[claimed[2].id])
    async with services.db.transaction() as session:
        again = await outbox.claim_due(session=session, keyring=services.keyring, worker="a", channels=["telegram"],
                                       now=NOW, limit=3)
        assert [m.id for m in again] == [claimed[2].id]
        await outbox.release(session=session, ids=[claimed[2].id])
        both = await outbox.claim_due(session=session, keyring=services.keyring, worker="a", channels=["telegram"],
                                      now=later, limit=3)
    attempts = {m.id: m.attempts for m in both}
    assert attempts == {claimed[0].id: 1, claimed[1].id: 0, claimed[2].id: 0}


async def test_expired_and_unsubscribed_rows_are_skipped(services):
    await add_subscribers(services, range(1, 4))
    old = await broadcast(services, key="announce:old", expires_at=NOW + timedelta(hours=1))
    await fan_out(services, old)
    async with services.db.transaction() as session:
        leaver = (await session.exec(select(ReminderSubscriber).order_by(ReminderSubscriber.id))).first()
        await store.unsubscribe(session=session, subscriber_ids=[leaver.id], reason="blocked", now=NOW)
        assert await outbox.skip_unsendable(session=session, now=NOW) == {"expired": 0, "unsubscribed": 1}
        assert await outbox.skip_unsendable(session=session, now=NOW + timedelta(hours=2)) == {"expired": 2,
                                                                                               "unsubscribed": 0}
    async with services.db.transaction() as session:
        counts = await store.broadcast_counts(session=session, broadcast_ids=[old.id])
    assert counts[old.id] == {"skipped": 3, "skipped:unsubscribed": 1, "skipped:expired": 2}


async def test_the_pace_hands_out_consecutive_slots_and_a_pause_holds_everyone(services):
    async with services.db.transaction() as session:
        pace = await outbox.lock_pace(session=session, now=NOW)
        first = outbox.book_slots(pace=pace, count=50, rate=25, now=NOW)
        second = outbox.book_slots(pace=pace, count=25, rate=25, now=NOW)
        session.add(pace)
    assert (first, second) == (NOW, NOW + timedelta(seconds=2))
    async with services.db.transaction() as session:
        await outbox.pause_pace(session=session, until=NOW + timedelta(seconds=30))
    async with services.db.transaction() as session:
        pace = await outbox.lock_pace(session=session, now=NOW)
        assert outbox.book_slots(pace=pace, count=1, rate=25, now=NOW + timedelta(seconds=5)) == NOW + timedelta(
            seconds=30)
        # An idle schedule does not let a burst catch up on time nobody used.
        assert outbox.book_slots(pace=pace, count=1, rate=25, now=NOW + timedelta(hours=1)) == NOW + timedelta(hours=1)


async def test_concurrent_claims_on_postgresql_skip_locked_rows(services, database_url):
    """Two connections (as two worker processes have) claim at the same moment, each inside an open
    transaction: SKIP LOCKED hands them disjoint rows, neither waits for the other."""
    if services.db.is_sqlite:
        pytest.skip("SQLite has a single writer; this is PostgreSQL's concurrency")
    await add_subscribers(services, range(1, 101))
    await fan_out(services, await broadcast(services))
    other = Database(database_url)
    holding, claimed = asyncio.Event(), {}

    async def claim(db: Database, name: str, hold: bool) -> None:
        async with db.transaction() as session:
            claimed[name] = await outbox.claim_due(session=session, keyring=services.keyring, worker=name,
                                                   channels=["telegram"], now=NOW, limit=60)
            if hold:
                holding.set()
                await asyncio.sleep(0.5)  # keep the row locks while the other worker claims

    try:
        first = asyncio.create_task(claim(services.db, "a", True))
        await holding.wait()
        await asyncio.wait_for(claim(other, "b", False), 2)  # would block without SKIP LOCKED
        await first
    finally:
        await other.dispose()
    a, b = {m.id for m in claimed["a"]}, {m.id for m in claimed["b"]}
    assert len(a) == 60 and len(b) == 40 and not a & b
