"""The fake Bot API, exercised through the real aiogram client."""

import asyncio

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter, TelegramUnauthorizedError
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from .telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server

CHAT = 5551234
KEYBOARD = InlineKeyboardMarkup(inline_keyboard=[[
    InlineKeyboardButton(text="Có", callback_data="yes"),
    InlineKeyboardButton(text="Không", callback_data="no"),
]])


fake = fake_server(FakeTelegram)


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    return Bot(token or fake.token, session=session)


@pytest_asyncio.fixture
async def bot(fake):
    client = make_bot(fake)
    yield client
    await client.session.close()


@pytest.mark.asyncio
async def test_get_me(bot, fake):
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "tinbao_test_bot")
    assert fake.calls[-1][0] == "getMe"


@pytest.mark.asyncio
async def test_start_command_arrives_with_bot_command_entity(bot, fake):
    update_id = fake.send_text(CHAT, "/start@tinbao_test_bot ref42", language_code="en")
    [update] = await bot.get_updates()
    message = update.message
    assert update.update_id == update_id
    assert message.text == "/start@tinbao_test_bot ref42"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 22)]
    sender = message.from_user
    assert (sender.id, sender.is_bot, sender.language_code) == (CHAT, False, "en")
    assert (message.chat.id, message.chat.type) == (CHAT, "private")


@pytest.mark.asyncio
async def test_plain_text_and_non_ascii_command_have_no_entities(bot, fake):
    fake.send_text(CHAT, "xin chào")
    fake.send_text(CHAT, "/trợgiúp")
    updates = await bot.get_updates()
    assert [u.message.entities for u in updates] == [None, None]


@pytest.mark.asyncio
async def test_offset_confirms_updates(bot, fake):
    first, second = fake.send_text(CHAT, "a"), fake.send_text(CHAT, "b")
    assert [u.update_id for u in await bot.get_updates()] == [first, second]
    assert [u.update_id for u in await bot.get_updates(offset=second)] == [second]
    assert await bot.get_updates(offset=second + 1) == []
    assert await bot.get_updates() == []


@pytest.mark.asyncio
async def test_redeliver_returns_same_update_again(bot, fake):
    update_id = fake.send_text(CHAT, "hello")
    [update] = await bot.get_updates()
    assert await bot.get_updates(offset=update_id + 1) == []
    fake.redeliver(update_id)
    [again] = await bot.get_updates(offset=update_id + 1)
    assert again.update_id == update_id and again.message.text == "hello"
    assert await bot.get_updates(offset=update_id + 1) == []


@pytest.mark.asyncio
async def test_long_poll_returns_as_soon_as_update_is_queued(bot, fake):
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    assert not poll.done()
    started = asyncio.get_running_loop().time()
    fake.send_text(CHAT, "wake up")
    [update] = await asyncio.wait_for(poll, 2)
    assert update.message.text == "wake up"
    assert asyncio.get_running_loop().time() - started < 1


@pytest.mark.asyncio
async def test_long_poll_times_out_empty(bot, fake):
    assert await bot.get_updates(timeout=1) == []


@pytest.mark.asyncio
async def test_inline_keyboard_click_and_answer(bot, fake):
    sent = await bot.send_message(CHAT, "<b>Đồng ý?</b>", parse_mode="HTML", reply_markup=KEYBOARD)
    [record] = fake.messages_to(CHAT)
    assert record["text"] == "<b>Đồng ý?</b>" and record["params"]["parse_mode"] == "HTML"
    assert fake.buttons(record) == [("Có", "yes"), ("Không", "no")]
    assert sent.from_user.id == 123456 and sent.reply_markup.model_dump() == KEYBOARD.model_dump()

    fake.click(CHAT, "no")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query.data == "no" and query.from_user.id == CHAT
    assert query.message.message_id == sent.message_id and query.message.text == "<b>Đồng ý?</b>"
    assert query.message.reply_markup.model_dump() == KEYBOARD.model_dump()
    assert await bot.answer_callback_query(query.id, text="OK") is True
    assert fake.calls[-1] == ("answerCallbackQuery", {"callback_query_id": query.id, "text": "OK"})


@pytest.mark.asyncio
async def test_edit_message_text(bot, fake):
    sent = await bot.send_message(CHAT, "v1", reply_markup=KEYBOARD)
    ids = {"chat_id": CHAT, "message_id": sent.message_id}
    edited = await bot.edit_message_text("v2", **ids, reply_markup=KEYBOARD)
    assert edited.text == "v2" and fake.sent[0]["text"] == "v2"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("v2", **ids, reply_markup=KEYBOARD)
    # Telegram drops the keyboard when an edit omits reply_markup.
    edited = await bot.edit_message_text("v3", **ids)
    assert edited.reply_markup is None and fake.buttons(fake.sent[0]) == []
    with pytest.raises(AssertionError):
        fake.click(CHAT, "yes")
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    assert await bot.delete_message(CHAT, sent.message_id) is True
    assert fake.sent[0]["deleted"] is True


@pytest.mark.asyncio
async def test_send_photo_upload_records_bytes_and_is_downloadable(bot, fake):
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    sent = await bot.send_photo(CHAT, BufferedInputFile(data, "chart.png"), caption="Biểu đồ")
    [record] = fake.messages_to(CHAT)
    assert record["photo"] == data and record["caption"] == "Biểu đồ" and record["method"] == "sendPhoto"
    assert sent.photo[-1].file_size == len(data)
    assert (await bot.download(sent.photo[-1])).read() == data
    # Re-sending by file_id works too, as with Telegram.
    again = await bot.send_photo(CHAT, sent.photo[-1].file_id)
    assert again.photo[-1].file_id == sent.photo[-1].file_id and fake.sent[-1]["photo"] == data


@pytest.mark.asyncio
async def test_send_document_keeps_file_name(bot, fake):
    sent = await bot.send_document(CHAT, BufferedInputFile(b"a,b\n1,2\n", "report.csv"))
    assert (sent.document.file_name, sent.document.mime_type) == ("report.csv", "text/csv")
    assert fake.sent[-1]["document"] == b"a,b\n1,2\n"


@pytest.mark.asyncio
async def test_user_photo_can_be_downloaded(bot, fake):
    data = bytes(range(256)) * 300
    fake.send_photo(CHAT, data, caption="ảnh")
    [update] = await bot.get_updates()
    photo = update.message.photo[-1]
    file = await bot.get_file(photo.file_id)
    assert file.file_size == len(data) and file.file_path
    assert (await bot.download(file)).read() == data


@pytest.mark.asyncio
async def test_other_user_media_parse(bot, fake):
    fake.send_document(CHAT, b"%PDF-1.4", file_name="đơn.pdf", mime_type="application/pdf")
    fake.send_voice(CHAT, b"OggS")
    fake.send_video(CHAT, b"\x00\x00\x00\x18ftypmp42")
    fake.send_sticker(CHAT)
    fake.send_location(CHAT, 21.0285, 105.8542)
    fake.send_contact(CHAT, "+84901234567", user_id=77)
    messages = [u.message for u in await bot.get_updates()]
    assert messages[0].document.file_name == "đơn.pdf"
    assert (await bot.download(messages[1].voice)).read() == b"OggS"
    assert messages[2].video.file_size == 12 and messages[3].sticker.type == "regular"
    assert (messages[4].location.latitude, messages[4].location.longitude) == (21.0285, 105.8542)
    assert (messages[5].contact.user_id, messages[5].from_user.id) == (77, 77)


@pytest.mark.asyncio
async def test_fail_next_429_raises_retry_after(bot, fake):
    fake.fail_next("sendMessage", error_code=429, description="Too Many Requests: retry after 2",
                   retry_after=2)
    with pytest.raises(TelegramRetryAfter) as error:
        await bot.send_message(CHAT, "hi")
    assert error.value.retry_after == 2
    assert fake.sent == []
    await bot.send_message(CHAT, "hi")  # only the next call fails
    assert len(fake.sent) == 1


@pytest.mark.asyncio
async def test_wrong_token_is_unauthorized(fake):
    intruder = make_bot(fake, token="999:wrong-token")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.get_me()
    finally:
        await intruder.session.close()


@pytest.mark.asyncio
async def test_raw_http_unknown_method_and_json_body(fake):
    api = f"{fake.base_url}/bot{fake.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404,
                                         "description": "Not Found: method not found"}
        async with http.post(f"{api}/sendMessage", json={"chat_id": CHAT, "text": "12"}) as resp:
            assert (await resp.json())["result"]["text"] == "12"


@pytest.mark.asyncio
async def test_reply_keyboard_is_recorded_but_not_echoed(bot, fake):
    keyboard = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Gửi số", request_contact=True)]],
                                   resize_keyboard=True)
    sent = await bot.send_message(CHAT, "Số điện thoại?", reply_markup=keyboard)
    assert sent.reply_markup is None
    assert fake.sent[0]["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    await bot.send_message(CHAT, "Cảm ơn", reply_markup=ReplyKeyboardRemove())
    assert fake.sent[1]["reply_markup"] == {"remove_keyboard": True}
    assert fake.buttons(fake.sent[0]) == []


@pytest.mark.asyncio
async def test_commands_and_webhook_state(bot, fake):
    await bot.set_my_commands([BotCommand(command="start", description="Bắt đầu")])
    await bot.set_my_commands([BotCommand(command="help", description="Trợ giúp")],
                              scope=BotCommandScopeChat(chat_id=CHAT), language_code="vi")
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert fake.commands[("chat", CHAT, "vi")] == [{"command": "help", "description": "Trợ giúp"}]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start", description="x")])

    await bot.set_webhook("https://example.invalid/hook")
    assert (await bot.get_webhook_info()).url == "https://example.invalid/hook"
    await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""


@pytest.mark.asyncio
async def test_dispatcher_polling_end_to_end(bot, fake):
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Chào bạn!", reply_markup=KEYBOARD)

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False))
    try:
        fake.send_text(CHAT, "/start")
        [reply] = await fake.wait_for_messages(CHAT, 1)
        assert reply["text"] == "Chào bạn!" and fake.buttons(reply)[0] == ("Có", "yes")
        with pytest.raises(AssertionError, match="Chào bạn!"):
            await fake.wait_for_messages(CHAT, 2, timeout=0.2)
    finally:
        await dp.stop_polling()
        await polling


@pytest.mark.asyncio
async def test_queue_raw_serves_entries_exactly_as_given_and_confirms_them_by_place(fake):
    api = f"{fake.base_url}/bot{fake.token}"
    good = fake.send_text(CHAT, "a")
    odd = {"update_id": fake.next_update_id(), "message": {"forward_origin": {"type": "hidden_user", "date": 1}}}
    assert fake.queue_raw(odd) == odd["update_id"]
    hidden_place = fake.queue_raw(["not", "an", "update"])
    last = fake.send_text(CHAT, "b")
    assert good < odd["update_id"] < hidden_place < last
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/getUpdates", json={}) as resp:
            entries = (await resp.json())["result"]
        assert entries[1:3] == [odd, ["not", "an", "update"]]  # nothing added, nothing fixed
        async with http.post(f"{api}/getUpdates", json={"offset": hidden_place + 1}) as resp:
            assert [e["update_id"] for e in (await resp.json())["result"]] == [last]
    assert fake.offsets == [0, hidden_place + 1]
    with pytest.raises(AssertionError, match="below the next free id"):
        fake.queue_raw({"update_id": good})


async def test_a_call_in_a_webhook_answer_is_made_as_telegram_makes_it(fake):
    """The body of a webhook's 200 naming a method is that call (JSON or a URL-encoded form); its failure is
    told to nobody; an empty body or one without a method is no call at all."""
    assert await fake.take_webhook_answer("application/octet-stream", b"") is None
    assert await fake.take_webhook_answer("application/json", b"{}") is None
    assert await fake.take_webhook_answer("application/json; charset=utf-8",
                                          b'{"method": "answerCallbackQuery", "callback_query_id": "7"}') == (
        "answerCallbackQuery", {"callback_query_id": "7"})
    assert await fake.take_webhook_answer("application/x-www-form-urlencoded",
                                          b"method=sendMessage&chat_id=5551234&text=Ch%C3%A0o") == (
        "sendMessage", {"chat_id": CHAT, "text": "Chào"})
    [sent] = fake.messages_to(CHAT)
    assert sent["text"] == "Chào"
    assert await fake.take_webhook_answer("application/json", b'{"method": "sendMessage", "chat_id": 1, "text": ""}')
    assert len(fake.webhook_calls) == 3 and fake.calls == [] and len(fake.sent) == 1
    with pytest.raises(AssertionError):
        await fake.take_webhook_answer("multipart/form-data; boundary=x", b"--x--")
