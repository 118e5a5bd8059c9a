"""An album on Telegram (photos sharing a media_group_id) is answered once, through the real aiogram client."""

from __future__ import annotations

import asyncio

from handlers.router import TipLine
from tests.bot.test_telegram_tipoff import CHAT, fake, running, say, tap  # noqa: F401 (fixtures)
from tests.bot.test_webhook import post, served  # noqa: F401 (fixtures)
from tests.handlers.citizen.test_albums import reach_evidence
from tests.support.chat import ChatClient
from tests.support.images import jpeg_with_gps


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
    # Answered by its last file, with the count of all three ("Đã nhận 3 tệp." in Vietnamese).
    assert "received so far: 3." in texts[0] and "being received too" not in texts[0]
    assert texts[1].startswith("/report: report a crime") and "received so far: 3." in texts[2]
    assert len(fake.messages_to(CHAT)) == before + 3


async def test_an_album_posted_to_the_webhook_at_once_gets_one_answer_counting_all(served, services):
    """Telegram posts an album's files as separate calls, side by side: each gets its 200 once handled, and
    the citizen one answer, after the last, counting all three."""
    fake, server, channel = served
    citizen = ChatClient(TipLine(services), chat_id=str(CHAT), channel="telegram", language="en")
    await reach_evidence(citizen)  # the steps before, through the handlers: the album is what is tried here
    ids = [fake.send_photo(CHAT, jpeg_with_gps(), media_group_id="13960000000000002", language_code="en")
           for _ in range(3)]
    statuses = await asyncio.gather(*(post(server, fake.update_json(i)) for i in ids))
    assert statuses == [200, 200, 200]
    [answer] = fake.messages_to(CHAT)  # every call answered: nothing more is on its way
    assert "Files received so far: 3." in answer["text"] and "being received too" not in answer["text"]
    assert channel.outcomes == {"handled": 3}
