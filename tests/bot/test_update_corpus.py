"""Nothing Telegram sends can stop the bot or reach the logs.

A corpus of real-shaped updates carrying canaries (tests/support/telegram_corpus.py: every update kind,
forwards of every origin, odd Unicode, contacts, what aiogram's models reject) goes through long polling
(served by the fake Bot API exactly as written) and through the webhook. Afterwards the bot still answers,
the offset passed every update, what could not be decoded was counted, and no canary stands in the log
(the real logging set-up at DEBUG), on stderr, in a warning or in the database.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import warnings

import aiohttp
import pytest
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from bot.channels.telegram import TelegramChannel, make_bot
from bot.logs import install_log_hygiene, setup_logging
from bot.channels.telegram import MAX_BODY as TELEGRAM_MAX_BODY
from bot.channels.telegram import WEBHOOK_PATH
from bot.webhook import webhook_app
from handlers.router import TipLine
from tests.fakes.telegram_api import FakeTelegram
from tests.support.canaries import (assert_none_found, database_places, folder_places, number_canary, phone_canary,
                                    text_canary, text_places)
from tests.support.fake_servers import fake_server
from tests.support.telegram_corpus import CHATS, Corpus

SECRET = "corpus-Secret_0123456789abcdef"
LATE_CHAT = 5_550_987_001  # a citizen who writes after the whole corpus went through


@pytest.fixture
def log_stream():
    """The logging `tinbao run` sets up, at DEBUG, into a buffer; removed afterwards."""
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    yield stream
    logging.getLogger().handlers.clear()
    warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]


fake = fake_server(FakeTelegram)


def replied_chats(corpus: Corpus) -> list[int]:
    """The private chats of the corpus whose message the bot must answer."""
    return [entry.raw["message"]["chat"]["id"] for entry in corpus.entries
            if entry.outcome == "handled" and "message" in entry.raw]


def skipped_ids(corpus: Corpus) -> list[int]:
    return [entry.raw["update_id"] for entry in corpus.entries
            if entry.outcome == "undecodable" and isinstance(entry.raw, dict) and "update_id" in entry.raw]


async def everything_stored(services) -> dict[str, bytes]:
    return {**await database_places(services.db), **folder_places(services.blobs.root, "blobs")}


async def test_polling_skips_what_cannot_be_decoded_and_answers_everyone_else(fake, services, log_stream, capfd):
    corpus = Corpus(fake.next_update_id()).build()
    for entry in corpus.entries:
        fake.queue_raw(entry.raw)
    last = fake.next_update_id() - 1
    # All of it is queued before the bot polls, so its first getUpdates holds the bad entries and, after
    # them, the good ones: one batch (56 entries, under getUpdates' 100).
    assert len(corpus.entries) < 100
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(channel.run_polling())
        try:
            [welcome] = await fake.wait_for_messages(corpus.first_start.raw["message"]["chat"]["id"], 1)
            assert "Welcome" in welcome["text"]
            for chat in replied_chats(corpus):
                assert await fake.wait_for_messages(chat, 1), chat
            await fake.wait_for_offset(last + 1)
            assert fake.offsets[0] == 0  # the first call took the whole corpus
            fake.send_text(LATE_CHAT, "/start", language_code="en")
            [late] = await fake.wait_for_messages(LATE_CHAT, 1)
            assert "Welcome" in late["text"]
        finally:
            await channel.stop()
            await asyncio.wait_for(task, 10)
            await channel.bot.session.close()
    expected = corpus.expected()
    expected["handled"] += 1  # the late /start
    assert dict(channel.outcomes) == expected
    assert fake.pending_count() == 0  # stop() confirmed the last updates too

    log = log_stream.getvalue()
    for update_id in skipped_ids(corpus):  # one line each, naming only the id and a reason
        lines = [line for line in log.splitlines() if f"Telegram update {update_id} skipped" in line]
        assert len(lines) == 1, (update_id, lines)
    assert "skipped: missing at message.forward_origin.hidden_user.sender_user_name" in log
    assert log.count("a Telegram update was skipped") == 2  # no update_id; not an object
    assert not [w for w in caught if "update type" in str(w.message)]  # aiogram never saw the unknown kind
    places = {**text_places(logs=log, stderr=capfd.readouterr().err,
                            warnings="\n".join(str(w.message) for w in caught)),
              **await everything_stored(services)}
    assert_none_found(corpus.canaries() + [text_canary("bot token", fake.token)], places)


async def test_a_turn_that_takes_long_holds_neither_the_others_nor_the_offset_past_it(fake, services, log_stream):
    """While one citizen's update is still being handled, others are answered; the offset stays below the
    unfinished one (it is not confirmed before it is handled) and passes it once it is."""
    release = asyncio.Event()
    tipline = TipLine(services)
    slow_chat, quick_chat = CHATS[0], CHATS[1]

    class SlowForOne:
        async def handle(self, inbound):
            if inbound.chat_id == str(slow_chat):
                await release.wait()
            return await tipline.handle(inbound)

    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=SlowForOne())
    task = asyncio.create_task(channel.run_polling())
    try:
        slow = fake.send_text(slow_chat, "/start", language_code="en")
        quick = fake.send_text(quick_chat, "/start", language_code="en")
        await fake.wait_for_messages(quick_chat, 1)
        later = fake.send_text(quick_chat, "/help", language_code="en")
        await fake.wait_for_messages(quick_chat, 2)
        assert fake.messages_to(slow_chat) == [] and max(fake.offsets) == slow
        release.set()
        await fake.wait_for_messages(slow_chat, 1)
        await fake.wait_for_offset(later + 1)
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 10)
        await channel.bot.session.close()
    # Fetched again and again while the slow one ran, the quick chat's updates were handled once each.
    assert dict(channel.outcomes) == {"handled": 3} and quick < later
    assert len(fake.messages_to(quick_chat)) == 2 and len(fake.messages_to(slow_chat)) == 1


async def test_polling_failures_are_one_line_each_and_retried(fake, services, log_stream):
    """A 502, a 409 and a broken answer from getUpdates: one warning line each, no traceback, no URL; then
    the bot carries on."""
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services))
    channel.backoff_start = 0.01
    fake.fail_next("getUpdates", error_code=502, description="Bad Gateway")
    fake.fail_next("getUpdates", error_code=409, description="Conflict: terminated by other getUpdates request")
    fake.fail_next("getUpdates", error_code=500, description="Internal Server Error")
    task = asyncio.create_task(channel.run_polling())
    try:
        fake.send_text(CHATS[2], "/start", language_code="en")
        await fake.wait_for_messages(CHATS[2], 1)
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 10)
        await channel.bot.session.close()
    lines = [line for line in log_stream.getvalue().splitlines() if "polling failed" in line]
    assert len(lines) == 3, lines
    assert "TelegramConflictError: Conflict: terminated by other getUpdates request" in lines[1]
    assert all(" WARNING " in line for line in lines)
    assert "Traceback" not in log_stream.getvalue() and fake.token not in log_stream.getvalue()
    assert fake.base_url not in log_stream.getvalue()


async def test_an_unreachable_api_is_a_warning_per_attempt_with_growing_waits(services, log_stream):
    """Nothing listens at the address: each attempt is one line, and the waits double."""
    channel = TelegramChannel(bot=make_bot("123456:unreachable-token-abcdefghij", "http://127.0.0.1:9"),
                              tipline=TipLine(services))
    channel.backoff_start, channel.backoff_max = 0.01, 0.04
    task = asyncio.create_task(channel.run_polling())
    try:
        while log_stream.getvalue().count("polling failed") < 4:
            await asyncio.sleep(0.01)
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 10)
        await channel.bot.session.close()
    lines = [line for line in log_stream.getvalue().splitlines() if "polling failed" in line][:4]
    assert [line.rsplit("again in ", 1)[1] for line in lines] == ["0 s"] * 4  # 0.01 … 0.04 s, rounded
    assert all("(network: ClientConnectorError)" in line for line in lines), lines
    assert "unreachable-token" not in log_stream.getvalue() and "Traceback" not in log_stream.getvalue()


async def test_a_token_refused_at_start_is_one_clear_error(fake, services):
    from bot.config import ConfigError
    channel = TelegramChannel(bot=make_bot("999:refused-token-abcdefghij", fake.base_url), tipline=TipLine(services))
    try:
        with pytest.raises(ConfigError, match="telegram.token: .*401 Unauthorized.*TINBAO_TELEGRAM_TOKEN"):
            await asyncio.wait_for(channel.run_polling(), 10)
    finally:
        await channel.bot.session.close()


async def test_a_token_refused_later_is_an_error_line_per_attempt(fake, services, log_stream):
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services))
    channel.backoff_start = 0.01
    task = asyncio.create_task(channel.run_polling())
    try:
        fake.send_text(CHATS[3], "/start", language_code="en")
        await fake.wait_for_messages(CHATS[3], 1)
        fake.fail_next("getUpdates", error_code=401, description="Unauthorized")
        fake.fail_next("getUpdates", error_code=401, description="Unauthorized")
        fake.send_text(CHATS[3], "/help", language_code="en")
        await fake.wait_for_messages(CHATS[3], 2)
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 10)
        await channel.bot.session.close()
    lines = [line for line in log_stream.getvalue().splitlines() if "401 Unauthorized" in line]
    assert len(lines) == 2 and all(" ERROR " in line and "TINBAO_TELEGRAM_TOKEN" in line for line in lines)


async def test_the_webhook_answers_200_to_every_update_and_handles_the_good_ones(fake, services, log_stream, capfd):
    corpus = Corpus(500_000_001).build()
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services))
    server = TestServer(webhook_app(channel, SECRET), host="127.0.0.1")
    await server.start_server()
    malformed = MalformedBodies()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with aiohttp.ClientSession() as http:
                url = server.make_url(WEBHOOK_PATH)
                headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
                for body in malformed.bodies:
                    async with http.post(url, data=body, headers=headers) as response:
                        assert (response.status, await response.read()) == (200, b"")
                for entry in corpus.entries:
                    async with http.post(url, data=json.dumps(entry.raw), headers=headers) as response:
                        assert response.status == 200, entry.label
                        # Only a handled tap's 200 carries something: its answer, naming nothing but its id.
                        answered = await response.read()
                        if entry.outcome == "handled" and "callback_query" in entry.raw:
                            assert json.loads(answered) == {"method": "answerCallbackQuery",
                                                            "callback_query_id": entry.raw["callback_query"]["id"]}
                        else:
                            assert answered == b"", entry.label
                    if entry.outcome == "handled" and "message" in entry.raw:
                        # Handled before the 200: the answer has already gone out.
                        assert fake.messages_to(entry.raw["message"]["chat"]["id"]), entry.label
                late = {"update_id": 600_000_000, "message": {
                    "message_id": 1, "date": 1_760_000_000, "text": "/start",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                    "chat": {"id": LATE_CHAT, "type": "private", "first_name": "A"},
                    "from": {"id": LATE_CHAT, "is_bot": False, "first_name": "A", "language_code": "en"}}}
                async with http.post(url, json=late, headers=headers) as response:
                    assert response.status == 200
            assert "Welcome" in fake.messages_to(LATE_CHAT)[0]["text"]
            assert [m for m, _ in fake.calls if m.lower() == "answercallbackquery"] == []  # answered in the 200s
    finally:
        await server.close()
        await channel.bot.session.close()
    expected = corpus.expected()
    expected["handled"] += 1
    expected["undecodable"] += len(malformed.bodies)
    assert dict(channel.outcomes) == expected
    log = log_stream.getvalue()
    for update_id in skipped_ids(corpus):
        assert sum(f"Telegram update {update_id} skipped" in line for line in log.splitlines()) == 1
    assert log.count("a Telegram webhook call was skipped") == len(malformed.bodies)
    assert "Task exception was never retrieved" not in log and "Traceback" not in log
    places = {**text_places(logs=log, stderr=capfd.readouterr().err,
                            warnings="\n".join(str(w.message) for w in caught)),
              **await everything_stored(services)}
    assert_none_found(corpus.canaries() + malformed.canaries + [text_canary("secret", SECRET)], places)


class MalformedBodies:
    """Webhook bodies that are not an update: not JSON, not UTF-8, too large, nested too deep, empty."""

    def __init__(self) -> None:
        words = {name: f"CNRYBODY{name.upper()}Z" for name in ("json", "utf", "large", "deep", "trunc")}
        self.canaries = [text_canary(f"body {name}", word) for name, word in words.items()]
        self.bodies = [
            f'{{"update_id": 7, "message": {{"text": "{words["json"]}" '.encode(),
            b'{"update_id": 8, "message": {"text": "\xff\xfe ' + words["utf"].encode() + b'"}}',
            json.dumps({"update_id": 9, "message": {"text": words["large"] + "x" * TELEGRAM_MAX_BODY}}).encode(),
            b"[" * 100_000 + words["deep"].encode(),
            b"[" * 50_000 + b'"' + words["deep"].encode() + b'"' + b"]" * 50_000,
            json.dumps({"update_id": 10, "message": {"text": words["trunc"]}}).encode()[:-3],
            b"",
        ]


async def test_asyncio_and_warnings_reach_the_log_without_what_they_quote(log_stream, capfd):
    """A task that failed unobserved, a warning quoting an update: the class and the place are logged,
    never the message."""
    canary = "CNRYASYNCIOZ"
    install_log_hygiene(asyncio.get_running_loop())

    async def fails() -> None:
        raise ValueError(f"the citizen wrote {canary}")

    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    del task
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        install_log_hygiene(asyncio.get_running_loop())
        warnings.warn(f"Detected unknown update type.\nUpdate: {{\"text\": \"{canary}\"}}", RuntimeWarning)
        logging.captureWarnings(True)  # the standard library's own capture: reduced by the filter
        try:
            warnings.warn(f"another one quoting {canary}", UserWarning)
        finally:
            logging.captureWarnings(False)
    log = log_stream.getvalue()
    assert "Task exception was never retrieved (task test_asyncio_and_warnings_reach_the_log_without_what_" in log
    assert "ValueError at tests/bot/test_update_corpus.py:" in log
    assert "RuntimeWarning at tests/bot/test_update_corpus.py:" in log
    assert "UserWarning at tests/bot/test_update_corpus.py:" in log
    assert_none_found([text_canary("canary", canary)], text_places(logs=log, stderr=capfd.readouterr().err))


async def test_library_lines_that_quote_inputs_keep_only_their_wording(log_stream):
    """What aiogram, pydantic and aiohttp would write: the logger, the level, the wording and the
    exception's class stay; what they quote does not. Our own lines keep their arguments."""
    canary, phone = "CNRYLIBRARYZ", "+84987650123"
    batch = [{"update_id": 1, "message": {"text": canary, "contact": {"phone_number": phone}}}]
    decode_error = ClientDecodeError("Failed to deserialize object", ValueError(canary), {"result": batch})
    try:
        Update.model_validate({"update_id": 1, "message": {"message_id": canary, "chat": phone}})
    except ValidationError as exc:
        validation_error = exc
    network = TelegramNetworkError(method=GetUpdates(), message=f"ClientResponseError: 500, url='http://x/bot{canary}'")
    logging.getLogger("aiogram.dispatcher").error("Failed to fetch updates - %s: %s", type(decode_error).__name__,
                                                  decode_error)
    try:
        raise RuntimeError("handling failed") from validation_error
    except RuntimeError:
        logging.getLogger("aiogram.event").exception("Cause exception while process update id=%d by bot id=%d\n%s: %s",
                                                     1, 123456, "ValidationError", validation_error)
    logging.getLogger("aiohttp.client").warning("request failed: %r", network)
    logging.getLogger("some.library").error(f"pre-formatted by a library we have not read: {canary}\n{phone}")
    logging.getLogger("bot.channels.telegram").info("Telegram update %d skipped: %s", 42, "missing at message.date")
    log = log_stream.getvalue()
    assert "ERROR aiogram.dispatcher: Failed to fetch updates - …: ClientDecodeError" in log
    assert "ERROR aiogram.event: Cause exception while process update id=… by bot id=…" in log
    assert "pydantic_core._pydantic_core.ValidationError (message withheld)" in log  # the traceback's cause
    assert "builtins.RuntimeError (message withheld)" in log
    assert "WARNING aiohttp.client: request failed: TelegramNetworkError" in log
    assert "INFO bot.channels.telegram: Telegram update 42 skipped: missing at message.date" in log
    assert "ERROR some.library: (text withheld)" in log
    assert_none_found([text_canary("canary", canary), phone_canary("phone", phone)], text_places(logs=log))


async def test_an_update_whose_handling_fails_is_counted_and_passed(fake, services, log_stream):
    """A failure of ours while handling one update: one error line with the class and the place (the
    traceback without any exception's message), the offset moves on, the next citizen is answered."""
    canary = "CNRYHANDLERFAILZ"
    tipline = TipLine(services)
    broken_chat, next_chat = CHATS[4], CHATS[5]

    class BrokenForOne:
        async def handle(self, inbound):
            if inbound.chat_id == str(broken_chat):
                raise ValueError(f"cannot handle {inbound.text}")
            return await tipline.handle(inbound)

    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=BrokenForOne())
    broken = fake.send_text(broken_chat, f"tin báo {canary}", language_code="en")
    fake.send_text(next_chat, "/start", language_code="en")
    task = asyncio.create_task(channel.run_polling())
    try:
        await fake.wait_for_messages(next_chat, 1)
        await fake.wait_for_offset(broken + 2)
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 10)
        await channel.bot.session.close()
    assert dict(channel.outcomes) == {"failed": 1, "handled": 1}
    log = log_stream.getvalue()
    assert f"ERROR bot.channels.telegram: Telegram update {broken} could not be handled: ValueError at " in log
    assert "builtins.ValueError (message withheld)" in log
    assert_none_found([text_canary("canary", canary), number_canary("chat", broken_chat)], text_places(logs=log))
