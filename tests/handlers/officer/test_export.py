"""/export REF: the case file (hồ sơ) of one tip as a Word document, opened here with python-docx and read
the way a clerk would: the reference, every answer, the timeline in order, the evidence list."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from docx import Document
from sqlmodel import select

from handlers.officer.maintenance import purge_not_valuable
from storage.models import AuditEntry, Tip
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient

DESCRIPTION = "Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối."
PLATE = "Xe máy Wave biển số 59X1-123.45"
QUESTION = "Bạn có nhớ giờ nào không?"
ANSWER = "Khoảng 21 giờ, gần tiệm tạp hóa"
NOTE = "Đối chiếu với hồ sơ vụ 12/2026"
REOPENED = "Cần xác minh lại người bán"


def docx_text(data: bytes) -> str:
    """Every paragraph and every table cell of a .docx, one per line, in document order."""
    document = Document(io.BytesIO(data))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(lines)


def timeline_rows(data: bytes) -> list[list[str]]:
    document = Document(io.BytesIO(data))
    [timeline] = [t for t in document.tables if len(t.columns) == 3]
    return [[cell.text for cell in row.cells] for row in timeline.rows]


async def _ref(services) -> str:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip.ref))).one()


async def _story(services, tipline) -> tuple[str, ChatClient]:
    """A tip worked from start to finish: claimed, asked about and answered, noted, judged, reopened, judged."""
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.send(f"/ask {ref} {QUESTION}")
    await ChatClient(tipline, chat_id="111", language="en").send(ANSWER)
    await officer.send(f"/note {ref} {NOTE}")
    await officer.send(f"/notvaluable {ref} khac Không đủ căn cứ")
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send(f"/reopen {ref} {REOPENED}")
    await officer.send(f"/valuable {ref} Khớp với lời khai")
    return ref, officer


async def test_export_sends_a_docx_with_every_answer_the_timeline_and_the_evidence_list(services, tipline):
    ref, officer = await _story(services, tipline)
    await officer.send("/language vi")
    [reply] = await officer.send(f"/export {ref}")
    assert reply.text.startswith(f"Hồ sơ tin báo {ref}: ")
    [file] = reply.files
    assert (file.kind, file.filename) == ("document", f"ho-so-{ref}.docx")
    assert file.mime == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    text = docx_text(file.data)
    assert f"Hồ sơ tin báo {ref}" in text and "Người xuất: Đại úy Lan" in text
    for answer in (DESCRIPTION, PLATE, "Phường Bến Thành", "Người báo tin | ẩn danh"):
        assert answer in text, answer
    assert "Tình trạng | có giá trị" in text
    rows = timeline_rows(file.data)
    assert rows[0] == ["Thời gian", "Người thực hiện", "Nội dung"]
    whats = [what for _when, _who, what in rows[1:]]
    whos = [who for _when, who, _what in rows[1:]]
    expected = ["Tiếp nhận tin báo (console)", "Nhận xử lý", f"Câu hỏi cho người báo tin: {QUESTION}",
                f"Người báo tin trả lời: {ANSWER}", f"Ghi chú: {NOTE}",
                "Kết luận: không có giá trị: Lý do khác (khac): «Không đủ căn cứ»",
                f"Mở lại kết luận: {REOPENED}", "Kết luận: có giá trị · Ghi chú: Khớp với lời khai"]
    assert whats == expected
    assert whos == ["người báo tin", "Đại úy Lan", "Đại úy Lan", "người báo tin", "Đại úy Lan", "Đại úy Lan",
                    "Thiếu tá Minh", "Đại úy Lan"]
    assert all(when[:2].isdecimal() and when[2] == "/" for when, _who, _what in rows[1:])
    [evidence] = [t for t in Document(io.BytesIO(file.data)).tables if t.rows[0].cells[0].text == "#"]
    [(number, name, kind, size)] = [[c.text for c in row.cells] for row in evidence.rows[1:]]
    assert number == "1" and kind == "image/jpeg" and name and (size.endswith(" KB") or size.endswith(" byte"))
    assert not any(len(p) > 200 and p.startswith("\xff\xd8") for p in text.splitlines())  # a list, not the photo


async def test_export_is_audited_as_a_view_and_sends_no_evidence(services, tipline):
    ref, officer = await _story(services, tipline)
    async with services.db.transaction() as session:
        views_before = len((await session.exec(select(AuditEntry).where(AuditEntry.action == "view"))).all())
    replies = await officer.send(f"/export {ref}")
    assert [f.kind for r in replies for f in r.files] == ["document"]  # the evidence itself is not re-sent
    assert all(r.to is None for r in replies)  # and nobody else hears of it, the tipster least of all
    async with services.db.transaction() as session:
        views = (await session.exec(select(AuditEntry).where(AuditEntry.action == "view"))).all()
    assert len(views) == views_before + 1
    assert (views[-1].tip_ref, views[-1].detail) == (ref, "export=docx")


async def test_english_export_and_a_tip_still_open(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    [reply] = await officer.send(f"/export {ref.lower()}")
    text = docx_text(reply.files[0].data)
    assert f"Case file of tip {ref}" in text and DESCRIPTION in text and "Status | new" in text
    assert (await officer.send(f"/export {ref}"))[0].files  # a second export, a second file


async def test_export_outside_ones_units_or_of_a_purged_tip_is_refused(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    other = await enrol(services, tipline, "901", unit="ca-saigon", name="Đại úy Tâm")
    for command in (f"/export {ref}", "/export ZZZZZZ", "/export"):
        replies = await other.send(command)
        assert "There is no tip" in other.text and not any(r.files for r in replies), command
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/notvaluable {ref} sai")
    assert await purge_not_valuable(services, now=services.clock() + timedelta(days=400)) == 1
    replies = await officer.send(f"/export {ref}")
    assert officer.text == f"Tip {ref} was purged under the retention rules." and not replies[0].files
    async with services.db.transaction() as session:
        exports = (await session.exec(select(AuditEntry).where(AuditEntry.detail == "export=docx"))).all()
    assert exports == []


@pytest.mark.parametrize("command", ["/export {ref}", "/export"])
async def test_non_officers_get_the_neutral_answer_and_no_file(services, tipline, command):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    citizen = ChatClient(tipline, chat_id="111", language="en")  # even the tipster of that very tip
    await citizen.send("blah")
    neutral = citizen.text
    replies = await citizen.send(command.format(ref=ref))
    assert citizen.text == neutral and not any(r.files for r in replies)


async def test_an_officer_on_zalo_is_told_the_file_could_not_come(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    from handlers.officer.accounts import create_invite_code
    code = await create_invite_code(services, unit_id="ca-benthanh", role="officer", name="Đại úy Lan")
    officer = ChatClient(tipline, chat_id="901", channel="zalo", language="en")
    await officer.send(f"/enroll {code}")
    [reply] = await officer.send(f"/export {ref}")
    assert not reply.files and f"these were not sent: ho-so-{ref}.docx" in reply.text
