"""Telegram by webhook: only calls carrying our secret token are taken; a taken update is handled before
Telegram gets its 200."""

from __future__ import annotations

import asyncio
import json

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


async def call(server, body: dict, secret: str = SECRET) -> tuple[int, str, bytes]:
    """One webhook call as Telegram makes it: the status, content type and body of what it gets back."""
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(WEBHOOK_PATH), json=body,
                             headers={"X-Telegram-Bot-Api-Secret-Token": secret}) as response:
            return response.status, response.content_type, await response.read()


EMPTY_200 = (200, "application/octet-stream", b"")


def answer_of(tap: dict) -> dict:
    return {"method": "answerCallbackQuery", "callback_query_id": tap["callback_query"]["id"]}


async def tap_on_the_first_question(fake, server) -> tuple[dict, str]:
    """/report by webhook (a message: its 200 is empty), then a tap on the first button of the question it
    brings: the tap as Telegram would post it, and the button's label."""
    assert await call(server, update(10, "/report", chat=CITIZEN)) == EMPTY_200
    question = fake.messages_to(CITIZEN)[-1]
    label, data = fake.buttons(question)[0]
    return fake.update_json(fake.click(CITIZEN, data, language_code="en")), label


def answered_by_call(fake) -> list[dict]:
    return [params for method, params in fake.calls if method.lower() == "answercallbackquery"]


async def test_a_tap_is_answered_in_the_200_not_by_a_call_of_its_own(served):
    """The spinner stops with the webhook's 200 (Telegram makes the call it carries); the choice is marked and
    the next question sent before it, as for any update."""
    fake, server, channel = served
    tap, label = await tap_on_the_first_question(fake, server)
    status, content_type, body = await call(server, tap)
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == answer_of(tap)
    assert answered_by_call(fake) == []
    question, following = fake.messages_to(CITIZEN)
    assert question["text"].endswith(f"» {label}") and following["text"] != question["text"]
    assert await fake.take_webhook_answer(content_type, body) == (
        "answerCallbackQuery", {"callback_query_id": tap["callback_query"]["id"]})
    assert channel.outcomes == {"handled": 2}


async def test_a_tap_posted_again_is_answered_again_and_nothing_else(served):
    """Telegram posts a tap again only when our 200 did not reach it, so neither did the answer in it: the
    second 200 carries the same answer, and nothing of the turn is done twice. A message posted again
    still gets an empty 200."""
    fake, server, _ = served
    tap, label = await tap_on_the_first_question(fake, server)
    first = await call(server, tap)
    again = await call(server, tap)
    assert again == first and json.loads(again[2]) == answer_of(tap)
    assert await call(server, update(10, "/report", chat=CITIZEN)) == EMPTY_200
    question, following = fake.messages_to(CITIZEN)  # no second question
    assert question["text"].count(f"» {label}") == 1
    assert answered_by_call(fake) == []


async def test_a_forged_tap_gets_401_and_no_answer(served):
    """Without the secret nothing is answered, in the 401 or by a call; the real tap after it is."""
    fake, server, _ = served
    tap, _ = await tap_on_the_first_question(fake, server)
    assert await call(server, tap, secret="wrong-secret-0123456789") == (401, "application/octet-stream", b"")
    assert answered_by_call(fake) == [] and len(fake.messages_to(CITIZEN)) == 1
    status, _, body = await call(server, tap)
    assert status == 200 and json.loads(body) == answer_of(tap)


async def test_a_tap_that_cannot_be_decoded_or_handled_gets_an_empty_200(served):
    """Nothing of a tap skipped or failed comes back in the 200: not its answer, not its id, not an error."""
    fake, server, channel = served
    tap, _ = await tap_on_the_first_question(fake, server)
    undecodable = {**tap, "callback_query": {k: v for k, v in tap["callback_query"].items() if k != "from"}}
    assert await call(server, undecodable) == EMPTY_200
    # The citizen blocked the bot just as the choice was being marked: the turn fails at the edit.
    fake.fail_next("editMessageText", error_code=403, description="Forbidden: bot was blocked by the user")
    assert await call(server, tap) == EMPTY_200
    assert channel.outcomes == {"handled": 1, "undecodable": 1, "failed": 1}
    assert answered_by_call(fake) == []
