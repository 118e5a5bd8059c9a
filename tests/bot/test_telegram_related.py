"""Related tips end to end on Telegram: the real aiogram client polling the fake Bot API server. Citizens file
fraud tips naming the same scammer; officers see "Liên quan" in /tip, search a number and link two tips, each
as the people involved would see it in their chats."""

from __future__ import annotations

from sqlmodel import select

from storage.models import Tip
from tests.bot.test_telegram_triage import BEN_THANH, CITIZEN, OFFICER, OTHER_CITIZEN, OUTSIDER, STRANGER, World
from tests.bot.test_telegram_triage import world  # noqa: F401  (a fixture)
from tests.fakes.telegram_api import FakeTelegram
from tests.support.canaries import assert_none_found, database_places, phone_canary
from tests.support.fake_servers import fake_server

fake = fake_server(FakeTelegram)

THIRD_CITIZEN = 5550103


async def file_fraud_tip(world: World, chat: int, scammer: str) -> str:
    """A citizen's fraud tip naming the scammer as they remember them; returns the officers' reference."""
    await world.say(chat, "/report")
    await world.tap(chat, "Fraud")
    await world.say(chat, "Họ gọi điện mạo danh công an, bắt chuyển tiền.")
    await world.say(chat, scammer)
    await world.tap(chat, "Earlier")
    await world.say(chat, "ben thanh")
    await world.tap(chat, BEN_THANH)
    await world.say(chat, "Đường Lê Lợi")
    await world.say(chat, "Không rõ")
    await world.tap(chat, "No evidence")
    await world.tap(chat, "Anonymous (recommended)")
    receipt = (await world.tap(chat, "Send the tip")).text(chat)
    assert "Receipt code: TB-" in receipt, receipt
    async with world.services.db.transaction() as session:
        return (await session.exec(select(Tip.ref).order_by(Tip.created_at.desc()))).first()


async def move_to(world: World, ref: str, unit_id: str) -> None:
    async with world.services.db.transaction() as session:
        tip = (await session.exec(select(Tip).where(Tip.ref == ref))).one()
        tip.unit_id = unit_id
        session.add(tip)


async def test_officers_see_related_tips_search_and_link_on_telegram(world) -> None:
    first = await file_fraud_tip(world, CITIZEN, "Zalo 0909 123 456, STK 0123456789 Vietcombank")
    second = await file_fraud_tip(world, OTHER_CITIZEN, "nó gọi bằng số +84 909-123-456")
    third = await file_fraud_tip(world, THIRD_CITIZEN, "chuyển khoản vào VCB 0123 456 789")
    await move_to(world, second, "ca-saigon")
    await world.enrol(OFFICER)
    await world.enrol(OUTSIDER, unit="ca-saigon", name="Đại úy Tâm")

    view = (await world.say(OFFICER, f"/tip {first}")).text(OFFICER)
    assert "Related:\n• Same phone number 09•••••456: 1 tip(s) at Công an phường Sài Gòn" in view
    assert f"• Same bank account •••••789: 1 in your units: {third}" in view and second not in view

    found = await world.say(OFFICER, "/search 0909.123.456")
    assert f"Tips of your units that mention it: 1\n• {first} · received" in found.text(OFFICER)
    assert "Other units: 1 tip(s) at Công an phường Sài Gòn" in found.text(OFFICER)
    opened = await world.tap(OFFICER, first)  # the button under the answer opens the tip
    assert "Related:" in opened.text(OFFICER)

    linked = await world.say(OFFICER, f"/link {third} {first}")
    assert f"Tips {third} and {first} are linked" in linked.text(OFFICER)
    assert f"• Linked: {first} (linked by an officer, " in (await world.say(OFFICER, f"/tip {third}")).text(OFFICER)
    refused = await world.say(OFFICER, f"/link {first} {second}")
    assert refused.text(OFFICER) == f"There is no tip {second} in your units."

    outside = (await world.say(OUTSIDER, f"/tip {second}")).text(OUTSIDER)
    assert "• Same phone number 09•••••456: 1 tip(s) at Công an phường Bến Thành" in outside
    assert first not in outside
    assert [e.tip_ref for e in await world.audit("link")] == [third, first]
    assert len(await world.audit("search")) == 1 and len(await world.audit("related")) >= 4

    neutral = (await world.say(STRANGER, "hello?")).text(STRANGER)
    for command in ("/search 0909123456", f"/link {first} {third}"):
        sent = await world.say(STRANGER, command)
        assert sent.text(STRANGER) == neutral and len(sent) == 1
    assert len(await world.audit("search")) == 1 and len(await world.audit("link")) == 2
    if world.services.db.is_sqlite:
        await world.services.db.checkpoint()
    assert_none_found([phone_canary("scammer", "0909123456")], await database_places(world.services.db))
