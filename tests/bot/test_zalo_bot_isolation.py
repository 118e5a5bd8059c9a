"""Zalo Bot Platform: each event is decoded on its own. What cannot be read is skipped, counted and logged as
one line without its content, in polling and by webhook, and never holds up the events after it.

Everything goes through the real channel over HTTP: the polling loop against the fake Zalo Bot API, the
webhook through our aiohttp route, with raw sockets where a client library would refuse to send the bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.channels.zalo_bot import ZaloBotChannel, ZaloBotClient
from bot.channels.zalo_bot import MAX_BODY as ZALO_MAX_BODY
from bot.channels.zalo_bot import SECRET_HEADER as ZALO_SECRET_HEADER
from bot.channels.zalo_bot import WEBHOOK_PATH as ZALO_WEBHOOK_PATH
from bot.webhook import webhook_app
from handlers.i18n import translator
from tests.fakes.zalo_bot_api import FakeZaloBot
from tests.support.fake_servers import fake_server
from tests.support.images import jpeg_with_gps

CHAT = "6ede9afa66b88fe6d6a9"
SECRET = "zalo-Webhook_secret-0123456789"
CANARY = "CANARY-7f3a9c-bí-mật"  # must never reach a log line
vi = translator("vi")
SORRY = vi("Sorry, this kind of message cannot be used here.")


fake = fake_server(FakeZaloBot)


@pytest.fixture
async def client(fake):
    zalo = ZaloBotClient(fake.token, api_base=fake.base_url)
    yield zalo
    await zalo.close()


@pytest.fixture
async def polling(fake, client, tipline):
    channel = ZaloBotChannel(client=client, tipline=tipline, poll_timeout=2)
    task = asyncio.create_task(channel.run_polling())
    yield channel
    await channel.stop()
    await asyncio.wait_for(task, 5)


@pytest.fixture
async def hooked(fake, client, tipline):
    channel = ZaloBotChannel(client=client, tipline=tipline)
    server = TestServer(webhook_app(channel, SECRET), host="127.0.0.1")
    await server.start_server()
    yield channel, server
    await channel.drain()
    await server.close()


def assert_no_canary(caplog) -> None:
    for record in caplog.records:
        text = record.getMessage() + (str(record.exc_info) if record.exc_info else "")
        assert CANARY not in text, record.getMessage()


async def raw_post(url: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """POST bytes as they are, headers included: aiohttp's client would refuse some of these."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"POST {parts.path} HTTP/1.1".encode(), f"Host: {parts.hostname}:{parts.port}".encode(),
             b"Content-Type: application/json", f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status.split()[1])


# --- polling --------------------------------------------------------------------------------------

async def test_polled_events_without_an_event_name_are_read_from_their_fields(fake, polling):
    """getUpdates' documented answer has no event_name: a text, a photo, a voice note, a sticker each get
    the answer their kind deserves, not silence."""
    fake.send_text(CHAT, "/report", named=False)
    [menu] = await fake.wait_for_messages(CHAT, 1)
    assert "1. Ma túy" in menu["text"]
    fake.send_text(CHAT, "1", named=False)
    assert "Hãy kể lại sự việc" in (await fake.wait_for_messages(CHAT, 2))[-1]["text"]
    fake.send_sticker(CHAT, named=False)
    assert SORRY in (await fake.wait_for_messages(CHAT, 3))[-1]["text"]
    fake.send_image(CHAT, jpeg_with_gps(), caption="Có người bán ma túy ở quán cà phê đầu hẻm", named=False)
    await fake.wait_for_messages(CHAT, 4)
    await polling.drain()
    assert polling.outcomes == {"handled": 4}
    assert fake.downloads == 0  # a photo before the evidence question is not fetched, as with event_name


async def test_a_polled_voice_note_without_event_name_is_kept_as_evidence(fake, polling, services):
    from sqlmodel import select

    from storage.models import Attachment
    from tests.bot.test_zalo_bot import Citizen, to_evidence
    citizen = Citizen(fake, polling)
    await to_evidence(citizen)
    text = await citizen._answer(lambda: fake.send_voice(CHAT, named=False))
    assert vi("Files received so far: {count}.").format(count="1") in text
    async with services.db.transaction() as session:
        [attachment] = (await session.exec(select(Attachment))).all()
    assert attachment.kind == "voice"


@pytest.mark.parametrize("bad", [
    f"not an event {CANARY}",
    [f"{CANARY}", 42],
    {"event_name": "message.text.received", "text": CANARY},  # no message object
    {"message": {"text": CANARY, "chat": {"id": {"nested": CANARY}}}},  # no usable chat id
    {"message": {"text": CANARY, "from": {"id": CHAT}}},  # no chat at all
    12345,
])
async def test_an_unreadable_polled_event_is_counted_and_the_next_one_answered(fake, polling, caplog, bad):
    caplog.set_level(logging.DEBUG)
    fake.send_raw(bad)
    fake.send_text(CHAT, "/start")
    [reply] = await fake.wait_for_messages(CHAT, 1)
    await polling.drain()
    assert "113" in reply["text"]
    skipped = 2 if isinstance(bad, list) else 1  # a list's items are each their own event
    assert polling.outcomes == {"undecodable": skipped, "handled": 1}
    lines = [r for r in caplog.records if "could not be read and was skipped" in r.getMessage()]
    assert len(lines) == skipped and all(r.levelno == logging.WARNING and not r.exc_info for r in lines)
    assert_no_canary(caplog)


async def test_a_decoder_failure_skips_that_event_only_and_logs_no_payload(fake, polling, caplog, monkeypatch):
    """A bug of ours (here: the decoder raising on one event, quoting it) costs that event, nothing more."""
    from bot.channels import zalo_bot
    real = zalo_bot.to_inbound

    def fragile(event, *, fetcher):
        if isinstance(event, dict) and (event.get("message") or {}).get("text") == "boom":
            raise KeyError(f"bad field in {json.dumps(event)} {CANARY}")
        return real(event, fetcher=fetcher)
    monkeypatch.setattr(zalo_bot, "to_inbound", fragile)
    fake.send_text(CHAT, "boom")
    fake.send_text(CHAT, "/start")
    [reply] = await fake.wait_for_messages(CHAT, 1)
    await polling.drain()
    assert "113" in reply["text"] and polling.outcomes == {"undecodable": 1, "handled": 1}
    [line] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "KeyError at" in line and "fragile" in line  # what and where, for the operator
    assert_no_canary(caplog)


async def test_a_failing_turn_is_logged_without_the_citizen_s_words(fake, polling, caplog, monkeypatch):
    async def broken(inbound):
        raise ValueError(f"cannot handle {inbound.text!r}")
    monkeypatch.setattr(polling.tipline, "handle", broken)
    fake.send_text(CHAT, f"/report {CANARY}")
    async with asyncio.timeout(5):
        while not polling.outcomes["failed"]:
            await asyncio.sleep(0.02)
    assert polling.outcomes == {"failed": 1}
    [line] = [r for r in caplog.records if "could not be answered" in r.getMessage()]
    assert "ValueError at" in line.getMessage() and not line.exc_info
    assert_no_canary(caplog)


# --- the webhook ----------------------------------------------------------------------------------

def event_body(text: str, message_id: str = "2d758cb5e222177a4e35") -> dict:
    return {"ok": True, "result": {"event_name": "message.text.received", "message": {
        "from": {"id": CHAT, "display_name": "Ted", "is_bot": False}, "chat": {"id": CHAT, "chat_type": "PRIVATE"},
        "text": text, "message_id": message_id, "date": 1750316131602}}}


async def post(server: TestServer, body: bytes, secret: str | None = SECRET) -> int:
    headers = {"Content-Type": "application/json", **({ZALO_SECRET_HEADER: secret} if secret is not None else {})}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(ZALO_WEBHOOK_PATH), data=body, headers=headers) as response:
            return response.status


UNREADABLE_BODIES = {
    "not JSON": f"{{not json {CANARY}".encode(),
    "not UTF-8": b"\xff\xfe{\"text\": \"" + CANARY.encode() + b"\"}",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "a bare string": json.dumps(CANARY).encode(),
    "no message": json.dumps({"ok": True, "result": {"event_name": "message.text.received", "x": CANARY}}).encode(),
    "a chat id that is an object": json.dumps({"ok": True, "result": {"event_name": "message.text.received",
                                              "message": {"chat": {"id": [CANARY]}, "text": CANARY}}}).encode(),
    "empty": b"",
    "over the cap": json.dumps({"ok": True, "result": {"message": {"text": CANARY * 20_000}}}).encode(),
}


@pytest.mark.parametrize("kind", list(UNREADABLE_BODIES))
async def test_an_unreadable_webhook_body_gets_200_is_counted_and_changes_nothing(hooked, fake, caplog, kind):
    caplog.set_level(logging.DEBUG)
    channel, server = hooked
    body = UNREADABLE_BODIES[kind]
    assert kind != "over the cap" or len(body) > ZALO_MAX_BODY
    assert await post(server, body) == 200  # Zalo would only send the same bytes again
    assert await post(server, json.dumps(event_body("/start")).encode()) == 200
    [reply] = await fake.wait_for_messages(CHAT, 1)
    await channel.drain()
    assert "113" in reply["text"] and len(fake.sent) == 1
    assert channel.outcomes == {"undecodable": 1, "handled": 1}
    assert_no_canary(caplog)


async def test_one_unreadable_event_in_a_body_does_not_stop_the_others(hooked, fake, caplog):
    channel, server = hooked
    other = "0a1b2c3d4e5f60718293"
    good = event_body("/start")["result"]
    second = json.loads(json.dumps(good))
    second["message"].update(chat={"id": other, "chat_type": "PRIVATE"}, message_id="9f0e1d2c3b4a59687766")
    body = json.dumps([good, {"message": CANARY}, None, second]).encode()  # a list is not documented: taken anyway
    assert await post(server, body) == 200
    await fake.wait_for_messages(CHAT, 1)
    await fake.wait_for_messages(other, 1)
    await channel.drain()
    assert channel.outcomes == {"handled": 2, "undecodable": 2}
    assert_no_canary(caplog)


async def only_this_one_was_answered(fake, channel) -> None:
    """The positive signal first: the good «/start» just sent is answered. Then nothing else happened: that
    one reply is all that went to Zalo, and the channel counted that one update alone."""
    [reply] = await fake.wait_for_messages(CHAT, 1)
    await channel.drain()
    assert "113" in reply["text"] and fake.sent == [reply]
    assert [method for method, _params in fake.calls] == ["sendMessage"]
    assert channel.outcomes == {"handled": 1}


@pytest.mark.parametrize("value", [b"\xff\xfe", b"\xc3\x28", "đúng-bí-mật".encode(), SECRET.encode() + b"\xff",
                                   b"\xff" + SECRET.encode(), SECRET.encode()[:-1], b"a\tb"])
async def test_a_secret_header_of_any_bytes_gets_401_never_500(hooked, fake, services, value):
    channel, server = hooked
    url = str(server.make_url(ZALO_WEBHOOK_PATH))
    body = json.dumps(event_body("/start")).encode()
    assert await raw_post(url, body, [(ZALO_SECRET_HEADER.encode(), value)]) == 401
    # Sent twice, even once right: ambiguous, refused.
    assert await raw_post(url, body, [(ZALO_SECRET_HEADER.encode(), SECRET.encode()),
                                      (ZALO_SECRET_HEADER.encode(), value)]) == 401
    # The same bytes with the right secret, once, through the same raw path: the check can pass, and the
    # refused calls left nothing (had either been taken, this same message would now be a duplicate).
    assert await raw_post(url, body, [(ZALO_SECRET_HEADER.encode(), SECRET.encode())]) == 200
    await only_this_one_was_answered(fake, channel)


async def test_a_header_with_control_bytes_never_reaches_the_bot(hooked, fake):
    """aiohttp's parser refuses those itself (400) before any of our code runs; never a 500, nothing done."""
    channel, server = hooked
    url = str(server.make_url(ZALO_WEBHOOK_PATH))
    for value in (b"abc\x00def", SECRET.encode() + b"\x01", b"\x7f"):
        status = await raw_post(url, json.dumps(event_body("/start")).encode(), [(ZALO_SECRET_HEADER.encode(), value)])
        assert status in (400, 401)
    assert await post(server, json.dumps(event_body("/start")).encode()) == 200
    await only_this_one_was_answered(fake, channel)


async def test_a_bad_secret_is_refused_before_the_body_is_read(hooked, fake):
    channel, server = hooked
    assert await post(server, UNREADABLE_BODIES["not JSON"], secret="wrong-secret-0123456789") == 401
    assert await post(server, UNREADABLE_BODIES["over the cap"], secret=None) == 401
    assert await post(server, json.dumps(event_body("/start")).encode()) == 200
    await only_this_one_was_answered(fake, channel)  # the refused ones not even counted: they never were Zalo's
