"""Security: after a full tip carrying canary strings, none of them is in the database, its WAL,
the blob folder or the logs; nor is the bot token."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from sqlalchemy import text
from sqlmodel import SQLModel

from bot.logs import setup_logging
from tests.bot.test_telegram_tipoff import Running
from tests.fakes.telegram_api import FakeTelegram

CHAT = 987654321987
CANARIES = {
    "text": "CANARYTEXT7f3a",
    "address": "CANARYADDR19b2",
    "phone": "0987650123",
    "filename": "CANARYFILE5d1e",
    "chat id": str(CHAT),
}


async def _say(fake, text):
    before = len(fake.messages_to(CHAT))
    fake.send_text(CHAT, text, language_code="en")
    return await last_after_chat(fake, before)


async def last_after_chat(fake, before):
    return (await fake.wait_for_messages(CHAT, before + 1))[-1]


async def _tap(fake, label):
    before = len(fake.messages_to(CHAT))
    message = [m for m in fake.messages_to(CHAT) if fake.buttons(m)][-1]
    data = next(d for t, d in fake.buttons(message) if label in t)
    fake.click(CHAT, data, message_id=message["message_id"], language_code="en")
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
        await _say(fake, f"Họ lừa tôi chuyển tiền, mã {CANARIES['text']} trong tin nhắn.")
        await _say(fake, f"Zalo của đối tượng: {CANARIES['text']}")
        await _tap(fake, "Earlier")
        await _say(fake, "Bàn Cờ")
        await _say(fake, f"Số 5 hẻm {CANARIES['address']}")
        await _tap(fake, "Skip")
        before = len(fake.messages_to(CHAT))
        fake.send_document(CHAT, b"%PDF-1.4 " + CANARIES["text"].encode(), file_name=f"{CANARIES['filename']}.pdf",
                           mime_type="application/pdf", language_code="en")
        await last_after_chat(fake, before)
        await _tap(fake, "Done")
        await _tap(fake, "Leave my phone number")
        before = len(fake.messages_to(CHAT))
        fake.send_contact(CHAT, "+84" + CANARIES["phone"][1:], language_code="en")
        message = await last_after_chat(fake, before)
        assert "Please check your tip" in message["text"] and CANARIES["phone"][1:] in message["text"]
        receipt = await _tap(fake, "Send the tip")
        assert "Receipt code" in receipt["text"]
        # Something the bot logs at error level too: a failing download path is exercised elsewhere.
        logging.getLogger("aiogram").error("request to %s/bot%s/getMe failed", fake.base_url, fake.token)
    finally:
        await running.stop()
        await fake.close()
        logging.getLogger().handlers.clear()

    places: dict[str, bytes] = {}
    async with services.db.transaction() as session:
        for table in SQLModel.metadata.sorted_tables:
            rows = (await session.exec(text(f"SELECT * FROM {table.name}"))).all()
            places[f"table {table.name}"] = repr(rows).encode()
    database = services.db.engine.url.database
    if services.db.is_sqlite:
        for suffix in ("", "-wal", "-shm"):
            path = Path(database + suffix)
            if path.exists():
                places[path.name] = path.read_bytes()
    blobs = list(services.blobs.root.iterdir())
    assert blobs, "the document should have been kept, sealed"
    for blob in blobs:
        places[f"blob {blob.name}"] = blob.read_bytes()
    places["logs"] = log_stream.getvalue().encode()
    assert places["logs"], "the logs should have captured something"

    for what, canary in {**CANARIES, "bot token": fake.token}.items():
        for place, content in places.items():
            assert canary.encode() not in content, f"{what} found in {place}"
            assert canary.encode("utf-16-le") not in content, f"{what} (UTF-16) found in {place}"
