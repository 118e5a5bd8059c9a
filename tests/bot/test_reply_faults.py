"""What Telegram does wrong on the way back (429 with retry_after, 5xx, a timeout, a connection dropped after
the call took effect): every reply is delivered in the end or recorded as not delivered, never twice,
and a redelivered update sends nothing again."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.channels import telegram
from bot.channels.telegram import TelegramChannel, make_bot
from handlers.router import TipLine
from storage.models import TurnReply
from tests.fakes.telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server

CHAT = 6660001
HELP = "/status CODE"  # a line of the /help answer


fake = fake_server(FakeTelegram)


@pytest.fixture
async def channel(fake, services, monkeypatch):
    monkeypatch.setattr(telegram, "SEND_BACKOFF", 0.05)  # the retries' waits, short for the test
    bot = make_bot(fake.token, fake.base_url)
    bot.session.timeout = 2  # seconds: a held answer becomes a timeout quickly
    channel = TelegramChannel(bot=bot, tipline=TipLine(services))
    task = asyncio.create_task(channel.run_polling())
    yield channel
    await channel.stop()
    await asyncio.wait_for(task, 10)
    await bot.session.close()


def helps(fake) -> list[dict]:
    return [m for m in fake.messages_to(CHAT) if HELP in (m.get("text") or "")]


async def ask_help_and_settle(fake, channel) -> int:
    """Send /help; wait until Telegram's offset passed it (handled, replies settled); its update id."""
    update_id = fake.send_text(CHAT, "/help", language_code="en")
    await fake.wait_for_offset(update_id + 1, timeout=30)
    return update_id


async def rows(services, channel) -> int:
    """turn_reply rows left once the finished ones are shredded (the next turn would do it)."""
    await channel.tipline.outbox.flush()
    async with services.db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(TurnReply))).one()


async def redelivered_sends_nothing(fake, channel, services, update_id: int) -> None:
    before = len(fake.messages_to(CHAT))
    fake.redeliver(update_id)
    marker = fake.send_text(CHAT, "/help", language_code="en")  # answered after the redelivery, in order
    await fake.wait_for_messages(CHAT, before + 1, timeout=30)
    await fake.wait_for_offset(marker + 1, timeout=30)
    assert len(fake.messages_to(CHAT)) == before + 1  # only the marker's answer
    assert await rows(services, channel) == 0


@pytest.mark.parametrize("faults", [
    [(429, "Too Many Requests: retry after 1", 1)],
    [(500, "Internal Server Error", None), (502, "Bad Gateway", None)],
], ids=["429", "5xx"])
async def test_refusals_that_deliver_nothing_are_tried_again_and_the_reply_arrives_once(
        fake, channel, services, faults):
    for code, description, retry_after in faults:
        fake.fail_next("sendMessage", error_code=code, description=description, retry_after=retry_after)
    update_id = await ask_help_and_settle(fake, channel)
    assert len(helps(fake)) == 1
    assert channel.tipline.outbox.unknown == 0
    await redelivered_sends_nothing(fake, channel, services, update_id)


@pytest.mark.parametrize("fault", ["timeout", "dropped"])
async def test_a_reply_that_may_have_arrived_is_counted_unknown_and_never_sent_again(fake, channel, services, fault):
    if fault == "timeout":
        fake.hold_next("sendMessage", 4)  # Telegram carries it out after the client gave up waiting
    else:
        fake.drop_next("sendMessage")  # carried out, and the connection closed with no answer
    update_id = await ask_help_and_settle(fake, channel)
    assert channel.tipline.outbox.unknown == 1
    await fake.wait_for_messages(CHAT, 1, timeout=30)  # a held one is carried out once its hold ends
    assert len(helps(fake)) == 1  # it did arrive, once: the bot did not try it again
    await redelivered_sends_nothing(fake, channel, services, update_id)


async def test_a_reply_telegram_keeps_refusing_is_given_up_and_not_sent_again(fake, channel, services):
    for _ in range(telegram.SEND_ATTEMPTS):
        fake.fail_next("sendMessage", error_code=500, description="Internal Server Error")
    update_id = await ask_help_and_settle(fake, channel)
    assert helps(fake) == []
    assert await rows(services, channel) == 0  # settled: given up, not left for a later resend
    await redelivered_sends_nothing(fake, channel, services, update_id)
