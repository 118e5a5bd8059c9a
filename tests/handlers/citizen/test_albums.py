"""An album (several photos sent at once) is one message: counted once against the flood limit, answered once."""

from __future__ import annotations

from datetime import datetime, timezone

from handlers.messages import IncomingFile
from tests.support.chat import ChatClient
from tests.support.images import jpeg_with_gps
from tests.support.state import stored

MINUTE = datetime(2025, 6, 1, 9, 30, 5, tzinfo=timezone.utc)


def photo(data: bytes) -> IncomingFile:
    async def fetch() -> bytes:
        return data
    return IncomingFile(kind="photo", size=len(data), fetch=fetch, mime="image/jpeg")


async def reach_evidence(citizen, *, question: str = "Send photos") -> None:
    await citizen.send("/report")
    await citizen.click("category:theft")
    await citizen.send("Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    await citizen.click("when:today")
    await citizen.send("hoan kiem")
    await citizen.click("area:yes")
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    assert question in citizen.text


async def test_ten_photos_at_once_plus_every_step_stay_under_the_flood_limit(tipline, services):
    services.clock = lambda: MINUTE  # every message in one minute: 8 steps, 10 photos, 3 more steps
    assert services.settings.limits.messages_per_minute == 20
    citizen = ChatClient(tipline, chat_id="album-1", language="en")
    await reach_evidence(citizen)
    data = jpeg_with_gps()
    answers = [await citizen.deliver(files=[photo(data)], album="13579") for _ in range(10)]
    first, rest = answers[0], answers[1:]
    assert len(first) == 1 and "Files received so far: 1." in first[0].text
    assert first[0].text.startswith("The files sent with it are being received too, without a message for each.")
    assert rest == [[]] * 9  # answered once, not once per photo
    assert (await stored(services, citizen))["counts"]["Attachment"] == 10
    await citizen.send("/help")  # the question again, now with all ten counted
    assert "Files received so far: 10." in citizen.text
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    assert "Evidence: 10 file(s)" in citizen.text
    await citizen.click("review:submit")
    assert "Receipt code: TB-" in citizen.text  # not «You are sending messages too quickly»


async def test_an_album_the_channel_holds_together_is_answered_by_its_last_file_with_the_count_of_all(
        tipline, services):
    """Telegram hands the album's files one by one; knowing more follow, the channel marks all but the last."""
    citizen = ChatClient(tipline, chat_id="album-4", language="en")
    await reach_evidence(citizen)
    data = jpeg_with_gps()
    answers = [await citizen.deliver(files=[photo(data)], album="8642", album_more=more) for more in (True, True, False)]
    assert answers[:2] == [[], []]
    [last] = answers[2]
    assert "Files received so far: 3." in last.text and "being received too" not in last.text
    assert (await stored(services, citizen))["counts"]["Attachment"] == 3
    late = await citizen.deliver(files=[photo(data)], album="8642")  # one Telegram sent after the wait: quiet too
    assert late == []
    await citizen.send("/help")
    assert "Files received so far: 4." in citizen.text


async def test_the_vietnamese_album_answer_reads_da_nhan_3_tep(tipline, services):
    citizen = ChatClient(tipline, chat_id="album-5", language="vi")
    await reach_evidence(citizen, question="Gửi ảnh")
    data = jpeg_with_gps()
    answers = [await citizen.deliver(files=[photo(data)], album="1357", album_more=more) for more in (True, True, False)]
    assert answers[:2] == [[], []] and "Đã nhận 3 tệp." in answers[2][0].text


async def test_a_photo_of_an_album_that_cannot_be_kept_still_says_so(tipline, services):
    services.clock = lambda: MINUTE
    citizen = ChatClient(tipline, chat_id="album-2", language="en")
    await reach_evidence(citizen)
    data = jpeg_with_gps()
    for _ in range(services.settings.limits.max_files):
        await citizen.deliver(files=[photo(data)], album="2468")
    eleventh = await citizen.deliver(files=[photo(data)], album="2468")
    assert [r.text for r in eleventh] == ["You can send at most 10 files; this one was not kept."]
    assert (await stored(services, citizen))["counts"]["Attachment"] == 10


async def test_an_album_sent_before_the_evidence_question_is_answered_once(tipline, services):
    citizen = ChatClient(tipline, chat_id="album-3", language="en")
    await citizen.send("/report")
    data = jpeg_with_gps()
    answers = [await citizen.deliver(files=[photo(data)], album="97531") for _ in range(3)]
    assert "please answer this one first" in answers[0][0].text
    assert answers[1:] == [[], []]
    assert (await stored(services, citizen))["counts"]["Attachment"] == 0
