"""Zalo Bot Platform end to end: our own aiohttp client over HTTP against a fake Zalo Bot API server.

Zalo gives no language, so the citizen is answered in Vietnamese (the default); the texts are
checked through the same catalog the handlers use.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import time

import pytest
from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from bot.channels.zalo_bot import (TEXT_LIMIT, UndecodableEvent, ZaloBotChannel, ZaloBotClient, ZaloBotError,
                                   render, to_inbound)
from bot.delivery import Deliveries
from bot.logs import RedactSecrets
from handlers.i18n import translator
from handlers.messages import Choice, Inbound, OutgoingFile, Reply, Route, TypeInstead
from storage.keys import load_data_key
from storage.models import Attachment, Conversation, ProcessedUpdate, Tip, TipField
from storage.tips import read_tip_fields
from tests.fakes.zalo_bot_api import FakeZaloBot
from tests.support.images import GPS_IFD, jpeg_with_gps

CHAT = "6ede9afa66b88fe6d6a9"  # Zalo ids are strings (this one is the docs' sample)
SECRET = "zalo-Webhook_secret-0123456789"
AREA = "Phường Bến Thành, Thành phố Hồ Chí Minh"
DESCRIPTION = "Có người bán ma túy ở quán cà phê đầu hẻm, tối nào cũng có."
vi = translator("vi")


@pytest.fixture
async def fake():
    server = FakeZaloBot()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def client(fake):
    zalo = ZaloBotClient(fake.token, api_base=fake.base_url)
    yield zalo
    await zalo.close()


@pytest.fixture
async def zalo(fake, client, tipline):
    """The bot long-polling the fake, as `tinbao run` does."""
    channel = ZaloBotChannel(client=client, tipline=tipline, poll_timeout=2)
    task = asyncio.create_task(channel.run_polling())
    yield channel
    await channel.stop()
    await asyncio.wait_for(task, 5)


class Citizen:
    """Acts on the fake as a person in a Zalo chat and returns what the bot answered."""

    def __init__(self, fake: FakeZaloBot, channel: ZaloBotChannel, chat: str = CHAT) -> None:
        self.fake, self.channel, self.chat = fake, channel, chat

    async def _answer(self, act) -> str:
        before = len(self.fake.messages_to(self.chat))
        self.last_id = act()
        await self.fake.wait_for_messages(self.chat, before + 1)
        await self.channel.drain()  # every part of every reply to this event is out
        return "\n\n".join(self.fake.texts_to(self.chat)[before:])

    async def say(self, text: str) -> str:
        return await self._answer(lambda: self.fake.send_text(self.chat, text))

    async def image(self, data: bytes, caption: str | None = None) -> str:
        return await self._answer(lambda: self.fake.send_image(self.chat, data, caption=caption))

    async def sticker(self) -> str:
        return await self._answer(lambda: self.fake.send_sticker(self.chat))

    async def voice(self, data: bytes | None = b"\xff\xf1fake-aac-audio") -> str:
        return await self._answer(lambda: self.fake.send_voice(self.chat, data))

    async def unsupported(self) -> str:
        return await self._answer(lambda: self.fake.send_unsupported(self.chat))


def number_of(label: str, text: str) -> str:
    """The number the bot put before ``label`` in its numbered list."""
    match = re.search(rf"^(\d+)\. {re.escape(label)}$", text, re.M)
    assert match, f"no numbered choice {label!r} in {text!r}"
    return match.group(1)


@pytest.fixture
def citizen(fake, zalo) -> Citizen:
    return Citizen(fake, zalo)


async def to_evidence(citizen: Citizen, *, by_words: bool = False) -> None:
    """Answer every question up to the evidence one, by numbers or by words."""
    text = await citizen.say("/report")
    assert "1. Ma túy" in text and "9. Khác" in text  # Zalo has no buttons: a numbered list
    text = await citizen.say("Ma túy" if by_words else "1")
    assert "Hãy kể lại sự việc" in text
    await citizen.say(DESCRIPTION)
    text = await citizen.say("Đang xảy ra" if by_words else "1")
    assert "113" in text  # happening now: call the police
    text = await citizen.say("ben thanh")
    assert AREA in text
    text = await citizen.say(AREA if by_words else number_of(AREA, text))
    # The map-pin button Zalo lacks becomes a line saying to type the address.
    assert "Trên Zalo, hãy nhập địa chỉ" in text and f"1. {vi('Skip')}" in text
    await citizen.say("Quán cà phê số 12 Lê Lợi")
    text = await citizen.say("Hai thanh niên đi xe Exciter màu đỏ")
    assert "Gửi ảnh, video, ghi âm" in text


async def finish_tip(citizen: Citizen, *, by_words: bool = False) -> str:
    text = await citizen.image(jpeg_with_gps())
    assert vi("Files received so far: {count}.").format(count="1") in text
    text = await citizen.say(vi("Done") if by_words else "1")
    text = await citizen.say(vi("Anonymous (recommended)") if by_words else number_of(
        vi("Anonymous (recommended)"), text))
    assert "Vui lòng kiểm tra lại tin báo trước khi gửi" in text
    send = vi("Send the tip")
    return await citizen.say(send if by_words else number_of(send, text))


async def check_sealed_tip(services) -> None:
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        fields = await read_tip_fields(session=session, data_key=key)
        attachment = (await session.exec(select(Attachment))).one()
        sealed = [f.sealed for f in (await session.exec(select(TipField))).all()]
        conversation = (await session.exec(select(Conversation))).one()
    assert (tip.channel, tip.category, tip.area_code, tip.urgent, tip.attachment_count) == (
        "zalo", "drugs", "79.26734", True, 1)
    assert json.loads(fields["description"])["text"] == DESCRIPTION
    assert json.loads(fields["place"]) == {"address": "Quán cà phê số 12 Lê Lợi"}
    route = json.loads(fields["reply_route"])
    assert route["channel"] == "zalo" and route["chat_id"] == CHAT
    # Sealed: neither the words nor the Zalo chat id are in the rows in clear.
    assert all(DESCRIPTION.encode() not in blob and CHAT.encode() not in blob for blob in sealed)
    assert conversation.chat_key == services.keyring.pseudonym("zl", CHAT) and CHAT not in conversation.chat_key
    photo = services.blobs.read(data_key=key, attachment_id=attachment.id, blob_name=attachment.blob_name)
    assert attachment.kind == "photo" and photo[:2] == b"\xff\xd8"
    assert b"CanaryPhoneMaker" not in photo and b"tinbao-test" not in photo
    exif = Image.open(io.BytesIO(photo)).getexif()
    assert GPS_IFD not in exif and not exif.get_ifd(GPS_IFD)


# --- the tip-off through the fake Zalo server --------------------------------------------------

async def test_whole_tip_off_with_an_image_answered_with_numbers(fake, citizen, services):
    await to_evidence(citizen)
    receipt = await finish_tip(citizen)
    assert re.search(r"TB-[0-9A-Z]{4,}-[0-9A-Z]{4,}", receipt) and "113" in receipt
    await check_sealed_tip(services)
    assert fake.downloads == 1  # the image was fetched from Zalo's URL once, by the evidence step


async def test_whole_tip_off_answered_with_words(fake, citizen, services):
    await to_evidence(citizen, by_words=True)
    receipt = await finish_tip(citizen, by_words=True)
    assert "TB-" in receipt
    await check_sealed_tip(services)


async def test_words_without_accents_and_in_any_case_are_understood(citizen):
    await citizen.say("/report")
    assert "Hãy kể lại sự việc" in await citizen.say("MA TUY")


async def test_a_wrong_answer_gets_a_clear_reprompt(citizen):
    await citizen.say("/report")
    for wrong in ("42", "xe đạp"):
        text = await citizen.say(wrong)
        assert vi("Please pick one of the options.") in text
        assert "Bạn muốn báo tin về loại vụ việc nào?" in text and "1. Ma túy" in text  # asked again
    assert "Hãy kể lại sự việc" in await citizen.say("2")  # and a right answer still works


async def test_menu_numbers_work_outside_a_tip(citizen):
    text = await citizen.say("/start")
    assert "113" in text and "1. " in text
    assert "Bạn muốn báo tin về loại vụ việc nào?" in await citizen.say("1")  # "Report a crime"


async def test_a_sticker_gets_a_clear_message(citizen):
    await citizen.say("/report")
    await citizen.say("1")
    text = await citizen.sticker()
    assert vi("Sorry, this kind of message cannot be used here.") in text and "Hãy kể lại sự việc" in text


async def test_a_sticker_at_the_evidence_question_is_refused_as_evidence(citizen, services):
    await to_evidence(citizen)
    text = await citizen.sticker()
    assert "Không thể dùng nhãn dán (sticker) làm chứng cứ" in text
    text = await citizen.unsupported()  # content Zalo withholds (protected users)
    assert vi("Sorry, this kind of message cannot be used here.") in text


async def test_a_voice_note_is_kept_as_evidence(fake, citizen, services):
    await to_evidence(citizen)
    text = await citizen.voice()
    assert vi("Files received so far: {count}.").format(count="1") in text
    text = await citizen.voice(None)  # a voice event without a URL cannot be kept
    assert vi("Sorry, this kind of message cannot be used here.") in text
    async with services.db.transaction() as session:
        [attachment] = (await session.exec(select(Attachment))).all()
    assert attachment.kind == "voice"


async def test_an_image_before_the_evidence_question_is_not_downloaded(fake, citizen):
    await citizen.say("/report")
    text = await citizen.image(jpeg_with_gps(), caption="ảnh")
    assert "Bạn muốn báo tin về loại vụ việc nào?" in text
    assert fake.downloads == 0


async def test_the_same_message_delivered_twice_creates_nothing_twice(fake, citizen, services):
    await to_evidence(citizen)
    await finish_tip(citizen)
    submitted = citizen.last_id
    before = len(fake.messages_to(CHAT))
    fake.redeliver(submitted)
    assert "/help" in await citizen.say("/help")  # a marker: once answered, the redelivery was seen
    texts = fake.texts_to(CHAT)[before:]
    assert not any("TB-" in t for t in texts), texts
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(Tip))).one() == 1
        ids = (await session.exec(select(ProcessedUpdate.update_id).where(ProcessedUpdate.channel == "zalo"))).all()
    assert submitted in ids


async def test_one_chat_is_answered_in_order_while_chats_run_side_by_side(fake, zalo):
    other = "0a1b2c3d4e5f60718293"
    for n in range(3):
        fake.send_text(CHAT, "/help")
        fake.send_text(other, "/start")
    await fake.wait_for_messages(CHAT, 3)
    await fake.wait_for_messages(other, 3)
    await zalo.drain()
    assert len(fake.messages_to(CHAT)) == 3 and len(fake.messages_to(other)) == 3


# --- what Zalo refuses, and how a reply is laid out ---------------------------------------------

async def _until_refused(fake: FakeZaloBot, count: int) -> None:
    async with asyncio.timeout(5):
        while len([r for r in fake.refused if r[0] == "sendMessage"]) < count:
            await asyncio.sleep(0.01)


async def test_ok_false_and_http_errors_from_send_message_are_logged_without_the_token(
        fake, zalo, citizen, caplog):
    caplog.set_level(logging.WARNING)
    fake.fail_next("sendMessage", 429, f"Quota exceeded for bot{fake.token}")  # a 200 with ok:false
    fake.send_text(CHAT, "/start")
    await _until_refused(fake, 1)
    fake.fail_next("sendMessage", 500, "Internal Server Error", http_status=500, body="<html>oops</html>")
    fake.send_text(CHAT, "/help")
    await _until_refused(fake, 2)
    fake.fail_next("sendMessage", 400, f"chat_id {CHAT} is not reachable")  # Zalo quoting what we sent
    fake.send_text(CHAT, "/help")
    await _until_refused(fake, 3)
    await zalo.drain()
    assert fake.messages_to(CHAT) == []
    assert "429" in caplog.text and "Quota exceeded" in caplog.text and "500" in caplog.text
    assert fake.token not in caplog.text and fake.token.split(":")[1] not in caplog.text
    assert "400 chat_id <redacted> is not reachable" in caplog.text and CHAT not in caplog.text
    # No crash: the channel still polls, and the next message is answered.
    assert "1. Ma túy" in await citizen.say("/report")


async def test_a_2500_character_reply_is_split_into_two_messages_at_a_line(fake, zalo):
    lines = [f"Dòng {i:02d}: người dân cung cấp thông tin về vụ việc tại địa phương." for i in range(40)]
    text = "\n".join(lines)[:2500].rsplit("\n", 1)[0] + "\nKết thúc."
    assert 2400 < len(text) <= 2500
    parts = render(Reply(text))
    assert len(parts) == 2 and all(len(p) <= TEXT_LIMIT for p in parts)
    assert text.startswith(parts[0] + "\n")  # cut at a line boundary, nothing lost
    assert parts[0] + "\n" + parts[1] == text
    assert await zalo.send(CHAT, [Reply(text)]) == 0
    assert fake.texts_to(CHAT) == parts


def test_a_long_text_without_lines_is_split_at_a_sentence():
    text = " ".join(f"Câu số {i} nói về sự việc xảy ra tối hôm qua." for i in range(60))
    parts = render(Reply(text))
    assert len(parts) == 2 and all(len(p) <= TEXT_LIMIT for p in parts)
    assert parts[0].endswith(".") and parts[1].startswith("Câu số")


def test_choices_are_numbered_and_missing_buttons_become_hints():
    contact = Reply("Bấm «📞 Chia sẻ số điện thoại của tôi» bên dưới, hoặc nhập số điện thoại.",
                    choices=[Choice("identity:anonymous", "Thay vào đó, gửi ẩn danh")],
                    contact_button=vi("📞 Share my phone number"), type_instead=TypeInstead.PHONE, language="vi")
    [text] = render(contact)
    assert text.endswith("Trên Zalo, hãy nhập số điện thoại của bạn.\n\n1. Thay vào đó, gửi ẩn danh")
    [english] = render(Reply("You can send a location pin or type the address.", location_button="📍 Send my location",
                             type_instead=TypeInstead.ADDRESS, language="en"))
    assert "On Zalo, please type the address" in english and "Trên Zalo" not in english
    assert render(Reply("")) == []


def test_the_hint_follows_what_the_step_asks_for_not_the_button_label():
    """A deployment's own wording of the button still gets the hint: the adapter reads the kind, not the label."""
    [text] = render(Reply("Sự việc xảy ra ở đâu?", location_button="📍 Gửi vị trí", type_instead=TypeInstead.ADDRESS,
                          language="vi"))
    assert text == "Sự việc xảy ra ở đâu?\n\n✍️ Trên Zalo, hãy nhập địa chỉ (Zalo không gửi được vị trí cho bot)."
    [unknown] = render(Reply("Sự việc xảy ra ở đâu?", location_button="📍 Gửi vị trí"))
    assert unknown == "Sự việc xảy ra ở đâu?\n\n✍️ 📍 Gửi vị trí"


class _Scripted:
    """Stands in for the tip line: answers every event with the same replies."""

    def __init__(self, services, replies: list[Reply]) -> None:
        self.services, self.replies = services, replies

    async def handle(self, inbound: Inbound) -> list[Reply]:
        return self.replies


async def test_a_reply_for_another_chat_goes_through_that_chat_s_channel(fake, client, services, caplog):
    deliveries, elsewhere = Deliveries(), []

    async def telegram(chat_id: str, replies: list[Reply]) -> None:
        elsewhere.extend((chat_id, r.text) for r in replies)
    deliveries.register("telegram", telegram)
    replies = [Reply("Người báo tin trả lời: …", to=Route("telegram", "4242")),
               Reply("Đã gửi câu trả lời của bạn.", files=[OutgoingFile("photo", b"\xff\xd8")])]
    channel = ZaloBotChannel(client=client, tipline=_Scripted(services, replies), deliveries=deliveries)
    await channel.handle(Inbound(channel="zalo", chat_id=CHAT, text="trả lời"))
    assert elsewhere == [("4242", "Người báo tin trả lời: …")]
    assert fake.texts_to(CHAT) == ["Đã gửi câu trả lời của bạn."]  # never the officer's message
    assert "1 file(s) cannot be sent through Zalo" in caplog.text


def webhook_body(text: str, message_id: str = "2d758cb5e222177a4e35") -> dict:
    """The body of the docs' sample webhook call."""
    return {"ok": True, "result": {"event_name": "message.text.received", "message": {
        "from": {"id": CHAT, "display_name": "Ted", "is_bot": False},
        "chat": {"id": CHAT, "chat_type": "PRIVATE"},
        "text": text, "message_id": message_id, "date": int(time.time() * 1000)}}}


# --- pseudonyms, events, the client -------------------------------------------------------------

def test_the_pseudonym_is_namespaced(tipline, keyring):
    zalo_key = tipline.chat_key(Inbound(channel="zalo", chat_id="123456789"))
    telegram_key = tipline.chat_key(Inbound(channel="telegram", chat_id="123456789"))
    assert zalo_key != telegram_key
    assert zalo_key == keyring.pseudonym("zl", "123456789") and telegram_key == keyring.pseudonym("tg", "123456789")


def _fetcher(url):
    async def fetch() -> bytes:
        return b""
    return fetch


def test_group_chats_bots_and_unknown_events_are_ignored():
    body = webhook_body("hi")["result"]
    assert to_inbound(body, fetcher=_fetcher).text == "hi"
    group = json.loads(json.dumps(body))
    group["message"]["chat"]["chat_type"] = "GROUP"
    assert to_inbound(group, fetcher=_fetcher) is None
    bot = json.loads(json.dumps(body))
    bot["message"]["from"]["is_bot"] = True
    assert to_inbound(bot, fetcher=_fetcher) is None
    assert to_inbound({"event_name": "user.follow", "message": body["message"]}, fetcher=_fetcher) is None
    assert to_inbound({"event_name": "user.follow"}, fetcher=_fetcher) is None  # not about a message
    for broken, why in (({"event_name": "message.text.received"}, "no message object"),
                        ({"message": {"text": "hi"}}, "no chat id"), ("hi", "not a JSON object")):
        with pytest.raises(UndecodableEvent, match=why):
            to_inbound(broken, fetcher=_fetcher)
    video = dict(body, event_name="message.video.received")
    assert to_inbound(video, fetcher=_fetcher).unsupported == "video"


def test_an_image_event_becomes_a_lazy_photo_with_its_caption():
    message = webhook_body("")["result"]["message"]
    message.pop("text")
    for field in ("photo", "photo_url"):
        event = {"event_name": "message.image.received",
                 "message": {**message, field: "https://photo.example/abc.jpg", "caption": "bãi xe"}}
        inbound = to_inbound(event, fetcher=_fetcher)
        assert inbound.text == "bãi xe" and inbound.language is None and inbound.update_id == message["message_id"]
        assert [(f.kind, f.mime) for f in inbound.files] == [("photo", "image/jpeg")]


async def test_the_client_checks_ok_and_never_shows_the_token(fake, client):
    assert (await client.get_me())["account_type"] == "BASIC"
    fake.fail_next("getMe", 403, "Internal server error")  # a 200 with ok:false is an error too
    with pytest.raises(ZaloBotError) as caught:
        await client.get_me()
    assert (caught.value.error_code, caught.value.description, caught.value.method) == (
        403, "Internal server error", "getMe")
    fake.fail_next("sendMessage", 502, "", http_status=502, body="<html>Bad gateway</html>")
    with pytest.raises(ZaloBotError) as not_json:
        await client.send_message(CHAT, "xin chào")
    assert not_json.value.error_code == 502
    wrong = ZaloBotClient("999:not-the-token", api_base=fake.base_url)
    try:
        with pytest.raises(ZaloBotError) as refused:
            await wrong.get_me()
    finally:
        await wrong.close()
    assert refused.value.error_code == 401
    for error in (caught.value, not_json.value, refused.value):
        assert fake.token not in str(error) and "not-the-token" not in str(error)
    assert fake.token not in repr(client)


async def test_network_failures_and_timeouts_are_typed_errors_without_the_url(fake):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = ZaloBotClient(fake.token, api_base=f"http://127.0.0.1:{port}")
    slow = ZaloBotClient(fake.token, api_base=fake.base_url, timeout=0.2)
    try:
        with pytest.raises(ZaloBotError) as down:
            await nowhere.get_me()
        with pytest.raises(ZaloBotError) as late:
            await slow.call("getUpdates", {"timeout": "5"})
    finally:
        await nowhere.close()
        await slow.close()
    for error in (down.value, late.value):
        assert error.error_code is None and fake.token not in str(error)
        assert error.__context__ is None and error.__cause__ is None  # no chained aiohttp error quoting the URL


async def test_get_updates_returns_one_event_or_nothing(fake, client):
    assert await client.get_updates(timeout=1) == []  # Zalo's 408 "Request timeout": nothing new
    message_id = fake.send_text(CHAT, "xin chào")
    fake.send_text(CHAT, "lần hai")
    [event] = await client.get_updates(timeout=1)
    assert event["message"]["message_id"] == message_id and event["event_name"] == "message.text.received"
    assert len(await client.get_updates(timeout=1)) == 1


async def test_webhook_methods_and_media(fake, client):
    set_result = await client.set_webhook("https://tin.example.vn/zalo/webhook", SECRET)
    assert set_result["url"] == "https://tin.example.vn/zalo/webhook"
    assert (await client.get_webhook_info())["url"] == "https://tin.example.vn/zalo/webhook"
    with pytest.raises(ZaloBotError):
        await client.get_updates(timeout=1)  # Zalo: no getUpdates while a webhook is set
    assert (await client.delete_webhook())["url"] == ""
    await client.send_photo(CHAT, "https://photo.example/a.jpg", caption="ảnh")
    await client.send_chat_action(CHAT, "typing")
    assert fake.messages_to(CHAT)[0]["photo"] == "https://photo.example/a.jpg"


async def test_a_download_stops_one_byte_past_the_cap(fake, client):
    message_id = fake.send_image(CHAT, b"x" * 5000)
    url = fake.event(message_id)["message"]["photo"]
    assert len(await client.download(url, max_bytes=100_000)) == 5000
    assert len(await client.download(url, max_bytes=1000)) == 1001  # the handlers then say "too large"
    with pytest.raises(ZaloBotError):
        await client.download("file:///etc/passwd", max_bytes=10)


def test_zalo_tokens_are_redacted_from_logs():
    token = "4125987412:fake_Zalo-bot-token-0123456789abcdef"
    redactor = RedactSecrets()
    assert token not in redactor.redact(f"POST https://bot-api.zaloplatforms.com/bot{token}/getMe")
    odd = "77:short.token~x"  # a shape the URL pattern does not know: registered as a secret at start
    assert odd not in RedactSecrets([odd]).redact(f"…/bot{odd}/sendMessage")


# --- an officer's verdict reaches the tipster on Zalo -------------------------------------------

async def test_an_officers_verdict_reaches_the_tipster_on_zalo(fake, citizen, zalo, services, tipline):
    from handlers.officer.accounts import create_invite_code
    from tests.support.chat import ChatClient
    await to_evidence(citizen)
    assert "TB-" in await finish_tip(citizen)
    code = await create_invite_code(services, unit_id="ca-benthanh", role="officer", name="Đại úy Lan")
    officer = ChatClient(tipline, chat_id="900", language="en")  # the officer works from another channel
    await officer.send(f"/enroll {code}")
    before = len(fake.texts_to(CHAT))
    await officer.send("/next")
    await zalo.deliveries.send(list(officer.last), origin=Route("console", "900"))
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/valuable {ref}")
    await zalo.deliveries.send(list(officer.last), origin=Route("console", "900"))
    told = fake.texts_to(CHAT)[before:]
    assert told == [vi("Your tip of {date} is now being reviewed by an officer.").format(date=_today()),
                    vi("Your tip of {date} was judged valuable. Thank you for helping keep our community safe!"
                       ).format(date=_today())]


def _today() -> str:
    from datetime import datetime

    from handlers.context import VIETNAM
    return datetime.now(VIETNAM).strftime("%d/%m/%Y")


# --- nothing lost when a worker dies ----------------------------------------------------------------

async def test_an_event_stored_by_a_worker_that_died_is_handled_by_the_next(fake, client, tipline, services):
    from datetime import timedelta

    from sqlalchemy import func
    from storage.models import ReceivedUpdate
    from storage.received_updates import LEFT_AFTER, keep_received

    async def stored() -> int:
        async with services.db.transaction() as session:
            return (await session.exec(select(func.count()).select_from(ReceivedUpdate))).one()
    # Zalo handed the event over (it will never send it again) and the worker was killed right after
    # storing it: the row is all that is left of the citizen's message.
    event = {"event_name": "message.text.received",
             "message": {"from": {"id": CHAT, "display_name": "Nguyễn Văn A", "is_bot": False},
                         "chat": {"id": CHAT, "chat_type": "PRIVATE"}, "text": "/help",
                         "message_id": "left-by-a-dead-worker", "date": 1764700000000}}
    async with services.db.transaction() as session:
        await keep_received(session=session, keyring=services.keyring, channel="zalo",
                            raw=json.dumps(event).encode(), now=services.clock() - LEFT_AFTER - timedelta(minutes=1))
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(ReceivedUpdate))).all()
    assert b"/help" not in row.sealed and CHAT.encode() not in row.sealed  # sealed, like everything kept
    channel = ZaloBotChannel(client=client, tipline=tipline, poll_timeout=2)
    assert await channel.take_left_over() == 1
    await channel.drain()
    assert "/status MÃ" in "\n".join(fake.texts_to(CHAT))  # the /help answer reached the chat
    assert await stored() == 0
    assert await channel.take_left_over() == 0  # handled once


async def test_polled_events_are_kept_only_until_their_turn_is_handled(fake, zalo, citizen, services):
    from sqlalchemy import func
    from storage.models import ReceivedUpdate
    await citizen.say("/help")
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(ReceivedUpdate))).one() == 0
