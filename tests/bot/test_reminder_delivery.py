"""Reminders from the calendar to the chats: the scheduler tick, the dispatchers and their outbox.

Telegram's answers (429, 403, 5xx), quiet hours, the stop button and the year boundary are played
against the fake Bot API server with the real aiogram client. The scale and crash tests use an
in-process counting sender instead: what they prove is that claims never overlap and that a stop
neither repeats nor silently loses a message, which is decided in the database, not over HTTP;
10,000 HTTP round trips to the fake server would only make them slower.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, time as clock_time, timezone

import pytest
from sqlmodel import select

from bot.channels.telegram import ReminderSender, make_bot
from bot.channels.base import BLOCKED, REJECTED, SENT, TRANSIENT, Outcome
from bot.reminder_dispatcher import Dispatcher, sync_calendar, tick
from handlers.context import VIETNAM
from handlers.reminders.festival_calendar import CalendarEvent, Offset, ReminderSettings
from handlers.messages import CHANNEL_PREFIXES, Choice, Reply
from handlers.reminders.subscriptions import OFF_BUTTON
from storage import outbox
from storage import reminders as store
from storage.db import Database
from storage.models import DataKeyRecord, ReminderOutbox, ReminderSubscriber
from tests.bot.test_telegram_tipoff import Running
from tests.fakes.telegram_api import FakeTelegram
from tests.support.chat import ChatClient
from tests.support.fake_servers import fake_server
from tests.support.reminders import Clock, CountingSender, add_subscribers


def vn(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VIETNAM).astimezone(timezone.utc)


DAYTIME = vn(2026, 8, 12, 9)
FIRST_CHAT = 5550001


class TimedFake(FakeTelegram):
    """The fake Bot API server, noting when each call arrived (monotonic seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[tuple[float, str]] = []

    async def _handle_api(self, request):
        self.timeline.append((time.monotonic(), request.match_info["method"].lower()))
        return await super()._handle_api(request)


fake = fake_server(TimedFake)


@pytest.fixture
async def bot(fake):
    client = make_bot(fake.token, fake.base_url)
    await client.get_me()  # the connection is open before timing matters
    yield client
    await client.session.close()


def settings(**changes) -> ReminderSettings:
    return ReminderSettings(**{"rate_per_second": 50, "retry_seconds": 0.2, **changes})


def dispatcher(services, config: ReminderSettings, senders, **options) -> Dispatcher:
    options = {"idle_seconds": 0.05, "flush_seconds": 0.05, "grace_seconds": 0, **options}
    return Dispatcher(services, config, senders, **options)


async def announce(services, config: ReminderSettings, *, key: str = "announce:test", area: str | None = None,
                   text: str = "Mời bà con dự Ngày hội toàn dân bảo vệ an ninh Tổ quốc.") -> int:
    """An admin's confirmed announcement for now, queued by a scheduler tick; returns the rows made."""
    now = services.clock()
    async with services.db.transaction() as session:
        await store.create_broadcast(session=session, key=key, kind="announcement", send_at=now, now=now,
                                     area_code=area, text=text)
    return (await tick(services, config)).queued


async def statuses(services) -> dict[str, int]:
    async with services.db.transaction() as session:
        return await outbox.count_by_status(session=session)


async def deliver_all(services, config, senders, **options) -> Dispatcher:
    worker = dispatcher(services, config, senders, **options)
    await asyncio.wait_for(worker.run(until_idle=True), 30)
    return worker


# --- at scale, and across a stop ---------------------------------------------------------------------

async def test_two_dispatchers_over_10000_recipients_send_each_exactly_one(services, database_url):
    services.clock = Clock(DAYTIME)
    many = 10_000 if not services.db.is_sqlite else 2_000  # the 10,000 run is PostgreSQL's, where claims race
    await add_subscribers(services, range(1, many + 1))
    config = settings(rate_per_second=5000)
    assert await announce(services, config) == many
    platform = CountingSender()
    # On PostgreSQL the second dispatcher has its own connection pool, as a second worker process would.
    other = services if services.db.is_sqlite else type(services)(
        db=Database(database_url), keyring=services.keyring, blobs=services.blobs, settings=services.settings,
        clock=services.clock)
    try:
        first = dispatcher(services, config, {"telegram": platform}, name="one")
        second = dispatcher(other, config, {"telegram": platform}, name="two")
        await asyncio.wait_for(asyncio.gather(first.run(until_idle=True), second.run(until_idle=True)), 120)
    finally:
        if other is not services:
            await other.db.dispose()
    assert len(platform.received) == many and set(platform.received.values()) == {1}
    assert first.sent > 0 and second.sent > 0 and first.sent + second.sent == many
    assert await statuses(services) == {"sent": many}


async def test_a_dispatcher_stopped_mid_run_resumes_without_duplicates(services, caplog):
    services.clock = Clock(DAYTIME)
    await add_subscribers(services, range(1, 301))
    config = settings(rate_per_second=200)
    await announce(services, config)
    # Each message reaches the platform, then its answer takes 0.3 s: a stop catches some in flight.
    platform = CountingSender(delay=0.3)
    first = dispatcher(services, config, {"telegram": platform}, max_in_flight=32)
    running = asyncio.create_task(first.run())
    while sum(platform.received.values()) < 120:
        await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    stopped = await statuses(services)
    assert stopped.get("sending", 0) == 0  # every claimed row was either released or given a verdict
    unknown = stopped["unknown"]
    assert 0 < unknown <= 32 and "in flight when sending stopped" in caplog.text

    await deliver_all(services, config, {"telegram": platform})  # the restart
    assert len(platform.received) == 300 and set(platform.received.values()) == {1}  # no duplicates, no losses
    assert await statuses(services) == {"sent": 300 - unknown, "unknown": unknown}


async def test_a_crashed_worker_s_messages_are_reported_not_resent(services, caplog):
    clock = Clock(DAYTIME)
    services.clock = clock
    await add_subscribers(services, range(1, 21))
    config = settings()
    await announce(services, config)
    async with services.db.transaction() as session:  # a worker claims five rows, then its process dies
        lost = await outbox.claim_due(session=session, keyring=services.keyring, worker="dead", channels=["telegram"],
                                      now=clock(), limit=5)
    platform = CountingSender()
    await deliver_all(services, config, {"telegram": platform})
    assert len(platform.received) == 15 and await statuses(services) == {"sent": 15, "sending": 5}
    clock.move_to(DAYTIME.replace(minute=11))  # past reminders.unknown_after_minutes
    with caplog.at_level(logging.WARNING):
        report = await tick(services, config)
    assert report.unknown == 5 and "5 reminder message(s) were being sent by a worker that stopped" in caplog.text
    await deliver_all(services, config, {"telegram": platform})
    assert {m.route["chat_id"] for m in lost}.isdisjoint(platform.received)
    assert await statuses(services) == {"sent": 15, "unknown": 5}


# --- who gets what -----------------------------------------------------------------------------------

async def test_nobody_is_messaged_without_opting_in(services, tipline):
    services.clock = Clock(DAYTIME)
    opted_in = ChatClient(tipline, chat_id="801", language="en")
    await opted_in.send("/remind on")
    await ChatClient(tipline, chat_id="802", language="en").send("/start")  # talked to the bot, no more
    left = ChatClient(tipline, chat_id="803", language="en")
    await left.send("/remind on")
    await left.send("/remind off")
    config = settings()
    assert await announce(services, config) == 1
    platform = CountingSender()
    await deliver_all(services, config, {"console": platform})
    assert dict(platform.received) == {"801": 1}


async def test_an_event_reaches_its_area_and_the_areas_within(services):
    services.clock = Clock(DAYTIME)
    await add_subscribers(services, [1, 2], areas=("79.26734",))  # Bến Thành
    await add_subscribers(services, [3], areas=("79.26737",))  # Sài Gòn
    await add_subscribers(services, [4], areas=("79",))  # the whole city
    await add_subscribers(services, [5])  # national days only
    await add_subscribers(services, [6], areas=("01.00070",))  # Hà Nội
    config = settings()
    reached = {}
    for key, area in (("ward", "79.26734"), ("city", "79"), ("nation", None)):
        await announce(services, config, key=f"announce:{key}", area=area)
        platform = CountingSender()
        await deliver_all(services, config, {"telegram": platform})
        reached[key] = sorted(int(c) for c in platform.received)
    assert reached == {"ward": [1, 2], "city": [1, 2, 3, 4], "nation": [1, 2, 3, 4, 5, 6]}


async def test_calendar_events_are_reminded_once_per_reminder_and_follow_the_file(services):
    clock = Clock(vn(2026, 8, 12, 8))  # 7 days before 19/8, at 08:00
    services.clock = clock
    await add_subscribers(services, range(1, 4))
    national = CalendarEvent(id="an-ninh-to-quoc", dates=("08-19",), titles={"vi": "Ngày hội", "en": "The Day"},
                             offsets=(Offset(7), Offset(1)))
    config = settings(calendar=(national,))
    await sync_calendar(services, config)
    platform = CountingSender()
    for moment in (vn(2026, 8, 12, 8), vn(2026, 8, 12, 18), vn(2026, 8, 13, 8)):  # the same reminder, thrice
        clock.move_to(moment)
        await tick(services, config)
        await deliver_all(services, config, {"telegram": platform})
    assert set(platform.received.values()) == {1}
    assert "🔔 Ngày hội\n📅 19/08/2026" in platform.texts[0]
    await sync_calendar(services, settings(calendar=()))  # the operator removed it from the file
    clock.move_to(vn(2026, 8, 18, 8))
    assert (await tick(services, config)).scheduled == 0


# --- against the fake Bot API server ---------------------------------------------------------------

async def test_the_telegram_sender_reports_each_answer_as_an_outcome(fake, bot):
    send = ReminderSender(bot)
    reply = Reply("🔔 Ngày hội", choices=[Choice(OFF_BUTTON, "🔕 Stop reminders")])
    assert await send(str(FIRST_CHAT), reply) == SENT
    assert fake.buttons(fake.messages_to(FIRST_CHAT)[0]) == [("🔕 Stop reminders", OFF_BUTTON)]
    for code, description, expected in ((429, "Too Many Requests: retry after 7", Outcome.wait(7)),
                                        (403, "Forbidden: bot was blocked by the user", BLOCKED),
                                        (502, "Bad Gateway", TRANSIENT), (500, "Internal Server Error", TRANSIENT),
                                        (400, "Bad Request: chat not found", REJECTED)):
        fake.fail_next("sendMessage", error_code=code, description=description,
                       retry_after=7 if code == 429 else None)
        assert await send(str(FIRST_CHAT), reply) == expected
    assert len(fake.messages_to(FIRST_CHAT)) == 1


class WatchedClock(Clock):
    """The test's clock, counting its reads: the dispatcher reads it at every pass over the outbox, so a
    test waits for passes that decided to send nothing instead of sleeping and hoping they happened."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now)
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return super().__call__()

    async def read(self, times: int) -> None:
        target = self.reads + times
        async with asyncio.timeout(10):
            while self.reads < target:
                await asyncio.sleep(0.01)


async def test_nothing_goes_out_in_the_quiet_hours_it_waits_for_the_morning(services, fake, bot):
    clock = WatchedClock(vn(2026, 8, 12, 22, 15))
    services.clock = clock
    await add_subscribers(services, [FIRST_CHAT, FIRST_CHAT + 1], language="en")
    config = settings()
    await announce(services, config)
    worker = dispatcher(services, config, {"telegram": ReminderSender(bot)})
    running = asyncio.create_task(worker.run())
    try:
        await clock.read(5)  # the dispatcher looked at the outbox at 22:15, several times
        assert fake.sent == [] and await statuses(services) == {"pending": 2}
        clock.move_to(vn(2026, 8, 13, 6, 59))
        await clock.read(5)  # and at 06:59
        assert fake.sent == []
        clock.move_to(vn(2026, 8, 13, 7, 0))
        [message] = await fake.wait_for_messages(FIRST_CHAT, 1)
        await fake.wait_for_messages(FIRST_CHAT + 1, 1)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert message["text"].startswith("📢 Announcement\n\nMời bà con")
    assert "/remind off" in message["text"]
    assert fake.buttons(message) == [("🔕 Stop reminders", OFF_BUTTON)]


async def test_the_stop_button_under_a_reminder_ends_them(services, fake):
    services.clock = Clock(DAYTIME)
    config = settings()
    services.settings = dataclasses.replace(services.settings, reminders=config)
    citizen = Running(fake, services)
    await citizen.start()
    try:
        for chat in (FIRST_CHAT, FIRST_CHAT + 1):
            fake.send_text(chat, "/remind on", language_code="en")
            await fake.wait_for_messages(chat, 1)
        senders = {"telegram": ReminderSender(citizen.channel.bot)}
        await announce(services, config, key="announce:1", text="Thông báo thứ nhất")
        await deliver_all(services, config, senders)
        reminder = fake.messages_to(FIRST_CHAT)[-1]
        assert "Thông báo thứ nhất" in reminder["text"]
        fake.click(FIRST_CHAT, OFF_BUTTON, message_id=reminder["message_id"], language_code="en")
        [*_, answer] = await fake.wait_for_messages(FIRST_CHAT, 3)
        assert "Festival reminders are off: you will get no more" in answer["text"]
        await announce(services, config, key="announce:2", text="Thông báo thứ hai")
        await deliver_all(services, config, senders)
    finally:
        await citizen.stop()
    assert not any("Thông báo thứ hai" in (m.get("text") or "") for m in fake.messages_to(FIRST_CHAT))
    assert any("Thông báo thứ hai" in (m.get("text") or "") for m in fake.messages_to(FIRST_CHAT + 1))


async def test_a_reminder_in_december_for_an_event_in_january(services, fake, bot):
    clock = Clock(vn(2026, 12, 26, 8))
    services.clock = clock
    await add_subscribers(services, [FIRST_CHAT], language="en")
    new_year = CalendarEvent(id="dau-nam", dates=("01-03",), titles={"vi": "Ra quân đầu năm", "en": "New Year rally"},
                             start_time="08:00", offsets=(Offset(7, clock_time(8, 0)),))
    config = settings(calendar=(new_year,))
    await sync_calendar(services, config)
    senders = {"telegram": ReminderSender(bot)}
    assert (await tick(services, config)).scheduled == 0  # 8 days before: not yet
    clock.move_to(vn(2026, 12, 27, 8))
    assert (await tick(services, config)).queued == 1
    await deliver_all(services, config, senders)
    [message] = fake.messages_to(FIRST_CHAT)
    assert message["text"].startswith("🔔 New Year rally\n📅 03/01/2027 at 08:00")
    clock.move_to(vn(2027, 1, 3, 9))  # after it began, the next one is 2028's
    assert (await tick(services, config)).scheduled == 0


async def test_429_holds_all_sending_for_retry_after(services, fake, bot):
    services.clock = Clock(DAYTIME, running=True)
    chats = [FIRST_CHAT + i for i in range(5)]
    await add_subscribers(services, chats)
    config = settings(rate_per_second=5)  # 0.2 s apart: the 429 is known before the next slot
    await announce(services, config)
    fake.fail_next("sendMessage", error_code=429, description="Too Many Requests: retry after 2", retry_after=2)
    await deliver_all(services, config, {"telegram": ReminderSender(bot)})
    sends = [t for t, method in fake.timeline if method == "sendmessage"]
    refused_at, delivered = sends[0], sends[1:]
    assert len(delivered) == 5 and all(t >= refused_at + 1.95 for t in delivered), [t - refused_at for t in sends]
    assert all(len(fake.messages_to(chat)) == 1 for chat in chats)
    async with services.db.transaction() as session:
        rows = (await session.exec(select(ReminderOutbox))).all()
    assert {r.status for r in rows} == {"sent"} and {r.attempts for r in rows} == {0}  # a 429 is not a failed try


async def test_403_unsubscribes_the_citizen_who_blocked_the_bot(services, fake, bot, tipline):
    services.clock = Clock(DAYTIME)
    chats = [FIRST_CHAT, FIRST_CHAT + 1, FIRST_CHAT + 2]
    await add_subscribers(services, chats, areas=("79.26734",))
    config = settings(rate_per_second=5)
    await announce(services, config, area="79.26734")
    fake.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")
    await deliver_all(services, config, {"telegram": ReminderSender(bot)})
    silent = [c for c in chats if not fake.messages_to(c)]
    assert len(silent) == 1 and all(len(fake.messages_to(c)) == 1 for c in chats if c not in silent)
    blocker_key = services.keyring.pseudonym(CHANNEL_PREFIXES["telegram"], silent[0])
    async with services.db.transaction() as session:
        subscribers = {s.chat_key: s for s in (await session.exec(select(ReminderSubscriber))).all()}
        blocker = subscribers[blocker_key]
        keys = (await session.exec(select(DataKeyRecord.id))).all()
    assert (blocker.active, blocker.opt_out_reason, blocker.route) == (False, "blocked", None)
    assert sum(s.active for s in subscribers.values()) == 2 and len(keys) == 2  # its route key is shredded
    assert await statuses(services) == {"sent": 2, "failed": 1}
    await announce(services, config, key="announce:again", area="79.26734")
    assert await statuses(services) == {"sent": 2, "failed": 1, "pending": 2}  # not queued for the blocker again
    from tests.handlers.officer.test_triage import enrol
    admin = await enrol(services, tipline, "910", unit="ca-hcm", role="admin", name="Trung tá Hà")
    await admin.send("/broadcasts")
    assert "sent 2 · failed 1 · pending 0 · unknown 0" in admin.text and "blocked the bot 1" in admin.text


async def test_5xx_answers_are_retried_with_backoff_then_given_up(services, fake, bot):
    services.clock = Clock(DAYTIME, running=True)
    await add_subscribers(services, [FIRST_CHAT])
    config = settings(max_attempts=3)
    await announce(services, config)
    fake.fail_next("sendMessage", error_code=502, description="Bad Gateway")
    fake.fail_next("sendMessage", error_code=500, description="Internal Server Error")
    await deliver_all(services, config, {"telegram": ReminderSender(bot)})
    assert len(fake.messages_to(FIRST_CHAT)) == 1
    sends = [t for t, method in fake.timeline if method == "sendmessage"]
    assert len(sends) == 3 and sends[1] - sends[0] >= 0.15 and sends[2] - sends[1] >= 0.3  # waits that grow
    async with services.db.transaction() as session:
        row = (await session.exec(select(ReminderOutbox))).one()
    assert (row.status, row.attempts) == ("sent", 2)

    for _ in range(3):
        fake.fail_next("sendMessage", error_code=500, description="Internal Server Error")
    await announce(services, config, key="announce:doomed")
    await deliver_all(services, config, {"telegram": ReminderSender(bot)})
    assert len(fake.messages_to(FIRST_CHAT)) == 1
    async with services.db.transaction() as session:
        doomed = (await session.exec(select(ReminderOutbox).where(ReminderOutbox.status != "sent"))).one()
    assert (doomed.status, doomed.reason, doomed.attempts) == ("failed", "transient", 2)


@pytest.mark.parametrize("who_gives_up", ["the sender's request timeout", "the dispatcher's send timeout"])
async def test_a_reminder_telegram_answers_too_late_is_sent_again_not_dropped(services, fake, bot, who_gives_up):
    """What the citizen is promised: a reminder Telegram is too slow to answer still reaches them, because a
    timeout counts as "not delivered" and is tried again, like a 5xx; never as a refusal that drops it. (At
    least once: a timeout cannot tell whether the slow call went through after all; if it did, the
    citizen sees the reminder twice. That is the price of never losing one to a slow network.)"""
    services.clock = Clock(DAYTIME, running=True)
    await add_subscribers(services, [FIRST_CHAT], language="en")
    config = settings(max_attempts=3)
    await announce(services, config)
    if who_gives_up == "the sender's request timeout":
        sender, options = ReminderSender(bot, timeout=1), {}
    else:
        sender, options = ReminderSender(bot), {"send_timeout": 1.0}
    fake.hold_next("sendMessage", 4.0)  # Telegram answers the first send only after both sides gave up
    await deliver_all(services, config, {"telegram": sender}, **options)
    sends = [t for t, method in fake.timeline if method == "sendmessage"]
    assert len(sends) == 2 and sends[1] - sends[0] >= 1.0  # tried again once the first had timed out
    async with services.db.transaction() as session:
        row = (await session.exec(select(ReminderOutbox))).one()
    assert (row.status, row.reason, row.attempts) == ("sent", None, 1)
    [message] = fake.messages_to(FIRST_CHAT)  # the retry's; the held first call is still waiting
    assert message["text"].startswith("📢 Announcement\n\nMời bà con")


async def test_a_reminder_telegram_never_answers_in_time_is_given_up_as_channel_errors_not_refused(
        services, fake, bot, tipline):
    """Every try timed out: after max_attempts the row is "not delivered" for channel errors, which is what the
    admin reads in /broadcasts, never "refused by the channel"; and the citizen stays subscribed."""
    services.clock = Clock(DAYTIME, running=True)
    await add_subscribers(services, [FIRST_CHAT], language="en")
    config = settings(max_attempts=2)
    await announce(services, config)
    for _ in range(2):
        fake.hold_next("sendMessage", 1.5)
    await deliver_all(services, config, {"telegram": ReminderSender(bot)}, send_timeout=0.3)
    assert len([t for t, method in fake.timeline if method == "sendmessage"]) == 2
    async with services.db.transaction() as session:
        row = (await session.exec(select(ReminderOutbox))).one()
        subscriber = (await session.exec(select(ReminderSubscriber))).one()
    assert (row.status, row.reason, row.attempts) == ("failed", "transient", 1)
    assert subscriber.active and subscriber.opted_out_at is None
    from tests.handlers.officer.test_triage import enrol
    admin = await enrol(services, tipline, "910", unit="ca-hcm", role="admin", name="Trung tá Hà")
    await admin.send("/broadcasts")
    assert "channel errors 1" in admin.text and "refused by the channel" not in admin.text


async def test_the_zalo_sender_sends_the_text_alone_and_reports_answers(services):
    from bot.channels.zalo_bot import ZaloBotChannel, ZaloBotClient
    from handlers.router import TipLine
    from tests.fakes.zalo_bot_api import FakeZaloBot
    server = FakeZaloBot()
    await server.start()
    client = ZaloBotClient(server.token, api_base=server.base_url)
    try:
        send = ZaloBotChannel(client=client, tipline=TipLine(services)).send_reminder
        reply = Reply("🔔 Ngày hội\n\nTo stop them: /remind off", choices=[Choice(OFF_BUTTON, "🔕 Stop reminders")])
        assert await send("6ede9afa66b88fe6d6a9", reply) == SENT
        assert server.texts_to("6ede9afa66b88fe6d6a9") == [reply.text]  # no "1. 🔕 …" nobody could tap
        for code, expected in ((429, Outcome.wait(5)), (403, BLOCKED), (408, TRANSIENT), (500, TRANSIENT),
                               (400, REJECTED)):
            server.fail_next("sendMessage", code, "refused")
            assert await send("6ede9afa66b88fe6d6a9", reply) == expected
    finally:
        await client.close()
        await server.close()


async def test_no_chat_id_in_the_database_and_no_chat_id_or_text_in_the_logs(services, fake):
    import io
    from pathlib import Path

    from sqlalchemy import text
    from sqlmodel import SQLModel

    from bot.logs import setup_logging
    chat, news = 987654321123, "CANARYNEWS4e1f"
    log_stream = io.StringIO()
    # INFO, the configured default. (At DEBUG, aiosqlite logs SQL parameters, an announcement's text with them.)
    setup_logging("INFO", secrets=[fake.token], stream=log_stream)
    services.clock = Clock(DAYTIME, running=True)
    config = settings()
    services.settings = dataclasses.replace(services.settings, reminders=config)
    citizen = Running(fake, services)
    await citizen.start()
    try:
        fake.send_text(chat, "/remind ben thanh", language_code="en")
        [choose] = await fake.wait_for_messages(chat, 1)
        fake.click(chat, fake.buttons(choose)[0][1], message_id=choose["message_id"], language_code="en")
        await fake.wait_for_messages(chat, 2)
        senders = {"telegram": ReminderSender(citizen.channel.bot)}
        fake.fail_next("sendMessage", error_code=429, description="Too Many Requests: retry after 1", retry_after=1)
        await announce(services, config, key="announce:1", area="79.26734", text=f"Tin {news} thứ nhất")
        await deliver_all(services, config, senders)
        fake.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")
        await announce(services, config, key="announce:2", area="79.26734", text=f"Tin {news} thứ hai")
        await deliver_all(services, config, senders)
    finally:
        await citizen.stop()
        logging.getLogger().handlers.clear()
    assert news in fake.messages_to(chat)[-1]["text"]
    logs = log_stream.getvalue()
    assert "reminders pause for 1.0 s" in logs
    places = {"logs": logs.encode()}
    async with services.db.transaction() as session:
        for table in SQLModel.metadata.sorted_tables:
            rows = (await session.exec(text(f"SELECT * FROM {table.name}"))).all()
            places[f"table {table.name}"] = repr(rows).encode()
    if services.db.is_sqlite:
        for suffix in ("", "-wal"):
            path = Path(services.db.engine.url.database + suffix)
            if path.exists():
                places[path.name] = path.read_bytes()
    for place, content in places.items():
        assert str(chat).encode() not in content, f"chat id found in {place}"
    assert news not in logs
