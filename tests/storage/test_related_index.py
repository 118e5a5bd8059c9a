"""Related tips through the blind index, on both databases: tips that mention the same number, however it
was written, find each other; searches, figures, hand-made links and purges do what an officer expects;
and the database holds no identifier in any form, not even as a plain hash."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from handlers.related.extract import extract_identifiers, interpret_search
from storage import keys as key_store
from storage import related
from storage import tips as tip_store
from storage.crypto import DecryptionError
from storage.models import Tip
from tests.support.canaries import assert_none_found, database_places, phone_canary, text_canary

START = datetime(2026, 3, 1, tzinfo=timezone.utc)


async def file_tip(db, keyring, text: str, *, unit_id: str = "ca-benthanh", days: int = 0) -> str:
    """A submitted tip whose answers mention ``text``, indexed as submit will do it; returns the tip id."""
    async with db.transaction() as session:
        data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=tip_store.new_id())
        tip = await tip_store.create_tip(session=session, data_key=data_key, channel="telegram", category="fraud",
                                         area_code="79.26734", urgent=False, receipt_hash=tip_store.new_id(),
                                         fields={"description": text}, unit_id=unit_id)
        tip.created_at = START + timedelta(days=days)
        session.add(tip)
        await related.record_identifiers(session=session, keyring=keyring, data_key=data_key,
                                         identifiers=extract_identifiers(text))
        return tip.id


async def shared(db, keyring, tip_id: str) -> list[related.SharedIdentifier]:
    async with db.transaction() as session:
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=tip_id)
        return await related.related_tips(session=session, data_key=data_key)


async def test_tips_naming_one_phone_number_written_differently_are_related_with_their_units(db, keyring) -> None:
    first = await file_tip(db, keyring, "Nó gọi từ số 0987 654 456 bảo tôi chuyển tiền")
    second = await file_tip(db, keyring, "zalo +84987654456 lừa bán hàng", unit_id="ca-saigon", days=1)
    unrelated = await file_tip(db, keyring, "gọi 0912 345 678, xe 51F-123.45")

    groups = await shared(db, keyring, first)
    assert [(g.kind, g.masked) for g in groups] == [("phone", "09•••••456")]
    assert [(t.tip_id, t.unit_id) for t in groups[0].tips] == [(second, "ca-saigon")]
    # From the other side the same thread, and the zalo account (the same number) leads nowhere else.
    back = await shared(db, keyring, second)
    assert {(g.kind, tuple(t.tip_id for t in g.tips)) for g in back} == {("phone", (first,))}
    assert await shared(db, keyring, unrelated) == []


async def test_recording_the_same_identifiers_again_adds_nothing(db, keyring) -> None:
    tip_id = await file_tip(db, keyring, "STK 0071000123456 Vietcombank, gọi 0987654456")
    async with db.transaction() as session:
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=tip_id)
        again = await related.record_identifiers(
            session=session, keyring=keyring, data_key=data_key,
            identifiers=extract_identifiers("chuyển vào VCB 0071 000 123 456; sđt 0987.654.456; xe 29A 12345"))
    assert again == 1  # only the plate is new


async def test_a_searched_value_finds_the_tips_that_mention_it_in_the_units_asked(db, keyring) -> None:
    mine = await file_tip(db, keyring, "chuyển khoản STK 0071000123456 Vietcombank")
    other_unit = await file_tip(db, keyring, "tài khoản Vietcombank 0071 000 123 456", unit_id="ca-saigon", days=2)
    await file_tip(db, keyring, "STK 0071000123457 Vietcombank")

    async with db.transaction() as session:
        everywhere = await related.find_tips_by_value(session=session, keyring=keyring,
                                                      identifiers=interpret_search("0071000123456"))
        in_scope = await related.find_tips_by_value(session=session, keyring=keyring,
                                                    identifiers=interpret_search("0071 000 123 456"),
                                                    unit_ids=["ca-benthanh"])
        nothing = await related.find_tips_by_value(session=session, keyring=keyring,
                                                   identifiers=interpret_search("0987654456"))
    assert [(h.kind, h.tip.tip_id) for h in everywhere] == [("bank_account", other_unit), ("bank_account", mine)]
    assert [h.tip.tip_id for h in in_scope] == [mine]
    assert nothing == []


async def test_identifiers_reported_more_than_once_in_a_period_are_counted_most_first(db, keyring) -> None:
    for day in range(4):
        await file_tip(db, keyring, f"STK 1903555588801{day % 2} Techcombank, gọi 0987654456", days=day)
    await file_tip(db, keyring, "gọi 0987654456", days=40)  # outside the period
    await file_tip(db, keyring, "gọi 0987654456", unit_id="ca-saigon", days=1)  # outside the units

    async with db.transaction() as session:
        repeated = await related.repeated_identifiers(session=session, since=START, until=START + timedelta(days=31),
                                                      unit_ids=["ca-benthanh"])
        assert [(r.kind, r.tip_count) for r in repeated] == [("phone", 4), ("bank_account", 2), ("bank_account", 2)]
        sample = await key_store.load_data_key(session=session, keyring=keyring, owner_id=repeated[0].sample_tip_id)
        assert await related.open_masked(session=session, data_key=sample, digest=repeated[0].digest) == "09•••••456"
        everywhere = await related.repeated_identifiers(session=session, since=START, until=START + timedelta(days=60),
                                                        min_tips=5)
    assert [(r.kind, r.tip_count) for r in everywhere] == [("phone", 6)]


async def test_officers_link_two_tips_by_hand_and_both_tips_show_it(db, keyring) -> None:
    first = await file_tip(db, keyring, "Có người bán ma túy ở hẻm 42")
    second = await file_tip(db, keyring, "Hẻm 42 có người bán ma túy", unit_id="ca-saigon")
    async with db.transaction() as session:
        assert await related.link_tips(session=session, tip_id=second, other_tip_id=first, officer_id=7,
                                       reason="duplicate")
        assert not await related.link_tips(session=session, tip_id=first, other_tip_id=second, officer_id=8)
        assert not await related.link_tips(session=session, tip_id=first, other_tip_id=first, officer_id=8)
    async with db.transaction() as session:
        from_first = await related.links_of(session=session, tip_id=first)
        from_second = await related.links_of(session=session, tip_id=second)
    assert [(link.tip.tip_id, link.tip.unit_id, link.officer_id, link.reason) for link in from_first] == [
        (second, "ca-saigon", 7, "duplicate")]
    assert [link.tip.tip_id for link in from_second] == [first]
    async with db.transaction() as session:
        assert await related.unlink_tips(session=session, tip_id=first, other_tip_id=second)
        assert await related.links_of(session=session, tip_id=second) == []


async def test_a_purged_tip_no_longer_links_to_anything(db, keyring) -> None:
    kept = await file_tip(db, keyring, "gọi 0987654456, STK 0071000123456 VCB")
    purged = await file_tip(db, keyring, "sđt 0987 654 456")
    async with db.transaction() as session:
        await related.link_tips(session=session, tip_id=kept, other_tip_id=purged, officer_id=1)
        assert await related.delete_identifiers(session=session, tip_id=purged) == 1
        assert await related.delete_links(session=session, tip_id=purged) == 1
    assert await shared(db, keyring, kept) == []
    async with db.transaction() as session:
        hits = await related.find_tips_by_value(session=session, keyring=keyring,
                                                identifiers=interpret_search("0987654456"))
        assert [h.tip.tip_id for h in hits] == [kept]
        assert await related.links_of(session=session, tip_id=kept) == []


async def test_a_deleted_tip_takes_its_index_rows_with_it(db, keyring) -> None:
    kept = await file_tip(db, keyring, "gọi 0987654456")
    gone = await file_tip(db, keyring, "gọi 0987654456")
    async with db.transaction() as session:
        await session.delete(await session.get(Tip, gone))
    assert await shared(db, keyring, kept) == []


async def test_a_sealed_mask_moved_to_another_tip_does_not_open(db, keyring) -> None:
    first = await file_tip(db, keyring, "gọi 0987654456")
    second = await file_tip(db, keyring, "gọi 0987654456")
    async with db.transaction() as session:
        other_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=second)
        row = await session.get(related.RelatedIdentifier,
                                (related.digests(keyring=keyring, kind="phone", value="+84987654456")["r1"], first))
        with pytest.raises(DecryptionError):
            other_key.open_text(f"related:{row.digest}", row.masked)


async def test_another_keyring_makes_other_digests_so_a_copied_index_links_nothing(db, keyring, tmp_path) -> None:
    from storage.crypto import Keyring
    other = Keyring.create(tmp_path / "other" / "keyring.json")
    assert related.digests(keyring=keyring, kind="phone", value="+84987654456") != related.digests(
        keyring=other, kind="phone", value="+84987654456")
    assert related.digests(keyring=keyring, kind="phone", value="+84987654456") != related.digests(
        keyring=keyring, kind="ewallet", value="+84987654456")


TEXT = ("Lừa đảo qua zalo 0987 654 456, chuyển khoản STK 0071000123456 Vietcombank, ví MoMo 0912.345.678, "
        "xe 51F-123.45, facebook.com/lua.dao.shop, t.me/scam_boss_vn, tiktok.com/@hang.re.vn")
CANARIES = [
    phone_canary("phone", "0987654456"), phone_canary("wallet", "0912345678"),
    text_canary("account", "0071000123456"), text_canary("account grouped", "0071 000 123 456"),
    *(text_canary("plate", form) for form in ("51F-123.45", "51F12345", "51F-12345", "51f12345")),
    *(text_canary("handle", form) for form in ("lua.dao.shop", "scam_boss_vn", "hang.re.vn")),
    *(text_canary("mask", form) for form in ("09•••••456", "•••••456", "51F•••45", "lu•••••")),
]


def _plain_hashes(text: str) -> list[str]:
    """What a leaked database would be searched with by someone without the keyring: unkeyed hashes."""
    out = []
    for identifier in extract_identifiers(text):
        for message in (identifier.value, f"tinbao/v1|related|{identifier.kind}|{identifier.value}"):
            for algorithm in ("sha256", "sha1", "md5", "blake2b"):
                digest = hashlib.new(algorithm, message.encode()).hexdigest()
                out += [digest, digest[:2 * related.DIGEST_BYTES]]
    return out


async def test_the_database_holds_no_identifier_in_any_form(db, keyring) -> None:
    first = await file_tip(db, keyring, TEXT)
    await file_tip(db, keyring, TEXT, unit_id="ca-saigon")
    async with db.transaction() as session:
        rows = (await session.exec(related.select(related.RelatedIdentifier))).all()
    assert len(rows) == 2 * 9, [r.kind for r in rows]  # the index is there, to be scanned
    assert len(await shared(db, keyring, first)) == 9
    if db.is_sqlite:
        await db.checkpoint()
    places = await database_places(db)
    # Tip text is sealed as elsewhere; the index rows, masks included, must hold nothing readable either.
    assert_none_found(CANARIES + [text_canary("plain hash", h) for h in _plain_hashes(TEXT)], places)


async def test_counts_per_unit_are_exact_however_few_tips_are_listed(db, keyring) -> None:
    mine = await file_tip(db, keyring, "gọi 0987654456")
    ours = [await file_tip(db, keyring, "sđt 0987.654.456", days=day) for day in range(1, 5)]
    for day in range(3):
        await file_tip(db, keyring, "zalo 0987654456", unit_id="ca-saigon", days=day)
    async with db.transaction() as session:
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=mine)
        (group,) = await related.related_tips(session=session, data_key=data_key, unit_ids=["ca-benthanh"], limit=2)
        by_unit = await related.count_tips_by_value(session=session, keyring=keyring,
                                                    identifiers=interpret_search("+84 987 654 456"))
    assert [t.tip_id for t in group.tips] == [ours[3], ours[2]]  # the newest two of the officer's unit
    assert group.count_by_unit == {"ca-benthanh": 4, "ca-saigon": 3}
    assert by_unit == {"ca-benthanh": 5, "ca-saigon": 3}  # each tip once, though named as phone and as zalo
