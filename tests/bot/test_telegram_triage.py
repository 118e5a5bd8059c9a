"""Officer triage end to end on Telegram: the real aiogram client polling the fake Bot API server.

A citizen files a tip with a photo, an officer enrols with a code from `tinbao officers invite` and
works the tip with the admin commands and buttons; each test checks one command or one rule the way
the people involved would see it: the messages in their chats, and what the database then holds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.channels.telegram import TelegramChannel, make_bot
from handlers.officer.maintenance import purge_not_valuable
from handlers.officer.accounts import create_invite_code
from handlers.router import OFFICER_COMMANDS, TipLine
from handlers.citizen.tipoff import normalize_receipt_code
from storage.audit import verify_audit
from storage.keys import load_data_key
from storage.models import AuditEntry, Officer, Tip, TipField, utcnow
from storage.tips import open_attachments
from tests.fakes.telegram_api import FakeTelegram
from tests.support.deliveries import Handled
from tests.support.fake_servers import fake_server
from tests.support.images import jpeg_with_gps

CITIZEN = 5550101  # files the tip
OTHER_CITIZEN = 5550102
OFFICER = 5550201  # ca-benthanh, where the tips go
COLLEAGUE = 5550202  # a second officer of ca-benthanh
BOSS = 5550203  # supervisor of ca-hcm, above ca-benthanh
OUTSIDER = 5550301  # officer of ca-saigon: another unit
STRANGER = 5550401  # a citizen who tries the officer commands

DESCRIPTION = "Có người bán ma túy ở quán cà phê đầu hẻm."
PEOPLE = "Hai thanh niên đi xe Exciter"
BEN_THANH = "Phường Bến Thành, Thành phố Hồ Chí Minh"
OFFICER_COMMAND_NAMES = {name.lstrip("/") for name in OFFICER_COMMANDS}


class Sent(list):
    """The messages the bot sent while handling one update, in every chat."""

    def to(self, chat: int) -> list[dict]:
        return [m for m in self if m["chat_id"] == chat]

    def text(self, chat: int) -> str:
        return "\n".join(m.get("text") or m.get("caption") or "" for m in self.to(chat))


@dataclass
class World:
    fake: FakeTelegram
    services: object
    handled: Handled

    # --- acting as people ---------------------------------------------------------------------

    async def act(self, queue) -> Sent:
        """Queue one update and wait until the bot has answered it completely."""
        start, count = len(self.fake.sent), self.handled.count
        queue()
        await self.handled.wait_for(count + 1)
        return Sent(self.fake.sent[start:])

    async def say(self, chat: int, text: str) -> Sent:
        return await self.act(lambda: self.fake.send_text(chat, text, language_code="en"))

    async def tap(self, chat: int, label: str) -> Sent:
        """Tap the button whose label contains ``label`` on the latest message in ``chat`` that has one."""
        for message in reversed(self.fake.messages_to(chat)):
            found = [data for text, data in self.fake.buttons(message) if label in text]
            if found:
                return await self.act(lambda: self.fake.click(chat, found[0], message_id=message["message_id"],
                                                              language_code="en"))
        raise AssertionError(f"no button {label!r} in chat {chat}")

    async def forge(self, chat: int, data: str) -> Sent:
        """Callback data the bot never offered in this chat, on the chat's latest message with buttons."""
        return await self.act(lambda: self.fake.click(chat, data, language_code="en"))

    async def file_tip(self, chat: int, *, when: str = "Happening now",
                       identity: str = "Anonymous (recommended)") -> tuple[str, str]:
        """A citizen's whole tip-off with a photo; returns (receipt code, the officers' reference)."""
        await self.say(chat, "/report")
        await self.tap(chat, "Drugs")
        await self.say(chat, DESCRIPTION)
        await self.tap(chat, when)
        await self.say(chat, "ben thanh")
        await self.tap(chat, BEN_THANH)
        await self.act(lambda: self.fake.send_location(chat, 10.7726, 106.6980, language_code="en"))
        await self.say(chat, PEOPLE)
        sent = await self.act(lambda: self.fake.send_photo(chat, jpeg_with_gps(), language_code="en"))
        assert "Files received so far: 1" in sent.text(chat)
        await self.tap(chat, "Done")
        await self.tap(chat, identity)
        receipt = (await self.tap(chat, "Send the tip")).text(chat)
        assert "Receipt code: TB-" in receipt, receipt
        code = receipt.split("Receipt code: ")[1].split()[0]
        async with self.services.db.transaction() as session:
            tip = (await session.exec(select(Tip).where(
                Tip.receipt_hash == self.services.keyring.receipt_hash(normalize_receipt_code(code))))).one()
        return code, tip.ref

    async def enrol(self, chat: int, *, unit: str = "ca-benthanh", role: str = "officer",
                    name: str = "Đại úy Lan") -> Sent:
        code = await create_invite_code(self.services, unit_id=unit, role=role, name=name)
        sent = await self.say(chat, f"/enroll {code}")
        assert "You are enrolled" in sent.text(chat), sent.text(chat)
        return sent

    # --- looking at the database ----------------------------------------------------------------

    async def tip(self, ref: str) -> Tip:
        async with self.services.db.transaction() as session:
            return (await session.exec(select(Tip).where(Tip.ref == ref))).one()

    async def fields(self, ref: str) -> dict[str, str]:
        async with self.services.db.transaction() as session:
            tip = (await session.exec(select(Tip).where(Tip.ref == ref))).one()
            key = await load_data_key(session=session, keyring=self.services.keyring, owner_id=tip.id)
            rows = (await session.exec(select(TipField).where(TipField.tip_id == tip.id))).all()
            return {row.name: key.open_text(row.name, row.sealed) for row in rows} if key else {}

    async def snapshot(self, ref: str) -> tuple:
        """What a refused command must not change: the tip's clear columns and how many sealed fields it has."""
        async with self.services.db.transaction() as session:
            tip = (await session.exec(select(Tip).where(Tip.ref == ref))).one()
            n_fields = (await session.exec(select(func.count()).select_from(TipField)
                                           .where(TipField.tip_id == tip.id))).one()
        return (tip.status, tip.unit_id, tip.claimed_by, tip.verdict_reason, tip.case_ref, tip.subject_count,
                tip.purged_at, n_fields)

    async def audit(self, action: str | None = None) -> list[AuditEntry]:
        async with self.services.db.transaction() as session:
            query = select(AuditEntry).order_by(AuditEntry.id)
            if action:
                query = query.where(AuditEntry.action == action)
            return list((await session.exec(query)).all())


fake = fake_server(FakeTelegram)


@pytest.fixture
async def world(fake, services):
    """The bot polling the fake server, as `tinbao run` does."""
    handled = Handled()
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services), deliveries=handled)
    task = asyncio.create_task(channel.run_polling())
    try:
        yield World(fake, services, handled)
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 5)
        await channel.bot.session.close()


@pytest.fixture
async def filed(world) -> tuple[str, str]:
    """One urgent tip with a photo from CITIZEN (who accepts follow-up questions), and OFFICER enrolled."""
    code, ref = await world.file_tip(CITIZEN)
    await world.enrol(OFFICER)
    return code, ref


async def neutral_of(world: World, chat: int) -> Sent:
    """What anyone gets for a text the bot does not understand: the answer officer commands must match."""
    return await world.say(chat, "blah blah, what is this?")


def _markup(message: dict):
    return message.get("reply_markup")


# --- enrolment and the command menu ----------------------------------------------------------------

async def test_enrolment_gives_this_chat_alone_the_officer_menu(world, fake):
    await world.file_tip(CITIZEN)
    sent = await world.enrol(OFFICER)
    assert "Welcome, Đại úy Lan. You are enrolled as officer of Công an phường Bến Thành" in sent.text(OFFICER)
    officer_menu = {c["command"] for c in fake.commands[("chat", OFFICER, "")]}
    assert {"queue", "next", "tip", "valuable", "notvaluable", "ask", "case"} <= officer_menu
    assert not {"stats", "baocao"} & officer_menu  # the figures are in supervisors' menus only
    defaults = {key: {c["command"] for c in commands} for key, commands in fake.commands.items()
                if key[0] == "default"}
    assert defaults and all("report" in names for names in defaults.values())  # the citizen menu is there
    assert all(not names & OFFICER_COMMAND_NAMES for names in defaults.values())
    assert ("chat", CITIZEN, "") not in fake.commands  # a citizen's chat gets no menu of its own
    enrolled = await world.audit("enroll")
    assert len(enrolled) == 1 and enrolled[0].detail == "unit=ca-benthanh role=officer"


async def test_a_used_or_wrong_code_does_not_enrol(world, fake, services):
    code = await create_invite_code(services, unit_id="ca-benthanh", role="officer", name="Đại úy Lan")
    assert "You are enrolled" in (await world.say(OFFICER, f"/enroll {code}")).text(OFFICER)
    again = await world.say(COLLEAGUE, f"/enroll {code}")
    assert "not valid, has expired or was already used" in again.text(COLLEAGUE)
    assert ("chat", COLLEAGUE, "") not in fake.commands
    wrong = await world.say(STRANGER, "/enroll CB-AAAAA-BBBBB-CCCCC")
    assert "not valid" in wrong.text(STRANGER)
    async with services.db.transaction() as session:
        assert (await session.exec(select(func.count()).select_from(Officer))).one() == 1


# --- one test per command ------------------------------------------------------------------------

async def test_queue_lists_clear_fields_only_urgent_first(world, filed):
    _code, urgent_ref = filed
    _code2, calm_ref = await world.file_tip(OTHER_CITIZEN, when="Earlier")
    async with world.services.db.transaction() as session:  # the calm tip is the older one
        calm = (await session.exec(select(Tip).where(Tip.ref == calm_ref))).one()
        calm.created_at = utcnow().replace(microsecond=0) - timedelta(hours=3)
        session.add(calm)
    sent = await world.say(OFFICER, "/queue")
    [message] = sent.to(OFFICER)
    text = message["text"]
    assert "Open tips: 2 (page 1/1)" in text
    lines = [line for line in text.splitlines() if " · " in line]
    assert lines[0].startswith(f"🔴 {urgent_ref} · ") and lines[1].startswith(f"{calm_ref} · ")
    assert lines[0].split(" · ")[1:] == ["Drugs", BEN_THANH, "just now", "1 file(s)", "new"]
    assert lines[1].split(" · ")[1:] == ["Drugs", BEN_THANH, "3 h", "1 file(s)", "new"]
    for secret in (DESCRIPTION, PEOPLE, "10.77", "Exciter"):
        assert secret not in text
    assert [data for _t, data in world.fake.buttons(message)] == [f"t:open:{urgent_ref}", f"t:open:{calm_ref}"]
    assert not await world.audit("view")  # listing decrypts nothing, so nothing to audit


async def test_queue_pages_and_odd_page_numbers(world, filed):
    _code, first = filed
    _code2, second = await world.file_tip(OTHER_CITIZEN, when="Earlier")
    settings = world.services.settings
    world.services.settings = replace(settings, triage=replace(settings.triage, queue_page=1))
    page_one = await world.say(OFFICER, "/queue")
    assert "Open tips: 2 (page 1/2)" in page_one.text(OFFICER) and first in page_one.text(OFFICER)
    assert second not in page_one.text(OFFICER)
    page_two = await world.tap(OFFICER, "Next page")
    assert "Open tips: 2 (page 2/2)" in page_two.text(OFFICER) and second in page_two.text(OFFICER)
    assert not any("Next page" in label for label, _d in world.fake.buttons(page_two.to(OFFICER)[0]))
    past_the_end = await world.say(OFFICER, "/queue 9")
    assert "(page 2/2)" in past_the_end.text(OFFICER) and second in past_the_end.text(OFFICER)
    for odd in ("²", "99999999999999999999", "-1", "0"):
        sent = await world.say(OFFICER, f"/queue {odd}")
        assert "Open tips: 2 (page 1/2)" in sent.text(OFFICER) and first in sent.text(OFFICER), odd
    word = await world.say(OFFICER, "/queue two")  # a word is a filter: this one is none
    assert word.text(OFFICER).startswith("I do not know the filter «two».")


async def test_next_claims_shows_the_tip_resends_the_photo_and_tells_the_tipster(world, filed, services):
    _code, ref = filed
    sent = await world.say(OFFICER, "/next")
    view, pin, evidence_note, photo = sent.to(OFFICER)
    assert pin["method"].lower() == "sendlocation"  # the tipster's pin, under the view that links to the map
    assert view["text"].startswith(f"🔴 {ref} · Drugs · ")
    assert DESCRIPTION in view["text"] and PEOPLE in view["text"] and "Tipster: anonymous" in view["text"]
    assert [t for t, _d in world.fake.buttons(view)] == ["✅ Valuable", "❌ Not valuable", "↩️ Release", "📎 Files (1)"]
    assert evidence_note["text"] == f"Evidence of {ref}:"
    assert photo["method"].lower() == "sendphoto"
    async with services.db.transaction() as session:
        tip = (await session.exec(select(Tip).where(Tip.ref == ref))).one()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
        [(kind, stored, _name, _mime)] = await open_attachments(session=session, blobs=services.blobs, data_key=key)
    assert kind == "photo" and photo["photo"] == stored and stored[:2] == b"\xff\xd8"
    assert b"CanaryPhoneMaker" not in photo["photo"]  # the evidence goes out as cleaned on arrival
    [told] = sent.to(CITIZEN)
    assert "is now being reviewed by an officer" in told["text"]
    assert ref not in told["text"]  # the officers' reference means nothing to the tipster
    assert tip.status == "in_review" and tip.claimed_by is not None
    again = await world.say(OFFICER, "/next")
    assert again.text(OFFICER) == "No tip is waiting in your units."


async def test_two_officers_never_get_the_same_tip(world, filed):
    _code, ref = filed
    await world.enrol(COLLEAGUE, name="Trung úy Hải")
    first = await world.say(OFFICER, "/next")
    second = await world.say(COLLEAGUE, "/next")
    assert ref in first.text(OFFICER)
    assert second.text(COLLEAGUE) == "No tip is waiting in your units."
    verdict = await world.say(COLLEAGUE, f"/valuable {ref}")
    assert verdict.text(COLLEAGUE) == f"Tip {ref} is being reviewed by Đại úy Lan."
    assert (await world.tip(ref)).status == "in_review"


async def test_tip_view_is_audited(world, filed):
    _code, ref = filed
    sent = await world.say(OFFICER, f"/tip {ref}")
    assert DESCRIPTION in sent.text(OFFICER)
    assert any(m["method"].lower() == "sendphoto" for m in sent.to(OFFICER))
    async with world.services.db.transaction() as session:
        officer = (await session.exec(select(Officer))).one()
    views = await world.audit("view")
    assert [(v.actor, v.tip_ref) for v in views] == [(f"officer:{officer.id}", ref)]
    await world.say(OFFICER, f"/tip {ref.lower()}")  # typed in lower case: the same tip, one more view
    assert len(await world.audit("view")) == 2
    async with world.services.db.transaction() as session:
        assert (await verify_audit(session=session, keyring=world.services.keyring)).ok


async def test_valuable_by_button_tells_the_tipster(world, filed):
    code, ref = filed
    await world.say(OFFICER, "/next")
    sent = await world.tap(OFFICER, "Valuable")
    assert f"Tip {ref} is judged valuable" in sent.text(OFFICER)
    [told] = sent.to(CITIZEN)
    assert "was judged valuable. Thank you" in told["text"]
    tip = await world.tip(ref)
    assert (tip.status, tip.verdict_at is not None) == ("valuable", True)
    status = await world.say(STRANGER, f"/status {code}")  # /status works from any account
    assert "Judged valuable" in status.text(STRANGER)


async def test_valuable_by_command_with_a_note(world, filed):
    _code, ref = filed
    sent = await world.say(OFFICER, f"/valuable {ref} matches the stake-out report")
    assert f"Tip {ref} is judged valuable" in sent.text(OFFICER)
    assert "judged valuable" in sent.text(CITIZEN)
    assert (await world.tip(ref)).status == "valuable"
    assert (await world.fields(ref))["note:1"] == "matches the stake-out report"


async def test_not_valuable_by_command_tells_the_tipster_nothing(world, filed):
    code, ref = filed
    await world.say(OFFICER, "/next")
    sent = await world.say(OFFICER, f"/notvaluable {ref} false")
    assert sent.text(OFFICER) == f"Tip {ref} is judged not valuable: Untrue (false)."
    assert sent.to(CITIZEN) == []
    tip = await world.tip(ref)
    assert (tip.status, tip.verdict_reason) == ("not_valuable", "false")
    status = await world.say(CITIZEN, f"/status {code}")
    assert "Review finished" in status.text(CITIZEN) and "Untrue" not in status.text(CITIZEN)
    assert not any("Untrue" in (m.get("text") or "") for m in world.fake.messages_to(CITIZEN))


async def test_not_valuable_by_reason_buttons(world, filed):
    _code, ref = filed
    await world.say(OFFICER, "/next")
    asked = await world.tap(OFFICER, "Not valuable")  # the button under the tip
    assert f"Why is tip {ref} not valuable?" in asked.text(OFFICER)
    reasons = [t for t, _d in world.fake.buttons(asked.to(OFFICER)[-1])]
    assert reasons == ["Not enough information (insufficient)", "Untrue (false)", "Duplicate (duplicate)",
                       "Outside our jurisdiction (out_of_scope)", "Other (other)"]
    assert (await world.tip(ref)).status == "in_review"  # asking for the reason changed nothing yet
    sent = await world.tap(OFFICER, "Untrue")
    assert sent.text(OFFICER) == f"Tip {ref} is judged not valuable: Untrue (false)."
    assert sent.to(CITIZEN) == []
    tip = await world.tip(ref)
    assert (tip.status, tip.verdict_reason) == ("not_valuable", "false")


async def test_not_valuable_command_without_reason_offers_the_list(world, filed):
    _code, ref = filed
    asked = await world.say(OFFICER, f"/notvaluable {ref}")
    assert f"Why is tip {ref} not valuable?" in asked.text(OFFICER)
    sent = await world.tap(OFFICER, "Outside our jurisdiction")
    assert "not valuable: Outside our jurisdiction (out_of_scope)" in sent.text(OFFICER) and sent.to(CITIZEN) == []
    assert (await world.tip(ref)).verdict_reason == "out_of_scope"


async def test_note_is_sealed_and_shown_to_colleagues(world, filed):
    _code, ref = filed
    sent = await world.say(OFFICER, f"/note {ref} Đã xác minh quán cà phê số 12")
    assert sent.text(OFFICER) == f"Note added to {ref}."
    assert sent.to(CITIZEN) == []
    async with world.services.db.transaction() as session:
        rows = (await session.exec(select(TipField).where(TipField.name == "note:1"))).all()
    assert len(rows) == 1 and "quán".encode() not in rows[0].sealed
    view = await world.say(OFFICER, f"/tip {ref}")
    assert "· Đại úy Lan · Note: Đã xác minh quán cà phê số 12" in view.text(OFFICER)
    empty = await world.say(OFFICER, f"/note {ref}")
    assert empty.text(OFFICER) == f"Write the note after the reference: /note {ref} TEXT"
    assert [e.action for e in await world.audit("note")] == ["note"]


async def test_transfer_is_for_supervisors_only(world, filed):
    _code, ref = filed
    before = await world.snapshot(ref)
    refused = await world.say(OFFICER, f"/transfer {ref} ca-saigon")
    assert refused.text(OFFICER) == "Only a supervisor or an admin can transfer a tip."
    assert await world.snapshot(ref) == before
    await world.enrol(BOSS, unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    unknown = await world.say(BOSS, f"/transfer {ref} ca-nowhere")
    assert "Unknown unit «ca-nowhere»" in unknown.text(BOSS) and await world.snapshot(ref) == before
    sent = await world.say(BOSS, f"/transfer {ref} ca-saigon")
    assert sent.text(BOSS) == f"Tip {ref} was transferred to Công an phường Sài Gòn."
    tip = await world.tip(ref)
    assert (tip.status, tip.unit_id) == ("transferred", "ca-saigon")
    gone = await world.say(OFFICER, f"/tip {ref}")
    assert gone.text(OFFICER) == f"There is no tip {ref} in your units."
    await world.enrol(OUTSIDER, unit="ca-saigon", name="Đại úy Tâm")
    taken = await world.say(OUTSIDER, "/next")
    assert DESCRIPTION in taken.text(OUTSIDER)
    assert [e.detail for e in await world.audit("transfer")] == ["from=ca-benthanh to=ca-saigon"]


async def test_release_puts_the_tip_back_in_the_queue(world, filed):
    _code, ref = filed
    await world.say(OFFICER, "/next")
    assert (await world.tip(ref)).status == "in_review"
    sent = await world.tap(OFFICER, "Release")
    assert sent.text(OFFICER) == f"Tip {ref} is back in the queue."
    tip = await world.tip(ref)
    assert (tip.status, tip.claimed_by, tip.claimed_at) == ("new", None, None)
    not_claimed = await world.say(OFFICER, f"/release {ref}")
    assert not_claimed.text(OFFICER) == f"Tip {ref} is not claimed."
    await world.enrol(COLLEAGUE, name="Trung úy Hải")
    assert ref in (await world.say(COLLEAGUE, "/next")).text(COLLEAGUE)  # someone else can take it now


async def test_ask_reaches_the_tipster_and_their_answer_reaches_the_officer(world, filed):
    code, ref = filed
    await world.say(OFFICER, "/next")
    sent = await world.say(OFFICER, f"/ask {ref} Bạn có nhớ biển số xe không?")
    assert sent.text(OFFICER) == f"Your question on {ref} was sent to the tipster."
    [question] = sent.to(CITIZEN)
    assert "An officer has a question about your tip" in question["text"]
    assert "«Bạn có nhớ biển số xe không?»" in question["text"] and ref not in question["text"]
    assert (await world.tip(ref)).status == "needs_info"
    assert "An officer has a question for you" in (await world.say(STRANGER, f"/status {code}")).text(STRANGER)
    answered = await world.say(CITIZEN, "Biển số 59X1-123.45")
    assert answered.text(CITIZEN) == "Thank you, your answer was passed on to the officer."
    [note] = answered.to(OFFICER)
    assert note["text"] == f"The tipster answered your question on {ref}. Send /tip {ref} to read it."
    assert (await world.tip(ref)).status == "in_review"
    view = await world.say(OFFICER, f"/tip {ref}")
    text = view.text(OFFICER)
    assert "· Đại úy Lan · Question to the tipster: Bạn có nhớ biển số xe không?" in text
    assert "· the tipster · Answer: Biển số 59X1-123.45" in text
    later = await world.say(CITIZEN, "hello again")  # the question is answered: no second answer is taken
    assert "did not understand" in later.text(CITIZEN) and later.to(OFFICER) == []
    assert [e.actor for e in await world.audit("answer")] == ["tipster"]


async def test_ask_a_tipster_who_declined_follow_up_cannot_be_delivered(world):
    _code, ref = await world.file_tip(CITIZEN, identity="Anonymous, and do not contact me again")
    await world.enrol(OFFICER)
    view = await world.say(OFFICER, f"/tip {ref}")
    assert "The tipster declined follow-up questions." in view.text(OFFICER)
    before, messages_to_tipster = await world.snapshot(ref), len(world.fake.messages_to(CITIZEN))
    sent = await world.say(OFFICER, f"/ask {ref} Bạn có nhớ biển số xe không?")
    assert sent.text(OFFICER) == f"The tipster of {ref} chose no follow-up: the question cannot be delivered."
    assert sent.to(CITIZEN) == [] and len(world.fake.messages_to(CITIZEN)) == messages_to_tipster
    assert await world.snapshot(ref) == before
    assert not await world.audit("ask")


async def test_case_links_a_valuable_tip(world, filed):
    _code, ref = filed
    early = await world.say(OFFICER, f"/case {ref} 125/2026/HS 3")
    assert early.text(OFFICER) == "Only a tip judged valuable can be linked to a case."
    await world.say(OFFICER, f"/valuable {ref}")
    for subjects in ("three", "²", "10001", "99999999999999999999"):
        bad = await world.say(OFFICER, f"/case {ref} 125/2026/HS {subjects}")
        assert bad.text(OFFICER).startswith("Use: /case REF CASE SUBJECTS"), subjects
    assert (await world.tip(ref)).case_ref is None
    sent = await world.say(OFFICER, f"/case {ref} 125/2026/HS 3")
    assert sent.text(OFFICER) == f"Tip {ref} is linked to case 125/2026/HS with 3 subject(s)."
    tip = await world.tip(ref)
    assert (tip.status, tip.case_ref, tip.subject_count) == ("valuable", "125/2026/HS", 3)
    assert "Case 125/2026/HS, 3 subject(s)" in (await world.say(OFFICER, f"/tip {ref}")).text(OFFICER)
    assert [e.detail for e in await world.audit("case")] == ["case=125/2026/HS subjects=3"]


# --- who may do what ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", sorted(OFFICER_COMMANDS))
async def test_a_non_officer_gets_the_neutral_answer_for_every_officer_command(world, filed, command):
    _code, ref = filed
    args = {"/tip": ref, "/valuable": ref, "/notvaluable": f"{ref} false", "/note": f"{ref} hi",
            "/release": ref, "/transfer": f"{ref} ca-hn", "/case": f"{ref} 1/2026 1", "/ask": f"{ref} who?",
            "/export": ref, "/reopen": f"{ref} why", "/files": ref, "/queue": "mine", "/judged": "ma-tuy",
            }.get(command, "")
    neutral = (await neutral_of(world, STRANGER)).to(STRANGER)
    before, audit_before = await world.snapshot(ref), len(await world.audit())
    sent = await world.say(STRANGER, f"{command} {args}".strip())
    [answer] = sent.to(STRANGER)
    assert answer["text"] == neutral[0]["text"] == "Sorry, I did not understand that."
    assert _markup(answer) == _markup(neutral[0])
    assert len(sent) == 1  # nothing went to any other chat
    assert ("chat", STRANGER, "") not in world.fake.commands
    assert await world.snapshot(ref) == before and len(await world.audit()) == audit_before


@pytest.mark.parametrize("data", ["t:valuable:{ref}", "t:open:{ref}", "t:nv:{ref}:false", "t:release:{ref}",
                                  "t:queue:1", "t:queue:drugs:mine:1", "t:files:{ref}", "t:bogus:{ref}"])
async def test_a_forged_callback_changes_nothing(world, filed, data):
    code, ref = filed
    neutral = (await neutral_of(world, CITIZEN)).to(CITIZEN)[0]
    before, audit_before = await world.snapshot(ref), len(await world.audit())
    sent = await world.forge(CITIZEN, data.format(ref=ref))
    [answer] = sent.to(CITIZEN)
    assert answer["text"] == neutral["text"] and _markup(answer) == _markup(neutral)
    assert len(sent) == 1
    assert await world.snapshot(ref) == before and len(await world.audit()) == audit_before
    status = await world.say(CITIZEN, f"/status {code}")
    assert "Received, waiting for review" in status.text(CITIZEN)


async def test_a_forged_callback_from_an_officer_of_another_unit_changes_nothing(world, filed):
    _code, ref = filed
    await world.enrol(OUTSIDER, unit="ca-saigon", name="Đại úy Tâm")
    await neutral_of(world, OUTSIDER)  # a message with buttons to forge a tap on
    before = await world.snapshot(ref)
    sent = await world.forge(OUTSIDER, f"t:valuable:{ref}")
    assert sent.text(OUTSIDER) == f"There is no tip {ref} in your units." and sent.to(CITIZEN) == []
    assert await world.snapshot(ref) == before


async def test_an_officer_of_another_unit_cannot_see_the_tip(world, filed):
    _code, ref = filed
    await world.enrol(OUTSIDER, unit="ca-saigon", name="Đại úy Tâm")
    before = await world.snapshot(ref)
    assert (await world.say(OUTSIDER, "/queue")).text(OUTSIDER) == "No open tips in your units. 👍"
    assert (await world.say(OUTSIDER, "/next")).text(OUTSIDER) == "No tip is waiting in your units."
    for command in (f"/tip {ref}", f"/valuable {ref}", f"/notvaluable {ref} false", f"/note {ref} x",
                    f"/ask {ref} who?", f"/release {ref}", f"/case {ref} 1/2026 1"):
        sent = await world.say(OUTSIDER, command)
        assert sent.text(OUTSIDER) == f"There is no tip {ref} in your units.", command
        assert DESCRIPTION not in sent.text(OUTSIDER) and sent.to(CITIZEN) == []
        assert not any(m["method"].lower() == "sendphoto" for m in sent)
    assert await world.snapshot(ref) == before
    assert not await world.audit("view")
    await world.enrol(BOSS, unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    # the supervisor above both units does see it
    assert ref in (await world.say(BOSS, "/queue")).text(BOSS)


async def test_a_supervisor_transfers_within_their_province_only_an_admin_beyond(world, filed):
    _code, ref = filed
    await world.enrol(BOSS, unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    before = await world.snapshot(ref)
    refused = await world.say(BOSS, f"/transfer {ref} ca-hn")
    assert refused.text(BOSS) == ("Công an Thành phố Hà Nội is outside your province: only an admin can transfer a "
                                  "tip there.")
    assert await world.snapshot(ref) == before and not await world.audit("transfer")
    unknown = await world.say(BOSS, f"/transfer {ref} ca-nowhere")  # lists only what this supervisor may choose
    assert "ca-saigon" in unknown.text(BOSS) and "ca-hn" not in unknown.text(BOSS)
    await world.enrol(OUTSIDER, unit="ca-hcm", role="admin", name="Đại tá Hùng")
    sent = await world.say(OUTSIDER, f"/transfer {ref} ca-hn")
    assert sent.text(OUTSIDER) == f"Tip {ref} was transferred to Công an Thành phố Hà Nội."
    assert (await world.tip(ref)).unit_id == "ca-hn"
    assert [e.detail for e in await world.audit("transfer")] == ["from=ca-benthanh to=ca-hn"]


# --- bad input: a clear answer, nothing changed --------------------------------------------------

async def test_unknown_ref_is_answered_and_changes_nothing(world, filed):
    _code, ref = filed
    before = await world.snapshot(ref)
    for command in ("/tip ZZZZZZ", "/valuable ZZZZZZ", "/notvaluable ZZZZZZ false", "/note ZZZZZZ x",
                    "/ask ZZZZZZ hi", "/release ZZZZZZ", "/case ZZZZZZ 1/2026 1"):
        sent = await world.say(OFFICER, command)
        assert sent.text(OFFICER) == "There is no tip ZZZZZZ in your units.", command
    assert (await world.say(OFFICER, "/tip")).text(OFFICER) == "There is no tip ? in your units."
    assert await world.snapshot(ref) == before and not await world.audit("view")


async def test_a_second_verdict_is_refused(world, filed):
    _code, ref = filed
    await world.say(OFFICER, f"/valuable {ref}")
    before, told = await world.snapshot(ref), len(world.fake.messages_to(CITIZEN))
    for command in (f"/notvaluable {ref} false", f"/valuable {ref}", f"/release {ref}", f"/ask {ref} x?"):
        sent = await world.say(OFFICER, command)
        assert sent.text(OFFICER) == f"Tip {ref} was already judged valuable.", command
    assert await world.snapshot(ref) == before
    assert len(world.fake.messages_to(CITIZEN)) == told  # thanked once, not again
    assert len(await world.audit("verdict")) == 1


async def test_a_verdict_on_a_purged_tip_is_refused(world, filed, services):
    _code, ref = filed
    await world.say(OFFICER, f"/notvaluable {ref} insufficient")
    far = utcnow() + services.settings.triage.purge_not_valuable_after + timedelta(days=1)
    assert await purge_not_valuable(services, now=far) == 1
    before = await world.snapshot(ref)
    assert before[6] is not None and before[7] == 0  # purged, no sealed field left
    for command in (f"/valuable {ref}", f"/notvaluable {ref} false", f"/note {ref} x", f"/ask {ref} x?"):
        sent = await world.say(OFFICER, command)
        assert sent.text(OFFICER) == f"Tip {ref} was purged under the retention rules.", command
    view = await world.say(OFFICER, f"/tip {ref}")
    assert "The content of this tip was purged under the retention rules." in view.text(OFFICER)
    assert not any(m["method"].lower() == "sendphoto" for m in view)
    assert await world.snapshot(ref) == before
