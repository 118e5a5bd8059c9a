"""Zalo Bot polling while the database is away: getUpdates hands an event over once and never again, so what
it returned is held in memory and stored sealed before Zalo is asked for more; then handled, in order, once.

The outage is real (tests/support/db_outage.py): SQLite locked by another connection holding BEGIN IMMEDIATE,
PostgreSQL's port closed under the bot. The client is our own aiohttp one against the fake Zalo Bot server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.channels.zalo_bot import ZaloBotChannel, ZaloBotClient
from handlers.router import TipLine
from storage.db import Database
from storage.models import ProcessedUpdate, ReceivedUpdate
from storage.received_updates import LEFT_AFTER
from tests.bot.test_process_lifecycle import WAIT, until
from tests.fakes.zalo_bot_api import FakeZaloBot
from tests.support.db_outage import DatabaseOutage
from tests.support.fake_servers import fake_server
from tests.support.images import jpeg_with_gps
from tests.support.processes import Site

CHAT = "6ede9afa66b88fe6d6a9"
CANARY = "CanaryZaloHeld-7Q4Z"  # words a citizen sent: never in a log line

fake = fake_server(FakeZaloBot)


@pytest.fixture
async def outage(database_url, db):  # db: PostgreSQL's tables emptied for this test
    outage = DatabaseOutage(database_url)
    await outage.start()
    yield outage
    await outage.close()


@pytest.fixture
async def tipline_through(outage, services):
    """The tip line on a database that the outage takes away (PostgreSQL: through its relay)."""
    if outage.is_sqlite:
        yield TipLine(services)
        return
    database = Database(outage.url)
    try:
        yield TipLine(dataclasses.replace(services, db=database))
    finally:
        await database.dispose()


@pytest.fixture
async def channel(fake, tipline_through):
    client = ZaloBotClient(fake.token, api_base=fake.base_url)
    channel = ZaloBotChannel(client=client, tipline=tipline_through, poll_timeout=2)
    yield channel
    await channel.stop()
    await client.close()


def polls(fake) -> int:
    return sum(1 for method, _ in fake.calls if method == "getUpdates")


def not_stored(caplog) -> int:
    return sum(1 for r in caplog.records if "could not be stored" in r.getMessage())


async def count(db, model) -> int:
    async with db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


async def test_events_that_come_while_the_database_is_away_are_stored_then_answered_in_order_once(
        fake, outage, channel, services, caplog):
    caplog.set_level(logging.INFO)
    await outage.away()
    for text in ("/help", "/report", "/start"):
        fake.send_text(CHAT, text)
    polling = asyncio.create_task(channel.run_polling())
    # The first answer could not be stored; wait for the second try (or, were getUpdates not held back,
    # for the second getUpdates, which would come at once).
    await until(lambda: _true(not_stored(caplog) >= 2 or polls(fake) >= 2), what="a second try", timeout=WAIT)
    assert polls(fake) == 1 and fake.waiting == 2  # Zalo still has the other two: at most one event at risk
    assert fake.sent == []  # nothing answered while it is not stored

    await outage.back()
    await fake.wait_for_messages(CHAT, 3, timeout=WAIT)
    await channel.drain()
    await channel.stop()
    await asyncio.wait_for(polling, WAIT)
    help_, report, start = fake.texts_to(CHAT)  # each once, in the order the citizen wrote
    assert "/status MÃ" in help_ and "1. Ma túy" in report
    assert "soạn dở" in start  # "you have a tip in progress": /start came after /report
    assert await count(services.db, ProcessedUpdate) == 3
    assert await count(services.db, ReceivedUpdate) == 0  # handled, then shredded
    assert CANARY not in caplog.text


async def test_a_stop_while_the_database_is_away_says_how_many_events_could_not_be_kept(
        fake, outage, channel, caplog):
    caplog.set_level(logging.INFO)
    await outage.away()
    fake.send_text(CHAT, f"Tôi thấy {CANARY}")
    fake.send_text(CHAT, "/help")
    polling = asyncio.create_task(channel.run_polling())
    await until(lambda: _true(not_stored(caplog) >= 1), what="the first try to store", timeout=WAIT)
    await channel.stop()
    await asyncio.wait_for(polling, WAIT)  # one last try (SQLite: its busy timeout), then the line
    [line] = [r.getMessage() for r in caplog.records if "could not be kept" in r.getMessage()]
    assert line.startswith("1 Zalo event(s) could not be kept"), line
    assert channel.outcomes["lost"] == 1
    assert fake.waiting == 1  # the second event was never asked for: the next start gets it
    assert fake.sent == []
    assert CANARY not in caplog.text and CHAT not in caplog.text  # no content, no chat id


async def test_polling_paused_while_it_holds_an_answer_stores_it_first_when_it_resumes(fake, outage, channel, caplog):
    """What a long outage does: the polling lease (bot/polling_alone.py) pauses polling by cancelling it."""
    await outage.away()
    fake.send_text(CHAT, "/help")
    polling = asyncio.create_task(channel.run_polling())
    await until(lambda: _true(not_stored(caplog) >= 1), what="the first try to store", timeout=WAIT)
    polling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await polling
    assert channel.outcomes["lost"] == 0 and "could not be kept" not in caplog.text  # still held
    asked = polls(fake)
    await outage.back()
    polling = asyncio.create_task(channel.run_polling())  # the lease renewed: polling resumes
    await fake.wait_for_messages(CHAT, 1, timeout=WAIT)
    assert polls(fake) <= asked + 1  # the held answer was stored before Zalo was asked for more
    await channel.drain()
    await channel.stop()
    await asyncio.wait_for(polling, WAIT)
    [answer] = fake.texts_to(CHAT)
    assert "/status MÃ" in answer


async def test_stopped_while_paused_with_an_answer_held_says_how_many_could_not_be_kept(fake, outage, channel,
                                                                                       caplog):
    await outage.away()
    fake.send_text(CHAT, f"Tôi thấy {CANARY}")
    polling = asyncio.create_task(channel.run_polling())
    await until(lambda: _true(not_stored(caplog) >= 1), what="the first try to store", timeout=WAIT)
    polling.cancel()  # paused by the lease
    with pytest.raises(asyncio.CancelledError):
        await polling
    await channel.stop()
    await channel.close()
    [line] = [r.getMessage() for r in caplog.records if "could not be kept" in r.getMessage()]
    assert line.startswith("1 Zalo event(s) could not be kept"), line
    assert channel.outcomes["lost"] == 1
    assert CANARY not in caplog.text and CHAT not in caplog.text


async def test_killed_after_the_held_event_was_stored_nothing_is_lost(tmp_path, fake, outage, db):
    # No reminders: their first calendar sync does not outlast an outage at the start (bot/reminder_dispatcher.py).
    site = Site(tmp_path / "site", outage.url,
                extra=f'[zalo_bot]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n\n'
                      '[reminders]\nenabled = false\n')
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Zalo by long polling", timeout=WAIT)
        # Polling for real (its lease is taken then), not only announced: a start that cannot reach the
        # database is another matter (bot/polling_alone.py).
        await until(lambda: _true(polls(fake) >= 1), what="the first getUpdates", timeout=WAIT)
        await outage.away()
        # An image: the bot shows "typing" before its turn touches the database. Zalo hangs on that call,
        # and the process is killed right there: after the event is stored, before its turn commits.
        fake.hold("sendChatAction")
        fake.send_image(CHAT, jpeg_with_gps())
        await bot.wait_for_line("could not be stored", timeout=WAIT)
        await outage.back()
        await fake.wait_until_held("sendChatAction", timeout=WAIT)
        bot.kill()
        assert await bot.wait(timeout=WAIT) == -signal.SIGKILL
    fake.let_through("sendChatAction")
    assert fake.sent == []
    assert await count(db, ReceivedUpdate) == 1  # stored sealed: the only copy of the citizen's image event

    # A restart takes up what a dead worker stored once it is LEFT_AFTER old (a live one handles its own
    # within seconds); the row is aged by that much instead of the test waiting three minutes.
    async with db.transaction() as session:
        [row] = (await session.exec(select(ReceivedUpdate))).all()
        row.claimed_at -= LEFT_AFTER + timedelta(minutes=1)
        session.add(row)
    async with site.start("run") as again:
        await again.wait_for_line("handling 1 update(s) a stopped worker had taken", timeout=WAIT)
        await fake.wait_for_messages(CHAT, 1, timeout=WAIT)
        again.send_signal(signal.SIGTERM)
        assert await again.wait(timeout=WAIT) == 0, again.stderr
    assert len(fake.messages_to(CHAT)) == 1  # answered once
    assert await count(db, ProcessedUpdate) == 1
    assert await count(db, ReceivedUpdate) == 0


async def _true(value) -> object | None:
    return value or None
