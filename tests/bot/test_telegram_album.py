"""An album on Telegram (photos sharing a media_group_id) is answered once, through the real aiogram client."""

from __future__ import annotations

from tests.bot.test_telegram_tipoff import CHAT, running, say, tap  # noqa: F401 (running: a fixture)
from tests.fakes.telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server
from tests.support.images import jpeg_with_gps

fake = fake_server(FakeTelegram)


async def test_three_photos_sent_together_get_one_answer(fake, running, services):
    await say(fake, "/report")
    await tap(fake, "Theft")
    await say(fake, "Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    await tap(fake, "Today")
    await say(fake, "hoan kiem")
    await tap(fake, "Yes")
    await say(fake, "12 Hàng Bài")
    message = await say(fake, "Hai thanh niên đi xe Exciter")
    assert "Send photos" in message["text"]
    before = len(fake.messages_to(CHAT))
    for _ in range(3):
        fake.send_photo(CHAT, jpeg_with_gps(), media_group_id="13960000000000001", language_code="en")
    fake.send_text(CHAT, "/help", language_code="en")  # answered after the album: its answers come last
    sent = await fake.wait_for_messages(CHAT, before + 3)  # one for the album, two for /help
    texts = [m.get("text") or "" for m in sent[before:]]
    assert texts[0].startswith("The files sent with it are being received too") and "received so far: 1." in texts[0]
    assert texts[1].startswith("/report: report a crime") and "received so far: 3." in texts[2]
    assert len(fake.messages_to(CHAT)) == before + 3
