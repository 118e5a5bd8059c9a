"""A second, independent reading of the Bot API: python-telegram-bot's models must read what the fake
server answers and the well-formed entries of the update corpus, so the fake's shapes are not merely
what aiogram happens to accept.

python-telegram-bot 22.8 follows Bot API 10.0; aiogram 3.31 follows 10.3. PTB checks less than aiogram
(it builds objects from whatever keys are there, without type checks), so some entries that aiogram
rightly rejects PTB reads anyway; those are listed below, as are the ones both refuse.
"""

from __future__ import annotations

import aiohttp
import telegram

from tests.support.fake_servers import fake_server
from tests.support.images import jpeg_with_gps
from tests.support.telegram_corpus import PTB_DOES_NOT_KNOW, Corpus

from .telegram_api import FakeTelegram

CHAT = 5551234
# Entries aiogram's models reject and PTB refuses too.
BOTH_REFUSE = {"hidden_user_without_name", "chat_is_a_string", "contact_without_name", "no_update_id",
               "not_an_object"}
# Entries aiogram rejects that PTB reads: it keeps an unknown origin as a bare MessageOrigin and does not
# check that message_id is a number.
ONLY_AIOGRAM_REFUSES = {"unknown_origin_type", "message_id_not_a_number"}
# Read by both, the part neither knows kept aside (aiogram: extra fields; PTB: api_kwargs).
KEPT_ASIDE = {"unknown_update_kind", "unknown_field"} | {f"kind_{kind}" for kind in PTB_DOES_NOT_KNOW}


fake = fake_server(FakeTelegram)


async def call(fake: FakeTelegram, method: str, **params) -> object:
    """The fake's raw JSON answer, read without aiogram."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/bot{fake.token}/{method}", json=params) as response:
            body = await response.json()
    assert body["ok"], body
    return body["result"]


async def test_get_me_and_send_message_answers_read_as_ptb_objects(fake):
    me = telegram.User.de_json(await call(fake, "getMe"), None)
    assert (me.id, me.is_bot, me.username, me.can_join_groups) == (123456, True, "tinbao_test_bot", True)
    markup = {"inline_keyboard": [[{"text": "Có", "callback_data": "yes"}]]}
    sent = telegram.Message.de_json(await call(fake, "sendMessage", chat_id=CHAT, text="Chào", reply_markup=markup),
                                    None)
    assert (sent.chat.id, sent.chat.type, sent.text, sent.from_user.id) == (CHAT, "private", "Chào", 123456)
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "yes"
    edited = telegram.Message.de_json(await call(fake, "editMessageText", chat_id=CHAT, message_id=sent.message_id,
                                                 text="Chào bạn"), None)
    assert edited.text == "Chào bạn" and edited.edit_date is not None and edited.reply_markup is None


async def test_every_update_the_fake_makes_reads_as_a_ptb_update(fake):
    fake.send_text(CHAT, "/start ref", language_code="en")
    fake.send_photo(CHAT, jpeg_with_gps(), caption="ảnh")
    fake.send_document(CHAT, b"%PDF-1.4", file_name="đơn.pdf", mime_type="application/pdf")
    fake.send_voice(CHAT, b"OggS")
    fake.send_video(CHAT, b"\x00\x00\x00\x18ftypmp42")
    fake.send_sticker(CHAT)
    fake.send_location(CHAT, 10.7726, 106.698)
    fake.send_contact(CHAT, "+84987650123")
    await call(fake, "sendMessage", chat_id=CHAT, text="Chọn",
               reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
    fake.click(CHAT, "a")
    updates = [telegram.Update.de_json(raw, None) for raw in await call(fake, "getUpdates")]
    text, photo, document, voice, video, sticker, location, contact, click = updates
    assert text.message.text == "/start ref" and text.message.entities[0].type == "bot_command"
    assert text.message.from_user.language_code == "en" and text.effective_chat.type == "private"
    assert photo.message.photo[-1].file_size > 0 and photo.message.caption == "ảnh"
    assert (document.message.document.file_name, document.message.document.mime_type) == ("đơn.pdf",
                                                                                          "application/pdf")
    assert voice.message.voice.file_size == 4 and video.message.video.width == 640
    assert sticker.message.sticker.type == "regular" and sticker.message.sticker.emoji == "👍"
    assert (location.message.location.latitude, location.message.location.longitude) == (10.7726, 106.698)
    assert contact.message.contact.phone_number == "+84987650123" and contact.message.contact.user_id == CHAT
    assert click.callback_query.data == "a" and click.callback_query.message.text == "Chọn"
    assert all(update.api_kwargs == {} for update in updates)  # nothing PTB does not know


def _ptb_reads(raw) -> telegram.Update | None:
    try:
        return telegram.Update.de_json(raw, None)
    except (TypeError, KeyError, AttributeError, ValueError):
        return None


def test_the_corpus_s_well_formed_entries_read_as_ptb_updates_of_the_same_kind():
    corpus = Corpus(1).build()
    for entry in corpus.entries:
        if not entry.well_formed:
            continue
        update = _ptb_reads(entry.raw)
        assert update is not None, entry.label
        [kind] = [k for k in entry.raw if k != "update_id"]
        assert getattr(update, kind) is not None, entry.label
        assert update.api_kwargs == {}, entry.label
        if kind == "message" and "text" in entry.raw["message"]:
            assert update.message.text == entry.raw["message"]["text"], entry.label
        if kind == "message" and "forward_origin" in entry.raw["message"]:
            assert update.message.forward_origin.type == entry.raw["message"]["forward_origin"]["type"]
        if kind == "message" and "contact" in entry.raw["message"]:
            assert update.message.contact.phone_number == entry.raw["message"]["contact"]["phone_number"]
    covered = {k for entry in corpus.entries if entry.well_formed and isinstance(entry.raw, dict)
               for k in entry.raw if k != "update_id"}
    assert covered == set(telegram.Update.ALL_TYPES)  # every kind python-telegram-bot knows is in the corpus


def test_what_the_corpus_holds_on_purpose_is_refused_or_kept_aside_as_listed():
    corpus = Corpus(1).build()
    odd = {entry.label: entry for entry in corpus.entries if not entry.well_formed}
    assert set(odd) == BOTH_REFUSE | ONLY_AIOGRAM_REFUSES | KEPT_ASIDE
    for label in BOTH_REFUSE:
        assert _ptb_reads(odd[label].raw) is None, label
    for label in ONLY_AIOGRAM_REFUSES:
        assert _ptb_reads(odd[label].raw) is not None, label
        assert odd[label].outcome == "undecodable"
    for label in KEPT_ASIDE:
        update = _ptb_reads(odd[label].raw)
        kept = update.api_kwargs or (update.message.api_kwargs if update.message else {})
        assert kept, label
