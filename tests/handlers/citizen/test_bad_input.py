"""Bad input gets a clear, polite message and changes nothing else: it never crashes or loses a tip.

Every test compares the whole stored state before and after the bad input: the sealed draft's
decrypted state (step, answers, pending), the conversation row, and the counts of tips, tip
fields, attachments, data keys and blob files.
"""

from __future__ import annotations

import json
import struct
import unicodedata
import zlib

import pytest
from sqlmodel import select

from handlers.context import Limits
from handlers.messages import IncomingFile, Location, Reply
from storage.keys import load_data_key
from storage.models import Tip
from storage.tips import open_attachments, read_tip_fields
from tests.support.images import jpeg_with_gps
from tests.support.state import stored

MAX_FILES = 2
MAX_FILE_BYTES = 1024 * 1024  # 1 MB, so the refusal names a whole number of megabytes

# The questionnaire as shipped, in order, for a category that has no conditional step (drugs).
STEPS = ["category", "description", "when", "area", "place", "people", "evidence", "identity", "review"]


@pytest.fixture
def limits() -> Limits:
    # A generous flood limit: these tests send many messages within one real minute.
    return Limits(messages_per_minute=10_000, max_files=MAX_FILES, max_file_bytes=MAX_FILE_BYTES)


@pytest.fixture
def citizen(citizen):
    citizen.language = "en"
    return citizen


# --- helpers -------------------------------------------------------------------------------------

def document(data: bytes, *, kind: str = "document", mime: str | None = "application/pdf",
             size: int | None = -1, filename: str | None = "evidence.pdf") -> IncomingFile:
    async def fetch() -> bytes:
        return data
    return IncomingFile(kind=kind, size=len(data) if size == -1 else size, fetch=fetch, filename=filename, mime=mime)


def pdf(n: int) -> bytes:
    return (b"%PDF-1.4 tinbao test " * (n // 21 + 1))[:n]


async def pick_area(citizen, typed: str) -> None:
    """Type a ward's name and confirm the one match («Có phải …?»)."""
    await citizen.send(typed)
    assert "Is it Phường Hoàn Kiếm, TP. Hà Nội?" in citizen.text
    await citizen.click("area:yes")


async def reach(citizen, step: str, *, photo: bool = True) -> None:
    """Answer the questions before ``step`` (a drugs tip: no conditional question in between)."""
    await citizen.send("/report")
    answers = {
        "category": lambda: citizen.click("category:drugs"),
        "description": lambda: citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối."),
        "when": lambda: citizen.click("when:earlier"),
        "area": lambda: pick_area(citizen, "hoan kiem"),
        "place": lambda: citizen.send("12 Hàng Bài"),
        "people": lambda: citizen.click("people:skip"),
        "evidence": lambda: citizen.click("evidence:done"),
        "identity": lambda: citizen.click("identity:anonymous"),
    }
    for earlier in STEPS[:STEPS.index(step)]:
        if earlier == "evidence" and photo:
            await citizen.send_file(jpeg_with_gps(), kind="photo")
            assert "Files received so far: 1" in citizen.text
        await answers[earlier]()
    if step == "evidence" and photo:  # at the evidence question with one photo already kept
        await citizen.send_file(jpeg_with_gps(), kind="photo")
        assert "Files received so far: 1" in citizen.text


async def question(citizen) -> Reply:
    """The current question exactly as asked, without any lead (/help re-asks it bare)."""
    replies = await citizen.send("/help")
    assert len(replies) == 2
    return replies[1]


def assert_reasked(replies: list[Reply], asked: Reply, *, says: str) -> None:
    """One message: a clear explanation, then the same question with the same buttons."""
    assert len(replies) == 1, [r.text for r in replies]
    reply = replies[0]
    assert says in reply.text
    assert reply.text.endswith(asked.text) and reply.text != asked.text
    assert reply.choices == asked.choices
    assert (reply.location_button, reply.contact_button) == (asked.location_button, asked.contact_button)


# --- every bad input at every step ---------------------------------------------------------------

TEN_THOUSAND = ("Trộm cắp xe máy giữa ban ngày. " * 400)[:10_000]
TOO_LONG = {
    "category": "Please pick one of the options.",
    "description": "That is too long (10,000 characters): please keep it under 4,000 characters.",
    "when": "That is too long (10,000 characters): please keep it under 500 characters.",
    "area": "No ward or commune matches «",
    "place": "That is too long (10,000 characters): please keep it under 500 characters.",
    "people": "That is too long (10,000 characters): please keep it under 2,000 characters.",
    "evidence": "Send your files here, or tap «Done» to continue.",
    "identity": "Please pick one of the options.",
    "review": "Please use the buttons: edit an answer, send the tip, or cancel.",
}
# A button of a question answered before (the review's is of the question just before it).
EARLIER_BUTTON = {
    "description": "category:theft", "when": "category:theft", "area": "when:today", "place": "area:area=79.26734",
    "people": "place:skip", "evidence": "people:skip", "identity": "evidence:done", "review": "identity:phone",
}
STALE = "That button belongs to an earlier question."
NOT_UNDERSTOOD = "Sorry, I did not understand that. Please answer the question below, or send /cancel to stop."
UNFINISHED = "You have an unfinished tip. Let us continue it, or send /cancel to delete it."


def bad_inputs(step: str) -> list[tuple[str, dict, str]]:
    """(name, Inbound fields, what the explanation says) for the bad inputs that apply at ``step``."""
    cases = [
        ("sticker", {"unsupported": "sticker"},
         "Stickers cannot be used as evidence." if step == "evidence" else "this kind of message cannot be used here"),
        ("10000 characters", {"text": TEN_THOUSAND}, TOO_LONG[step]),
        ("forged category", {"choice": "category:nonexistent"},
         "Please pick one of the options." if step == "category" else STALE),
        ("forged payload", {"choice": "no-such-button"}, STALE),
        ("/start", {"text": "/start"}, UNFINISHED),
        ("/report", {"text": "/report"}, UNFINISHED),
        ("/admin", {"text": "/admin"}, NOT_UNDERSTOOD),
        ("/valuable", {"text": "/valuable TB-7K3MP-9QXFA"}, NOT_UNDERSTOOD),
        ("/claim@tinbao_bot", {"text": "/claim@tinbao_bot"}, NOT_UNDERSTOOD),
        ("/queue", {"text": "/queue"}, NOT_UNDERSTOOD),
        ("officer button", {"choice": "t:valuable:K7QM2X"}, STALE),  # like any other old button: nothing marks "t:" as special
    ]
    if step != "review":
        cases.append(("submit before review", {"choice": "review:submit"}, STALE))
        cases.append(("edit before review", {"choice": "review:edit=category"}, STALE))
    if step in EARLIER_BUTTON:
        cases.append(("earlier button", {"choice": EARLIER_BUTTON[step]}, STALE))
    if step != "evidence":
        cases.append(("file", {"files": [document(jpeg_with_gps(), kind="photo", mime="image/jpeg")]},
                      "You can send photos and files at the evidence question"))
    if step not in ("area", "place"):  # a pin at the ward question suggests its ward (test_ward_step.py)
        cases.append(("location", {"location": Location(10.7725, 106.698)},
                      "A map location is not an answer to this question."))
    return cases


PARAMS = [pytest.param(step, name, fields, says, id=f"{step}-{name}")
          for step in STEPS for name, fields, says in bad_inputs(step)]


@pytest.mark.parametrize(("step", "name", "fields", "says"), PARAMS)
async def test_bad_input_at_every_step_changes_nothing(citizen, services, step, name, fields, says):
    await reach(citizen, step)
    asked = await question(citizen)
    before = await stored(services, citizen)
    assert before["draft"]["step"] == step
    replies = await citizen.deliver(**fields)
    assert_reasked(replies, asked, says=says)
    assert await stored(services, citizen) == before
    # At the review, the tip can still be sent afterwards.
    if step == "review":
        await citizen.click("review:submit")
        assert "Receipt code: TB-" in citizen.text
        assert (await stored(services, citizen))["counts"]["Tip"] == 1


# --- the description's length, after NFC -------------------------------------------------------

def nfc_text(length: int) -> str:
    text = ("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối, đi xe Wave biển số 59X1-123.45. " * 60)
    text = text[:length - 1] + "."
    assert len(text) == length and unicodedata.is_normalized("NFC", text)
    return text


async def test_description_of_9_characters_is_refused(citizen, services):
    await reach(citizen, "description")
    asked = await question(citizen)
    before = await stored(services, citizen)
    nine = "Cướp giật"
    assert len(nine) == 9
    decomposed = "  " + unicodedata.normalize("NFD", nine) + " \n"  # 14 code points, and blanks around
    assert len(decomposed.strip()) > 10
    replies = await citizen.send(decomposed)
    assert_reasked(replies, asked, says="That is too short: please write at least 10 characters.")
    assert await stored(services, citizen) == before


async def test_description_of_4000_characters_is_accepted_exactly_and_stored_as_nfc(citizen, services):
    await reach(citizen, "description")
    asked = await question(citizen)
    before = await stored(services, citizen)
    too_long = unicodedata.normalize("NFD", nfc_text(4001))
    replies = await citizen.send(too_long)
    assert_reasked(replies, asked, says="That is too long (4,001 characters): please keep it under 4,000 characters.")
    assert await stored(services, citizen) == before

    exact = nfc_text(4000)
    decomposed = unicodedata.normalize("NFD", exact)
    assert len(decomposed) > 4000 and decomposed != exact
    await citizen.send(decomposed)
    assert "When did it happen" in citizen.text
    after = await stored(services, citizen)
    assert after["draft"]["step"] == "when"
    assert after["draft"]["answers"]["description"] == {"text": exact}
    # Through to the tip: the sealed field is the NFC text too.
    await citizen.click("when:earlier")
    await pick_area(citizen, "hoan kiem")
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    assert exact[:600] + "…" in citizen.text  # the review shows the start of a long text
    await citizen.click("review:submit")
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        fields = await read_tip_fields(session=session, data_key=key)
    assert json.loads(fields["description"]) == {"text": exact}


# --- area, contact, phone ------------------------------------------------------------------------

async def test_area_search_without_a_match(citizen, services):
    await reach(citizen, "area")
    asked = await question(citizen)
    before = await stored(services, citizen)
    replies = await citizen.send("Phường Không Có Thật")
    assert_reasked(replies, asked, says="No ward or commune matches «Phường Không Có Thật». Check the spelling or try "
                                        "another part of the name; if you do not know it, choose «I don't know the "
                                        "ward or commune».")
    assert await stored(services, citizen) == before
    # Punctuation only: nothing to search for, the same clear answer.
    replies = await citizen.send("?!")
    assert_reasked(replies, asked, says="No ward or commune matches «?!».")
    assert await stored(services, citizen) == before


async def test_area_option_that_was_not_offered_is_refused(citizen, services):
    await reach(citizen, "area")
    await citizen.send("ben thanh")
    assert "Which one do you mean" in citizen.text
    asked = await question(citizen)
    assert [c.id for c in asked.choices] == ["area:area=79.26734", "area:area=79.26800", "area:unknown"]
    before = await stored(services, citizen)
    replies = await citizen.deliver(choice="area:area=01.00070")  # a real area, but not one offered
    assert_reasked(replies, asked, says="Please pick one of the options.")
    assert await stored(services, citizen) == before
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    assert (await stored(services, citizen))["draft"]["answers"]["area"] == {"code": "79.26734"}


async def test_a_contact_that_is_not_the_senders_own_is_refused(citizen, services):
    await reach(citizen, "identity")
    await citizen.click("identity:phone")
    asked = await question(citizen)
    assert asked.contact_button == "📞 Share my phone number"
    before = await stored(services, citizen)
    replies = await citizen.send_contact("0909123456", is_own=False)
    assert_reasked(replies, asked, says="Please share your own phone number, not someone else's contact.")
    assert await stored(services, citizen) == before
    await citizen.send_contact("0909 123 456", is_own=True)
    assert (await stored(services, citizen))["draft"]["answers"]["identity"] == {"mode": "phone", "phone": "0909 123 456"}


@pytest.mark.parametrize("typed", ["abc", "12345", "0909 abc 456", "+84 909 123 456 789 012 345", "09091234567890123456",
                                   "không có"])
async def test_an_invalid_phone_number_is_refused(citizen, services, typed):
    await reach(citizen, "identity")
    await citizen.click("identity:phone")
    asked = await question(citizen)
    before = await stored(services, citizen)
    replies = await citizen.send(typed)
    assert_reasked(replies, asked, says="That does not look like a phone number.")
    assert await stored(services, citizen) == before


async def test_a_valid_phone_number_typed_is_kept_without_separators(citizen, services):
    await reach(citizen, "identity")
    await citizen.click("identity:phone")
    await citizen.send("+84 909-123.456")
    assert "Please check your tip" in citizen.text
    assert (await stored(services, citizen))["draft"]["answers"]["identity"] == {"mode": "phone", "phone": "+84909123456"}


# --- evidence files ------------------------------------------------------------------------------

async def test_more_files_than_allowed_are_refused_and_not_stored(citizen, services):
    await reach(citizen, "evidence", photo=False)
    await citizen.deliver(files=[document(pdf(1000))])
    await citizen.deliver(files=[document(pdf(2000))])
    asked = await question(citizen)
    assert "Files received so far: 2" in asked.text
    before = await stored(services, citizen)
    assert before["counts"]["Attachment"] == 2 and len(before["blobs"]) == 2
    replies = await citizen.deliver(files=[document(pdf(3000))])
    assert_reasked(replies, asked, says="You can send at most 2 files; this one was not kept.")
    assert await stored(services, citizen) == before
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    assert "2 file(s)" in citizen.text


async def test_an_album_over_the_limit_keeps_what_fits_and_counts_it(citizen, services):
    """Files kept from a message in which another was refused are counted: the limit cannot be walked around."""
    await reach(citizen, "evidence", photo=False)
    await citizen.deliver(files=[document(pdf(1000)), document(pdf(1500)), document(pdf(2000))])
    assert "You can send at most 2 files; this one was not kept." in citizen.text
    assert "Files received so far: 2" in citizen.text
    state = await stored(services, citizen)
    assert state["draft"]["pending"]["files"] == state["counts"]["Attachment"] == len(state["blobs"]) == 2
    replies = await citizen.deliver(files=[document(pdf(500))])
    assert "You can send at most 2 files" in replies[0].text
    assert await stored(services, citizen) == state


async def test_a_good_file_beside_a_bad_one_is_counted(citizen, services):
    await reach(citizen, "evidence", photo=False)
    await citizen.deliver(files=[document(pdf(1000)), document(b"not an image", mime="image/jpeg")])
    assert "This image could not be read" in citizen.text and "Files received so far: 1" in citizen.text
    state = await stored(services, citizen)
    assert state["draft"]["pending"]["files"] == state["counts"]["Attachment"] == 1
    await citizen.deliver(files=[document(pdf(1000))])
    assert "Files received so far: 2" in citizen.text
    replies = await citizen.deliver(files=[document(pdf(1000))])
    assert "You can send at most 2 files" in replies[0].text
    assert (await stored(services, citizen))["counts"]["Attachment"] == 2


async def test_a_file_over_the_size_limit_is_refused_and_not_stored(citizen, services):
    await reach(citizen, "evidence")
    asked = await question(citizen)
    before = await stored(services, citizen)
    fetched = []

    async def fetch() -> bytes:
        fetched.append(True)
        return pdf(MAX_FILE_BYTES + 1)
    # The platform says how big it is: refused without downloading it.
    replies = await citizen.deliver(files=[IncomingFile(kind="video", size=MAX_FILE_BYTES + 1, fetch=fetch)])
    assert_reasked(replies, asked, says="This file is too large (the limit is 1 MB); it was not kept.")
    assert fetched == []
    assert await stored(services, citizen) == before
    # The platform did not say: refused once downloaded.
    replies = await citizen.deliver(files=[IncomingFile(kind="document", size=None, fetch=fetch)])
    assert_reasked(replies, asked, says="This file is too large (the limit is 1 MB); it was not kept.")
    assert fetched == [True]
    assert await stored(services, citizen) == before
    # Exactly at the limit is fine.
    await citizen.deliver(files=[document(pdf(MAX_FILE_BYTES))])
    assert "Files received so far: 2" in citizen.text


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("kind", "mime", "data"), [
    ("document", "image/jpeg", b"not an image"),
    ("photo", None, b"not an image"),
    ("photo", "image/jpeg", jpeg_with_gps()[:200]),  # cut short
], ids=["document-claiming-jpeg", "photo", "truncated-jpeg"])
async def test_an_image_that_is_not_a_readable_image_is_refused(citizen, services, kind, mime, data):
    await reach(citizen, "evidence")
    asked = await question(citizen)
    before = await stored(services, citizen)
    replies = await citizen.deliver(files=[document(data, kind=kind, mime=mime, filename="IMG_0001.jpg")])
    assert_reasked(replies, asked, says="This image could not be read, so its hidden data (such as location) "
                                        "could not be removed. Please send it as a photo instead.")
    assert await stored(services, citizen) == before


async def test_a_decompression_bomb_is_refused_as_too_large(citizen, services):
    await reach(citizen, "evidence")
    asked = await question(citizen)
    before = await stored(services, citizen)
    replies = await citizen.deliver(files=[document(png_claiming(30_000, 30_000), kind="document", mime="image/png",
                                                    filename="IMG_0001.png")])
    assert_reasked(replies, asked, says="This image is too large to check (more than 40 million pixels), so it was "
                                        "not kept. Please send a smaller photo, or a screenshot of it.")
    assert await stored(services, citizen) == before


async def test_a_file_whose_download_fails_is_reported_and_not_stored(citizen, services, caplog):
    await reach(citizen, "evidence")
    asked = await question(citizen)
    before = await stored(services, citizen)

    async def fetch() -> bytes:
        raise ConnectionError("file service at https://api.telegram.org/file/bot123:SECRET/photo.jpg is down")
    replies = await citizen.deliver(files=[IncomingFile(kind="photo", size=1000, fetch=fetch)])
    assert_reasked(replies, asked, says="This file could not be downloaded; please send it again.")
    assert await stored(services, citizen) == before
    assert "SECRET" not in caplog.text
    await citizen.send_file(jpeg_with_gps(), kind="photo")  # sent again: kept
    assert "Files received so far: 2" in citizen.text


# --- outside a tip -------------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "vi"])
async def test_unknown_text_and_unknown_commands_get_the_same_neutral_reply(citizen, services, language):
    """A citizen learns nothing from trying officer or admin commands: they read like any unknown text."""
    citizen.language = language
    neutral = await citizen.send("xin chào")
    assert len(neutral) == 1 and len(neutral[0].choices) == 3
    if language == "en":
        assert neutral[0].text == "Sorry, I did not understand that."
    before = await stored(services, citizen)
    officer_commands = ["/queue", "/queue@tinbao_bot", "/next", "/tip K7QM2X", "/valuable", "/valuable K7QM2X",
                        "/notvaluable K7QM2X duplicate", "/note K7QM2X hello", "/release K7QM2X",
                        "/transfer K7QM2X 79", "/case K7QM2X 12/2025 3", "/ask K7QM2X who?", "/whoami",
                        "/export K7QM2X", "/export all", "/reopen K7QM2X sai"]
    never_commands = ["/admin", "/claim", "/officer", "/keys rotate", "/valuable_tips"]
    officer_buttons = ["t:open:K7QM2X", "t:queue", "t:valuable:K7QM2X", "t:nv:K7QM2X:duplicate",
                       "t:release:K7QM2X", "t:bogus", "t:"]
    for fields in ([{"text": c} for c in officer_commands + never_commands]
                   + [{"choice": c} for c in officer_buttons]
                   + [{"text": "hello"}, {"text": "TB-hello"}, {"unsupported": "sticker"}, {"choice": "review:submit"},
                      {"choice": "category:nonexistent"}, {"choice": "evidence:done"}, {"choice": "menu:bogus"}]):
        replies = await citizen.deliver(**fields)
        assert replies == neutral, fields
    assert await stored(services, citizen) == before


# --- text no UTF-8 can hold --------------------------------------------------------------------

async def test_half_an_emoji_is_kept_as_a_replacement_character_not_a_failure(citizen, services):
    """Regression: a lone UTF-16 surrogate (an emoji cut in two, which a platform's JSON can carry as
    "\\ud83d") in a text, a file name or a phone number made sealing fail, and the citizen was told
    "something went wrong, send it again" for a message that could never go through. Now the message is
    taken, the broken half kept as U+FFFD, and a surrogate pair split in two is one emoji again."""
    await reach(citizen, "description")
    await citizen.send("Người đàn ông áo đỏ bán ma túy \ud83d ở đầu hẻm \ud83d\ude00")
    assert "When did it happen?" in citizen.text
    described = "Người đàn ông áo đỏ bán ma túy \ufffd ở đầu hẻm 😀"
    assert (await stored(services, citizen))["draft"]["answers"]["description"] == {"text": described}
    await citizen.click("when:earlier")
    await pick_area(citizen, "hoan kiem\udc00")  # the search reads past the broken mark
    assert "You can send a location pin" in citizen.text
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    await citizen.deliver(files=[document(pdf(100), filename="bi\ud83dn bản.pdf", mime="application/pdf")])
    assert "Files received so far: 1" in citizen.text
    await citizen.click("evidence:done")
    await citizen.click("identity:phone")
    await citizen.send("0987 650 123\ud83d")
    assert "That does not look like a phone number." in citizen.text
    await citizen.send_contact("0987650123\ud83d")
    assert "Please check your tip" in citizen.text
    await citizen.click("review:submit")
    assert "Receipt code" in citizen.text
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        fields = await read_tip_fields(session=session, data_key=key)
        [(_kind, _data, filename, _mime)] = await open_attachments(session=session, blobs=services.blobs,
                                                                  data_key=key)
    assert json.loads(fields["description"]) == {"text": described}
    assert fields["contact"] == "0987650123\ufffd" and filename == "bi\ufffdn bản.pdf"


# --- a failure on our side -----------------------------------------------------------------------

async def test_a_failure_while_answering_loses_nothing_and_the_update_can_be_sent_again(citizen, services,
                                                                                      monkeypatch, caplog):
    from handlers.citizen import step_kinds

    await reach(citizen, "evidence")
    before = await stored(services, citizen)
    real_save = step_kinds.tip_store.save_attachment

    async def failing_save(**kwargs):
        await real_save(**kwargs)  # the row and the file are written, then the disk fills up
        raise OSError("No space left on device")
    monkeypatch.setattr(step_kinds.tip_store, "save_attachment", failing_save)
    replies = await citizen.deliver(update_id="E1", files=[document(pdf(1000))])
    assert [r.text for r in replies] == [
        "Sorry, something went wrong on our side and your last message was not saved. Please send it again."]
    after = await stored(services, citizen)
    # The transaction was rolled back: draft and rows as before (an orphan sealed file may remain,
    # unreadable and unreferenced; it is not counted as kept).
    assert {k: v for k, v in after.items() if k != "blobs"} == {k: v for k, v in before.items() if k != "blobs"}
    assert "%PDF" not in caplog.text

    monkeypatch.setattr(step_kinds.tip_store, "save_attachment", real_save)
    replies = await citizen.deliver(update_id="E1", files=[document(pdf(1000))])  # the platform retries
    assert "Files received so far: 2" in replies[0].text
    assert (await stored(services, citizen))["counts"]["Attachment"] == 2
