"""Claims are atomic: fifty officers pressing /next at once over a queue of 1,000 tips claim every
tip exactly once (PostgreSQL, `FOR UPDATE SKIP LOCKED`); SQLite gets a sequential sanity check."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, func, insert
from sqlmodel import select

from storage.models import Tip, utcnow
from storage.tips import new_id
from storage.tip_states import claim_next

TIPS = 1_000
OFFICERS = 50


async def _insert_tips(db, count: int, *, unit_id: str = "u1") -> None:
    """Bare clear rows are enough: claiming reads and writes nothing sealed."""
    start = utcnow() - timedelta(days=1)
    rng = random.Random(count)
    refs = [f"{unit_id.upper()}{i:06d}" for i in range(count)]
    rows = [dict(id=new_id(), ref=ref, channel="telegram", category="drugs", area_code="79.26734",
                 urgent=rng.random() < 0.1, status="new", unit_id=unit_id, attachment_count=0,
                 receipt_hash=new_id() + new_id(), created_at=start + timedelta(seconds=i),
                 updated_at=start + timedelta(seconds=i), subject_count=0)
            for i, ref in enumerate(refs)]
    async with db.transaction() as session:
        await session.exec(insert(Tip), params=rows)


async def _state(db) -> tuple[dict[str, tuple[str, int | None]], int]:
    async with db.transaction() as session:
        rows = (await session.exec(select(Tip.id, Tip.status, Tip.claimed_by))).all()
        total = (await session.exec(select(func.count()).select_from(Tip))).one()
    return {tip_id: (status, claimed_by) for tip_id, status, claimed_by in rows}, total


@pytest.mark.parametrize("transactions", ["one per claim", "one per officer"])
async def test_fifty_officers_claim_a_thousand_tips_each_exactly_once(db, transactions):
    if db.is_sqlite:
        pytest.skip("needs PostgreSQL: SKIP LOCKED claims are what is being proven")
    await _insert_tips(db, TIPS)
    await _insert_tips(db, 20, unit_id="u2")  # another unit's tips are never taken
    start_line = asyncio.Event()
    now = utcnow()

    async def officer(officer_id: int) -> list[str]:
        """One officer pressing /next until nothing is left (each /next is its own transaction in the bot)."""
        claimed: list[str] = []
        await start_line.wait()
        if transactions == "one per claim":
            while True:
                async with db.transaction() as session:
                    tip = await claim_next(session=session, unit_ids=["u1"], officer_id=officer_id, now=now)
                if tip is None:
                    return claimed
                claimed.append(tip.id)
        async with db.transaction() as session:  # holds every claimed row locked until the end
            while (tip := await claim_next(session=session, unit_ids=["u1"], officer_id=officer_id,
                                           now=now)) is not None:
                claimed.append(tip.id)
        return claimed

    tasks = [asyncio.create_task(officer(i)) for i in range(1, OFFICERS + 1)]
    started = time.perf_counter()
    start_line.set()
    # 50 officers, 30 connections in the pool: the last 20 wait for one; a deadlock would end here.
    async with asyncio.timeout(120):
        results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started

    claims = [tip_id for claimed in results for tip_id in claimed]
    twice = [tip_id for tip_id, n in Counter(claims).items() if n > 1]
    assert not twice, f"{len(twice)} tips were claimed by two officers"
    assert len(claims) == TIPS
    state, total = await _state(db)
    assert total == TIPS + 20
    owner = {tip_id: officer_id for officer_id, claimed in enumerate(results, 1) for tip_id in claimed}
    u1 = {tip_id: value for tip_id, value in state.items() if tip_id in owner}
    assert len(u1) == TIPS
    assert all(status == "in_review" and claimed_by == owner[tip_id] for tip_id, (status, claimed_by) in u1.items())
    assert sorted(value for tip_id, value in state.items() if tip_id not in owner) == [("new", None)] * 20
    busy = sum(1 for claimed in results if claimed)
    assert busy > 1  # they really did claim side by side
    print(f"\n{transactions}: {len(claims)} claims by {busy} of {OFFICERS} officers in {elapsed:.2f} s")


async def test_claim_next_never_returns_the_same_tip_twice_sqlite(db):
    """SQLite: one writer at a time, so a sequential round-robin of officers is the honest check."""
    if not db.is_sqlite:
        pytest.skip("the PostgreSQL case is the concurrent test above")
    await _insert_tips(db, 60)
    now, seen, officer_id = utcnow(), [], 0
    while True:
        officer_id = officer_id % 3 + 1
        async with db.transaction() as session:
            tip = await claim_next(session=session, unit_ids=["u1"], officer_id=officer_id, now=now)
        if tip is None:
            break
        seen.append((tip.id, officer_id, tip.urgent, tip.created_at))
    ids = [tip_id for tip_id, *_ in seen]
    assert len(ids) == len(set(ids)) == 60
    state, _total = await _state(db)
    assert all(state[tip_id] == ("in_review", officer) for tip_id, officer, *_ in seen)
    # The queue's order: urgent first, then oldest first.
    order = [(not urgent, created) for _id, _o, urgent, created in seen]
    assert order == sorted(order)


async def test_a_claim_is_one_statement_that_takes_the_head_of_the_queue(db):
    """/next waits for one answer from the database, not a read and then a write: nothing can come between
    choosing the tip and taking it, and the officer gets the tip as it now is, claimed by them."""
    await _insert_tips(db, 30)
    now, statements = utcnow(), []

    def seen(_conn, _cursor, statement, *_):
        statements.append(statement)
    async with db.transaction() as session:
        await session.exec(select(func.count()).select_from(Tip))  # the transaction's own opening is not counted
        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            tip = await claim_next(session=session, unit_ids=["u1"], officer_id=7, now=now)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("UPDATE")
    state, _total = await _state(db)
    async with db.transaction() as session:
        head = (await session.exec(select(Tip).order_by(Tip.urgent.desc(), Tip.created_at).limit(1))).one()
    assert (tip.id, tip.ref, tip.created_at, tip.urgent) == (head.id, head.ref, head.created_at, head.urgent)
    assert (tip.status, tip.claimed_by, tip.claimed_at, tip.updated_at) == ("in_review", 7, now, now)
    assert state[tip.id] == ("in_review", 7)
    assert sorted(state.values()).count(("new", None)) == 29
