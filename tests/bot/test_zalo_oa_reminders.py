"""Festival reminders through the Zalo OA: inside the 7-day window a message, outside it the template or a
refusal the dispatcher counts; the last interaction sealed. Our real client against the fake OA."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.channels.base import BLOCKED, SENT, TRANSIENT, Outcome
from bot.channels.zalo_oa.channel import ZaloOAChannel
from bot.channels.zalo_oa.events import CHANNEL, seen_key
from handlers.messages import Choice, Reply
from storage import zalo_oa as store
from storage.models import Conversation, ZaloOaInteraction
from tests.bot.test_zalo_oa import (OTHER, USER, citizen, client, connected, deliveries, fake, oa,  # noqa: F401
                                    oa_settings)

# --- the 7-day window and reminders --------------------------------------------------------------------

REMINDER = Reply("🔔 Ngày hội toàn dân bảo vệ an ninh Tổ quốc\n📅 19/08/2026",
                 choices=[Choice("remind:off", "🔕 Tắt nhắc")])


async def seen(services, user: str, ago: timedelta | None) -> None:
    async with services.db.transaction() as session:
        if ago is None:
            await store.forget_interaction(session=session, seen_key=seen_key(services.keyring, user))
        else:
            await store.record_interaction(session=session, keyring=services.keyring,
                                           seen_key=seen_key(services.keyring, user), at=services.clock() - ago)


@pytest.mark.parametrize("paid, ago, expected", [
    (False, timedelta(hours=1), "message"), (False, timedelta(hours=47), "message"),
    (False, timedelta(days=3), "outside"), (False, timedelta(days=8), "outside"), (False, None, "outside"),
    (True, timedelta(days=3), "message"), (True, timedelta(days=6, hours=23), "message"),
    (True, timedelta(days=8), "outside"),
])
async def test_a_reminder_inside_the_window_is_a_message_outside_it_is_refused(
        fake, client, tipline, services, connected, paid, ago, expected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(reminders_in_paid_window=paid))
    fake.followers.add(USER)
    await seen(services, USER, ago)
    outcome = await channel.send_reminder(USER, REMINDER)
    if expected == "message":
        assert outcome == SENT
        [message] = fake.messages_to(USER)
        assert message["text"] == REMINDER.text
        [button] = fake.buttons(message)
        assert button["type"] == "oa.query.hide" and button["title"] == "🔕 Tắt nhắc"
    else:
        assert outcome == Outcome.refused("outside_window") and fake.sent == [] and fake.templates == []


async def test_outside_the_window_a_configured_template_is_used(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings(
        reminder_template_id="301234", reminder_template_param="noi_dung"))
    fake.followers.add(USER)
    await seen(services, USER, timedelta(days=9))
    assert await channel.send_reminder(USER, REMINDER) == SENT
    [template] = fake.templates
    assert template["template_id"] == "301234" and template["user_id"] == USER
    assert template["template_data"] == {"noi_dung": REMINDER.text}
    # Zalo's own count of the window wins over ours: -230 on a message sends the template instead.
    fake.outside_window.add(USER)
    await seen(services, USER, timedelta(hours=1))
    assert await channel.send_reminder(USER, REMINDER) == SENT and len(fake.templates) == 2


async def test_reminder_refusals_become_outcomes_the_dispatcher_understands(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    await seen(services, USER, timedelta(hours=1))
    assert await channel.send_reminder(USER, REMINDER) == BLOCKED  # -213: no longer follows the OA
    fake.followers.add(USER)
    for code, outcome in ((-32, Outcome.wait(30)), (-211, TRANSIENT), (-218, Outcome("rejected")),
                          (-230, Outcome.refused("outside_window"))):
        fake.fail_next("/v3.0/oa/message/cs", code, "refused")
        assert await channel.send_reminder(USER, REMINDER) == outcome, code


async def test_the_outbox_dispatcher_sends_oa_reminders_through_the_channel(fake, client, tipline, services, connected):
    from bot.reminder_dispatcher import Dispatcher, tick
    from handlers.reminders.festival_calendar import ReminderSettings
    from storage import outbox
    from storage import reminders as reminders_store
    from tests.bot.test_reminder_delivery import DAYTIME
    from tests.support.reminders import Clock, add_subscribers
    services.clock = Clock(DAYTIME, running=True)
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    fake.followers.update({USER, OTHER})
    await add_subscribers(services, [USER, OTHER], channel=CHANNEL)
    await seen(services, USER, timedelta(hours=2))  # OTHER last wrote long ago (nothing kept)
    config = ReminderSettings(rate_per_second=50, retry_seconds=0.2)
    now = services.clock()
    async with services.db.transaction() as session:
        await reminders_store.create_broadcast(session=session, key="announce:oa", kind="announcement", send_at=now,
                                               now=now, text="Mời bà con dự Ngày hội.")
    assert (await tick(services, config)).queued == 2
    worker = Dispatcher(services, config, {CHANNEL: channel.send_reminder}, idle_seconds=0.05, flush_seconds=0.05,
                        grace_seconds=0)
    await asyncio.wait_for(worker.run(until_idle=True), 30)
    async with services.db.transaction() as session:
        counts = await outbox.count_by_status(session=session)
        reasons = (await session.exec(select(text("reason")).select_from(text("reminder_outbox"))
                                      .where(text("status = 'skipped'")))).all()
    assert counts.get("sent") == 1 and counts.get("skipped") == 1 and list(reasons) == ["outside_window"]
    assert [m["user_id"] for m in fake.sent] == [USER] and "Ngày hội" in fake.sent[0]["text"]


async def test_the_last_interaction_is_sealed_and_keyed_apart_from_the_conversation(citizen, services):
    await citizen.say("/start")
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(ZaloOaInteraction))).all()
        conversation = (await session.exec(select(Conversation))).one()
    assert row.seen_key != conversation.chat_key and USER not in row.seen_key
    assert USER.encode() not in row.sealed and str(services.clock().year).encode() not in row.sealed
