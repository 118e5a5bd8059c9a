"""The ward step's buttons and the cancel question on Telegram: the real aiogram client against the fake Bot API."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select

from storage.models import Tip
from tests.bot.test_telegram_tipoff import running, say, tap  # noqa: F401 (running: a fixture)
from tests.fakes.telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server

fake = fake_server(FakeTelegram)


async def test_an_old_district_then_confirm_by_button(fake, running, services):
    await say(fake, "/report")
    await tap(fake, "Theft")
    await say(fake, "Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    await tap(fake, "Today")
    message = await say(fake, "quan 1")
    assert message["text"].startswith("«Quận 1 (Thành phố Hồ Chí Minh)» is a name from before 1 July 2025.")
    assert [text for text, _ in fake.buttons(message)] == [
        "Phường Tân Định, Thành phố Hồ Chí Minh", "Phường Sài Gòn, Thành phố Hồ Chí Minh",
        "Phường Bến Thành, Thành phố Hồ Chí Minh", "I don't know the ward or commune"]
    message = await say(fake, "ben tahnh")  # typed again instead: a close spelling, to confirm
    assert message["text"] == "Is it Phường Bến Thành, TP. Hồ Chí Minh?"
    assert [text for text, _ in fake.buttons(message)] == ["Yes", "No, type another name",
                                                           "I don't know the ward or commune"]
    message = await tap(fake, "Yes")
    assert "location pin" in message["text"]
    message = await say(fake, "/cancel")
    assert message["text"] == "Delete the tip you are writing?"
    message = await tap(fake, "No, keep writing")
    assert message["text"].startswith("Your tip is kept.") and "location pin" in message["text"]
    message = await say(fake, "hủy")
    message = await tap(fake, "Yes, delete it")
    assert "cancelled and deleted" in message["text"]
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(Tip))).one() == 0
