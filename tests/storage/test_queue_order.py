"""The queues read from their own indexes (storage/models.py) in the order officers rely on: urgent tips
first then the oldest for /next and /queue, the latest verdict first for /judged; filters and pages keep it."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import insert

from storage import triage
from storage.models import Tip, utcnow
from storage.tip_states import JUDGED, OPEN, PENDING, claim_next

STATES = ["new", "transferred", "in_review", "needs_info", "valuable", "not_valuable"]


async def _tips(db) -> list[dict]:
    """60 tips of two units in every state, urgent ones among them, received a minute apart in shuffled order."""
    rng = random.Random(7)
    start = utcnow() - timedelta(days=3)
    minutes = list(range(60))
    rng.shuffle(minutes)
    rows = []
    for i, minute in enumerate(minutes):
        status = STATES[i % len(STATES)]
        created = start + timedelta(minutes=minute)
        rows.append(dict(id=f"{i:032x}", ref=f"T{i:05d}", channel="telegram", category=["drugs", "fraud"][i % 2],
                         area_code="79.26734", urgent=rng.random() < 0.3, status=status, unit_id=["u1", "u2"][i % 4 // 3],
                         attachment_count=0, receipt_hash=f"{i:064x}", created_at=created, updated_at=created,
                         claimed_by=1 + i % 2 if status not in PENDING else None, subject_count=0,
                         verdict_at=created + timedelta(hours=rng.randrange(1, 48)) if status in JUDGED else None))
    async with db.transaction() as session:
        await session.exec(insert(Tip), params=rows)
    return rows


def _open_order(rows: list[dict]) -> list[str]:
    return [r["ref"] for r in sorted(rows, key=lambda r: (not r["urgent"], r["created_at"]))]


async def _all_pages(db, **filters) -> list[str]:
    refs, offset = [], 0
    while True:
        async with db.transaction() as session:
            page, total = await triage.queue(session=session, offset=offset, limit=4, **filters)
        refs += [tip.ref for tip in page]
        offset += 4
        if offset >= total:
            assert len(refs) == total
            return refs


async def test_open_queue_pages_urgent_first_then_oldest(db):
    rows = await _tips(db)
    u1 = [r for r in rows if r["unit_id"] == "u1"]
    assert await _all_pages(db, unit_ids=["u1"]) == _open_order([r for r in u1 if r["status"] in OPEN])
    assert await _all_pages(db, unit_ids=["u1", "u2"]) == _open_order([r for r in rows if r["status"] in OPEN])
    assert await _all_pages(db, unit_ids=["u1"], categories=["fraud"], claimed_by=2) == _open_order(
        [r for r in u1 if r["status"] in OPEN and r["category"] == "fraud" and r["claimed_by"] == 2])
    assert await _all_pages(db, unit_ids=["u1", "u2"], statuses=["new"]) == _open_order(
        [r for r in rows if r["status"] == "new"])


async def test_judged_queue_pages_latest_verdict_first(db):
    rows = await _tips(db)
    judged = sorted((r for r in rows if r["status"] in JUDGED), key=lambda r: (r["verdict_at"], r["created_at"]),
                    reverse=True)
    assert await _all_pages(db, unit_ids=["u1", "u2"], statuses=JUDGED) == [r["ref"] for r in judged]
    assert await _all_pages(db, unit_ids=["u2"], statuses=["valuable"]) == [
        r["ref"] for r in judged if r["unit_id"] == "u2" and r["status"] == "valuable"]


async def test_next_takes_the_waiting_tips_in_queue_order(db):
    rows = await _tips(db)
    taken = []
    while True:
        async with db.transaction() as session:
            tip = await claim_next(session=session, unit_ids=["u1", "u2"], officer_id=9, now=utcnow())
        if tip is None:
            break
        taken.append(tip.ref)
    assert taken == _open_order([r for r in rows if r["status"] in PENDING])


def test_the_queue_indexes_are_partial_in_both_databases():
    """Each queue's index covers only its queue's rows, as migration 0009 made it, in the DDL each database's
    dialect writes from the models (their options are filled in when a dialect reads them: storage/models.py)."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex

    from storage.models import Tip

    queues = [index for index in Tip.__table__.indexes if index.name.endswith(("_queue", "_order"))]
    assert len(queues) == 8
    for index in queues:
        on_postgresql = str(CreateIndex(index).compile(dialect=postgresql.dialect()))
        on_sqlite = str(CreateIndex(index).compile(dialect=sqlite.dialect()))
        assert " WHERE status" in on_postgresql and " WHERE status" in on_sqlite, index.name
    waiting = next(index for index in queues if index.name == "ix_tip_waiting_order")
    assert "INCLUDE (unit_id)" in str(CreateIndex(waiting).compile(dialect=postgresql.dialect()))
