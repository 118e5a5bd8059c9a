"""Related tips from tips filed through the real conversation: what "Liên quan" would show an officer, what
/search finds in and out of their scope, the figures, follow-up answers and purges; the tipster's own
phone number ties nothing together, and neither a search nor a shown link leaves an identifier behind."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from handlers.related.figures import repeated_identifier_figures
from handlers.related.indexing import forget_tip, index_texts, texts_to_index
from handlers.related.search import search_for_officer
from handlers.related.tip_view import relations_for_officer
from storage import related
from storage.keys import load_data_key
from storage.models import AuditEntry, Tip
from tests.support.canaries import assert_none_found, database_places, phone_canary, text_canary
from tests.support.chat import ChatClient

SCAMMER_PHONE, TIPSTER_PHONE, ACCOUNT = "0909123456", "0987650123", "0123456789"
BEN_THANH, SAI_GON = "ca-benthanh", "ca-saigon"


async def file_fraud_tip(services, tipline, chat_id: str, *, scammer: str, people: str, phone: str | None = None,
                         unit_id: str = BEN_THANH) -> Tip:
    """A citizen files a fraud tip in the bot; sending it indexes what it names."""
    citizen = ChatClient(tipline, chat_id=chat_id, language="en")
    await citizen.send("/report")
    await citizen.click("Fraud (incl. online fraud)")
    await citizen.send("Họ gọi điện mạo danh công an, bắt chuyển tiền để 'xác minh'.")
    await citizen.send(scammer)
    await citizen.click("Earlier")
    await citizen.send("ben thanh")
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    await citizen.send("Đường Lê Lợi")
    await citizen.send(people)
    await citizen.click("No evidence")
    if phone:
        await citizen.click("identity:phone")
        await citizen.send_contact(phone, is_own=True)
    else:
        await citizen.click("Anonymous (recommended)")
    assert "Please check your tip" in citizen.text
    await citizen.click("Send the tip")
    assert "Receipt code" in citizen.text
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip).order_by(Tip.created_at.desc()))).first()
        tip.unit_id = unit_id  # as if transferred there: the index follows the tip's unit
        session.add(tip)
    return tip


async def relations(services, tip: Tip, scope):
    async with services.db.transaction() as session:
        data_key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        return await relations_for_officer(session=session, keyring=services.keyring, data_key=data_key,
                                           tip_ref=tip.ref, scope_unit_ids=scope, actor="officer:1")


async def search(services, value: str, scope):
    async with services.db.transaction() as session:
        return await search_for_officer(session=session, keyring=services.keyring, value=value,
                                        scope_unit_ids=scope, actor="officer:1")


async def test_tips_naming_the_same_scammer_are_related_and_other_units_only_counted(services, tipline) -> None:
    first = await file_fraud_tip(services, tipline, "111", scammer="Zalo 0909 123 456, VCB 0123456789",
                                 people="Một phụ nữ giọng miền Bắc", phone=TIPSTER_PHONE)
    second = await file_fraud_tip(services, tipline, "222", scammer="STK 0123456789 Vietcombank, gọi +84909123456",
                                  people="Xe máy biển 59X1-123.45", unit_id=SAI_GON)
    third = await file_fraud_tip(services, tipline, "333", scammer="facebook.com/shop.uytin.99",
                                 people="Không rõ", phone=TIPSTER_PHONE)

    mine = await relations(services, first, [BEN_THANH])
    assert {(v.kind, v.masked, v.in_scope, tuple(v.elsewhere.items())) for v in mine.shared} == {
        ("phone", "09•••••456", (), ((SAI_GON, 1),)), ("bank_account", "•••••789", (), ((SAI_GON, 1),))}
    supervisor = await relations(services, first, [BEN_THANH, SAI_GON])
    assert {(v.kind, tuple(t.ref for t in v.in_scope)) for v in supervisor.shared} == {
        ("phone", (second.ref,)), ("bank_account", (second.ref,))}
    # The same tipster sent the first and third tips, with their own phone: that must link nothing.
    assert not await relations(services, third, [BEN_THANH, SAI_GON])


async def test_search_finds_a_number_however_it_is_typed_in_scope_and_counts_the_rest(services, tipline) -> None:
    first = await file_fraud_tip(services, tipline, "111", scammer="Zalo 0909 123 456", people="Không rõ",
                                 phone=TIPSTER_PHONE)
    await file_fraud_tip(services, tipline, "222", scammer="ví MoMo 0909.123.456", people="Không rõ", unit_id=SAI_GON)

    result = await search(services, "+84 909-123-456", [BEN_THANH])
    assert result.understood and "phone" in result.kinds
    assert [hit.tip.ref for hit in result.in_scope] == [first.ref]
    assert result.elsewhere == {SAI_GON: 1}
    assert (await search(services, "59X1 123.45", [BEN_THANH, SAI_GON])).in_scope == ()
    assert (await search(services, TIPSTER_PHONE, [BEN_THANH, SAI_GON])).in_scope == ()
    assert not (await search(services, "hôm qua", [BEN_THANH])).understood


async def test_searches_and_shown_relations_are_audited_without_the_identifier(services, tipline) -> None:
    first = await file_fraud_tip(services, tipline, "111", scammer="Zalo 0909 123 456, VCB 0123456789",
                                 people="Không rõ", phone=TIPSTER_PHONE)
    await file_fraud_tip(services, tipline, "222", scammer="gọi 0909123456", people="Không rõ")
    await search(services, "0909 123 456", [BEN_THANH])
    await relations(services, first, [BEN_THANH])
    async with services.db.transaction() as session:
        entries = (await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(e.actor, e.action, e.tip_ref) for e in entries if e.action in ("search", "related")] == [
        ("officer:1", "search", None), ("officer:1", "related", first.ref)]
    assert "found=2" in entries[-2].detail and "shown=1" in entries[-1].detail
    phone_index = related.digests(keyring=services.keyring, kind="phone", value="+84909123456")["r1"]
    assert phone_index[:12] in entries[-2].detail and phone_index not in entries[-2].detail
    if services.db.is_sqlite:
        await services.db.checkpoint()
    assert_none_found([phone_canary("scammer", SCAMMER_PHONE), phone_canary("tipster", TIPSTER_PHONE),
                       text_canary("account", ACCOUNT), text_canary("mask", "09•••••456")],
                      await database_places(services.db))


async def test_figures_count_identifiers_named_by_several_tips_masked(services, tipline) -> None:
    for chat in ("111", "222", "333"):
        await file_fraud_tip(services, tipline, chat, scammer="STK 0123456789 VCB", people="Không rõ")
    await file_fraud_tip(services, tipline, "444", scammer="gọi 0909123456", people="Không rõ", unit_id=SAI_GON)
    async with services.db.transaction() as session:
        newest = (await session.exec(select(Tip.created_at).order_by(Tip.created_at.desc()))).first()
        figures = await repeated_identifier_figures(
            session=session, keyring=services.keyring, since=newest - timedelta(days=1),
            until=newest + timedelta(seconds=1), unit_ids=[BEN_THANH, SAI_GON])
    assert [(f.kind, f.masked, f.tip_count) for f in figures] == [("bank_account", "•••••789", 3)]


async def test_a_follow_up_answer_links_and_a_purge_unlinks(services, tipline) -> None:
    first = await file_fraud_tip(services, tipline, "111", scammer="Zalo 0909 123 456", people="Không rõ")
    second = await file_fraud_tip(services, tipline, "222", scammer="facebook.com/shop.uytin.99", people="Không rõ")
    assert not await relations(services, first, [BEN_THANH])
    async with services.db.transaction() as session:
        data_key = await load_data_key(session=session, keyring=services.keyring, owner_id=second.id)
        assert await index_texts(session=session, keyring=services.keyring, data_key=data_key,
                                 texts=["Sau đó nó nhắn qua zalo 0909.123.456"]) == 2  # phone and zalo
    assert {v.kind for v in (await relations(services, first, [BEN_THANH])).shared} == {"phone", "zalo"}
    async with services.db.transaction() as session:
        await forget_tip(session=session, tip_id=second.id)
    assert not await relations(services, first, [BEN_THANH])


def test_only_typed_answers_are_read_never_the_tipsters_contact(services) -> None:
    answers = {"category": {"choice": "fraud"}, "description": {"text": "gọi 0909123456"},
               "when": {"choice": "earlier", "text": "tối qua, số 0912345678 gọi"}, "area": {"code": "79.26734"},
               "place": {"address": "số 5 Lê Lợi"}, "identity": {"mode": "phone", "phone": TIPSTER_PHONE}}
    assert texts_to_index(answers=answers, questionnaire=services.settings.questionnaire) == [
        "gọi 0909123456", "tối qua, số 0912345678 gọi", "số 5 Lê Lợi"]
