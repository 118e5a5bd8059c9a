"""The tip-off end to end: the real aiogram client polling a fake Telegram Bot API server over HTTP."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func
from sqlmodel import select

from storage.keys import load_data_key
from storage.models import Attachment, Tip
from storage.tips import read_tip_fields
from tests.fakes.telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server
from tests.support.images import jpeg_with_gps
from tests.support.telegram_polling import Running

CHAT = 5550001


fake = fake_server(FakeTelegram)


@pytest.fixture
async def running(fake, services):
    bot = Running(fake, services)
    await bot.start()
    yield bot
    await bot.stop()


async def say(fake: FakeTelegram, text: str) -> dict:
    before = len(fake.messages_to(CHAT))
    fake.send_text(CHAT, text, language_code="en")
    return (await fake.wait_for_messages(CHAT, before + 1))[-1]


async def tap(fake: FakeTelegram, label: str) -> dict:
    """Tap the button whose label contains ``label`` on the latest message with buttons."""
    before = len(fake.messages_to(CHAT))
    message = [m for m in fake.messages_to(CHAT) if fake.buttons(m)][-1]
    data = next(d for text, d in fake.buttons(message) if label in text)
    fake.click(CHAT, data, message_id=message["message_id"], language_code="en")
    return (await fake.wait_for_messages(CHAT, before + 1))[-1]


async def last_after(fake: FakeTelegram, before: int) -> dict:
    return (await fake.wait_for_messages(CHAT, before + 1))[-1]


async def fill_tip(fake: FakeTelegram) -> None:
    await say(fake, "/report")
    await tap(fake, "Drugs")
    await say(fake, "Có người bán ma túy ở quán cà phê đầu hẻm.")
    await tap(fake, "Happening now")
    await say(fake, "ben thanh")
    message = await tap(fake, "Phường Bến Thành, Thành phố Hồ Chí Minh")
    keyboard = message["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_location"] is True
    before = len(fake.messages_to(CHAT))
    fake.send_location(CHAT, 10.7726, 106.6980, language_code="en")
    await last_after(fake, before)
    await say(fake, "Hai thanh niên đi xe Exciter")
    before = len(fake.messages_to(CHAT))
    fake.send_photo(CHAT, jpeg_with_gps(), language_code="en")
    assert "Files received so far: 1" in (await last_after(fake, before))["text"]
    await tap(fake, "Done")
    message = await tap(fake, "Anonymous (recommended)")
    assert "Please check your tip" in message["text"]


async def test_full_tip_with_photo_and_location(fake, running, services):
    await fill_tip(fake)
    receipt = await tap(fake, "Send the tip")
    assert "Receipt code: TB-" in receipt["text"] and "113" in receipt["text"]
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        fields = await read_tip_fields(session=session, data_key=await load_data_key(
            session=session, keyring=services.keyring, owner_id=tip.id))
        attachment = (await session.exec(select(Attachment))).one()
    assert tip.attachment_count == 1 and tip.urgent and tip.area_code == "79.26734"
    assert json.loads(fields["place"]) == {"latitude": 10.7726, "longitude": 106.698}
    photo = services.blobs.read(data_key=await _key(services, tip.id), attachment_id=attachment.id,
                                blob_name=attachment.blob_name)
    assert photo[:2] == b"\xff\xd8" and b"CanaryPhoneMaker" not in photo
    # The tapped question keeps its text, loses its buttons, and shows the choice.
    edited = [m for m in fake.messages_to(CHAT) if "» Drugs" in (m.get("text") or "")]
    assert edited and edited[0]["reply_markup"] is None


async def _key(services, tip_id):
    async with services.db.transaction() as session:
        return await load_data_key(session=session, keyring=services.keyring, owner_id=tip_id)


async def test_cancel_mid_flow(fake, running, services):
    await say(fake, "/report")
    await tap(fake, "Gambling")
    message = await say(fake, "/cancel")
    assert message["text"] == "Delete the tip you are writing?"
    message = await tap(fake, "Yes, delete it")
    assert "cancelled and deleted" in message["text"]
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(Tip))).one() == 0


async def test_edit_from_review(fake, running, services):
    await fill_tip(fake)
    await tap(fake, "Edit: What happened")
    message = await say(fake, "Nội dung đã sửa: bán ma túy vào ban đêm.")
    assert "Please check your tip" in message["text"] and "Nội dung đã sửa" in message["text"]
    await tap(fake, "Send the tip")
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        fields = await read_tip_fields(session=session, data_key=await load_data_key(
            session=session, keyring=services.keyring, owner_id=tip.id))
    assert json.loads(fields["description"])["text"] == "Nội dung đã sửa: bán ma túy vào ban đêm."


async def test_restart_mid_conversation_resumes(fake, services):
    first = Running(fake, services)
    await first.start()
    await say(fake, "/report")
    await tap(fake, "Theft")
    await first.stop()
    second = Running(fake, services)  # a new process: nothing in memory, all state in the database
    await second.start()
    try:
        message = await say(fake, "Kẻ gian bẻ khóa xe máy trước nhà số 12.")
        assert "When did it happen" in message["text"]
    finally:
        await second.stop()


async def test_duplicate_update_delivery_changes_nothing(fake, running, services):
    await fill_tip(fake)
    before = len(fake.messages_to(CHAT))
    message = [m for m in fake.messages_to(CHAT) if fake.buttons(m)][-1]
    data = next(d for text, d in fake.buttons(message) if "Send the tip" in text)
    update_id = fake.click(CHAT, data, message_id=message["message_id"], language_code="en")
    await fake.wait_for_messages(CHAT, before + 1)
    fake.redeliver(update_id)
    # A marker behind the redelivery in the same chat: one chat's updates are handled and answered in
    # order, so once the help arrives the redelivered tap has been handled and anything it sent is here.
    fake.send_text(CHAT, "/help", language_code="en")
    messages = await fake.wait_for_messages(CHAT, before + 2)
    texts = [m["text"] for m in messages[before:]]
    assert "/status CODE" in texts[-1], texts
    assert sum("Receipt code" in t for t in texts) == 1, texts
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(Tip))).one() == 1
