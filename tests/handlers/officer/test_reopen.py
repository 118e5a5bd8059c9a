"""After a supervisor's /reopen: what the tipster's /status says, what /ask answers, and what the officers'
views (/tip, /queue, /judged, /next, /stats) show of a tip that is in review again; what becomes of its case
link when the verdict is reversed; who holds it when the officer who judged it was revoked; and the history
of its verdicts, oldest first."""

from __future__ import annotations

import asyncio
from datetime import timedelta, timezone

import pytest
from sqlmodel import select

from handlers.operations.officers import revoke
from storage import tip_states
from storage.audit import append_audit
from storage.models import AuditEntry, Officer, Tip
from storage.officers import revoke_officer, still_enrolled, tips_held_by
from storage.triage import tip_by_ref
from tests.handlers.citizen.test_tipoff import walk_to_review
from tests.handlers.officer.test_export import docx_text, timeline_rows
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient

ASKED = "Bạn có nhớ biển số xe không?"


async def _ref(services) -> str:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip.ref))).one()


async def _tip(services, ref: str) -> Tip:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip).where(Tip.ref == ref))).one()


async def _status(tipline, code: str) -> str:
    """What the tipster reads of their tip, asked from another account (the code is all /status needs)."""
    citizen = ChatClient(tipline, chat_id="222", language="en")
    await citizen.send(f"/status {code}")
    return citizen.text.split("Status: ")[1]


async def _judged_then_reopened(services, tipline, verdict: str):
    code = await submit_tip(tipline, "111")  # anonymous, and open to the officer's questions (the default)
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    command, _sep, reason = verdict.partition(" ")  # "valuable", "notvaluable thieu"
    await officer.send(f"/{command} {ref} {reason}".strip())
    assert "is judged" in officer.text
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send(f"/reopen {ref} Cần xác minh lại biển số")
    assert "is reopened" in boss.text
    return code, ref, officer, boss


async def test_status_keeps_the_verdict_the_tipster_heard_while_a_reopened_tip_is_reviewed(services, tipline):
    code, ref, officer, boss = await _judged_then_reopened(services, tipline, "valuable")
    # "The tipster is not told", says the reopening: /status does not tell them either.
    valuable = "Judged valuable. Thank you for helping keep our community safe!"
    assert await _status(tipline, code) == valuable
    await officer.send(f"/note {ref} Đang xác minh")
    await officer.send(f"/release {ref}")  # back in the queue, then taken again
    assert await _status(tipline, code) == valuable
    await officer.send("/next")
    assert f"{ref} · " in officer.last[0].text and [r for r in officer.last if r.to] == []  # no "being reviewed"
    assert await _status(tipline, code) == valuable
    await boss.send(f"/transfer {ref} ca-saigon")
    assert "transferred" in boss.text
    assert await _status(tipline, code) == valuable
    # The next verdict is the tip's verdict: /status shows it (still never a reason for "not valuable").
    await boss.send(f"/notvaluable {ref} sai")
    assert await _status(tipline, code) == "Review finished. Thank you for your tip."


async def test_status_of_a_reopened_not_valuable_tip_still_says_the_review_finished(services, tipline):
    code, ref, officer, _boss = await _judged_then_reopened(services, tipline, "notvaluable thieu")
    finished = "Review finished. Thank you for your tip."
    assert await _status(tipline, code) == finished
    await officer.send(f"/valuable {ref}")
    assert await _status(tipline, code) == "Judged valuable. Thank you for helping keep our community safe!"


async def test_ask_after_a_reopening_says_the_verdict_closed_the_way_to_the_tipster(services, tipline):
    _code, ref, officer, _boss = await _judged_then_reopened(services, tipline, "valuable")
    replies = await officer.send(f"/ask {ref} {ASKED}")
    assert [r for r in replies if r.to] == []  # nothing goes out: the first verdict forgot where to send it
    assert officer.text == (f"Tip {ref} was judged before: the way to reach its tipster, if they left one, closed "
                            f"with that first verdict, and a reopening does not bring it back. The question was not sent.")
    assert "chose no follow-up" not in officer.text
    await officer.send("/language vi")
    await officer.send(f"/ask {ref} {ASKED}")
    assert officer.text.startswith(f"Tin báo {ref} đã được kết luận trước đây: cách liên hệ người báo tin")
    await officer.send("/language en")
    assert (await _tip(services, ref)).status == "in_review"  # not "waiting for the tipster": nobody was asked
    await officer.send(f"/tip {ref}")
    view = officer.last[0].text
    assert "declined follow-up" not in view
    assert ("• The tipster can no longer be asked questions: the way to reach them, if they left one, closed with the "
            "first verdict.") in view
    assert ASKED not in view


async def test_a_tipster_who_declined_follow_up_is_still_said_to_have_declined_before_a_verdict(services, tipline):
    """The other side of the answer above: without a verdict, "declined" is what the tip view and /ask say."""
    citizen = ChatClient(tipline, chat_id="111", language="en")
    await walk_to_review(citizen)
    await citizen.click("Edit: Identity")
    await citizen.click("Anonymous, and do not contact me again")
    await citizen.click("Send the tip")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/tip {ref}")
    assert "• The tipster declined follow-up questions." in officer.last[0].text
    await officer.send(f"/ask {ref} {ASKED}")
    assert officer.text == f"The tipster of {ref} chose no follow-up: the question cannot be delivered."


async def test_officers_views_of_a_reopened_tip_agree_that_it_is_in_review(services, tipline):
    _code, ref, officer, boss = await _judged_then_reopened(services, tipline, "valuable")
    await officer.send("/queue")
    assert "Open tips: 1" in officer.text and f"{ref} · " in officer.text and "in review" in officer.text
    await officer.send("/queue mine")
    assert f"{ref} · " in officer.text  # held by the officer who judged it
    await officer.send("/judged")
    assert ref not in officer.text  # it has no verdict now
    await officer.send("/next")
    assert officer.text == "No tip is waiting in your units."  # held, not waiting
    await officer.send(f"/tip {ref}")
    view = officer.last[0].text
    assert "in review" in view.splitlines()[0] and "• Verdict: " not in view
    assert "• Verdict reopened by Thiếu tá Minh on " in view
    assert {c.label for c in officer.last[0].choices} >= {"✅ Valuable", "❌ Not valuable", "↩️ Release"}
    await boss.send("/stats")
    assert "Valuable: 0" in boss.text and "Pending: <3" in boss.text  # counted as waiting, not as valuable


async def _audit(services, action: str) -> list[AuditEntry]:
    async with services.db.transaction() as session:
        return list((await session.exec(select(AuditEntry).where(AuditEntry.action == action)
                                        .order_by(AuditEntry.id))).all())


def _ref_of(replies) -> str:
    """The reference in the first line of a tip's view."""
    return replies[0].text.split(" · ")[0].split()[-1]


async def _officer_id(services, name: str) -> int:
    async with services.db.transaction() as session:
        return (await session.exec(select(Officer.id).where(Officer.name == name))).one()


# --- a case link across a reversed verdict ---------------------------------------------------------

async def test_a_valuable_tip_judged_not_valuable_after_a_reopening_loses_its_case_link(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.send(f"/valuable {ref}")
    await officer.send(f"/case {ref} 125/2026/HS 3")
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    replies = await boss.send(f"/reopen {ref} Người bán không khớp")
    assert replies[0].text == (f"The verdict on {ref} is reopened: the tip is in review again. The tipster is not "
                               f"told.\nIts link to case 125/2026/HS stays for now; a verdict of not valuable "
                               f"removes it.")
    assert (await _tip(services, ref)).case_ref == "125/2026/HS"
    await officer.send(f"/tip {ref}")
    assert "• Case 125/2026/HS, 3 subject(s)" in officer.last[0].text  # the link stays while it is reviewed

    await officer.send(f"/case {ref} 126/2026/HS 2")  # not valuable again yet: no new link, nor a changed one
    assert officer.text == (f"Tip {ref} is in review again after a reopening: it can be linked to a case once it "
                            f"is judged valuable again.")
    assert ((await _tip(services, ref)).case_ref, len(await _audit(services, "case"))) == ("125/2026/HS", 1)

    await officer.send(f"/notvaluable {ref} sai")
    assert officer.text == (f"Tip {ref} is judged not valuable: Untrue (false).\nIts link to case 125/2026/HS was "
                            f"removed: only a valuable tip is linked to a case.")
    tip = await _tip(services, ref)
    assert (tip.status, tip.case_ref, tip.subject_count) == ("not_valuable", None, 0)
    assert [e.detail for e in await _audit(services, "case")] == ["case=125/2026/HS subjects=3",
                                                                  "removed=not_valuable"]
    await officer.send(f"/tip {ref}")
    assert "• Case " not in officer.last[0].text

    [reply] = await officer.send(f"/export {ref}")
    whats = [what for _when, _who, what in timeline_rows(reply.files[0].data)[1:]]
    linked = whats.index("Linked to case 125/2026/HS with 3 subject(s)")
    removed = whats.index("Link to case 125/2026/HS removed: judged not valuable")
    assert linked < whats.index("Verdict reopened: Người bán không khớp") < removed
    assert whats[removed - 1] == "Verdict: not valuable: Untrue (false)"
    assert "Case | " not in docx_text(reply.files[0].data)

    await officer.send("/language vi")
    [reply] = await officer.send(f"/export {ref}")
    assert "Gỡ liên kết vụ án 125/2026/HS: kết luận không có giá trị" in docx_text(reply.files[0].data)


async def test_a_reopened_tip_judged_valuable_again_keeps_its_case_link(services, tipline):
    _code, ref, officer, boss = await _judged_then_reopened(services, tipline, "valuable")
    await officer.send(f"/valuable {ref}")
    await officer.send(f"/case {ref} 125/2026/HS 3")
    await boss.send(f"/reopen {ref} Xem lại số đối tượng")
    assert "Its link to case 125/2026/HS stays for now" in boss.text
    await officer.send(f"/valuable {ref}")
    assert "was removed" not in officer.text
    assert (await _tip(services, ref)).case_ref == "125/2026/HS"
    assert [e.detail for e in await _audit(services, "case")] == ["case=125/2026/HS subjects=3"]
    await officer.send(f"/case {ref} 125/2026/HS 4")  # judged valuable again: the link can be corrected
    assert (await _tip(services, ref)).subject_count == 4


async def test_case_on_a_tip_never_judged_is_refused_as_before(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.send(f"/case {ref} 125/2026/HS 3")
    assert officer.text == "Only a tip judged valuable can be linked to a case."


# --- who holds a reopened tip ----------------------------------------------------------------------

async def test_a_reopened_tip_goes_back_to_the_officer_who_judged_it(services, tipline):
    _code, ref, officer, boss = await _judged_then_reopened(services, tipline, "valuable")
    lan = await _officer_id(services, "Đại úy Lan")
    assert (await _tip(services, ref)).claimed_by == lan
    [reopened] = await _audit(services, "reopen")
    assert reopened.detail == f"from=valuable note=1 holder={lan}"
    assert "you hold" not in boss.text


async def test_a_revoked_judges_reopened_tip_is_held_by_the_reopening_supervisor(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.send(f"/valuable {ref}")
    lan = await _officer_id(services, "Đại úy Lan")
    done = await revoke(services, officer_id=lan)  # `tinbao officers revoke`
    assert done is not None and done.released == 0  # a judged tip is not the officer's to release
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    replies = await boss.send(f"/reopen {ref} Cần xác minh lại")
    minh = await _officer_id(services, "Thiếu tá Minh")
    assert [r.to for r in replies] == [None]  # nobody to tell: the judge is gone
    assert replies[0].text == (f"The verdict on {ref} is reopened: the tip is in review again. The tipster is not "
                               f"told.\nĐại úy Lan, who judged it, is no longer enrolled: you hold the tip now.")
    assert (await _tip(services, ref)).claimed_by == minh
    [reopened] = await _audit(services, "reopen")
    assert reopened.detail == f"from=valuable note=1 holder={minh}"
    await boss.send("/queue mine")
    assert f"{ref} · " in boss.text
    await boss.send("/language vi")
    await boss.send(f"/notvaluable {ref} sai")
    await boss.send(f"/reopen {ref} Lần nữa")
    assert "Đại úy Lan" not in boss.text  # the supervisor judged it last, and holds it again
    assert (await _tip(services, ref)).claimed_by == minh


async def test_revoking_an_officer_releases_their_open_tips_to_the_queue(services, tipline):
    for chat in ("111", "112", "113"):
        await submit_tip(tipline, chat)
    officer = await enrol(services, tipline, "900")
    colleague = await enrol(services, tipline, "901", name="Trung úy Hải")
    judged_ref, second = [_ref_of(await officer.send("/next")) for _ in range(2)]
    third = _ref_of(await colleague.send("/next"))
    await officer.send(f"/ask {second} {ASKED}")  # waiting for the tipster: still the officer's
    await officer.send(f"/valuable {judged_ref}")
    async with services.db.transaction() as session:
        waiting = [t.ref for t in (await session.exec(select(Tip).where(Tip.status == "needs_info"))).all()]
    assert waiting == [second]
    lan = await _officer_id(services, "Đại úy Lan")
    done = await revoke(services, officer_id=lan)
    assert done.officer.id == lan and done.released == 1
    tip = await _tip(services, second)
    assert (tip.status, tip.claimed_by) == ("new", None)
    assert (await _tip(services, judged_ref)).claimed_by == lan  # a verdict keeps its judge's name
    assert (await _tip(services, third)).claimed_by == await _officer_id(services, "Trung úy Hải")
    released = await _audit(services, "release")
    assert [(e.actor, e.tip_ref, e.detail) for e in released] == [("cli", second, f"revoked={lan}")]
    await colleague.send("/next")
    assert f"{second} · " in colleague.last[0].text  # back in the queue, for whoever takes it
    assert await revoke(services, officer_id=lan) is None  # revoked already: nothing more happens


# --- the verdict history /tip shows ------------------------------------------------------------------

def _local(entry: AuditEntry) -> str:
    return (entry.at.astimezone(timezone.utc) + timedelta(hours=7)).strftime("%d/%m/%Y %H:%M")


def _verdict_lines(view: str) -> list[str]:
    """The lines about the verdict above the timeline (which has verdicts of its own)."""
    above = view.split("\nTimeline:")[0].split("\nDiễn biến:")[0]
    return [line for line in above.splitlines()
            if line.startswith(("• Verdict", "• Current verdict", "• Kết luận")) or " mở lại kết luận lúc " in line]


async def test_a_tip_judged_once_shows_its_verdict(services, tipline):
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.send(f"/valuable {ref}")
    await officer.send(f"/tip {ref}")
    [verdict] = await _audit(services, "verdict")
    assert _verdict_lines(officer.last[0].text) == [f"• Verdict: valuable (Đại úy Lan, {_local(verdict)})"]


async def test_the_verdict_history_runs_oldest_first_and_ends_with_the_current_verdict(services, tipline):
    _code, ref, officer, boss = await _judged_then_reopened(services, tipline, "valuable")
    await officer.send(f"/tip {ref}")
    first, = await _audit(services, "verdict")
    reopened, = await _audit(services, "reopen")
    # Reopened, not judged again: the verdict it took back, and no current one.
    assert _verdict_lines(officer.last[0].text) == [
        f"• Verdict reopened by Thiếu tá Minh on {_local(reopened)} (was: valuable, Đại úy Lan, {_local(first)}): "
        f"Cần xác minh lại biển số"]
    await officer.send(f"/notvaluable {ref} sai")
    await boss.send(f"/reopen {ref} Người bán đã khai nhận")
    await boss.send(f"/valuable {ref}")
    await officer.send(f"/tip {ref}")
    view = officer.last[0].text
    v1, v2, v3 = await _audit(services, "verdict")
    r1, r2 = await _audit(services, "reopen")
    assert _verdict_lines(view) == [
        f"• Verdict reopened by Thiếu tá Minh on {_local(r1)} (was: valuable, Đại úy Lan, {_local(v1)}): "
        f"Cần xác minh lại biển số",
        f"• Verdict reopened by Thiếu tá Minh on {_local(r2)} (was: not valuable: Untrue (false), Đại úy Lan, "
        f"{_local(v2)}): Người bán đã khai nhận",
        f"• Current verdict: valuable (Thiếu tá Minh, {_local(v3)})"]
    timeline = view.split("\nTimeline:\n")[1].splitlines()
    assert [line.split(" · ", 1)[1] for line in timeline if "erdict" in line] == [
        "Đại úy Lan · Verdict: valuable",
        "Thiếu tá Minh · Verdict reopened: Cần xác minh lại biển số",
        "Đại úy Lan · Verdict: not valuable: Untrue (false)",
        "Thiếu tá Minh · Verdict reopened: Người bán đã khai nhận",
        "Thiếu tá Minh · Verdict: valuable"]
    assert view.count("Cần xác minh lại biển số") == 2  # with its reopening, above and in the timeline; not as a note

    await officer.send("/language vi")
    await officer.send(f"/tip {ref}")
    view = officer.last[0].text
    assert _verdict_lines(view)[1] == (f"• Thiếu tá Minh mở lại kết luận lúc {_local(r2)} (trước đó: không có giá "
                                       f"trị: Không đúng sự thật (sai), Đại úy Lan, {_local(v2)}): "
                                       f"Người bán đã khai nhận")
    assert _verdict_lines(view)[2] == f"• Kết luận hiện tại: có giá trị (Thiếu tá Minh, {_local(v3)})"
    assert " · Thiếu tá Minh · Mở lại kết luận: Người bán đã khai nhận" in view.split("\nDiễn biến:\n")[1]


# --- a reopen and a revoke at the same moment (PostgreSQL) --------------------------------------------

async def _judged_by_lan(services, tipline) -> tuple[str, int, ChatClient]:
    await submit_tip(tipline, "111")
    ref = await _ref(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.send(f"/valuable {ref}")
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    return ref, await _officer_id(services, "Đại úy Lan"), boss


def _needs_postgresql(services) -> None:
    if services.db.is_sqlite:
        pytest.skip("needs PostgreSQL (set TINBAO_TEST_DATABASE_URL): SQLite runs one writer at a time, so a "
                    "reopen and a revoke cannot overlap there")


async def test_a_revoke_during_a_reopen_waits_and_then_releases_the_tip(services, tipline):
    """The reopen checks the judge first and hands them the tip; the revoke, arriving before it commits,
    must wait for it and then find the tip to release, not miss it."""
    _needs_postgresql(services)
    ref, lan, _boss = await _judged_by_lan(services, tipline)
    async with services.db.transaction() as session:  # /reopen, held open just after its check
        tip = await tip_by_ref(session=session, ref=ref, lock=True)
        assert await still_enrolled(session=session, officer_id=lan)
        tip_states.reopen(session=session, tip=tip, now=services.clock(), holder_id=lan)
        await session.flush()
        revoking = asyncio.create_task(revoke(services, officer_id=lan))
        await asyncio.sleep(0.5)
        assert not revoking.done()  # the share lock on Lan's row holds the revoke back
    async with asyncio.timeout(10):
        done = await revoking
    assert done.released == 1
    tip = await _tip(services, ref)
    assert (tip.status, tip.claimed_by) == ("new", None)  # in the queue, not with a revoked officer
    assert [e.detail for e in await _audit(services, "release")] == [f"revoked={lan}"]


async def test_a_reopen_during_a_revoke_waits_and_then_gives_the_tip_to_the_supervisor(services, tipline):
    _needs_postgresql(services)
    ref, lan, boss = await _judged_by_lan(services, tipline)
    async with services.db.transaction() as session:  # the revoke, held open just after the officer's row changed
        assert await revoke_officer(session=session, officer_id=lan, now=services.clock()) is not None
        await session.flush()
        reopening = asyncio.create_task(boss.send(f"/reopen {ref} Cần xác minh lại"))
        await asyncio.sleep(0.5)
        assert not reopening.done()  # it waits to learn whether Lan is still enrolled
        assert await tips_held_by(session=session, officer_id=lan) == []  # judged: nothing to release
    async with asyncio.timeout(10):
        replies = await reopening
    assert "Đại úy Lan, who judged it, is no longer enrolled: you hold the tip now." in replies[0].text
    tip = await _tip(services, ref)
    assert (tip.status, tip.claimed_by) == ("in_review", await _officer_id(services, "Thiếu tá Minh"))


async def test_a_revoke_during_the_officers_own_turn_on_a_tip_waits_for_it(services, tipline):
    """The officer is working on a tip they hold (here /release: the tip locked, its audit entry still to
    come) when the revoke arrives: the revoke waits for the tip, and must not hold the audit log's lock
    meanwhile, or the two would wait for each other."""
    _needs_postgresql(services)
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    ref = _ref_of(await officer.send("/next"))
    lan = await _officer_id(services, "Đại úy Lan")
    async with services.db.transaction() as session:
        tip = await tip_by_ref(session=session, ref=ref, lock=True)
        revoking = asyncio.create_task(revoke(services, officer_id=lan))
        await asyncio.sleep(0.5)
        assert not revoking.done()  # waiting for the tip
        tip_states.release(session=session, tip=tip, now=services.clock())
        await append_audit(session=session, keyring=services.keyring, actor=f"officer:{lan}", action="release",
                           tip_ref=ref)
    async with asyncio.timeout(10):
        done = await revoking
    assert done.released == 0  # released by the officer already
    assert [e.actor for e in await _audit(services, "release")] == [f"officer:{lan}"]
    assert [e.detail for e in await _audit(services, "revoke")] == [f"officer={lan}"]
