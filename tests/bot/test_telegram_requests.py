"""How tinbao's aiogram session speaks to the Bot API: a call that uploads nothing goes as JSON (cheaper to
build and to read than aiogram's multipart form), a file still goes as an upload, and either way the
citizen gets the same message, buttons and bytes."""

from __future__ import annotations

import pytest

from handlers.messages import OutgoingFile, Reply, Route
from tests.fakes.telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server
from tests.support.telegram_polling import Running

CHAT = 6670001

fake = fake_server(FakeTelegram)


@pytest.fixture
async def channel(fake, services):
    running = Running(fake, services)
    await running.start()
    yield running.channel
    await running.stop()


async def test_a_question_with_buttons_goes_as_json_and_arrives_whole(fake, channel):
    fake.send_text(CHAT, "/report", language_code="en")
    [question] = await fake.wait_for_messages(CHAT, 1, timeout=30)
    assert "Drugs" in [text for text, _data in fake.buttons(question)]
    sent = [kind for method, kind in fake.bodies if method == "sendMessage"]
    assert sent and set(sent) == {"application/json"}
    # The tap on a category: its answer in the same chat, the tapped message edited to show the choice.
    [(_, drugs)] = [(t, d) for t, d in fake.buttons(question) if t == "Drugs"]
    fake.click(CHAT, drugs, message_id=question["message_id"], language_code="en")
    await fake.wait_for_messages(CHAT, 2, timeout=30)
    assert {kind for method, kind in fake.bodies if method in ("editMessageText", "answerCallbackQuery",
                                                                 "getUpdates")} == {"application/json"}


async def test_a_file_still_goes_as_an_upload_with_its_bytes(fake, channel):
    data = bytes(range(256)) * 40  # not text: the bytes must arrive as they were
    outcome = await channel.deliveries.send_one(
        Reply("Hồ sơ tin báo", files=[OutgoingFile("document", data, filename="ho-so.pdf", mime="application/pdf")]),
        origin=Route("telegram", str(CHAT)))
    assert outcome == "sent"
    [document] = [m for m in fake.messages_to(CHAT) if m["method"] == "sendDocument"]
    assert document["document"] == data
    assert "Hồ sơ tin báo" in [m.get("text") for m in fake.messages_to(CHAT)]  # its text, as JSON
    assert [kind for method, kind in fake.bodies if method == "sendDocument"] == ["multipart/form-data"]
