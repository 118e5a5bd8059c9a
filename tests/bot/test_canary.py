"""Security: after a full tip carrying canary strings, none of them is in the database, its WAL,
the blob folder or the logs, in any form the bot could keep it in; nor is the bot token. Each canary
is also planted on purpose to show the scan finds it. The citizen's Telegram name and username are
canaries too: Telegram sends them with every update, and the bot has no reason to keep either."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logs import setup_logging
from storage.models import Conversation, ProcessedUpdate
from tests.bot.test_telegram_tipoff import Running
from tests.fakes.telegram_api import FakeTelegram
from tests.support.canaries import (Canary, assert_none_found, database_places, findings, folder_places,
                                    number_canary, phone_canary, text_canary, text_places)

CHAT = 987654321987
TEXT, ADDRESS, FILENAME = "CANARYTEXT7f3a", "CANARYADDR19b2", "CANARYFILE5d1e"
PHONE = phone_canary("phone", "0987650123")
# As the citizen set them in Telegram: a name with Vietnamese letters (searched in NFC and NFD), and a
# username (Telegram matches those without regard to case, so the lower-case form counts as found too).
NAME, USERNAME = "Trần Thị Canarynhu", "CanaryUser4b7c"
WHO = {"first_name": NAME, "username": USERNAME, "language_code": "en"}
CANARIES = [text_canary("text", TEXT), text_canary("address", ADDRESS), PHONE, text_canary("filename", FILENAME),
            number_canary("chat id", CHAT), text_canary("name", NAME),
            Canary("username", tuple(dict.fromkeys([USERNAME, USERNAME.lower()])))]


async def _say(fake, text):
    before = len(fake.messages_to(CHAT))
    fake.send_text(CHAT, text, **WHO)
    return await last_after_chat(fake, before)


async def last_after_chat(fake, before):
    return (await fake.wait_for_messages(CHAT, before + 1))[-1]


async def _tap(fake, label):
    before = len(fake.messages_to(CHAT))
    message = [m for m in fake.messages_to(CHAT) if fake.buttons(m)][-1]
    data = next(d for t, d in fake.buttons(message) if label in t)
    fake.click(CHAT, data, message_id=message["message_id"], **WHO)
    return await last_after_chat(fake, before)


async def test_no_canary_in_database_wal_blobs_or_logs(services, tmp_path):
    log_stream = io.StringIO()
    fake = FakeTelegram()
    await fake.start()
    setup_logging("DEBUG", secrets=[fake.token], stream=log_stream)
    running = Running(fake, services)
    await running.start()
    try:
        await _say(fake, "/report")
        await _tap(fake, "Fraud")
        await _say(fake, f"Họ lừa tôi chuyển tiền, mã {TEXT} trong tin nhắn.")
        await _say(fake, f"Zalo của đối tượng: {TEXT}")
        await _tap(fake, "Earlier")
        await _say(fake, "Bàn Cờ")
        await _tap(fake, "Yes")  # «Is it Phường Bàn Cờ, TP. Hồ Chí Minh?»
        await _say(fake, f"Số 5 hẻm {ADDRESS}")
        await _tap(fake, "Skip")
        before = len(fake.messages_to(CHAT))
        fake.send_document(CHAT, b"%PDF-1.4 " + TEXT.encode(), file_name=f"{FILENAME}.pdf",
                           mime_type="application/pdf", **WHO)
        await last_after_chat(fake, before)
        await _tap(fake, "Done")
        await _tap(fake, "Leave my phone number")
        before = len(fake.messages_to(CHAT))
        fake.send_contact(CHAT, "+84987650123", **WHO)  # as Telegram sends it: normalised
        message = await last_after_chat(fake, before)
        assert "Please check your tip" in message["text"] and "987650123" in message["text"]
        receipt = await _tap(fake, "Send the tip")
        assert "Receipt code" in receipt["text"]
        # Something the bot logs at error level too: a failing download path is exercised elsewhere.
        logging.getLogger("aiogram").error("request to %s/bot%s/getMe failed", fake.base_url, fake.token)
    finally:
        await running.stop()
        await fake.close()
        logging.getLogger().handlers.clear()

    blobs = folder_places(services.blobs.root, "blobs")
    assert blobs, "the document should have been kept, sealed"
    places = {**await database_places(services.db), **blobs, **text_places(logs=log_stream.getvalue())}
    assert places["logs"], "the logs should have captured something"
    assert_none_found(CANARIES + [text_canary("bot token", fake.token)], places)


PLANTED = [(canary, form) for canary in CANARIES for form in canary.forms]


@pytest.mark.parametrize(("canary", "form"), PLANTED, ids=[f"{c.name}-{form}" for c, form in PLANTED])
async def test_the_scan_finds_every_form_of_every_canary_in_the_logs(canary, form):
    """Plant the canary on purpose: a scan that cannot find it proves nothing."""
    log_stream = io.StringIO()
    setup_logging("DEBUG", stream=log_stream)
    try:
        logging.getLogger("bot.channels.telegram").info("update from %s", form)
    finally:
        logging.getLogger().handlers.clear()
    leaks = findings(CANARIES, text_places(logs=log_stream.getvalue()))
    # Reported under the first of its forms that the planted one contains (e.g. "0987650123" holds "987650123").
    assert len(leaks) == 1 and leaks[0].startswith(f"{canary.name} (") and leaks[0].endswith("found in logs"), leaks


@pytest.mark.parametrize("canary", CANARIES, ids=[c.name for c in CANARIES])
async def test_the_scan_finds_each_canary_planted_in_a_database_row(services, canary):
    """Each canary, written into a text column and into a sealed (binary) column, is found by the scan,
    on SQLite in the file too; and a database without it is clean."""
    assert_none_found(CANARIES, await database_places(services.db))
    form = canary.forms[-1]
    async with services.db.transaction() as session:
        session.add(ProcessedUpdate(channel="telegram", update_id=form[:64]))
        session.add(Conversation(chat_key="planted", channel="telegram", draft=("x" + form).encode("utf-16-le")))
    places = await database_places(services.db)
    leaks = findings([canary], places)
    assert any(" found in table processed_update" in leak for leak in leaks), leaks
    assert any(" found in table conversation" in leak for leak in leaks), leaks
    if services.db.is_sqlite:
        assert any("found in tinbao.db" in leak for leak in leaks), leaks


async def test_the_scan_finds_a_canary_in_a_blob(tmp_path):
    (tmp_path / "blobs" / "ab").mkdir(parents=True)
    (tmp_path / "blobs" / "ab" / "f00").write_bytes(b"\x01" + CANARIES[0].forms[0].encode())
    assert findings(CANARIES, folder_places(tmp_path / "blobs", "blobs")) == [
        f"text ({CANARIES[0].forms[0]!r}, utf-8) found in blobs/ab/f00"]
