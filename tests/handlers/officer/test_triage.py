"""Officer triage through the channel-neutral tip line: enrol, queue, claim, read, ask, judge, case."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from handlers.officer.accounts import create_invite_code
from storage.audit import verify_audit
from storage.models import AuditEntry, FollowUp, Officer, Tip, TipField
from storage.keys import load_data_key
from storage.officers import revoke_officer
from storage.tips import read_tip_fields
from tests.handlers.citizen.test_tipoff import walk_to_review
from tests.support.chat import ChatClient


async def submit_tip(tipline, chat_id: str, *, category="Drugs") -> str:
    citizen = ChatClient(tipline, chat_id=chat_id, language="en")
    await walk_to_review(citizen, category=category, with_photo=True)
    await citizen.click("Send the tip")
    assert "Receipt code" in citizen.text
    return citizen.text.split("Receipt code: ")[1].split()[0]


async def enrol(services, tipline, chat_id: str, *, unit="ca-benthanh", role="officer", name="Đại úy Lan") -> ChatClient:
    code = await create_invite_code(services, unit_id=unit, role=role, name=name)
    officer = ChatClient(tipline, chat_id=chat_id, language="en")
    await officer.send(f"/enroll {code}")
    assert "You are enrolled" in officer.text
    assert officer.last[0].commands_menu == ("officer" if role == "officer" else "supervisor")
    return officer


async def test_whole_triage(services, tipline):
    code = await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    await officer.send("/queue")
    assert "Open tips: 1" in officer.text and "Drugs" in officer.text
    await officer.send("/next")
    view, evidence, told = officer.last
    assert "Người đàn ông áo đỏ" in view.text and "anonymous" in view.text
    assert evidence.files and evidence.files[0].data[:2] == b"\xff\xd8"
    assert told.to is not None and told.to.chat_id == "111" and "being reviewed" in told.text
    ref = view.text.split(" · ")[0].split()[-1]
    await officer.send(f"/ask {ref} Bạn có nhớ biển số xe không?")
    sent, question = officer.last
    assert "sent to the tipster" in sent.text and question.to.chat_id == "111"
    tipster = ChatClient(tipline, chat_id="111", language="en")
    await tipster.send("Biển số 59X1-123.45")
    thanks, to_officer = tipster.last
    assert "passed on" in thanks.text and to_officer.to.chat_id == "900"
    await officer.send(f"/tip {ref}")
    assert "Biển số 59X1-123.45" in officer.last[0].text
    await officer.click("Valuable")
    reply, told = officer.last
    assert "judged valuable" in reply.text and told.to.chat_id == "111"
    await officer.send(f"/case {ref} 125/2026/HS 3")
    assert "linked to case 125/2026/HS" in officer.text
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        assert (tip.status, tip.case_ref, tip.subject_count) == ("valuable", "125/2026/HS", 3)
        check = await verify_audit(session=session, keyring=services.keyring)
        actions = [e.action for e in (await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all()]
    assert check.ok and actions.count("view") == 2 and "verdict" in actions and "ask" in actions
    await ChatClient(tipline, chat_id="222", language="en").send(f"/status {code}")


async def test_officers_pressing_next_at_once_keep_one_audit_chain(services, tipline):
    """Each /next chains its claim, its view and the evidence sent onto the entry before them; two officers
    pressing at the same moments (on PostgreSQL, side by side) still leave one unbroken chain with every view."""
    for n in range(4):
        await submit_tip(tipline, f"11{n}")
    officers = [await enrol(services, tipline, f"90{n}", name=f"Cán bộ {n}") for n in range(2)]
    views: list[str] = []

    async def press(officer: ChatClient) -> None:
        for _ in range(2):
            await officer.send("/next")
            view, evidence, told = officer.last
            assert "Người đàn ông áo đỏ" in view.text and evidence.files and "being reviewed" in told.text
            views.append(view.text.split(" · ")[0].split()[-1])

    await asyncio.gather(*(press(officer) for officer in officers))
    assert len(set(views)) == 4
    async with services.db.transaction() as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.tip_ref.is_not(None)))).all()
        check = await verify_audit(session=session, keyring=services.keyring)
    assert check.ok, check.reason
    for action in ("claim", "view", "evidence"):
        assert sorted(e.tip_ref for e in entries if e.action == action) == sorted(views)


@pytest.mark.parametrize("command", ["/queue", "/next", "/tip ABC123", "/valuable ABC123", "/notvaluable ABC123 false",
                                     "/note ABC123 x", "/release ABC123", "/transfer ABC123 ca-hn", "/case ABC123 1 1",
                                     "/ask ABC123 hi", "/whoami"])
async def test_non_officers_learn_nothing(tipline, command):
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("blah blah")
    neutral = stranger.text
    await stranger.send(command)
    assert stranger.text == neutral


async def test_forged_button_gets_the_neutral_answer(services, tipline):
    await submit_tip(tipline, "111")
    async with services.db.transaction() as session:
        ref = (await session.exec(select(Tip.ref))).one()
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("hello")
    neutral = stranger.text
    await stranger.deliver(choice=f"t:valuable:{ref}")
    assert stranger.text == neutral
    async with services.db.transaction() as session:
        assert (await session.exec(select(Tip.status))).one() == "new"


async def test_officer_outside_scope_sees_nothing(services, tipline):
    await submit_tip(tipline, "111")
    async with services.db.transaction() as session:
        ref = (await session.exec(select(Tip.ref))).one()
    other = await enrol(services, tipline, "901", unit="ca-saigon")
    await other.send(f"/tip {ref}")
    assert f"There is no tip {ref} in your units" in other.text
    await other.send("/next")
    assert "No tip is waiting" in other.text
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send("/queue")
    assert "Open tips: 1" in boss.text


async def test_bad_triage_input_changes_nothing(services, tipline):
    await submit_tip(tipline, "111")
    async with services.db.transaction() as session:
        ref = (await session.exec(select(Tip.ref))).one()
    officer = await enrol(services, tipline, "900")
    await officer.send("/tip ZZZZZZ")
    assert "There is no tip ZZZZZZ" in officer.text
    await officer.send(f"/notvaluable {ref}")
    assert "Why is tip" in officer.text
    await officer.click("Untrue")
    assert "not valuable" in officer.text
    await officer.send(f"/valuable {ref}")
    assert "already judged" in officer.text
    async with services.db.transaction() as session:
        assert (await session.exec(select(Tip.status))).one() == "not_valuable"


async def test_a_number_answers_the_officers_question_not_the_menu(services, tipline):
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    tipster = ChatClient(tipline, chat_id="111", language="en")
    await tipster.send("/start")  # the last thing the tipster saw is the numbered menu
    await officer.send(f"/ask {ref} How many people were there?")
    await tipster.send("2")
    assert "passed on" in tipster.last[0].text
    await officer.send(f"/tip {ref}")
    assert "the tipster · Answer: 2" in officer.last[0].text


async def test_a_verdict_forgets_the_tipsters_route_and_withdraws_questions(services, tipline):
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/ask {ref} Còn gì nữa không?")
    await officer.send(f"/valuable {ref}")
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        names = set(await read_tip_fields(session=session, data_key=key))  # the route's row stays, sealed empty
        waiting = (await session.exec(select(FollowUp))).all()
    assert "reply_route" not in names and "description" in names and waiting == []
    await officer.send(f"/case {ref} 12/2026 1")
    assert "linked to case" in officer.text


async def test_a_revoked_officer_loses_the_menu_and_the_commands(services, tipline):
    officer = await enrol(services, tipline, "900")
    async with services.db.transaction() as session:
        officer_id = (await session.exec(select(Officer.id))).one()
        await revoke_officer(session=session, officer_id=officer_id, now=services.clock())
    await officer.send("/queue")
    assert officer.last[-1].commands_menu == "citizen"
    assert "did not understand" in officer.text


async def test_an_officer_on_zalo_is_told_the_evidence_could_not_come(services, tipline):
    """Zalo Bot takes no uploads: /tip must not look as if the tip had no evidence."""
    await submit_tip(tipline, "111")  # with a photo
    code = await create_invite_code(services, unit_id="ca-benthanh", role="officer", name="Đại úy Lan")
    officer = ChatClient(tipline, chat_id="901", channel="zalo", language="en")
    await officer.send(f"/enroll {code}")
    replies = await officer.send("/next")
    assert all(not r.files for r in replies)
    [evidence] = [r.text for r in replies if r.to is None and r.text.startswith("Evidence of ")]
    assert "This chat cannot receive files, so these were not sent: " \
        "photo" in evidence and "The bot on Telegram sends them." in evidence
