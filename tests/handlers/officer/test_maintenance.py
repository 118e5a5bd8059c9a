"""Timer and CLI jobs: officers reminded of waiting tips, tips judged not valuable purged after the
retention period, evidence files nothing points to swept, and an audit log that notices an entry
changed or deleted behind its back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, update
from sqlmodel import select

from handlers.officer.maintenance import anchor_audit, purge_not_valuable, remind_officers, sweep_stray_files
from handlers.messages import Route
from storage.audit import GENESIS, AuditAnchor, Head, append_audit, append_audits, verify_audit
from storage.db import Database
from storage.models import Attachment, AuditEntry, DataKeyRecord, Officer, Tip, TipField, utcnow
from storage.officers import revoke_officer
from storage.tips import open_attachments
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.images import jpeg_with_gps


async def _tip(services, ref: str) -> Tip:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip).where(Tip.ref == ref))).one()


async def _only_ref(services) -> str:
    async with services.db.transaction() as session:
        return (await session.exec(select(Tip.ref).order_by(Tip.created_at.desc()))).first()


async def _set(services, ref: str, **values) -> None:
    async with services.db.transaction() as session:
        await session.exec(update(Tip).where(Tip.ref == ref).values(**values))


def _by_chat(replies) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for reply in replies:
        assert reply.to is not None and reply.to.channel == "console"
        found.setdefault(reply.to.chat_id, []).append(reply.text)
    return found


# --- reminders -----------------------------------------------------------------------------------

@pytest.fixture
async def watchers(services, tipline):
    """Who is enrolled where: the tip's unit, the units above it and beside it."""
    await enrol(services, tipline, "900", unit="ca-benthanh", name="Đại úy Lan")
    await enrol(services, tipline, "905", unit="ca-benthanh", role="supervisor", name="Thiếu tá Bình")
    await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thượng tá Minh")
    await enrol(services, tipline, "906", unit="ca-hcm", role="admin", name="Đại tá An")
    await enrol(services, tipline, "903", unit="ca-hcm", name="Trung úy Phúc")  # a plain officer one level up
    await enrol(services, tipline, "901", unit="ca-saigon", name="Đại úy Tâm")  # the unit next door
    await enrol(services, tipline, "904", unit="ca-hn", role="supervisor", name="Thượng tá Hà")  # another city


async def test_an_unclaimed_tip_is_reminded_to_its_unit_and_the_supervisors_above(services, tipline, watchers):
    await submit_tip(tipline, "111")
    ref = await _only_ref(services)
    received = (await _tip(services, ref)).created_at
    limit = services.settings.triage.unclaimed_alert
    assert await remind_officers(services, now=received + limit - timedelta(minutes=1)) == []
    replies = await remind_officers(services, now=received + limit + timedelta(minutes=1))
    told = _by_chat(replies)
    assert sorted(told) == ["900", "902", "905", "906"]  # not 903 (plain officer above), 901, 904
    for chat, texts in told.items():
        assert len(texts) == 1, chat
        assert texts[0] == (f"1 tip(s) of Công an phường Bến Thành have been waiting too long: {ref}. "
                            f"Send /queue to see them.")
    assert all(r.to == Route("console", r.to.chat_id) for r in replies)
    # Soon after, the same tip is not reminded again; after another full period it is.
    soon = received + limit + timedelta(hours=2)
    assert await remind_officers(services, now=soon) == []
    again = await remind_officers(services, now=received + 2 * limit + timedelta(minutes=2))
    assert sorted(_by_chat(again)) == ["900", "902", "905", "906"]


async def test_one_message_per_officer_names_every_waiting_tip_of_the_unit(services, tipline, watchers):
    await submit_tip(tipline, "111")
    await submit_tip(tipline, "112")
    await submit_tip(tipline, "113")
    async with services.db.transaction() as session:
        refs = list((await session.exec(select(Tip.ref).order_by(Tip.created_at))).all())
    await _set(services, refs[2], unit_id="ca-saigon")  # as if transferred next door
    latest = (await _tip(services, refs[2])).created_at
    replies = await remind_officers(services, now=latest + services.settings.triage.unclaimed_alert
                                    + timedelta(minutes=1))
    told = _by_chat(replies)
    [lan] = told["900"]
    assert lan.startswith("2 tip(s) of Công an phường Bến Thành") and refs[0] in lan and refs[1] in lan
    assert refs[2] not in lan
    [tam] = told["901"]
    assert tam.startswith("1 tip(s) of Công an phường Sài Gòn") and refs[2] in tam
    assert sorted(told["902"]) == sorted([lan, tam])  # the city supervisor hears of both units
    assert "903" not in told and "904" not in told


async def test_a_tip_left_in_review_is_reminded_after_the_review_limit(services, tipline, watchers):
    await submit_tip(tipline, "111")
    ref = await _only_ref(services)
    lan = await enrol(services, tipline, "907", unit="ca-benthanh", name="Thiếu úy Nga")
    await lan.send("/next")
    tip = await _tip(services, ref)
    assert tip.status == "in_review"
    triage = services.settings.triage
    # Claimed: the "nobody took it" reminder no longer applies, and the review limit is not reached yet.
    assert await remind_officers(services, now=tip.claimed_at + triage.review_alert - timedelta(minutes=1)) == []
    replies = await remind_officers(services, now=tip.claimed_at + triage.review_alert + timedelta(minutes=1))
    told = _by_chat(replies)
    assert sorted(told) == ["900", "902", "905", "906", "907"]
    assert all(ref in texts[0] for texts in told.values())


async def test_judged_tips_are_not_reminded_and_revoked_officers_are_not_told(services, tipline, watchers):
    await submit_tip(tipline, "111")
    judged = await _only_ref(services)
    await submit_tip(tipline, "112")
    waiting = await _only_ref(services)
    officer = await enrol(services, tipline, "908", unit="ca-benthanh", name="Thiếu úy Nga")
    await officer.send(f"/valuable {judged}")
    async with services.db.transaction() as session:  # `tinbao officers revoke` for Đại úy Lan (chat 900)
        lan = (await session.exec(select(Officer).where(
            Officer.chat_key == services.keyring.pseudonym("cli", "900")))).one()
        assert await revoke_officer(session=session, officer_id=lan.id, now=utcnow()) is not None
    received = (await _tip(services, waiting)).created_at
    told = _by_chat(await remind_officers(services, now=received + timedelta(days=30)))
    # Everyone still enrolled at Bến Thành and above hears of the waiting tip; Lan no longer does.
    assert sorted(told) == ["902", "905", "906", "908"]
    for texts in told.values():
        assert texts == [f"1 tip(s) of Công an phường Bến Thành have been waiting too long: {waiting}. "
                         "Send /queue to see them."]  # and not of the judged one


# --- retention -----------------------------------------------------------------------------------

async def _content(services, ref: str) -> dict:
    """What a tip holds besides its clear row: sealed fields, attachments, blob files and the data key."""
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip).where(Tip.ref == ref))).one()
        fields = (await session.exec(select(func.count()).select_from(TipField).where(TipField.tip_id == tip.id))).one()
        attachments = (await session.exec(select(Attachment).where(Attachment.owner_id == tip.id))).all()
        key = await session.get(DataKeyRecord, tip.id)
    return {"fields": fields, "attachments": len(attachments), "key": key is not None,
            "files": [services.blobs.root / a.blob_name for a in attachments]}


async def test_purge_deletes_old_not_valuable_content_and_keeps_the_counts(services, tipline):
    for chat in ("111", "112", "113"):
        await submit_tip(tipline, chat)
    async with services.db.transaction() as session:
        old, valuable, recent = (await session.exec(select(Tip.ref).order_by(Tip.created_at))).all()
    officer = await enrol(services, tipline, "900")
    await officer.send(f"/notvaluable {old} false")
    await officer.send(f"/valuable {valuable}")
    await officer.send(f"/notvaluable {recent} insufficient")
    now = utcnow()
    retention = services.settings.triage.purge_not_valuable_after
    await _set(services, old, verdict_at=now - retention - timedelta(days=1))
    await _set(services, valuable, verdict_at=now - retention - timedelta(days=30))  # old, but valuable: kept
    before = {ref: await _content(services, ref) for ref in (old, valuable, recent)}
    doomed_files = before[old]["files"]
    assert before[old]["fields"] > 0 and before[old]["attachments"] == 1 and before[old]["key"]
    assert doomed_files and all(path.exists() for path in doomed_files)

    seen = []
    assert await purge_not_valuable(services, now=now, progress=lambda done, total: seen.append((done, total))) == 1
    assert seen == [(1, 1)]

    after = await _content(services, old)
    assert (after["fields"], after["attachments"], after["key"]) == (0, 0, False)
    assert not any(path.exists() for path in doomed_files)
    purged = await _tip(services, old)
    assert (purged.status, purged.verdict_reason, purged.category, purged.area_code, purged.unit_id) == (
        "not_valuable", "false", "drugs", "79.26734", "ca-benthanh")
    assert purged.purged_at is not None and abs((purged.purged_at - now).total_seconds()) < 1
    for ref in (valuable, recent):
        kept = await _content(services, ref)
        assert kept == before[ref] and all(path.exists() for path in kept["files"])
        assert (await _tip(services, ref)).purged_at is None
    async with services.db.transaction() as session:
        # The figures still count it: two tips judged not valuable, one valuable.
        counts = dict((await session.exec(select(Tip.status, func.count()).group_by(Tip.status))).all())
        purges = (await session.exec(select(AuditEntry).where(AuditEntry.action == "purge"))).all()
        check = await verify_audit(session=session, keyring=services.keyring)
    assert counts == {"not_valuable": 2, "valuable": 1}
    assert [(p.actor, p.tip_ref) for p in purges] == [("system", old)]
    assert check.ok
    assert await purge_not_valuable(services, now=now + timedelta(days=1)) == 0  # nothing twice


async def test_purge_works_in_batches(services, tipline):
    for chat in ("111", "112", "113"):
        await submit_tip(tipline, chat)
    async with services.db.transaction() as session:
        refs = list((await session.exec(select(Tip.ref))).all())
    officer = await enrol(services, tipline, "900")
    for ref in refs:
        await officer.send(f"/notvaluable {ref} false")
    far = utcnow() + services.settings.triage.purge_not_valuable_after + timedelta(days=1)
    seen = []
    assert await purge_not_valuable(services, now=far, batch=2, progress=lambda d, t: seen.append((d, t))) == 3
    assert seen == [(2, 3), (3, 3)]
    for ref in refs:
        assert (await _content(services, ref))["fields"] == 0


# --- the audit chain -----------------------------------------------------------------------------

@pytest.fixture
async def audited(services, tipline) -> list[AuditEntry]:
    """A few real actions, so the log has several entries of different kinds."""
    await submit_tip(tipline, "111")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = await _only_ref(services)
    await officer.send(f"/note {ref} xác minh lại")
    await officer.send(f"/valuable {ref}")
    async with services.db.transaction() as session:
        entries = list((await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all())
        assert (await verify_audit(session=session, keyring=services.keyring)).ok
    assert len(entries) >= 6
    return entries


async def _verify(services):
    async with services.db.transaction() as session:
        return await verify_audit(session=session, keyring=services.keyring)


def _body(prev_hash: str, entry: AuditEntry) -> bytes:
    return json.dumps({"prev": prev_hash, "at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action,
                       "tip": entry.tip_ref, "detail": entry.detail}, sort_keys=True, ensure_ascii=False).encode()


async def _rechain(services, start_index: int, entries: list[AuditEntry], digest) -> None:
    """What a forger with database access does: rewrite the hashes from the changed entry onward."""
    prev = entries[start_index - 1].hash if start_index else GENESIS
    async with services.db.transaction() as session:
        for entry in entries[start_index:]:
            fresh = await session.get(AuditEntry, entry.id)
            new_hash = digest(_body(prev, fresh))
            await session.exec(update(AuditEntry).where(AuditEntry.id == entry.id).values(prev_hash=prev, hash=new_hash))
            prev = new_hash


async def test_an_entry_changed_in_the_database_is_found(services, audited):
    target = audited[3]
    async with services.db.transaction() as session:
        await session.exec(update(AuditEntry).where(AuditEntry.id == target.id).values(detail="nothing to see"))
    check = await _verify(services)
    assert (check.ok, check.broken_at, check.entries) == (False, target.id, 3)
    assert check.reason == "this entry was changed"


async def test_an_entry_deleted_from_the_database_is_found(services, audited):
    gone, following = audited[2], audited[3]
    async with services.db.transaction() as session:
        await session.exec(delete(AuditEntry).where(AuditEntry.id == gone.id))
    check = await _verify(services)
    assert (check.ok, check.broken_at, check.entries) == (False, following.id, 2)
    assert check.reason == "an entry before it was changed or deleted"


async def test_hashes_recomputed_without_the_key_do_not_fool_the_check(services, audited):
    index = 3
    async with services.db.transaction() as session:
        await session.exec(update(AuditEntry).where(AuditEntry.id == audited[index].id).values(detail="forged"))
    await _rechain(services, index, audited, lambda body: hashlib.sha256(body).hexdigest())
    check = await _verify(services)
    assert (check.ok, check.broken_at) == (False, audited[index].id)
    # The same rewrite with the keyring's chain key does pass: so it is the key, not a slip in the
    # forger's arithmetic above, that stops it.
    key = services.keyring.audit_key()
    await _rechain(services, index, audited, lambda body: hmac.new(key, body, hashlib.sha256).hexdigest())
    assert (await _verify(services)).ok


async def test_a_deleted_entry_with_the_chain_recomputed_without_the_key_is_found(services, audited):
    index = 2
    async with services.db.transaction() as session:
        await session.exec(delete(AuditEntry).where(AuditEntry.id == audited[index].id))
    rest = audited[:index] + audited[index + 1:]
    await _rechain(services, index, rest, lambda body: hashlib.sha256(body).hexdigest())
    check = await _verify(services)
    assert (check.ok, check.broken_at) == (False, rest[index].id)


async def test_appends_from_two_database_engines_at_once_keep_one_chain(database_url, db, keyring):
    """The bot and a CLI command (`tinbao officers invite`, `purge`) append at the same moment: here two
    engines with their own pools and locks in one process, sharing only the database, as two processes do."""
    other = Database(database_url)  # its own engine and locks, as another process has

    async def append(database, who: str) -> None:
        for i in range(60):
            async with database.transaction() as session:
                await append_audit(session=session, keyring=keyring, actor=who, action="test", detail=str(i))

    try:
        await asyncio.gather(append(db, "bot"), append(other, "cli"))
    finally:
        await other.dispose()
    async with db.transaction() as session:
        check = await verify_audit(session=session, keyring=keyring)
    assert (check.ok, check.entries) == (True, 120), check


async def test_entries_written_together_keep_their_order_in_one_chain_with_appends_beside_them(database_url, db,
                                                                                             keyring):
    """/next writes its claim and its view in one statement while others append one entry at a time: the
    chain stays whole, and each command's entries follow one another in the order it gave them."""
    other = Database(database_url)

    async def together(i: int) -> list[int]:
        async with db.transaction() as session:
            first = await append_audits(session=session, keyring=keyring, actor="bot", entries=[
                ("claim", f"T{i}", ""), ("view", f"T{i}", ""), ("evidence", f"T{i}", "files=1")])
            # and again in the same transaction, chained onto what it just wrote
            return first + await append_audits(session=session, keyring=keyring, actor="bot",
                                               entries=[("note", f"T{i}", ""), ("view", f"T{i}", "")])

    async def one_by_one() -> None:
        for i in range(60):
            async with other.transaction() as session:
                await append_audit(session=session, keyring=keyring, actor="cli", action="test", detail=str(i))

    try:
        written = await asyncio.gather(one_by_one(), *(together(i) for i in range(20)))
    finally:
        await other.dispose()
    async with db.transaction() as session:
        check = await verify_audit(session=session, keyring=keyring)
        entries = {e.id: e for e in (await session.exec(select(AuditEntry))).all()}
    assert (check.ok, check.entries) == (True, 60 + 20 * 5), check
    for i, ids in enumerate(written[1:]):
        assert ids == sorted(ids)
        assert [(entries[n].action, entries[n].tip_ref) for n in ids] == [
            (action, f"T{i}") for action in ("claim", "view", "evidence", "note", "view")]
        assert all(entries[later].prev_hash == entries[earlier].hash for earlier, later in zip(ids, ids[1:]))


# --- files nothing points to -------------------------------------------------------------------

class _RolledBack(Exception):
    pass


async def test_sweep_deletes_evidence_files_left_by_a_rolled_back_transaction(services):
    from storage.keys import create_data_key
    from storage.tips import new_id, save_attachment

    photo = jpeg_with_gps()
    with pytest.raises(_RolledBack):  # e.g. the connection drops after the file is written
        async with services.db.transaction() as session:
            key = await create_data_key(session=session, keyring=services.keyring, owner_id=new_id())
            await save_attachment(session=session, blobs=services.blobs, data_key=key, kind="photo", data=photo,
                                  filename="a.jpg", mime="image/jpeg")
            raise _RolledBack
    async with services.db.transaction() as session:
        key = await create_data_key(session=session, keyring=services.keyring, owner_id=new_id())
        kept = await save_attachment(session=session, blobs=services.blobs, data_key=key, kind="photo", data=photo,
                                     filename="b.jpg", mime="image/jpeg")
    half_written = services.blobs.root / ".0123abcd.tmp"  # a crash in the middle of a write
    half_written.write_bytes(b"partial")
    [stray] = {p.name for p in services.blobs.root.iterdir()} - {kept.blob_name, half_written.name}
    async with services.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 1  # the first was rolled back

    now = utcnow()
    # Within the grace period a file may still be waiting for its commit: nothing is touched.
    assert await sweep_stray_files(services, now=now) == 0
    assert len(list(services.blobs.root.iterdir())) == 3
    hours_ago = (now - timedelta(hours=2)).timestamp()
    for path in services.blobs.root.iterdir():
        os.utime(path, (hours_ago, hours_ago))
    assert await sweep_stray_files(services, now=now) == 2
    assert [p.name for p in services.blobs.root.iterdir()] == [kept.blob_name]
    async with services.db.transaction() as session:
        [opened] = await open_attachments(session=session, blobs=services.blobs, data_key=key)
    assert opened[0] == "photo" and opened[2] == "b.jpg"  # the tip's own evidence is untouched
    assert await sweep_stray_files(services, now=now) == 0
    assert stray not in {p.name for p in services.blobs.root.iterdir()}


# --- the head kept outside the database ------------------------------------------------------------

async def test_the_anchor_finds_entries_cut_off_or_cut_and_written_over(services, audited, tmp_path):
    services.audit_anchor = AuditAnchor(tmp_path / "audit-anchor.json")
    assert await anchor_audit(services)
    head = services.audit_anchor.read()
    assert (head.entry_id, head.hash) == (audited[-1].id, audited[-1].hash)
    assert not await anchor_audit(services)  # nothing new: the file is left as it is

    async def check():
        async with services.db.transaction() as session:
            return await verify_audit(session=session, keyring=services.keyring, anchor=services.audit_anchor.read())
    assert (await check()).ok
    async with services.db.transaction() as session:  # cut off the newest entry: the chain alone still verifies
        await session.exec(delete(AuditEntry).where(AuditEntry.id == audited[-1].id))
    assert (await _verify(services)).ok
    found = await check()
    assert (found.ok, found.broken_at) == (False, audited[-1].id)
    assert "the newest entries were deleted" in found.reason
    async with services.db.transaction() as session:  # and cover it with a new entry, properly chained
        await append_audit(session=session, keyring=services.keyring, actor="system", action="test")
    assert (await _verify(services)).ok
    found = await check()
    assert (found.ok, found.broken_at) == (False, audited[-1].id)
    # SQLite may give the new entry the deleted one's id, PostgreSQL never does: either way it is found.
    assert "replaced" in found.reason or "is gone" in found.reason


async def test_the_anchor_only_moves_forward(services, audited, tmp_path):
    anchor = AuditAnchor(tmp_path / "audit-anchor.json")
    now = utcnow()
    assert anchor.record(Head(audited[-1].id, audited[-1].hash), now=now)
    assert not anchor.record(Head(audited[2].id, audited[2].hash), now=now)  # a slower worker's older head
    assert anchor.read().entry_id == audited[-1].id
    assert stat.S_IMODE(os.stat(anchor.path).st_mode) == 0o600
