"""The operator's side of triage: `tinbao officers invite/list/revoke`, `audit verify`, `purge` and
`keys rotate/status/retire`, driven through `bot.cli.main` against a config file, a keyring and a
database of their own, next to a tip line built from the same config as `tinbao run` builds it."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, update
from sqlmodel import select

from bot.cli import main
from bot.config import ENV_OVERRIDES, load_config
from bot.runtime import open_services
from handlers.officer.accounts import normalize_invite_code
from handlers.router import TipLine
from storage.crypto import Keyring
from storage.keys import CHECK_ROW_ID, load_data_key
from storage.models import AuditEntry, DataKeyRecord, Invite, Officer, Tip, TipField, utcnow
from storage.tips import open_attachments, read_tip_fields
from tests.handlers.officer.test_triage import submit_tip
from tests.support.chat import ChatClient
from tests.support.deployment import config_toml

CODE = re.compile(r"CB-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}")
NEUTRAL = "Sorry, I did not understand that."



@pytest.fixture
def config_path(tmp_path: Path, database_url: str, db, monkeypatch) -> Path:
    """config.toml and keyring as `tinbao init` leaves them; the database is the test's (emptied) one."""
    for variable in [*ENV_OVERRIDES, "TINBAO_CONFIG"]:
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "deploy"
    home.mkdir()
    path = home / "config.toml"
    path.write_text(config_toml(database_url, extra="[triage]\npurge_not_valuable_after_days = 30\n"),
                    encoding="utf-8")
    Keyring.create(home / "keyring.json")
    return path


async def tinbao(config_path: Path, *args: str) -> int:
    """`tinbao --config … ARGS` in a thread: the CLI runs its own event loop, as from a shell."""
    return await asyncio.to_thread(main, ["--config", str(config_path), *args])


@pytest.fixture
async def bot(config_path):
    """The services `tinbao run` would open from this config, and the tip line on them."""
    services = await open_services(load_config(config_path))
    try:
        yield TipLine(services)
    finally:
        await services.db.dispose()


async def invite(config_path, capsys, *, unit="ca-benthanh", role="officer", name="Đại úy Lan") -> str:
    capsys.readouterr()
    assert await tinbao(config_path, "officers", "invite", "--unit", unit, "--role", role, "--name", name) == 0
    out = capsys.readouterr().out
    assert f"one-time code for {name} ({role}, {unit}), valid 24 h" in out
    [code] = CODE.findall(out)
    return code


async def enrolled(bot, config_path, capsys, chat_id: str, **who) -> ChatClient:
    code = await invite(config_path, capsys, **who)
    officer = ChatClient(bot, chat_id=chat_id, language="en")
    await officer.send(f"/enroll {code}")
    assert "You are enrolled" in officer.text, officer.text
    return officer


async def count(bot, model, *where) -> int:
    async with bot.services.db.transaction() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()


# --- officers ------------------------------------------------------------------------------------

async def test_invite_prints_a_one_time_code_that_enrols(bot, config_path, capsys):
    code = await invite(config_path, capsys, role="supervisor", name="Thiếu tá Minh")
    officer = ChatClient(bot, chat_id="900", language="en")
    await officer.send(f"/enroll {code}")
    assert "Welcome, Thiếu tá Minh. You are enrolled as supervisor of Công an phường Bến Thành." in officer.text
    assert officer.last[0].commands_menu == "supervisor"  # the figures are in their menu
    await officer.send("/whoami")
    assert officer.text.startswith("Thiếu tá Minh, supervisor of Công an phường Bến Thành.")
    someone = ChatClient(bot, chat_id="901", language="en")
    await someone.send(f"/enroll {code.lower()}")  # the same code a second time, however it is typed
    assert "not valid, has expired or was already used" in someone.text
    assert await count(bot, Officer) == 1
    async with bot.services.db.transaction() as session:
        invites = (await session.exec(select(Invite))).all()
    # Stored only as a keyed hash, and marked used by the officer it made.
    assert len(invites) == 1
    assert invites[0].code_hash == bot.services.keyring.invite_hash(normalize_invite_code(code))
    assert invites[0].used_at is not None and invites[0].officer_id is not None


async def test_invite_to_an_unknown_unit_is_one_line_naming_it(bot, config_path, capsys):
    capsys.readouterr()
    assert await tinbao(config_path, "officers", "invite", "--unit", "ca-nowhere", "--name", "Đại úy Lan") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("tinbao: unknown unit 'ca-nowhere'")
    assert "ca-benthanh" in captured.err  # and which units there are
    assert "Traceback" not in captured.err
    assert await count(bot, Invite) == 0


async def test_list_shows_officers_and_revoke_takes_their_commands_away(bot, config_path, capsys):
    await submit_tip(bot, "111")
    lan = await enrolled(bot, config_path, capsys, "900")
    await enrolled(bot, config_path, capsys, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    capsys.readouterr()
    assert await tinbao(config_path, "officers", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    lan_line = next(line for line in lines if "Đại úy Lan" in line).split("\t")
    assert lan_line[1:5] == ["Đại úy Lan", "officer", "ca-benthanh (Công an phường Bến Thành)", "console"]
    assert lan_line[-1] == "active"
    lan_id = lan_line[0]

    await lan.send("/queue")
    assert "Open tips: 1" in lan.text
    assert await tinbao(config_path, "officers", "revoke", lan_id) == 0
    assert f"officer {lan_id} (Đại úy Lan) can no longer use officer commands" in capsys.readouterr().out
    stranger = ChatClient(bot, chat_id="333", language="en")
    await stranger.send("hello?")
    for command in ("/queue", "/next", "/whoami"):
        await lan.send(command)
        assert lan.text == NEUTRAL == stranger.text, command
        assert [c.id for c in lan.last[0].choices] == [c.id for c in stranger.last[0].choices]
    async with bot.services.db.transaction() as session:
        tip = (await session.exec(select(Tip))).one()
    assert tip.status == "new"  # /next as a revoked officer claimed nothing

    assert await tinbao(config_path, "officers", "list") == 0
    listed = capsys.readouterr().out
    assert f"{lan_id}\tĐại úy Lan" in listed and f"revoked {utcnow():%Y-%m-%d}" in listed
    assert await tinbao(config_path, "officers", "revoke", lan_id) == 2
    assert f"no active officer with id {lan_id}" in capsys.readouterr().err
    actions = [e.action for e in await _audit(bot)]
    assert actions.count("invite") == 2 and actions.count("enroll") == 2 and actions.count("revoke") == 1


async def test_revoke_releases_the_officers_open_tips_and_says_how_many(bot, config_path, capsys):
    for chat in ("111", "112", "113"):
        await submit_tip(bot, chat)
    lan = await enrolled(bot, config_path, capsys, "900")
    refs = []
    for _ in range(3):
        await lan.send("/next")
        refs.append(lan.last[0].text.split(" · ")[0].split()[-1])
    await lan.send(f"/valuable {refs[0]}")  # judged: it stays with the officer who judged it
    lan_id = (await _officer(bot, "Đại úy Lan")).id
    capsys.readouterr()
    assert await tinbao(config_path, "officers", "revoke", str(lan_id)) == 0
    out = capsys.readouterr().out
    assert out == (f"officer {lan_id} (Đại úy Lan) can no longer use officer commands\n"
                   f"2 open tip(s) they held are back in the queue\n")
    async with bot.services.db.transaction() as session:
        tips = {t.ref: t for t in (await session.exec(select(Tip))).all()}
    assert [(tips[r].status, tips[r].claimed_by) for r in refs] == [("valuable", lan_id), ("new", None), ("new", None)]
    released = [e for e in await _audit(bot) if e.action == "release"]
    assert sorted((e.actor, e.tip_ref, e.detail) for e in released) == sorted(
        ("cli", r, f"revoked={lan_id}") for r in refs[1:])
    hai = await enrolled(bot, config_path, capsys, "901", name="Trung úy Hải")
    await hai.send("/queue")
    assert "Open tips: 2" in hai.text


async def _officer(bot, name: str) -> Officer:
    async with bot.services.db.transaction() as session:
        return (await session.exec(select(Officer).where(Officer.name == name))).one()


# --- audit ---------------------------------------------------------------------------------------

async def _audit(bot) -> list[AuditEntry]:
    async with bot.services.db.transaction() as session:
        return list((await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_audit_verify_passes_an_intact_log_and_fails_a_tampered_one(bot, config_path, capsys):
    await submit_tip(bot, "111")
    officer = await enrolled(bot, config_path, capsys, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/notvaluable {ref} false")
    entries = await _audit(bot)
    assert len(entries) >= 5
    capsys.readouterr()
    assert await tinbao(config_path, "audit", "verify") == 0
    captured = capsys.readouterr()
    anchor = config_path.parent / "data" / "audit-anchor.json"
    assert captured.out.strip() == (f"audit log intact: {len(entries)} entries; head {entries[-1].hash[:16]} "
                                    f"(entry {entries[-1].id}), recorded in {anchor}")
    assert f"verifying the audit log [{'#' * 30}] {len(entries)}/{len(entries)}" in captured.err
    assert json.loads(anchor.read_text())["entry_id"] == entries[-1].id

    target = next(e for e in entries if e.action == "verdict")
    async with bot.services.db.transaction() as session:
        await session.exec(update(AuditEntry).where(AuditEntry.id == target.id).values(detail="valuable"))
    assert await tinbao(config_path, "audit", "verify") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"audit log BROKEN at entry {target.id}: this entry was changed")


async def test_audit_verify_finds_the_newest_entries_cut_off(bot, config_path, capsys):
    """The chain left after deleting its newest entries still verifies; the head kept outside the
    database does not let that pass."""
    await submit_tip(bot, "111")
    officer = await enrolled(bot, config_path, capsys, "900")
    await officer.send("/next")  # the officer opens the tip: audited
    assert await tinbao(config_path, "audit", "verify") == 0  # records the head
    *_older, viewed, sent = await _audit(bot)
    assert (viewed.action, sent.action) == ("view", "evidence")  # the view, then the files it sent
    async with bot.services.db.transaction() as session:  # someone with database access hides both
        await session.exec(delete(AuditEntry).where(AuditEntry.id.in_([viewed.id, sent.id])))
    capsys.readouterr()
    assert await tinbao(config_path, "audit", "verify") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"audit log BROKEN at entry {sent.id}: the chain ends before this entry, recorded "
                          "outside the database at ")
    assert "the newest entries were deleted" in out


async def test_a_damaged_anchor_file_is_named_not_ignored(bot, config_path, capsys):
    (config_path.parent / "data" / "audit-anchor.json").write_text("{not json", encoding="utf-8")
    assert await tinbao(config_path, "audit", "verify") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "audit-anchor.json: not a readable audit anchor" in err


# --- retention -----------------------------------------------------------------------------------

async def test_purge_shows_progress_and_purges(bot, config_path, capsys):
    await submit_tip(bot, "111")
    await submit_tip(bot, "112")
    async with bot.services.db.transaction() as session:
        old, recent = (await session.exec(select(Tip.ref).order_by(Tip.created_at))).all()
    officer = await enrolled(bot, config_path, capsys, "900")
    await officer.send(f"/notvaluable {old} false")
    await officer.send(f"/notvaluable {recent} insufficient")
    async with bot.services.db.transaction() as session:  # judged 31 days ago; the config keeps them 30
        await session.exec(update(Tip).where(Tip.ref == old).values(verdict_at=utcnow() - timedelta(days=31)))
    capsys.readouterr()
    assert await tinbao(config_path, "purge") == 0
    captured = capsys.readouterr()
    assert "1 tips purged" in captured.out
    assert "0 evidence files deleted that no tip pointed to (left over for more than 60 minutes)" in captured.out
    assert f"purging tips judged not valuable [{'#' * 30}] 1/1" in captured.err
    async with bot.services.db.transaction() as session:
        tips = {t.ref: t for t in (await session.exec(select(Tip))).all()}
        old_id, recent_id = tips[old].id, tips[recent].id
    assert tips[old].purged_at is not None and tips[recent].purged_at is None
    assert tips[old].status == tips[recent].status == "not_valuable"
    assert await count(bot, TipField, TipField.tip_id == old_id) == 0
    assert await count(bot, TipField, TipField.tip_id == recent_id) > 0
    assert await count(bot, DataKeyRecord, DataKeyRecord.id == old_id) == 0
    await officer.send(f"/tip {old}")
    assert "content of this tip was purged" in officer.text
    assert await tinbao(config_path, "audit", "verify") == 0


# --- keys ----------------------------------------------------------------------------------------

async def _read_every_tip(services) -> dict[str, str]:
    """Every tip's description and evidence, opened with whatever keyring ``services`` holds."""
    found = {}
    async with services.db.transaction() as session:
        for tip in (await session.exec(select(Tip))).all():
            key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
            fields = await read_tip_fields(session=session, data_key=key)
            files = await open_attachments(session=session, blobs=services.blobs, data_key=key)
            assert files and files[0][1][:2] == b"\xff\xd8"
            found[tip.ref] = fields["description"]
    return found


async def test_keys_rotate_status_retire_and_every_tip_stays_readable(bot, config_path, capsys):
    for chat in ("111", "112", "113"):
        await submit_tip(bot, chat)
    officer = await enrolled(bot, config_path, capsys, "900")
    await officer.send("/next")
    ref = officer.last[0].text.split(" · ")[0].split()[-1]
    await officer.send(f"/ask {ref} Bạn có nhớ biển số xe không?")  # a follow-up has a data key too
    before = await _read_every_tip(bot.services)
    assert len(before) == 3
    wrapped = await count(bot, DataKeyRecord, DataKeyRecord.id != CHECK_ROW_ID)  # the keyring's check row wraps no tip

    capsys.readouterr()
    assert await tinbao(config_path, "keys", "status") == 0
    assert capsys.readouterr().out.splitlines() == [f"k1\t{wrapped} data keys\tactive"]

    assert await tinbao(config_path, "keys", "rotate", "--batch", "2") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"key k2 is active; {wrapped} data keys re-wrapped.")
    assert f"re-wrapping data keys [{'.' * 30}] 0/{wrapped}" in captured.err  # the bar starts empty
    assert f"re-wrapping data keys [{'#' * 30}] {wrapped}/{wrapped}" in captured.err  # and fills up

    assert await tinbao(config_path, "keys", "status") == 0
    assert capsys.readouterr().out.splitlines() == ["k1\t0 data keys\tretired-ready",
                                                    f"k2\t{wrapped} data keys\tactive"]
    assert await tinbao(config_path, "keys", "retire", "k1") == 0
    assert "key k1 removed from" in capsys.readouterr().out
    assert await tinbao(config_path, "keys", "status") == 0
    assert capsys.readouterr().out.splitlines() == [f"k2\t{wrapped} data keys\tactive"]
    assert await tinbao(config_path, "keys", "retire", "k2") == 2
    assert capsys.readouterr().err == f"tinbao: key k2 still wraps {wrapped} data keys; run `tinbao keys rotate` first\n"

    # The running bot picks the new key up by itself; a restarted one has only k2.
    assert await _read_every_tip(bot.services) == before
    await officer.send(f"/tip {ref}")
    assert "Người đàn ông áo đỏ" in officer.text
    await officer.send(f"/files {ref}")  # sent with the first view; again on request, opened with k2
    assert officer.last[0].files
    restarted = await open_services(load_config(config_path))
    try:
        assert sorted(restarted.keyring.keys) == ["k2"]
        assert await _read_every_tip(restarted) == before
        tipster = ChatClient(TipLine(restarted), chat_id="111", language="en")
        await tipster.send("Biển số 59X1-123.45")  # the sealed follow-up still opens
        assert "passed on to the officer" in tipster.text
    finally:
        await restarted.db.dispose()
