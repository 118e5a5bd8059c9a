"""The ward step's buttons, a map pin sent at it, and the cancel question on Telegram: the real aiogram client
against the fake Bot API."""

from __future__ import annotations

import json

from sqlalchemy import func
from sqlmodel import select

from storage.keys import load_data_key
from storage.models import Tip
from storage.tips import read_tip_fields
from tests.bot.test_telegram_tipoff import CHAT, running, say, tap  # noqa: F401 (running: a fixture)
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


async def reach_ward_question(fake) -> dict:
    await say(fake, "/report")
    await tap(fake, "Theft")
    await say(fake, "Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    return await tap(fake, "Today")


async def pin(fake, latitude: float, longitude: float) -> dict:
    before = len(fake.messages_to(CHAT))
    fake.send_location(CHAT, latitude, longitude, language_code="en")
    return (await fake.wait_for_messages(CHAT, before + 1))[-1]


async def test_a_pin_at_the_ward_question_is_confirmed_then_kept_as_the_place(fake, running, services):
    question = await reach_ward_question(fake)
    assert question["text"].startswith("In which ward or commune did it happen?")
    keyboard = question["reply_markup"]["keyboard"]  # the location request exists only on the reply keyboard
    assert keyboard[0][0] == {"text": "📍 Send my location", "request_location": True}
    assert [row[0]["text"] for row in keyboard[1:]] == ["I don't know the ward or commune"]
    message = await pin(fake, 10.7798, 106.6990)  # Nhà thờ Đức Bà, well inside Phường Sài Gòn
    assert message["text"] == "Is this location in Phường Sài Gòn, TP. Hồ Chí Minh?"
    assert [text for text, _ in fake.buttons(message)] == ["Yes", "No, type another name",
                                                           "I don't know the ward or commune"]
    message = await tap(fake, "Yes")
    assert message["text"].startswith("The location you sent is kept as the place where it happened")
    assert "people or vehicles" in message["text"]
    await tap(fake, "Skip")
    await tap(fake, "No evidence, continue")
    message = await tap(fake, "Anonymous (recommended)")
    assert "Place: Map pin (10.77980, 106.69900)" in message["text"]
    await tap(fake, "Send the tip")
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        fields = await read_tip_fields(session=session, data_key=await load_data_key(
            session=session, keyring=services.keyring, owner_id=tip.id))
    assert (tip.area_code, tip.unit_id) == ("79.26737", "ca-saigon")
    assert json.loads(fields["place"]) == {"latitude": 10.7798, "longitude": 106.699}


async def test_a_pin_near_a_boundary_offers_both_wards_and_one_outside_is_answered_politely(fake, running, services):
    await reach_ward_question(fake)
    message = await pin(fake, 21.0368, 105.8346)  # Lăng Chủ tịch Hồ Chí Minh: Phường Ba Đình, not served here
    assert message["text"].startswith("Sorry, this location is in Phường Ba Đình, Thành phố Hà Nội, which is not "
                                      "among the wards and communes this tip line serves.\n\nIn which ward")
    assert message["reply_markup"]["keyboard"][0][0]["request_location"] is True  # the button again, to retry
    message = await pin(fake, 10.7725, 106.6980)  # Chợ Bến Thành, 250 m from Phường Sài Gòn
    assert message["text"].startswith("Is this location in Phường Bến Thành, TP. Hồ Chí Minh? It is close to a "
                                      "boundary")
    assert [text for text, _ in fake.buttons(message)] == [
        "Phường Bến Thành, Thành phố Hồ Chí Minh", "Phường Sài Gòn, Thành phố Hồ Chí Minh",
        "I don't know the ward or commune"]
    message = await tap(fake, "Phường Bến Thành")
    assert "people or vehicles" in message["text"]
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(Tip))).one() == 0  # nothing sent yet


async def test_i_dont_know_on_the_location_keyboard_is_read_as_the_button(fake, running, services):
    question = await reach_ward_question(fake)
    assert question["reply_markup"]["keyboard"][1][0]["text"] == "I don't know the ward or commune"
    message = await say(fake, "I don't know the ward or commune")  # what tapping a reply-keyboard button sends
    assert message["text"] == "In which province or city did it happen?"
    message = await tap(fake, "Thành phố Hà Nội")
    assert "location pin" in message["text"]
