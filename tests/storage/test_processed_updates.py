"""Update ids are kept while a platform may still redeliver their update (Telegram: at most 24 hours), and
forgotten by the daily housekeeping round after a week: a redelivery inside the week is still ignored."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from sqlmodel import select

from bot.delivery import Deliveries
from bot.runtime import housekeeping
from handlers.officer.maintenance import PROCESSED_UPDATES_KEPT
from storage.models import ProcessedUpdate
from tests.support.chat import ChatClient


async def _ids(services) -> set[str]:
    async with services.db.transaction() as session:
        return set((await session.exec(select(ProcessedUpdate.update_id))).all())


async def test_the_daily_round_forgets_update_ids_older_than_a_week(services, tipline):
    citizen = ChatClient(tipline, chat_id="600", language="en")
    await citizen.deliver(text="/start", update_id="old-1")
    await citizen.deliver(text="/help", update_id="recent-1")
    async with services.db.transaction() as session:  # handled a week and a minute ago, and six days ago
        for update_id, age in (("old-1", PROCESSED_UPDATES_KEPT + timedelta(minutes=1)), ("recent-1", timedelta(days=6))):
            row = (await session.exec(select(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id))).one()
            row.handled_at = services.clock() - age
            session.add(row)
    assert await citizen.deliver(text="/help", update_id="recent-1") == []  # a redelivery inside the week: ignored
    assert await _ids(services) == {"old-1", "recent-1"}
    job = asyncio.create_task(housekeeping(services, Deliveries(), every=3600))
    try:
        async with asyncio.timeout(30):
            while await _ids(services) != {"recent-1"}:  # the positive signal: the old id is gone
                await asyncio.sleep(0.05)
    finally:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
    assert await _ids(services) == {"recent-1"}
