"""Tip queue operations for officers: list, find, add sealed notes, find stale and purgeable tips, purge.

The moves from one state to another (claim, release, transfer, judge, ask) are in storage/tip_states.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import keys as key_store
from storage import tips as tip_store
from storage.blobs import BlobStore
from storage.models import Tip, TipField, TipInQueue
from storage.tip_states import JUDGED, OPEN, PENDING, TipStatus, in_states, queue_order



async def queue(*, session: AsyncSession, unit_ids: Sequence[str], offset: int = 0, limit: int = 10,
                statuses: Sequence[str] = OPEN, categories: Sequence[str] = (), area_codes: Sequence[str] = (),
                claimed_by: int | None = None, count_up_to: int | None = None) -> tuple[list[TipInQueue], int]:
    """The unit's tips in these states (open ones: urgent first, then oldest first; judged ones: the latest
    verdict first), narrowed to categories, areas or one officer's claims when given; with the total for paging,
    or with at most ``count_up_to`` of it (counting every judged tip of a province is what a page would cost)."""
    where = [Tip.unit_id.in_(unit_ids), in_states(statuses)]
    if categories:
        where.append(Tip.category.in_(categories))
    if area_codes:
        where.append(Tip.area_code.in_(area_codes))
    if claimed_by is not None:
        where.append(Tip.claimed_by == claimed_by)
    judged = set(statuses) <= set(JUDGED)
    order = (Tip.verdict_at.desc(), Tip.created_at.desc()) if judged else queue_order()
    if session.bind.dialect.name == "postgresql":
        # A plan made for these values: a generic one (asyncpg prepares every statement) guesses an area or
        # an officer matches few tips and sorts all they match, instead of reading the queue index in order.
        await session.exec(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    matching = select(Tip.id).where(*where)
    if count_up_to is not None:
        matching = matching.limit(count_up_to)
    total = (await session.exec(select(func.count()).select_from(matching.subquery()))).one()
    rows = (await session.exec(select(Tip).where(*where).order_by(*order).offset(offset).limit(limit))).all()
    return [TipInQueue.model_validate(row) for row in rows], int(total)


async def tip_by_ref(*, session: AsyncSession, ref: str, lock: bool = False) -> Tip | None:
    query = select(Tip).where(Tip.ref == ref.upper())
    if lock and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await session.exec(query)).one_or_none()


async def add_sealed_field(*, session: AsyncSession, tip: Tip, data_key, prefix: str, value: str) -> str:
    """Append a numbered sealed field (note:1, question:2, answer:2 …); returns its name."""
    names = (await session.exec(select(TipField.name).where(TipField.tip_id == tip.id,
                                                            TipField.name.like(f"{prefix}:%")))).all()
    name = f"{prefix}:{len(names) + 1}"
    session.add(TipField(tip_id=tip.id, name=name, sealed=data_key.seal(name, value)))
    await session.flush()
    return name


async def stale_tips(*, session: AsyncSession, claimed_before: datetime, received_before: datetime,
                     alerted_before: datetime) -> list[Tip]:
    """Tips waiting unclaimed, or sitting in review, longer than the limits; not re-alerted too often."""
    waiting = Tip.status.in_(PENDING) & (Tip.created_at < received_before)
    reviewing = (Tip.status == TipStatus.IN_REVIEW) & (Tip.claimed_at < claimed_before)
    not_recent = Tip.alerted_at.is_(None) | (Tip.alerted_at < alerted_before)
    return list((await session.exec(select(Tip).where(waiting | reviewing, not_recent)
                                    .order_by(Tip.unit_id, Tip.created_at))).all())


async def purgeable(*, session: AsyncSession, judged_before: datetime, limit: int) -> list[Tip]:
    query = (select(Tip).where(Tip.status == TipStatus.NOT_VALUABLE, Tip.purged_at.is_(None), Tip.verdict_at < judged_before)
             .order_by(Tip.verdict_at).limit(limit))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())


async def count_purgeable(*, session: AsyncSession, judged_before: datetime) -> int:
    return int((await session.exec(select(func.count()).select_from(Tip).where(
        Tip.status == TipStatus.NOT_VALUABLE, Tip.purged_at.is_(None), Tip.verdict_at < judged_before))).one())


# What a purge deletes rows from (PostgreSQL keeps their old versions until these are vacuumed).
PURGED_TABLES = ["tip_field", "attachment", "data_key"]


async def purge_tip(*, session: AsyncSession, blobs: BlobStore, tip: Tip, now: datetime) -> None:
    """Delete every sealed field, file and the data key; the clear counting columns stay for the figures."""
    await session.exec(delete(TipField).where(TipField.tip_id == tip.id))
    await tip_store.delete_attachments(session=session, blobs=blobs, owner_id=tip.id)
    await key_store.delete_data_key(session=session, owner_id=tip.id)
    tip.purged_at, tip.updated_at, tip.attachment_count = now, now, 0
    session.add(tip)
