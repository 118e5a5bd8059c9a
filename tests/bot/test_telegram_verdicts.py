"""Verdicts and the case file on Telegram: the real aiogram client polling the fake Bot API server. The reason
buttons, the question asked as the next message, a supervisor's reopening, and /export's document, opened
from what Telegram received, with nothing of it left on disk in clear."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from docx import Document
from sqlalchemy import text

from tests.bot.test_telegram_triage import (BOSS, CITIZEN, DESCRIPTION, OFFICER, OTHER_CITIZEN, OUTSIDER, PEOPLE,
                                            fake, filed, neutral_of, world)  # noqa: F401 (fixtures)

__all__ = ["fake", "filed", "world"]


def _docx_text(data: bytes) -> str:
    document = Document(io.BytesIO(data))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in document.paragraphs] + cells)


async def test_the_reason_buttons_and_a_duplicate_named_by_the_next_message(world, filed):
    _code, repeat = filed
    _code2, original = await world.file_tip(OTHER_CITIZEN)
    await world.say(OFFICER, f"/tip {repeat}")
    asked = await world.tap(OFFICER, "Not valuable")
    buttons = world.fake.buttons(asked.to(OFFICER)[-1])
    assert [label for label, _d in buttons] == ["Not enough information (insufficient)", "Untrue (false)",
                                                "Duplicate (duplicate)", "Outside our jurisdiction (out_of_scope)",
                                                "Other (other)"]
    assert [data for _l, data in buttons][2] == f"t:nv:{repeat}:duplicate"
    which = await world.tap(OFFICER, "Duplicate")
    assert f"Which tip does {repeat} repeat?" in which.text(OFFICER)
    assert (await world.tip(repeat)).status == "in_review"
    judged = await world.say(OFFICER, original)
    assert f"Tip {repeat} is judged not valuable: Duplicate (duplicate)." in judged.text(OFFICER)
    assert judged.to(CITIZEN) == [] and judged.to(OTHER_CITIZEN) == []
    assert f"• Linked: {repeat} (duplicate" in (await world.say(OFFICER, f"/tip {original}")).text(OFFICER)


async def test_other_by_button_then_the_explanation_sealed(world, filed):
    _code, ref = filed
    await world.say(OFFICER, "/next")
    await world.tap(OFFICER, "Not valuable")
    why = await world.tap(OFFICER, "Other")
    assert f"Why is tip {ref} not valuable? Send a short explanation" in why.text(OFFICER)
    await world.say(OFFICER, "Quán đã đóng cửa từ tháng trước")
    tip = await world.tip(ref)
    assert (tip.status, tip.verdict_reason) == ("not_valuable", "other")
    assert (await world.fields(ref))["note:1"] == "Quán đã đóng cửa từ tháng trước"  # sealed, readable with the key
    view = await world.say(OFFICER, f"/tip {ref}")
    assert "not valuable: Other (other): «Quán đã đóng cửa từ tháng trước»" in view.text(OFFICER)


async def test_a_reopened_verdict_sends_the_tipster_nothing_new(world, filed):
    code, ref = filed
    await world.say(OFFICER, "/next")
    thanked = await world.say(OFFICER, f"/valuable {ref}")
    assert "judged valuable" in thanked.text(CITIZEN)
    heard = len(world.fake.messages_to(CITIZEN))
    await world.enrol(BOSS, unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    reopened = await world.say(BOSS, f"/reopen {ref} Biển số chưa khớp")
    assert "is reopened" in reopened.text(BOSS) and "Thiếu tá Minh reopened the verdict" in reopened.text(OFFICER)
    # Asked from another account, so the citizen's own chat stays as it was: /status does not tell of it either.
    status = await world.say(OTHER_CITIZEN, f"/status {code}")
    assert "Judged valuable" in status.text(OTHER_CITIZEN) and "reviewed" not in status.text(OTHER_CITIZEN)
    asked = await world.say(OFFICER, f"/ask {ref} Biển số có đúng không?")
    assert f"Tip {ref} was judged before" in asked.text(OFFICER) and asked.to(CITIZEN) == []
    again = await world.say(OFFICER, f"/valuable {ref}")
    assert "judged valuable" in again.text(OFFICER)
    assert len(world.fake.messages_to(CITIZEN)) == heard
    [judge] = {e.actor for e in await world.audit("verdict")}  # the officer who judged it, twice
    assert [e.detail for e in await world.audit("reopen")] == [f"from=valuable note=1 holder={judge[8:]}"]


async def test_a_plain_officer_is_refused_reopen_politely(world, filed):
    _code, ref = filed
    await world.say(OFFICER, f"/valuable {ref}")
    before = await world.snapshot(ref)
    for command in (f"/reopen {ref} x", "/reopen ZZZZZZ x"):
        sent = await world.say(OFFICER, command)
        assert sent.text(OFFICER) == "Only a supervisor or an admin can reopen a verdict."
    assert await world.snapshot(ref) == before


async def _on_disk(folder: Path, needles: list[bytes]) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file()
            and any(needle in path.read_bytes() for needle in needles)]


async def test_export_sends_the_document_and_leaves_nothing_in_clear(world, filed, tmp_path):
    _code, ref = filed
    await world.say(OFFICER, f"/note {ref} Đã đối chiếu camera")
    sent = await world.say(OFFICER, f"/export {ref}")
    note, document = sent.to(OFFICER)
    assert note["text"].startswith(f"Case file of {ref}:")
    assert document["method"] == "sendDocument" and document["params"]["document"].filename == f"ho-so-{ref}.docx"
    body = _docx_text(document["document"])
    assert ref in body and DESCRIPTION in body and PEOPLE in body and "Đã đối chiếu camera" in body
    assert sent.to(CITIZEN) == [] and not any(m["method"] == "sendPhoto" for m in sent)
    await world.say(OFFICER, "/queue")  # the next turn shreds the sent turn's sealed replies
    # A .docx is a zip: its part names are in clear in the file, whatever the compression does to the text.
    needles = [b"word/document.xml", DESCRIPTION.encode(), "Đã đối chiếu camera".encode()]
    assert await _on_disk(tmp_path, needles) == []
    async with world.services.db.engine.connect() as conn:  # PostgreSQL's files are not ours to read: its rows
        rows = (await conn.execute(text("SELECT * FROM turn_reply"))).all()
    assert not any(b"word/document.xml" in bytes(v) for row in rows for v in row if isinstance(v, (bytes, memoryview)))


@pytest.mark.parametrize("data", ["t:nv:{ref}:other", "t:nv:{ref}:duplicate", "t:nv:{ref}:khac"])
async def test_a_forged_reason_button_changes_nothing_and_asks_nothing(world, filed, data):
    code, ref = filed
    neutral = (await neutral_of(world, CITIZEN)).to(CITIZEN)[0]
    before, audit_before = await world.snapshot(ref), len(await world.audit())
    sent = await world.forge(CITIZEN, data.format(ref=ref))
    [answer] = sent.to(CITIZEN)
    assert answer["text"] == neutral["text"] and len(sent) == 1
    follow = await world.say(CITIZEN, "Đây là lý do")  # not taken for an explanation
    assert follow.text(CITIZEN) == neutral["text"]
    assert await world.snapshot(ref) == before and len(await world.audit()) == audit_before
    await world.enrol(OUTSIDER, unit="ca-saigon", name="Đại úy Tâm")
    await neutral_of(world, OUTSIDER)
    other = await world.forge(OUTSIDER, data.format(ref=ref))
    assert other.text(OUTSIDER) == f"There is no tip {ref} in your units."
    assert await world.snapshot(ref) == before
