"""A stop that lands while the reminder job is inside a query: the query's transaction ends before the job
does, so no SQLite connection is left open holding the write lock and an old snapshot. Left open (until the
garbage collector happened to close it), it made every write after it wait SQLite's busy timeout and kept
the stop from folding the WAL into the file, so what a purge had deleted could stay in the -wal file.

SQLite only: on PostgreSQL the server ends a closed connection's transaction itself."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import event, func, select

from bot import reminder_dispatcher
from bot.reminder_dispatcher import run_reminders
from handlers.reminders.festival_calendar import ReminderSettings
from storage import reminders as store

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WAIT = 30  # seconds: a bound for a hang, not a speed claim


class QueryHeld:
    """A SQL function, ``held()``, that blocks the query calling it until ``let_go``: the stop then comes
    while the job is inside that query, every time, not by luck of timing."""

    def __init__(self, db) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        event.listen(db.engine.sync_engine, "connect", self._install)

    def _install(self, dbapi_connection, _record) -> None:
        dbapi_connection.create_function("held", 0, self._hold)

    def _hold(self) -> int:  # runs on the driver's thread, not the event loop
        self.entered.set()
        self.released.wait(WAIT)
        return 1

    async def until_entered(self) -> None:
        async with asyncio.timeout(WAIT):
            while not self.entered.is_set():
                await asyncio.sleep(0.01)

    def let_go(self) -> None:
        self.released.set()


def database_is_free(path: str) -> tuple[bool, bool]:
    """(a write can begin now, the WAL can be truncated now), asked by another connection that does not wait."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writable = True
        except sqlite3.OperationalError:  # "database is locked"
            writable = False
        busy, _frames, _done = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return writable, busy == 0
    finally:
        other.close()


async def test_a_stop_during_a_reminder_query_leaves_the_database_free(services, monkeypatch):
    db = services.db
    await db.engine.dispose()  # connections made from here on carry held()
    hold = QueryHeld(db)
    active_events = store.active_events

    async def active_events_held(*, session):
        await session.exec(select(func.held()))
        return await active_events(session=session)
    monkeypatch.setattr(reminder_dispatcher.store, "active_events", active_events_held)

    job = asyncio.create_task(run_reminders(services, ReminderSettings(tick_seconds=1), {}))
    await hold.until_entered()  # the scheduler's tick is inside its transaction, in the middle of a query
    job.cancel()  # what the stop does to the reminder job (bot/runtime.py, Serving.wind_down)
    await asyncio.sleep(0.05)
    hold.let_go()
    await asyncio.wait_for(asyncio.gather(job, return_exceptions=True), WAIT)

    # `job` is still referenced here, as the runtime references its jobs until the process ends: a
    # connection that only the garbage collector would close stays open all that time.
    assert database_is_free(db.engine.url.database) == (True, True)
    assert db.engine.pool.checkedout() == 0


async def test_an_answer_cut_short_in_the_middle_of_a_query_leaves_the_database_free(services):
    from bot.runtime import Serving, StopRequest, TurnsInFlight
    db = services.db
    await db.engine.dispose()
    hold = QueryHeld(db)
    turns = TurnsInFlight()

    async def answer() -> None:  # an answer under way, as TrackedTipLine.handle notes it
        turns.enter()
        async with db.transaction() as session:
            await session.exec(select(func.held()))
    asyncio.get_running_loop().create_task(answer())  # not kept: the runtime keeps only `turns`
    await hold.until_entered()
    threading.Timer(0.2, hold.let_go).start()  # the driver's thread ends the query a moment after the cut
    serving = Serving(StopRequest(grace=0.0), turns)
    assert await asyncio.wait_for(serving.wind_down(hurry=True), WAIT) == 1  # the answer is cut short

    assert database_is_free(db.engine.url.database) == (True, True)
