"""The citizen tip-off, driven through the channel-neutral tip line (no channel, real storage)."""

from __future__ import annotations

import json

from sqlalchemy import func
from sqlmodel import select

from storage.keys import load_data_key
from storage.models import Attachment, Conversation, Tip, TipField
from storage.tips import read_tip_fields
from tests.support.images import jpeg_with_gps


async def count(services, model) -> int:
    async with services.db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


async def walk_to_review(citizen, *, category="Drugs", with_photo=True) -> None:
    await citizen.send("/report")
    assert "What kind of crime" in citizen.text
    await citizen.click(category)
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    if category.startswith("Fraud"):
        assert "scammer" in citizen.text
        await citizen.send("Zalo 0909 123 456, VCB 0123456789")
    assert "When did it happen" in citizen.text
    await citizen.click("Happening now")
    assert "113" in citizen.text
    await citizen.send("ben thanh")
    assert "Which one" in citizen.text  # Phường Bến Thành and Phường Bến Thành Mới
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    await citizen.send_location(10.7725, 106.698)
    await citizen.send("Xe máy Wave biển số 59X1-123.45")
    if with_photo:
        await citizen.send_file(jpeg_with_gps(), kind="photo")
        assert "Files received so far: 1" in citizen.text
    await citizen.click("Done" if with_photo else "No evidence")
    await citizen.click("Anonymous (recommended)")
    assert "Please check your tip" in citizen.text


async def test_full_tip_is_sealed_and_gets_a_receipt(citizen, services):
    citizen.language = "en"
    await walk_to_review(citizen)
    review = citizen.text
    assert "Phường Bến Thành" in review and "1 file(s)" in review and "Anonymous" in review
    await citizen.click("Send the tip")
    assert "Receipt code: TB-" in citizen.text and "call 113" in citizen.text
    code = citizen.text.split("Receipt code: ")[1].split()[0]
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        assert (tip.category, tip.area_code, tip.urgent, tip.status, tip.attachment_count) == (
            "drugs", "79.26734", True, "new", 1)
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        fields = await read_tip_fields(session=session, data_key=key)
        conv = (await session.exec(select(Conversation))).one()
    assert json.loads(fields["description"])["text"] == "Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối."
    assert json.loads(fields["place"]) == {"latitude": 10.7725, "longitude": 106.698}
    assert json.loads(fields["reply_route"])["chat_id"] == "700100200"
    assert "contact" not in fields and "identity" not in fields
    assert conv.draft is None and conv.flow is None
    await citizen.send(f"/status {code.lower()}")
    assert "Received, waiting for review" in citizen.text


async def test_fraud_asks_for_the_scammer_and_editing_category_drops_it(citizen, services):
    citizen.language = "en"
    await walk_to_review(citizen, category="Fraud", with_photo=False)
    assert "Scammer's account" in citizen.text
    await citizen.click("Edit: Category")
    await citizen.click("Gambling")
    assert "Please check your tip" in citizen.text and "Scammer" not in citizen.text
    await citizen.click("Send the tip")
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        names = set(await read_tip_fields(session=session, data_key=key))
    assert "scammer" not in names and "description" in names  # its row is there, sealed empty like any other


async def test_cancel_wipes_the_draft_and_its_files(citizen, services, tmp_path):
    citizen.language = "en"
    await walk_to_review(citizen)
    assert await count(services, Attachment) == 1
    assert len(list(services.blobs.root.iterdir())) == 1
    await citizen.send("/cancel")
    assert citizen.text == "Delete the tip you are writing?"  # nothing is deleted before the citizen says so
    assert await count(services, Attachment) == 1
    await citizen.click("Yes, delete it")
    assert "cancelled and deleted" in citizen.text
    assert await count(services, Attachment) == 0 and await count(services, Tip) == 0
    assert list(services.blobs.root.iterdir()) == []


async def test_numbers_typed_for_menu_buttons_on_channels_without_buttons(citizen):
    citizen.language = "en"
    await citizen.send("hello")
    assert citizen.labels[0] == "Report a crime"
    await citizen.send("1")
    assert "What kind of crime" in citizen.text
    await citizen.send("/cancel")
    await citizen.send("1")  # «Yes, delete it»
    assert "cancelled and deleted" in citizen.text
    await citizen.send("/language")
    await citizen.send("2")
    assert "Language set to English" in citizen.text
