"""Telegram by webhook: only calls carrying our secret token are taken; a taken update is handled before
Telegram gets its 200."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func
from sqlmodel import select

from bot.channels.telegram import TelegramChannel, make_bot
from bot.channels.telegram import WEBHOOK_PATH
from bot.webhook import webhook_app
from handlers.router import TipLine
from storage.models import Conversation, ProcessedUpdate
from tests.fakes.telegram_api import FakeTelegram

SECRET = "s3cret-Token_for-tests-0123456789"
FORGED_CHAT, CITIZEN = 4242, 4343


def update(update_id: int, text: str, chat: int = FORGED_CHAT) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": 1, "date": 1_760_000_000, "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else [],
        "chat": {"id": chat, "type": "private", "first_name": "A"},
        "from": {"id": chat, "is_bot": False, "first_name": "A", "language_code": "en"}}}


@pytest.fixture
async def served(services):
    fake = FakeTelegram()
    await fake.start()
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services))
    server = TestServer(webhook_app(channel, SECRET), host="127.0.0.1")
    await server.start_server()
    yield fake, server, channel
    await server.close()
    await channel.bot.session.close()
    await fake.close()


async def post(server, body: dict, secret: str | None = SECRET) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(WEBHOOK_PATH), json=body, headers=headers) as response:
            return response.status


async def raw_post(server, header_value: bytes, body: bytes) -> bytes:
    """An HTTP call written byte by byte: a header no HTTP client would send."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: " + header_value +
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status_line


async def assert_nothing_from_the_forged_call(fake, server, services) -> None:
    """Wait for a positive signal (a good update after the forged one is answered), then check that the
    forged one left nothing: no message, no handled update id, no conversation."""
    assert await post(server, update(900, "/start", chat=CITIZEN)) == 200
    [reply] = await fake.wait_for_messages(CITIZEN, 1)
    assert "Welcome" in reply["text"]
    assert fake.messages_to(FORGED_CHAT) == []
    async with services.db.transaction() as session:
        handled = (await session.exec(select(ProcessedUpdate.update_id))).all()
        conversations = (await session.exec(select(func.count()).select_from(Conversation))).one()
    assert handled == ["900"] and conversations == 1


@pytest.mark.parametrize("header", [None, "wrong-secret-0123456789", SECRET + "x", SECRET[:-1], ""])
async def test_wrong_or_missing_secret_is_refused(served, services, header):
    fake, server, _ = served
    assert await post(server, update(1, "/start"), secret=header) == 401
    await assert_nothing_from_the_forged_call(fake, server, services)


@pytest.mark.parametrize("header", [
    "Bí-mật-sai".encode(),  # UTF-8
    b"\xff\xfe\x80secret",  # not UTF-8 at all
    SECRET.encode() + b"\xc3",  # the right secret followed by half a character
    "s3cret-Token_for-tests-012345678\u0669".encode(),  # a look-alike digit
], ids=["utf8", "not-utf8", "secret-plus-byte", "lookalike"])
async def test_a_secret_header_of_any_bytes_gets_401_never_500(served, services, header):
    fake, server, _ = served
    status = await raw_post(server, header, b'{"update_id": 2, "message": {}}')
    assert status.startswith(b"HTTP/1.1 401"), status
    await assert_nothing_from_the_forged_call(fake, server, services)


async def test_right_secret_is_answered_before_the_200(served, services):
    """The update is handled, and its reply sent, by the time Telegram gets its 200."""
    fake, server, channel = served
    assert await post(server, update(2, "/start")) == 200
    [reply] = fake.messages_to(FORGED_CHAT)
    assert "Welcome" in reply["text"]
    assert channel.outcomes == {"handled": 1}
