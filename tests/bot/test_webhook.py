"""Telegram by webhook: only calls carrying our secret token are taken."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.channels.telegram import TelegramChannel, make_bot
from bot.webhook import WEBHOOK_PATH, webhook_app
from handlers.tipline import TipLine
from tests.fakes.telegram_api import FakeTelegram

SECRET = "s3cret-Token_for-tests-0123456789"


def update(update_id: int, text: str) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": 1, "date": 1_760_000_000, "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else [],
        "chat": {"id": 4242, "type": "private", "first_name": "A"},
        "from": {"id": 4242, "is_bot": False, "first_name": "A", "language_code": "en"}}}


@pytest.fixture
async def served(services):
    fake = FakeTelegram()
    await fake.start()
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services))
    server = TestServer(webhook_app(channel, SECRET), host="127.0.0.1")
    await server.start_server()
    yield fake, server
    await server.close()
    await channel.bot.session.close()
    await fake.close()


@pytest.mark.parametrize("header", [None, "wrong-secret-0123456789"])
async def test_wrong_or_missing_secret_is_refused(served, header):
    fake, server = served
    headers = {"X-Telegram-Bot-Api-Secret-Token": header} if header else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(WEBHOOK_PATH), json=update(1, "/start"), headers=headers) as response:
            assert response.status == 401
    assert fake.messages_to(4242) == []


async def test_right_secret_is_answered(served):
    fake, server = served
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(WEBHOOK_PATH), json=update(2, "/start"),
                             headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
            assert response.status == 200
    [reply] = await fake.wait_for_messages(4242, 1)
    assert "Welcome" in reply["text"]
