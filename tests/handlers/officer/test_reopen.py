"""After a supervisor's /reopen: what the tipster's /status says, what /ask answers, and what the officers'
views (/tip, /queue, /judged, /next, /stats) show of a tip that is in review again."""

from __future__ import annotations

from sqlmodel import select

from storage.models import Tip
from tests.handlers.citizen.test_tipoff import walk_to_review
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
