"""/tip as officers read it: one timeline (when, who, what), a map link for a pin, the evidence once and on request."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from sqlmodel import select

from storage.models import AuditEntry, Tip
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient

HCM = timedelta(hours=7)  # Asia/Ho_Chi_Minh has no summer time


async def _entries(services, *actions: str) -> list[AuditEntry]:
    async with services.db.transaction() as session:
        return list((await session.exec(select(AuditEntry).where(AuditEntry.action.in_(actions))
                                        .order_by(AuditEntry.id))).all())


def _local(entry: AuditEntry) -> str:
    return (entry.at.astimezone(timezone.utc) + HCM).strftime("%d/%m/%Y %H:%M")


def _timeline(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Timeline:")
    return [line for line in lines[start + 1:] if line.startswith("• ")]


async def test_the_timeline_says_when_who_and_what_in_the_order_it_happened(services, tipline):
    await submit_tip(tipline, "111")
    lan = await enrol(services, tipline, "900")
    hai = await enrol(services, tipline, "901", name="Trung úy Hải")
    await lan.send("/next")
    ref = lan.last[0].text.split(" · ")[0].split()[-1]
    await lan.send(f"/ask {ref} Bạn có nhớ biển số xe không?")
    await ChatClient(tipline, chat_id="111", language="en").send("Biển số 59X1-123.45")
    await hai.send(f"/note {ref} Quán số 12, mở cửa đến 23 giờ")
    await lan.send(f"/note {ref} Đã xác minh biển số")
    await lan.send(f"/valuable {ref} Chuyển đội điều tra ma túy")
    await lan.send(f"/tip {ref}")
    entries = await _entries(services, "ask", "answer", "note", "verdict")
    assert [e.action for e in entries] == ["ask", "answer", "note", "note", "verdict"]
    whens = [_local(e) for e in entries]
    assert _timeline(lan.last[0].text) == [
        f"• {whens[0]} · Đại úy Lan · Question to the tipster: Bạn có nhớ biển số xe không?",
        f"• {whens[1]} · the tipster · Answer: Biển số 59X1-123.45",
        f"• {whens[2]} · Trung úy Hải · Note: Quán số 12, mở cửa đến 23 giờ",
        f"• {whens[3]} · Đại úy Lan · Note: Đã xác minh biển số",
        f"• {whens[4]} · Đại úy Lan · Verdict: valuable · Note: Chuyển đội điều tra ma túy",
    ]


async def test_the_timeline_in_vietnamese_names_the_tipster_and_the_reason(services, tipline):
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    officer.language = "vi"
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/ask {ref} Có mấy người?")
    await ChatClient(tipline, chat_id="111", language="vi").send("Hai người")
    await officer.send(f"/notvaluable {ref} false")
    await officer.send(f"/tip {ref}")
    text = officer.last[0].text
    lines = text.splitlines()
    timeline = lines[lines.index("Diễn biến:") + 1:]
    assert timeline[1].endswith(" · người báo tin · Trả lời: Hai người")
    assert timeline[2].endswith(" · Đại úy Lan · Kết luận: không có giá trị: Không đúng sự thật (sai)")


async def test_entries_written_before_they_named_their_field_are_matched_in_order(services, tipline):
    """A deployment's older audit entries say only "note": the first such entry is note:1, and so on."""
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/note {ref} thứ nhất")
    await officer.send(f"/note {ref} thứ hai")
    async with services.db.transaction() as session:  # as the entries were written before this change
        for entry in (await session.exec(select(AuditEntry).where(AuditEntry.action == "note"))).all():
            entry.detail = ""
            session.add(entry)
    await officer.send(f"/tip {ref}")
    assert [line.split(" · ", 2)[2] for line in _timeline(officer.last[0].text)] == ["Note: thứ nhất",
                                                                                      "Note: thứ hai"]


async def test_a_location_answer_has_a_map_link_and_a_pin(services, tipline):
    await submit_tip(tipline, "111")  # the tipster sent a pin at 10.7725, 106.698
    officer = await enrol(services, tipline, "900")
    [view, *_rest] = await officer.send("/next")
    assert ("🗺 https://www.openstreetmap.org/?mlat=10.77250&mlon=106.69800#map=17/10.77250/106.69800"
            in [line.strip() for line in view.text.splitlines()])
    assert (view.location.latitude, view.location.longitude) == (10.7725, 106.698)


async def test_the_evidence_goes_once_then_on_request_each_time_audited(services, tipline):
    await submit_tip(tipline, "111")  # with one photo
    officer = await enrol(services, tipline, "900")
    first = await officer.send("/next")
    assert [len(r.files) for r in first if r.to is None] == [0, 1]
    again = await officer.send(f"/tip {first[0].text.split(' · ')[0].split()[-1]}")
    assert [r.files for r in again] == [[]]  # read again: the text only
    assert "📎 Files (1)" in officer.labels
    tapped = await officer.click("📎 Files (1)")
    [files] = tapped
    assert files.files and files.files[0].data[:2] == b"\xff\xd8"
    ref = files.text.split()[-1].rstrip(":")
    typed = await officer.send(f"/files {ref.lower()}")
    assert typed[0].files
    sent = await _entries(services, "evidence")
    [viewer] = {e.actor for e in await _entries(services, "view")}
    assert [(e.actor, e.tip_ref, e.detail) for e in sent] == [(viewer, ref, "files=1")] * 3
    colleague = await enrol(services, tipline, "901", name="Trung úy Hải")
    theirs = await colleague.send(f"/tip {ref}")  # a colleague's first look brings the files to them too
    assert [len(r.files) for r in theirs] == [0, 1]
    assert len(await _entries(services, "evidence")) == 4 and len(await _entries(services, "view")) == 3


async def test_files_of_a_tip_without_any_or_outside_the_unit(services, tipline):
    citizen = ChatClient(tipline, chat_id="111", language="en")
    from tests.handlers.citizen.test_tipoff import walk_to_review
    await walk_to_review(citizen, with_photo=False)
    await citizen.click("Send the tip")
    async with services.db.transaction() as session:
        ref = (await session.exec(select(Tip.ref))).one()
    officer = await enrol(services, tipline, "900")
    view = await officer.send(f"/tip {ref}")
    assert not any("📎" in c.label for r in view for c in r.choices)
    assert (await officer.send(f"/files {ref}"))[0].text == f"Tip {ref} has no files."
    outsider = await enrol(services, tipline, "902", unit="ca-saigon", name="Đại úy Tâm")
    assert (await outsider.send(f"/files {ref}"))[0].text == f"There is no tip {ref} in your units."
    assert (await outsider.deliver(choice=f"t:files:{ref}"))[0].text == f"There is no tip {ref} in your units."
    assert await _entries(services, "evidence") == []


@pytest.mark.parametrize("command", ["/files {ref}", "/judged", "/queue mine", "/queue lua-dao"])
async def test_non_officers_learn_nothing_from_the_new_commands(services, tipline, command):
    await submit_tip(tipline, "111")
    async with services.db.transaction() as session:
        ref = (await session.exec(select(Tip.ref))).one()
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("blah blah")
    neutral = stranger.text
    await stranger.send(command.format(ref=ref))
    assert stranger.text == neutral and all(not r.files for r in stranger.last)
    await stranger.deliver(choice=f"t:files:{ref}")
    assert stranger.text == neutral and all(not r.files for r in stranger.last)
    assert await _entries(services, "evidence", "view") == []
