"""Verdicts through the tip line: reasons in words and codes, "other" with its sealed explanation, "duplicate"
naming and linking the original, and a supervisor's reopening that the tipster never hears of."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from handlers.officer.maintenance import purge_not_valuable
from storage.models import AuditEntry, Tip
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient


async def _refs(services) -> list[str]:
    async with services.db.transaction() as session:
        return list((await session.exec(select(Tip.ref).order_by(Tip.created_at))).all())


async def _tip(services, ref: str) -> Tip:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip).where(Tip.ref == ref))).one()


async def _audit(services, action: str) -> list[AuditEntry]:
    async with services.db.transaction() as session:
        return list((await session.exec(select(AuditEntry).where(AuditEntry.action == action)
                                        .order_by(AuditEntry.id))).all())


async def _anywhere_in_the_database(services, needle: str) -> list[str]:
    """Every table and column whose raw value holds ``needle`` (as text or as UTF-8 bytes)."""
    found = []
    async with services.db.engine.connect() as conn:
        if services.db.is_sqlite:
            tables = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))).scalars().all()
        else:
            tables = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"))).scalars().all()
        for table in tables:
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                for value in row:
                    raw = value if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    if needle.encode() in bytes(raw):
                        found.append(table)
    return found


async def test_the_reason_list_shows_vietnamese_words_and_the_codes_to_type(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    officer = await enrol(services, tipline, "900")
    officer.language = "vi"
    await officer.send("/language vi")
    await officer.send(f"/notvaluable {ref}")
    assert officer.labels == ["Không đủ thông tin (thieu)", "Không đúng sự thật (sai)", "Trùng lặp (trung)",
                              "Không thuộc thẩm quyền (ngoai)", "Lý do khác (khac)"]
    await officer.send(f"/notvaluable {ref} ngoài")  # typed with its accents, or without
    assert officer.text == f"Tin báo {ref} đã được đánh giá không có giá trị: Không thuộc thẩm quyền (ngoai)."
    assert (await _tip(services, ref)).verdict_reason == "out_of_scope"  # the figures keep counting one code
    await officer.send(f"/tip {ref}")
    assert "Không thuộc thẩm quyền (ngoai)" in officer.last[0].text
    await officer.send("/help")
    assert "trung MÃ_TIN_GỐC: Trùng lặp" in officer.text and "khac LỜI_GIẢI_THÍCH: Lý do khác" in officer.text


async def test_other_takes_its_explanation_inline_sealed_and_shown_in_tip(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    officer = await enrol(services, tipline, "900")
    why = "Người báo tin nhầm địa chỉ quán"
    await officer.send(f"/notvaluable {ref} other {why}")
    assert officer.text == f"Tip {ref} is judged not valuable: Other (other)."
    tip = await _tip(services, ref)
    assert (tip.status, tip.verdict_reason) == ("not_valuable", "other")
    await officer.send(f"/tip {ref}")
    assert f"• Verdict: not valuable: Other (other): «{why}» (Đại úy Lan, " in officer.last[0].text
    assert await _anywhere_in_the_database(services, why) == []  # sealed, like every note
    assert await _anywhere_in_the_database(services, "nhầm") == []
    [verdict] = await _audit(services, "verdict")
    assert verdict.detail == "not_valuable reason=other note=1"


async def test_other_asks_for_the_explanation_as_the_next_message(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    await officer.click("Not valuable")
    await officer.click("Other")
    assert f"Why is tip {ref} not valuable? Send a short explanation as your next message" in officer.text
    assert (await _tip(services, ref)).status == "in_review"  # nothing judged before the explanation
    await officer.send("x" * 301)
    assert "Keep the explanation short" in officer.text and (await _tip(services, ref)).status == "in_review"
    await officer.send(f"/notvaluable {ref} khac")  # the question was asked once: it is asked again
    await officer.send("Đã xử lý trong vụ khác")
    assert officer.text == f"Tip {ref} is judged not valuable: Other (other)."
    await officer.send(f"/tip {ref}")
    assert "«Đã xử lý trong vụ khác»" in officer.last[0].text


async def test_the_question_is_asked_once_and_lapses(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/notvaluable {ref} other")
    await officer.send("/queue")  # something else: the question is dropped
    await officer.send("just chatting")
    assert "did not understand" in officer.text and (await _tip(services, ref)).status == "new"
    await officer.send(f"/notvaluable {ref} other")
    real_now = services.clock()
    services.clock = lambda: real_now + timedelta(minutes=16)
    await officer.send("much later")
    assert "did not understand" in officer.text and (await _tip(services, ref)).status == "new"


async def test_a_duplicate_names_its_original_and_both_tips_show_the_link(services, tipline):
    await submit_tip(tipline, "111")
    await submit_tip(tipline, "112")
    original, repeat = await _refs(services)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/notvaluable {repeat} trùng")
    assert f"Which tip does {repeat} repeat?" in officer.text
    await officer.send(original.lower())  # the next message is the original's reference
    assert officer.text == (f"Tip {repeat} is judged not valuable: Duplicate (duplicate).\n"
                            f"It is linked to {original}: /tip of either shows the other.")
    await officer.send(f"/tip {repeat}")
    assert f"• Verdict: not valuable: Duplicate (duplicate), a repeat of {original}" in officer.last[0].text
    assert f"• Linked: {original} (duplicate, " in officer.last[0].text
    await officer.send(f"/tip {original}")
    assert f"• Linked: {repeat} (duplicate, " in officer.last[0].text
    links = await _audit(services, "link")
    assert sorted((e.tip_ref, e.detail) for e in links) == sorted([
        (repeat, f"other={original} reason=duplicate"), (original, f"other={repeat} reason=duplicate")])
    [verdict] = await _audit(services, "verdict")
    assert verdict.detail == f"not_valuable reason=duplicate original={original}"


async def test_a_duplicate_of_a_tip_outside_ones_units_is_refused_as_unknown(services, tipline):
    await submit_tip(tipline, "111")
    await submit_tip(tipline, "112")
    theirs, mine = await _refs(services)
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send(f"/transfer {theirs} ca-saigon")
    officer = await enrol(services, tipline, "900")
    for original in (theirs, "ZZZZZZ"):
        await officer.send(f"/notvaluable {mine} duplicate {original}")
        assert officer.text == f"There is no tip {original} in your units."
    await officer.send(f"/notvaluable {mine} duplicate {mine}")
    assert officer.text == "A tip cannot be a duplicate of itself."
    assert (await _tip(services, mine)).status == "new" and not await _audit(services, "link")


async def test_a_supervisor_reopens_a_verdict_and_the_tipster_is_not_told_twice(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    replies = await officer.send(f"/valuable {ref}")
    assert [r.to.chat_id for r in replies if r.to] == ["111"]  # thanked, once
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    replies = await boss.send(f"/reopen {ref} Cần xác minh lại thông tin biển số")
    assert replies[0].text == f"The verdict on {ref} is reopened: the tip is in review again. The tipster is not told."
    [told] = [r for r in replies if r.to]
    assert told.to.chat_id == "900" and "Thiếu tá Minh reopened the verdict" in told.text
    assert "111" not in [r.to.chat_id for r in replies if r.to]
    tip = await _tip(services, ref)
    assert (tip.status, tip.verdict_at, tip.claimed_by is not None) == ("in_review", None, True)
    [reopened] = await _audit(services, "reopen")
    assert reopened.detail == f"from=valuable note=1 holder={tip.claimed_by}" and reopened.actor.startswith("officer:")
    assert await _anywhere_in_the_database(services, "xác minh lại") == []
    await officer.send(f"/tip {ref}")
    assert "• Verdict reopened by Thiếu tá Minh on " in officer.last[0].text
    assert ": Cần xác minh lại thông tin biển số" in officer.last[0].text
    assert [r for r in officer.last if r.to] == []  # reading it again tells the tipster nothing either
    replies = await officer.send(f"/valuable {ref}")
    assert "judged valuable" in replies[0].text and [r for r in replies if r.to] == []
    await boss.send(f"/reopen {ref} lần nữa")
    replies = await officer.send(f"/notvaluable {ref} sai")
    assert [r for r in replies if r.to] == []
    assert len(await _audit(services, "verdict")) == 3 and len(await _audit(services, "reopen")) == 2


async def test_reopening_is_a_supervisors_and_a_plain_officer_learns_nothing(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/notvaluable {ref} false")
    answers = set()
    for command in (f"/reopen {ref} sai", "/reopen ZZZZZZ sai", "/reopen"):
        await officer.send(command)
        answers.add(officer.text)
    assert answers == {"Only a supervisor or an admin can reopen a verdict."}
    assert (await _tip(services, ref)).status == "not_valuable" and not await _audit(services, "reopen")
    outsider = await enrol(services, tipline, "903", unit="ca-hn", role="supervisor", name="Thiếu tá Hà")
    await outsider.send(f"/reopen {ref} sai")
    assert outsider.text == f"There is no tip {ref} in your units."
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send(f"/reopen {ref}")
    assert boss.text == f"Write why after the reference: /reopen {ref} REASON"
    assert (await _tip(services, ref)).status == "not_valuable"


async def test_only_a_judged_unpurged_tip_is_reopened(services, tipline):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send(f"/reopen {ref} sai")
    assert boss.text == f"Tip {ref} has no verdict to reopen: it is new."
    await boss.send(f"/notvaluable {ref} thieu")
    assert await purge_not_valuable(services, now=services.clock() + timedelta(days=400)) == 1
    await boss.send(f"/reopen {ref} sai")
    assert boss.text == f"Tip {ref} was purged under the retention rules."
    assert (await _tip(services, ref)).status == "not_valuable"


@pytest.mark.parametrize("fields", [{"text": "/reopen {ref} sai"}, {"text": "/export {ref}"},
                                    {"choice": "t:nv:{ref}:other"}, {"choice": "t:nv:{ref}:duplicate"},
                                    {"text": "/notvaluable {ref} khac vì sao"}])
async def test_non_officers_learn_nothing_from_verdict_commands_or_buttons(services, tipline, fields):
    await submit_tip(tipline, "111")
    [ref] = await _refs(services)
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("blah blah")
    neutral = stranger.text
    await stranger.deliver(**{k: v.format(ref=ref) for k, v in fields.items()})
    assert stranger.text == neutral and all(not r.files for r in stranger.last)
    await stranger.send("a reason, if it had been asked for")
    assert stranger.text == neutral
    tip = await _tip(services, ref)
    assert (tip.status, tip.verdict_reason) == ("new", None)
    async with services.db.transaction() as session:
        assert (await session.exec(select(AuditEntry.action).where(AuditEntry.tip_ref == ref))).all() == []
