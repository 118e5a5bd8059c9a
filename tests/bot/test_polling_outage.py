"""The database out of reach under long polling and the reminders (SQLite locked by another connection,
PostgreSQL's port closed; tests/support/db_outage.py): polling outlives an outage longer than its lease
renewal period and answers what came meanwhile, pauses once the lease may have passed to another worker,
and a start while the database is away waits for it instead of ending."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.polling_alone import PollingTaken, poll_alone
from bot.reminder_dispatcher import run_scheduler
from handlers.reminders.festival_calendar import CalendarEvent, ReminderSettings
from storage.db import Database
from storage.models import PollerLease, ReminderEvent
from tests.bot.test_process_lifecycle import CHAT, WAIT, telegram_section
from tests.support.db_outage import DatabaseOutage
from tests.support.fake_servers import fake_server
from tests.support.processes import WORKTREE, Site, child_environment
from tests.support.slow_telegram import SlowTelegram
from tests.support.databases import emptied

fake = fake_server(SlowTelegram)

# A `tinbao run` child whose lease is renewed every second (instead of 15 s), so a few seconds of outage
# span several renewals; the lease itself keeps its 60 s.
SHORT_RENEWAL = "import bot.polling_alone\nbot.polling_alone.RENEW_EVERY = 1.0\n"


@pytest.fixture
async def outage(database_url):
    outage = DatabaseOutage(database_url)
    await outage.start()
    try:
        yield outage
    finally:
        await outage.close()


@pytest.fixture
async def db(outage):
    """The bot's database reached through the outage (conftest's `services` is built on it), its tables
    empty (PostgreSQL's are shared: no lease, no other test's keyring check)."""
    database = Database(outage.url)
    await emptied(database)
    yield database
    await database.dispose()


class Poller:
    """A stand-in for a channel's long polling: runs until stopped, and notes each time it starts."""

    def __init__(self) -> None:
        self.starts = 0
        self.running = asyncio.Event()
        self.stopped = asyncio.Event()

    async def poll(self) -> None:
        self.starts += 1
        self.running.set()
        try:
            await self.stopped.wait()
        finally:
            self.running.clear()


async def until(condition, *, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"waited {WAIT} s for {what}") from None


async def test_polling_outlives_an_outage_longer_than_its_renewal_and_answers_what_came(
        tmp_path, fake, outage, db):
    site = Site(tmp_path / "site", outage.url, extra=telegram_section(fake))
    await site.init()
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(SHORT_RENEWAL, encoding="utf-8")
    env = {**child_environment(), "PYTHONPATH": f"{tmp_path / 'hook'}:{WORKTREE}"}
    async with site.start("run", env=env) as bot:
        await bot.wait_for_line("serving Telegram by long polling", timeout=WAIT)
        fake.send_text(CHAT, "/help", language_code="en")
        await fake.wait_for_messages(CHAT, 1, timeout=WAIT)

        await outage.away()
        fake.send_text(CHAT, "/help", language_code="en")  # while the database is away
        # SQLite: the bot's writers take turns, each waiting out the 10 s busy timeout, so the renewal's turn
        # may come late; it must fail (the outage outlasts a renewal) and be survived.
        await bot.wait_for_line("the poller lease could not be renewed", timeout=2 * WAIT)
        await bot.wait_for_line("the database did not answer", timeout=WAIT)
        assert len(fake.messages_to(CHAT)) == 1  # not answered yet, not acknowledged, not lost
        await outage.back()

        await bot.wait_for_line("the poller lease is renewed again", timeout=WAIT)
        await fake.wait_for_messages(CHAT, 2, timeout=WAIT)  # the one sent during the outage
        bot.send_signal(signal.SIGTERM)
        code = await bot.wait(timeout=WAIT)
    assert code == 0, bot.stderr
    assert len(fake.messages_to(CHAT)) == 2, fake.messages_to(CHAT)  # none twice
    assert "Traceback" not in bot.stderr, bot.stderr
    assert "long polling pauses" not in bot.stderr  # the 60 s lease was still ours all along
    assert bot.stderr.count("the poller lease could not be renewed") == 1, bot.stderr


async def test_polling_started_while_the_database_is_away_serves_once_it_is_back(services, outage, caplog):
    caplog.set_level(logging.INFO, logger="bot.polling_alone")
    poller, said = Poller(), []
    await outage.away()
    job = asyncio.create_task(poll_alone(services, "telegram", poller.poll, serving=lambda: said.append("serving")))
    try:
        await until(lambda: "long polling starts once it does" in caplog.text or job.done(),
                    what="the first take to fail")
        assert not job.done(), job.exception()  # waiting, not ended
        assert poller.starts == 0 and said == []  # nothing polls without the lease, and "serving" is not said
        await outage.back()

        await asyncio.wait_for(poller.running.wait(), WAIT)
        assert said == ["serving"]
        async with services.db.transaction() as session:
            assert (await session.exec(select(PollerLease))).one().channel == "telegram"
        poller.stopped.set()
        await asyncio.wait_for(job, WAIT)
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    assert "Traceback" not in caplog.text


async def test_polling_pauses_once_the_lease_may_have_run_out_and_resumes_when_renewed(services, outage, caplog):
    caplog.set_level(logging.INFO, logger="bot.polling_alone")
    poller = Poller()
    # A 4 s lease renewed every half second: it may be another worker's 3 s after the last renewal.
    job = asyncio.create_task(poll_alone(services, "telegram", poller.poll, lease=timedelta(seconds=4),
                                         renew_every=0.5))
    try:
        await asyncio.wait_for(poller.running.wait(), WAIT)
        await outage.away()
        await until(lambda: not poller.running.is_set() or job.done(), what="polling to pause")
        assert not job.done(), job.exception()
        assert "long polling pauses until it is renewed" in caplog.text
        await outage.back()

        await asyncio.wait_for(poller.running.wait(), WAIT)
        assert poller.starts == 2 and "long polling resumes" in caplog.text
        poller.stopped.set()
        await asyncio.wait_for(job, WAIT)
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


async def test_a_lease_another_live_worker_holds_is_still_refused(services):
    other = Poller()
    first = asyncio.create_task(poll_alone(services, "telegram", other.poll, holder="elsewhere:1:abc"))
    try:
        await asyncio.wait_for(other.running.wait(), WAIT)
        with pytest.raises(PollingTaken, match="already served by long polling from elsewhere:1:abc"):
            await poll_alone(services, "telegram", Poller().poll)
    finally:
        other.stopped.set()
        await asyncio.wait_for(first, WAIT)


async def test_reminders_started_while_the_database_is_away_sync_the_calendar_once_it_is_back(services, outage,
                                                                                             caplog):
    day = CalendarEvent(id="an-ninh-to-quoc", dates=("08-19",), titles={"vi": "Ngày hội", "en": "The Day"})
    settings = ReminderSettings(tick_seconds=0.2, calendar=(day,))
    await outage.away()
    job = asyncio.create_task(run_scheduler(services, settings))
    try:
        # SQLite: the sync waits out the busy timeout before it fails; PostgreSQL: refused at once.
        await until(lambda: job.done() or "reminder calendar sync failed" in caplog.text,
                    what="the first sync to fail")
        assert not job.done(), job.exception()
        await outage.back()

        async def synced() -> bool:
            async with services.db.transaction() as session:
                return (await session.exec(select(ReminderEvent))).first() is not None
        async with asyncio.timeout(WAIT):
            while not await synced():
                assert not job.done(), job.exception()
                await asyncio.sleep(0.1)
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
