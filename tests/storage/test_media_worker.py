"""Images are decoded with a pixel cap, in the image worker, before the turn's transaction: a decompression
bomb is refused politely (and the tip goes on), whether it comes as a photo or as a document with an image
type; a large photo being cleaned holds up no other chat. Real Pillow, real EXIF."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from PIL import Image
from sqlmodel import select

import storage.media as media
from storage.keys import load_data_key
from storage.models import Attachment
from storage.tips import open_attachments
from tests.support.chat import ChatClient
from tests.support.images import GPS_IFD, jpeg_with_gps

BOUND = 60  # seconds: a bound for a hang, not a speed claim


def bomb_png() -> bytes:
    """13,000 × 13,000 pixels (169 million) in a few hundred kB: decoded, it would take seconds and gigabytes."""
    out = io.BytesIO()
    Image.new("1", (13_000, 13_000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def over_the_cap_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("L", (9_000, 5_000), 128).save(out, format="JPEG", quality=50)  # 45 M pixels
    return out.getvalue()


async def to_evidence(citizen: ChatClient) -> None:
    await citizen.send("/report")
    await citizen.click("Drugs" if citizen.language == "en" else "Ma túy")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    await citizen.click("Happening now" if citizen.language == "en" else "Đang diễn ra")
    await citizen.send("ben thanh")
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    await citizen.send_location(10.7725, 106.698)
    await citizen.send("Xe máy Wave biển số 59X1-123.45")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = bomb_png()
    assert len(data) < 1_000_000 and Image.open(io.BytesIO(data)).size == (13_000, 13_000)
    return data


@pytest.mark.parametrize("as_document", [False, True], ids=["photo", "document image/png"])
async def test_a_decompression_bomb_is_refused_politely_and_the_tip_goes_on(tipline, bomb, as_document):
    citizen = ChatClient(tipline, chat_id="801", language="en")
    await to_evidence(citizen)
    kind = {"kind": "document", "filename": "scan.png", "mime": "image/png"} if as_document else {"kind": "photo"}
    await citizen.send_file(bomb, **kind)
    assert "This image is too large to check (more than 40 million pixels), so it was not kept." in citizen.text
    await citizen.send_file(jpeg_with_gps(), kind="photo")
    assert "Files received so far: 1" in citizen.text
    await citizen.click("Done")
    await citizen.click("Anonymous (recommended)")
    await citizen.click("Send the tip")
    assert "Receipt code: TB-" in citizen.text


async def test_the_refusal_is_in_the_citizens_language(tipline, bomb):
    citizen = ChatClient(tipline, chat_id="802", language="vi")
    await citizen.send("/report")
    await citizen.click("Ma túy")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    await citizen.deliver(choice=citizen.last[-1].choices[0].id)  # when: the first choice
    await citizen.send("ben thanh")
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    await citizen.send_location(10.7725, 106.698)
    await citizen.send("Xe máy Wave biển số 59X1-123.45")
    await citizen.send_file(over_the_cap_jpeg(), kind="photo")
    assert "Ảnh này quá lớn để kiểm tra (hơn 40 triệu điểm ảnh) nên không được giữ lại." in citizen.text


async def test_other_chats_go_on_while_a_large_photo_is_cleaned(tipline, services, monkeypatch):
    """The worker is held inside the real Pillow call until the other citizen's steps are done: if the image
    were decoded on the event loop, or under the database's write lock, those steps could not complete."""
    decoding, release = threading.Event(), threading.Event()
    real = media.strip_image_metadata

    def held_strip(data: bytes, **options):
        decoding.set()
        assert release.wait(BOUND), "the other citizen's steps never completed"
        return real(data, **options)
    monkeypatch.setattr(media, "strip_image_metadata", held_strip)

    sender = ChatClient(tipline, chat_id="803", language="en")
    other = ChatClient(tipline, chat_id="804", language="en")
    await to_evidence(sender)
    photo = jpeg_with_gps(size=(7_000, 5_000))  # 35 M pixels, under the cap: kept, cleaned
    sending = asyncio.create_task(sender.send_file(photo, kind="photo"))
    async with asyncio.timeout(BOUND):
        assert await asyncio.to_thread(decoding.wait, BOUND)
        await other.send("/report")
        assert "What kind of crime" in other.text
        await other.click("Drugs")
        await other.send("Có người bán hàng cấm ở chợ.")
        assert "When did it happen" in other.text
    assert not sending.done()  # the photo is still in the worker while the other chat was served
    release.set()
    async with asyncio.timeout(BOUND):
        await sending
    assert "Files received so far: 1" in sender.text
    async with services.db.transaction() as session:
        row = (await session.exec(select(Attachment))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=row.owner_id)
        [(kind, data, _name, mime)] = await open_attachments(session=session, blobs=services.blobs, data_key=key)
    cleaned = Image.open(io.BytesIO(data))
    assert (kind, mime, cleaned.size) == ("photo", "image/jpeg", (5_000, 7_000))  # upright, every pixel kept
    assert GPS_IFD not in cleaned.getexif() and len(cleaned.getexif()) == 0 and b"CanaryPhoneMaker" not in data
