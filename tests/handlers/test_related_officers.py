"""Related tips as officers and supervisors meet them in the bot: "Liên quan" at the end of /tip, /search, /link,
the repeated identifiers in /stats and /baocao, a follow-up answer that ties two tips, a purge that unties
them, and `related reindex` that moves the index to a new key; each audited, none leaving a value in clear."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import func, select

from handlers.context import VIETNAM
from handlers.officer.maintenance import purge_not_valuable
from handlers.related.reindex import reindex
from storage import related
from storage.models import AuditEntry, Tip
from storage.related import RelatedIdentifier, RelatedLink
from tests.handlers.officer.test_triage import enrol
from tests.handlers.test_related_use_cases import ACCOUNT, BEN_THANH, SAI_GON, SCAMMER_PHONE, file_fraud_tip
from tests.support.canaries import assert_none_found, database_places, phone_canary, text_canary
from tests.support.chat import ChatClient

SAI_GON_NAME = "Công an phường Sài Gòn"


async def audit(services, action: str) -> list[AuditEntry]:
    async with services.db.transaction() as session:
        return list((await session.exec(select(AuditEntry).where(AuditEntry.action == action)
                                        .order_by(AuditEntry.id))).all())


async def three_tips(services, tipline) -> tuple[Tip, Tip, Tip]:
    """Two tips of Bến Thành and one of Sài Gòn naming the same scammer's phone or account."""
    first = await file_fraud_tip(services, tipline, "111", scammer="Zalo 0909 123 456, VCB 0123456789",
                                 people="Không rõ")
    second = await file_fraud_tip(services, tipline, "222", scammer="nó gọi từ +84909123456", people="Không rõ",
                                  unit_id=SAI_GON)
    third = await file_fraud_tip(services, tipline, "333", scammer="STK 0123456789 Vietcombank", people="Không rõ")
    return first, second, third


async def test_tip_ends_with_related_refs_in_scope_and_only_a_count_elsewhere(services, tipline) -> None:
    first, second, third = await three_tips(services, tipline)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/tip {first.ref}")
    view = officer.last[0].text
    assert "Related:" in view
    assert f"• Same phone number 09•••••456: 1 tip(s) at {SAI_GON_NAME}" in view
    assert f"• Same bank account •••••789: 1 in your units: {third.ref}" in view
    assert second.ref not in view and "ask for them through your supervisor" in view
    supervisor = await enrol(services, tipline, "901", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await supervisor.send(f"/tip {first.ref}")
    assert f"• Same phone number 09•••••456: 1 in your units: {second.ref}" in supervisor.last[0].text
    shown = await audit(services, "related")
    assert [(e.tip_ref, e.detail) for e in shown] == [
        (first.ref, "identifiers=2 shown=1 elsewhere=1 links=0"), (first.ref, "identifiers=2 shown=2 elsewhere=0 links=0")]


async def test_a_tip_sharing_nothing_has_no_related_part(services, tipline) -> None:
    lone = await file_fraud_tip(services, tipline, "111", scammer="gọi 0912 345 678", people="Không rõ")
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/tip {lone.ref}")
    assert "Related:" not in officer.last[0].text
    assert await audit(services, "related") == []


async def test_search_lists_the_tips_in_scope_counts_the_rest_and_is_audited(services, tipline) -> None:
    first, second, third = await three_tips(services, tipline)
    officer = await enrol(services, tipline, "900")
    await officer.send("/search 0909.123.456")
    answer = officer.text
    assert "Tips of your units that mention it: 1" in answer and first.ref in answer
    assert f"Other units: 1 tip(s) at {SAI_GON_NAME}" in answer and second.ref not in answer
    assert officer.labels == [first.ref]
    await officer.click(first.ref)
    assert "Related:" in officer.last[0].text  # the button opens the tip
    await officer.send("/search 0123 456 789")
    assert {first.ref, third.ref} <= set(officer.labels) and second.ref not in officer.text
    await officer.send("/search 0977 000 111")
    assert "No tip of your units mentions it." in officer.text
    await officer.send("/search hôm qua")
    assert "Send what to look for after /search" in officer.text
    searches = await audit(services, "search")
    assert [e.detail.split(" index=")[0] for e in searches] == [
        "kinds=phone+ewallet+zalo+telegram+bank_account found=1 elsewhere=1",
        "kinds=bank_account found=2 elsewhere=0",  # 0123… is no phone number (the 012 prefixes are gone)
        "kinds=phone+ewallet+zalo+telegram+bank_account found=0 elsewhere=0"]
    assert all(e.actor.startswith("officer:") for e in searches)


async def test_search_and_link_are_officers_commands_only(services, tipline) -> None:
    first, _second, third = await three_tips(services, tipline)
    stranger = ChatClient(tipline, chat_id="555", language="en")
    await stranger.send("blah")
    neutral = stranger.text
    for command in (f"/search {SCAMMER_PHONE}", f"/link {first.ref} {third.ref}"):
        await stranger.send(command)
        assert stranger.text == neutral
    assert await audit(services, "search") == [] and await audit(services, "link") == []


async def test_link_shows_in_both_timelines_and_refuses_a_tip_of_another_unit(services, tipline) -> None:
    first, second, third = await three_tips(services, tipline)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/link {first.ref} {third.ref} trùng")
    assert f"Tips {first.ref} and {third.ref} are linked" in officer.text
    await officer.send(f"/link {third.ref} {first.ref}")
    assert "already linked" in officer.text
    await officer.send(f"/tip {third.ref}")
    assert f"• Linked: {first.ref} (duplicate, " in officer.last[0].text
    await officer.send(f"/tip {first.ref}")
    assert f"• Linked: {third.ref} (duplicate, " in officer.last[0].text
    await officer.send(f"/link {first.ref} {second.ref}")
    assert f"There is no tip {second.ref} in your units." in officer.text
    await officer.send(f"/link {first.ref} {first.ref}")
    assert "cannot be linked to itself" in officer.text
    await officer.send(f"/link {first.ref}")
    assert "Use: /link REF OTHER_REF" in officer.text
    links = await audit(services, "link")
    assert [(e.tip_ref, e.detail) for e in links] == [(first.ref, f"other={third.ref} reason=duplicate"),
                                                      (third.ref, f"other={first.ref} reason=duplicate")]
    # Sài Gòn's officer linked to nothing of theirs sees nothing; the supervisor links across units, and
    # each unit then sees the other's tip counted, not named.
    supervisor = await enrol(services, tipline, "901", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await supervisor.send(f"/link {second.ref} {third.ref}")
    assert "are linked" in supervisor.text
    outsider = await enrol(services, tipline, "902", unit=SAI_GON, name="Trung úy Hà")
    await outsider.send(f"/tip {second.ref}")
    assert "• Linked: 1 tip(s) at Công an phường Bến Thành" in outsider.last[0].text
    assert third.ref not in outsider.last[0].text


async def test_a_follow_up_answer_ties_two_tips(services, tipline) -> None:
    first = await file_fraud_tip(services, tipline, "111", scammer="Zalo 0909 123 456", people="Không rõ")
    second = await file_fraud_tip(services, tipline, "222", scammer="Không nhớ", people="Không rõ")
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/tip {second.ref}")
    assert "Related:" not in officer.last[0].text
    await officer.send(f"/ask {second.ref} Nó dùng số điện thoại nào?")
    tipster = ChatClient(tipline, chat_id="222", language="en")
    await tipster.send("Hình như số 0909-123-456")
    assert "passed on" in tipster.last[0].text
    await officer.send(f"/tip {second.ref}")
    assert f"• Same phone number 09•••••456: 1 in your units: {first.ref}" in officer.last[0].text


async def test_a_purge_removes_the_tips_index_rows_and_links(services, tipline) -> None:
    first, _second, third = await three_tips(services, tipline)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/link {first.ref} {third.ref}")
    await officer.send(f"/tip {third.ref}")
    await officer.send(f"/notvaluable {third.ref} duplicate {first.ref}")
    assert "judged not valuable" in officer.text
    done = await purge_not_valuable(services, now=services.clock() + timedelta(days=400))
    assert done == 1
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(RelatedIdentifier)
                                   .where(RelatedIdentifier.tip_id == third.id))).one() == 0
        assert (await session.exec(select(func.count()).select_from(RelatedLink))).one() == 0
    await officer.send(f"/tip {first.ref}")
    view = officer.last[0].text
    assert third.ref not in view and "Same bank account" not in view and "Same phone number" in view


async def test_supervisors_figures_show_identifiers_named_by_several_tips_masked(services, tipline) -> None:
    for chat in ("111", "222", "333"):
        await file_fraud_tip(services, tipline, chat, scammer="STK 0123456789 VCB", people="Không rõ")
    for chat in ("444", "555"):  # named by two tips only: below the smallest count shown
        await file_fraud_tip(services, tipline, chat, scammer="gọi 0912345678", people="Không rõ", unit_id=SAI_GON)
    supervisor = await enrol(services, tipline, "901", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await supervisor.send("/stats month")
    text = supervisor.last[0].text
    assert "Identifiers reported in more than one tip (masked):\n• Bank account •••••789: 3 tips" in text
    assert "09•••••678" not in text and "Only those named in at least 3 tips are shown." in text
    today = services.clock().astimezone(VIETNAM).strftime("%d/%m/%Y")  # a report's days are Vietnam's days
    await supervisor.send(f"/baocao {today} {today}")
    assert "• Bank account •••••789: 3 tips" in supervisor.last[0].text
    await supervisor.send(f"/stats month {SAI_GON}")
    assert "Identifiers reported" not in supervisor.last[0].text
    assert_none_found([text_canary("account", ACCOUNT)], {"stats": text.encode()})


async def test_reindex_moves_every_row_to_a_new_key_and_retires_the_old(services, tipline) -> None:
    first, second, third = await three_tips(services, tipline)
    before = await related_refs(services, first)
    totals, steps = [], []
    result = await reindex(services, batch=2, on_total=totals.append, progress=steps.append)
    assert (result.key_id, result.tips, result.retired) == ("r2", 3, ("r1",))
    assert totals == [3] and sum(steps) == 3
    assert services.keyring.related_key_ids == ["r2"]
    async with services.db.transaction() as session:
        assert await related.rows_by_key(session=session) == {"r2": result.rows}
    assert await related_refs(services, first) == before
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/search {SCAMMER_PHONE}")
    assert first.ref in officer.text
    # Tips sent before related tips existed are indexed by a run that keeps the key.
    async with services.db.transaction() as session:
        await related.delete_identifiers(session=session, tip_id=third.id)
    again = await reindex(services, new_key=False)
    assert (again.key_id, again.tips, again.retired) == ("r2", 3, ())
    assert await related_refs(services, first) == before
    entries = await audit(services, "reindex")
    assert [e.detail.split(" rows=")[0] for e in entries] == ["key=r2 tips=3", "key=r2 tips=3"]


async def related_refs(services, tip: Tip) -> set[tuple[str, str]]:
    from storage.keys import load_data_key
    async with services.db.transaction() as session:
        data_key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        return {(group.kind, t.ref) for group in await related.related_tips(session=session, data_key=data_key)
                for t in group.tips}


async def test_no_identifier_is_left_in_clear_after_searches_links_and_views(services, tipline) -> None:
    first, second, third = await three_tips(services, tipline)
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/search {SCAMMER_PHONE}")
    await officer.send(f"/search {ACCOUNT}")
    await officer.send(f"/link {first.ref} {third.ref}")
    await officer.send(f"/tip {first.ref}")
    assert "Related:" in officer.last[0].text
    await reindex(services)
    if services.db.is_sqlite:
        await services.db.checkpoint()
    assert_none_found([phone_canary("scammer", SCAMMER_PHONE), text_canary("account", ACCOUNT),
                       text_canary("masked phone", "09•••••456"), text_canary("masked account", "•••••789")],
                      await database_places(services.db))
