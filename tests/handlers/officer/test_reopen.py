"""After a supervisor's /reopen: what the tipster's /status says of a tip that is in review again."""

from __future__ import annotations

from sqlmodel import select

from storage.models import Tip
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient

async def _ref(services) -> str:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip.ref))).one()


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
