"""Deleted means deleted, read the hard way: the sealed bytes and the wrapped key are taken from the database
before each operation that promises deletion, then looked for in the raw SQLite file, its -wal and -shm.

Each check first finds the bytes in the raw files (so the search can fail), then runs the operation, then
finds none of them. PostgreSQL keeps dead row versions until VACUUM: see test_purge_vacuums_on_postgresql.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from handlers.citizen import drafts
from handlers.officer import maintenance
from storage import db as db_module
from storage.models import (Conversation, DataKeyRecord, FollowUp, Officer, ReminderSubscriber, Tip, TipField,
                            TurnReply)
from storage.officers import revoke_officer
from storage.zalo_oa import save_tokens
from tests.handlers.citizen.test_tipoff import walk_to_review
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient

CHUNK = 16  # every 16-byte piece of a sealed value is looked for: a page split cannot hide a piece


def _raw(services) -> bytes:
    path = Path(services.db.engine.url.database)
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def _pieces(secret: bytes) -> list[bytes]:
    return [secret[i:i + CHUNK] for i in range(0, len(secret) - CHUNK + 1, CHUNK)]


def _found(services, secrets: list[bytes]) -> list[int]:
    raw = _raw(services)
    return [n for n, secret in enumerate(secrets) for piece in _pieces(bytes(secret)) if piece in raw]


async def _wrapped(session, owner_id: str) -> bytes:
    return bytes((await session.get(DataKeyRecord, owner_id)).wrapped)


@pytest.fixture
def sqlite_only(services):
    if not services.db.is_sqlite:
        pytest.skip("raw-file search: SQLite only (PostgreSQL's dead tuples: test_purge_vacuums_on_postgresql)")
    return services


async def _assert_shredded(services, secrets: list[bytes], operation) -> None:
    assert _found(services, secrets), "the search must see the bytes before the deletion"
    await operation()
    assert _found(services, secrets) == []


async def test_cancel_leaves_no_byte_of_the_draft(sqlite_only, tipline):
    services = sqlite_only
    citizen = ChatClient(tipline, chat_id="700", language="en")
    await walk_to_review(citizen)
    await citizen.send("/cancel")  # «Delete the tip you are writing?»: nothing is deleted yet
    async with services.db.transaction() as session:
        conv = (await session.exec(select(Conversation))).one()
        secrets = [bytes(conv.draft), await _wrapped(session, conv.draft_id)]
    await _assert_shredded(services, secrets, lambda: citizen.click("Yes, delete it"))
    assert "cancelled and deleted" in citizen.text


async def test_stale_draft_wipe_leaves_no_byte_of_the_draft(sqlite_only, tipline):
    services = sqlite_only
    await walk_to_review(ChatClient(tipline, chat_id="701", language="en"))
    async with services.db.transaction() as session:
        conv = (await session.exec(select(Conversation))).one()
        secrets = [bytes(conv.draft), await _wrapped(session, conv.draft_id)]
    later = services.clock() + services.settings.limits.draft_ttl + timedelta(hours=1)

    async def wipe():
        assert await drafts.wipe_stale_drafts(services, now=later) == 1
    await _assert_shredded(services, secrets, wipe)


async def test_verdict_leaves_no_byte_of_the_reply_route_nor_the_question(sqlite_only, tipline):
    services = sqlite_only
    await submit_tip(tipline, "702")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/ask {ref} Còn gì nữa không?")
    async with services.db.transaction() as session:
        route = (await session.exec(select(TipField).where(TipField.name == "reply_route"))).one()
        question = (await session.exec(select(FollowUp))).one()
        secrets = [bytes(route.sealed), bytes(question.sealed), await _wrapped(session, question.id)]
    await _assert_shredded(services, secrets, lambda: officer.send(f"/valuable {ref}"))
    assert "judged valuable" in officer.text


async def test_remind_off_leaves_no_byte_of_the_route(sqlite_only, tipline):
    services = sqlite_only
    citizen = ChatClient(tipline, chat_id="703", language="en")
    await citizen.send("/remind on")
    async with services.db.transaction() as session:
        subscriber = (await session.exec(select(ReminderSubscriber))).one()
        secrets = [bytes(subscriber.route), await _wrapped(session, subscriber.route_key_id)]
    await _assert_shredded(services, secrets, lambda: citizen.send("/remind off"))
    assert "Festival reminders are off" in citizen.text


async def test_purge_leaves_no_byte_of_the_tip(sqlite_only, tipline):
    services = sqlite_only
    await submit_tip(tipline, "704")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/notvaluable {ref} false")
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
        fields = (await session.exec(select(TipField))).all()
        secrets = [bytes(f.sealed) for f in fields] + [await _wrapped(session, tip.id)]
    later = services.clock() + services.settings.triage.purge_not_valuable_after + timedelta(days=1)

    async def purge():
        assert await maintenance.purge_not_valuable(services, now=later) == 1
    await _assert_shredded(services, secrets, purge)


async def test_officer_revocation_leaves_no_byte_of_the_route(sqlite_only, tipline):
    services = sqlite_only
    await enrol(services, tipline, "905")
    async with services.db.transaction() as session:
        officer = (await session.exec(select(Officer))).one()
        secrets = [bytes(officer.route), await _wrapped(session, officer.route_key_id)]

    async def revoke():
        async with services.db.transaction() as session:
            assert await revoke_officer(session=session, officer_id=officer.id, now=services.clock())
    await _assert_shredded(services, secrets, revoke)


async def test_zalo_oa_token_replacement_leaves_no_byte_of_the_old_pair(sqlite_only):
    services = sqlite_only
    from storage.models import ZaloOaToken
    async with services.db.transaction() as session:
        await save_tokens(session=session, keyring=services.keyring, oa_id="4321", access_token="A" * 40,
                          refresh_token="R" * 40, expires_in=3600, now=services.clock())
    async with services.db.transaction() as session:
        old = bytes((await session.exec(select(ZaloOaToken))).one().sealed)

    async def replace():
        async with services.db.transaction() as session:
            await save_tokens(session=session, keyring=services.keyring, oa_id="4321", access_token="B" * 40,
                              refresh_token="S" * 40, expires_in=3600, now=services.clock())
    await _assert_shredded(services, [old], replace)


async def test_a_sent_turns_replies_leave_no_byte_once_the_chats_next_turn_ran(sqlite_only, tipline, monkeypatch):
    """A turn's sealed replies, once sent, are shredded by the chat's next turn (in the round trip that keeps
    that turn's own) and gone from the file and its WAL by the truncation the turns of one second share."""
    services = sqlite_only
    monkeypatch.setattr(db_module, "SHRED_SOON_WITHIN", 0.0)  # the shared truncation without its wait
    citizen = ChatClient(tipline, chat_id="707", language="en")
    await citizen.send("/help")  # answered and sent
    async with services.db.transaction() as session:
        [sealed] = (await session.exec(select(TurnReply.sealed))).all()

    async def next_turn():
        await citizen.send("/start")
        database = services.db
        while database._truncation_due is not None:  # the truncation the commit asked for, once it is due
            await asyncio.sleep(0)
        if database._truncating is not None:
            await database._truncating
    await _assert_shredded(services, [bytes(sealed)], next_turn)
    async with services.db.transaction() as session:
        assert len((await session.exec(select(TurnReply.id))).all()) == 1  # only /start's, not yet shredded


async def test_an_ordinary_turn_does_not_truncate_the_wal(sqlite_only, tipline):
    """The checkpoint is paid for deletions only: a draft step leaves the WAL to SQLite's own checkpoints."""
    services = sqlite_only
    citizen = ChatClient(tipline, chat_id="706", language="en")
    await citizen.send("/report")
    await citizen.click("Drugs")
    wal = Path(f"{services.db.engine.url.database}-wal")
    assert wal.stat().st_size > 0


async def test_purge_vacuums_on_postgresql(services, tipline):
    """On PostgreSQL a deleted row stays as a dead tuple until VACUUM; `tinbao purge` runs VACUUM on what it
    purged. Read back through pg_stat: no dead tuple left in the purged tables."""
    if services.db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite's side is the raw-file search above")
    await submit_tip(tipline, "707")
    officer = await enrol(services, tipline, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/notvaluable {ref} false")
    later = services.clock() + services.settings.triage.purge_not_valuable_after + timedelta(days=1)
    assert await maintenance.purge_not_valuable(services, now=later) == 1
    async with services.db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))  # read the counters afresh
        rows = (await conn.execute(text(
            "SELECT relname, last_vacuum FROM pg_stat_user_tables "
            "WHERE relname IN ('tip_field', 'data_key', 'attachment')"))).all()
    assert {r.relname for r in rows} == {"tip_field", "data_key", "attachment"}
    assert all(r.last_vacuum is not None for r in rows)
