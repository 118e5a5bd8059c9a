"""Zalo Bot Platform served as `tinbao run` serves it: by webhook (the secret header, bodies that cannot be
read) and by long polling, alone or beside Telegram, against the fake Zalo Bot and Telegram servers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func
from sqlmodel import select

from bot import runtime
from bot.channels.zalo_bot import ZaloBotChannel
from bot.config import ConfigError, load_config
from bot.channels.zalo_bot import SECRET_HEADER as ZALO_SECRET_HEADER
from bot.channels.zalo_bot import WEBHOOK_PATH as ZALO_WEBHOOK_PATH
from bot.webhook import webhook_app
from storage.crypto import Keyring
from storage.models import Conversation, ProcessedUpdate
from tests.bot.test_zalo_bot import CHAT, SECRET, Citizen, client, fake, webhook_body  # noqa: F401
from tests.fakes.telegram_api import FakeTelegram


# --- the webhook --------------------------------------------------------------------------------

@pytest.fixture
async def hooked(fake, client, tipline):
    channel = ZaloBotChannel(client=client, tipline=tipline)
    server = TestServer(webhook_app(channel, SECRET), host="127.0.0.1")
    await server.start_server()
    yield channel, server
    await channel.drain()
    await server.close()


async def _post(server: TestServer, body, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(ZALO_WEBHOOK_PATH), data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json", **headers}) as response:
            return response.status


async def _rows(services, model) -> int:
    async with services.db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


@pytest.mark.parametrize("header", [None, "", "wrong-secret-0123456789", SECRET + "x", SECRET[:-1]])
async def test_a_webhook_call_with_a_wrong_or_missing_secret_gets_401_and_changes_nothing(
        hooked, fake, services, header):
    channel, server = hooked
    headers = {} if header is None else {ZALO_SECRET_HEADER: header}
    assert await _post(server, webhook_body("/start"), headers) == 401
    # A marker behind it from the same chat: one chat's events are handled in order, so once the marker is
    # answered anything the refused call had started would be answered too.
    assert await _post(server, webhook_body("/help", "9f0e1d2c3b4a59687766"), {ZALO_SECRET_HEADER: SECRET}) == 200
    [marker] = await fake.wait_for_messages(CHAT, 1)
    await channel.drain()
    assert "/report" in marker["text"] and len(fake.messages_to(CHAT)) == 1  # the help, not a welcome
    assert await _rows(services, ProcessedUpdate) == 1 and await _rows(services, Conversation) == 1


async def test_a_webhook_call_with_the_right_secret_is_answered_once(hooked, fake, services):
    channel, server = hooked
    assert await _post(server, webhook_body("/start"), {ZALO_SECRET_HEADER: SECRET}) == 200
    [reply] = await fake.wait_for_messages(CHAT, 1)
    assert "113" in reply["text"] and "\n1. " in reply["text"]
    # Redelivered by Zalo (same message_id), and without the {ok, result} wrapper: nothing twice.
    assert await _post(server, webhook_body("/start")["result"], {ZALO_SECRET_HEADER: SECRET}) == 200
    assert await _post(server, webhook_body("/help", "9f0e1d2c3b4a59687766"), {ZALO_SECRET_HEADER: SECRET}) == 200
    await fake.wait_for_messages(CHAT, 2)
    await channel.drain()
    assert len(fake.messages_to(CHAT)) == 2
    assert await _rows(services, ProcessedUpdate) == 2


async def test_a_webhook_body_that_is_not_json_gets_200_and_is_counted(hooked, fake):
    channel, server = hooked
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url(ZALO_WEBHOOK_PATH), data=b"{not json",
                             headers={ZALO_SECRET_HEADER: SECRET}) as response:
            assert response.status == 200  # refusing it would only make Zalo send the same bytes again
    assert fake.sent == [] and channel.outcomes == {"undecodable": 1}  # more in test_zalo_bot_isolation.py


async def test_events_pushed_by_zalo_to_the_webhook_are_answered(hooked, fake):
    channel, server = hooked
    await channel.announce(str(server.make_url(ZALO_WEBHOOK_PATH)), SECRET)
    assert fake.webhook_url.endswith(ZALO_WEBHOOK_PATH) and fake.webhook_secret == SECRET
    citizen = Citizen(fake, channel)
    assert "1. Ma túy" in await citizen.say("/report")
    assert fake.pushes == [200]


# --- `tinbao run`: Telegram, Zalo, or both ------------------------------------------------------

AREAS = '[[areas]]\ncode = "79"\nname = "Thành phố Hồ Chí Minh"\n'


def _config(tmp_path, body: str):
    Keyring.create(tmp_path / "keyring.json")
    path = tmp_path / "config.toml"
    path.write_text('[bot]\ndata_dir = "data"\nkeyring = "keyring.json"\n' + body + AREAS, encoding="utf-8")
    return load_config(path, environ={})


async def test_run_with_neither_token_names_both_keys(tmp_path):
    with pytest.raises(ConfigError) as caught:
        await runtime.run(_config(tmp_path, ""))
    message = str(caught.value)
    assert "telegram.token" in message and "zalo_bot.token" in message
    assert "TINBAO_TELEGRAM_TOKEN" in message and "TINBAO_ZALO_BOT_TOKEN" in message


async def test_run_stops_with_the_key_when_zalo_refuses_the_token(tmp_path, fake):
    config = _config(tmp_path, f'[zalo_bot]\ntoken = "999:not-the-token"\napi_base = "{fake.base_url}"\n')
    with pytest.raises(ConfigError, match="zalo_bot.token: Zalo refused it") as caught:
        await runtime.run(config)
    assert "not-the-token" not in str(caught.value)


async def test_run_serves_telegram_and_zalo_at_once_by_polling(tmp_path, fake, caplog):
    caplog.set_level(logging.INFO)
    telegram = FakeTelegram()
    await telegram.start()
    config = _config(tmp_path, f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n'
                               f'[zalo_bot]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n')
    task = asyncio.create_task(runtime.run(config))
    try:
        telegram.send_text(4242, "/start", language_code="en")
        fake.send_text(CHAT, "/start")
        [tg_reply] = await telegram.wait_for_messages(4242, 1, timeout=15)
        [zl_reply] = await fake.wait_for_messages(CHAT, 1, timeout=15)
        assert "Welcome" in tg_reply["text"] and "113" in zl_reply["text"]
        assert "serving Telegram by long polling" in caplog.text and "serving Zalo by long polling" in caplog.text
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await telegram.close()
    assert fake.token not in caplog.text and telegram.token not in caplog.text


async def test_run_serves_zalo_alone(tmp_path, fake):
    config = _config(tmp_path, f'[zalo_bot]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n')
    fake.webhook_url = "https://old.example.vn/zalo/webhook"  # left over from webhook mode: polling clears it
    task = asyncio.create_task(runtime.run(config))
    try:
        async with asyncio.timeout(15):
            while fake.webhook_url:
                await asyncio.sleep(0.05)
        fake.send_text(CHAT, "/start")
        [reply] = await fake.wait_for_messages(CHAT, 1, timeout=15)
        assert "113" in reply["text"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_run_serves_both_by_webhook_on_one_port(tmp_path, fake):
    telegram = FakeTelegram()
    await telegram.start()
    port = _free_port()
    tg_secret = "telegram-Secret_0123456789"
    hook = f'mode = "webhook"\nwebhook_url = "https://tin.example.vn"\nwebhook_listen = "127.0.0.1:{port}"\n'
    config = _config(tmp_path, f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n'
                               f'{hook}webhook_secret = "{tg_secret}"\n'
                               f'[zalo_bot]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n'
                               f'{hook}webhook_secret = "{SECRET}"\n')
    task = asyncio.create_task(runtime.run(config))
    try:
        async with asyncio.timeout(15):
            while not (fake.webhook_url and telegram.webhook_url):
                await asyncio.sleep(0.05)
        assert fake.webhook_url == "https://tin.example.vn/zalo/webhook" and fake.webhook_secret == SECRET
        assert telegram.webhook_url == "https://tin.example.vn/telegram/webhook"
        base = f"http://127.0.0.1:{port}"
        update = {"update_id": 7, "message": {
            "message_id": 1, "date": 1_760_000_000, "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            "chat": {"id": 4242, "type": "private", "first_name": "A"},
            "from": {"id": 4242, "is_bot": False, "first_name": "A", "language_code": "en"}}}
        async with aiohttp.ClientSession() as http:
            async with http.post(base + ZALO_WEBHOOK_PATH, json=webhook_body("/start"),
                                 headers={ZALO_SECRET_HEADER: "wrong-secret-0123456789"}) as response:
                assert response.status == 401
            async with http.post(base + ZALO_WEBHOOK_PATH, json=webhook_body("/start"),
                                 headers={ZALO_SECRET_HEADER: SECRET}) as response:
                assert response.status == 200
            async with http.post(base + "/telegram/webhook", json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": tg_secret}) as response:
                assert response.status == 200
        [zl_reply] = await fake.wait_for_messages(CHAT, 1, timeout=10)
        [tg_reply] = await telegram.wait_for_messages(4242, 1, timeout=10)
        assert "113" in zl_reply["text"] and "Welcome" in tg_reply["text"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await telegram.close()


async def test_run_forced_to_webhook_without_a_secret_refuses_to_start(tmp_path, fake):
    config = _config(tmp_path, f'[zalo_bot]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n')
    with pytest.raises(ConfigError, match="zalo_bot.webhook_secret"):
        await runtime.run(config, webhook=True)
