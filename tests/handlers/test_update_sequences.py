"""Whatever several people send, in whatever order, the tip line answers well and its state stays whole.

Hypothesis draws sequences of updates for three chats on three channels, interleaved and sometimes
concurrent: random text (NFD, zero-width, right-to-left, NUL, 10,000 characters), stickers, contacts
and locations where text is expected, files where text is expected and text where files are, commands
in the middle of a tip (/start /report /cancel /help /status /language /remind, and officers' commands
from citizens), unknown, stale and forged buttons, redelivered update ids, the menu numbers "1".."5",
a clock that jumps past the draft's lifetime, and the sweep that wipes stale drafts. After every update:

- nothing failed: no "could not be handled" in the log, no "something went wrong" reply;
- every reply is well formed: text or files, unique choice ids that fit Telegram's 64-byte callback
  data, non-empty labels, no {placeholder} left, no English text in a Vietnamese chat, no officer menu
  for a citizen, and an officer's command gets the same neutral answer as an unknown one;
- a redelivered update is answered with nothing and changes nothing;
- the chat's conversation row is whole: flow, draft id and sealed draft are all set or all empty; the
  draft opens with its own data key, stands at a step of the questionnaire that applies, and its
  evidence count matches its attachments.

After every sequence: one tip per receipt code handed out, each found by its code and opened with its
own key, its reply route naming the chat that got the receipt; no data key, attachment or file left
over from a draft that was wiped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import string
import tempfile
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from babel.messages.pofile import read_po
from sqlalchemy import delete, text
from sqlmodel import SQLModel, select

from handlers.citizen import tipoff
from handlers.citizen.drafts import DRAFT_FIELD, FLOW, REPLY_ROUTE_FIELD, wipe_stale_drafts
from handlers.areas import AreaIndex
from handlers.context import Limits, Services, TipLineSettings
from handlers.i18n import LOCALES, pick_language, translator
from handlers.messages import CHANNEL_PREFIXES, Contact, IncomingFile, Inbound, Location, Reply
from handlers.citizen.questionnaire_file import load_questionnaire
from handlers.router import OFFICER_COMMANDS, TipLine
from handlers.units import UnitTree
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database
from storage.keys import load_data_key
from storage.models import (Attachment, Conversation, DataKeyRecord, FollowUp, Officer, ReminderSubscriber, Tip)
from storage.tips import find_tip_by_receipt, open_attachments, read_tip_fields
from tests.support.chat import answered
from tests.support.deployment import TEST_AREAS, TEST_UNITS
from tests.support.images import jpeg_with_gps

QUESTIONNAIRE = load_questionnaire()
STEP_IDS = {s.id for s in QUESTIONNAIRE.steps}
STEP_ORDER = ["none"] + [s.id for s in QUESTIONNAIRE.steps]
MEDIA_STEPS = {s.id for s in QUESTIONNAIRE.steps if s.kind == "media"}
CHATS = [("console", "700100200", "vi"), ("telegram", "4242", "en-US"), ("zalo", "9001", None)]
LIMITS = Limits(messages_per_minute=10_000, max_files=3, max_file_bytes=64 * 1024)
# A few seconds per test; TINBAO_PROPERTY_EXAMPLES=2000 for a long hunt.
SETTINGS = settings(max_examples=int(os.environ.get("TINBAO_PROPERTY_EXAMPLES", "60")), deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# --- what people send ----------------------------------------------------------------------------

DESCRIPTION = "Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối."
SPECIAL_TEXTS = [
    unicodedata.normalize("NFD", "Phường Bến Thành"), unicodedata.normalize("NFD", DESCRIPTION),
    "ben\u200bthanh", "\u200b\u200c\u200d\ufeff", "\u202eben thanh\u202c", "שלום עליכם, מה נשמע? " * 3,
    "مرحبا هذا بلاغ عن جريمة", "a\x00b", "\x00", "\x00" * 20, ("Trộm cắp xe máy giữa ban ngày. " * 400)[:10_000],
    "x" * 10_000, "{n}", "{code} {emergency}", "%s %d", "}{", "", " ", "\n\n", "1", "2", "3", "4", "5", "0", "99",
    "１", "٣", "TB-00000-00000", "tb 7k3mp 9qxfa", "ben thanh", "hoan kiem", "Bến Thành", "sai gon", DESCRIPTION,
    "0987650123", "+84 987 650 123", "Report a crime", "báo tin", "Xong", "Done", "/", "//start", "/ start",
    "🚨🚓", "Ma túy", "drugs",
    # Half an emoji: JSON may carry a lone UTF-16 surrogate ("\ud83d"), which no UTF-8 text can hold.
    "\ud83d", "Người đàn ông áo đỏ bán ma túy \ud83d ở đầu hẻm", "ben thanh\udc00", "/remind \ud83d",
]
TEXTS = st.one_of(st.sampled_from(SPECIAL_TEXTS), st.text(max_size=60),
                  st.text(alphabet=st.characters(codec="utf-8"), min_size=10, max_size=300),
                  st.builds(lambda before, half, after: before + half + after,
                            st.sampled_from(["", "ben thanh", "0987650123", DESCRIPTION]),
                            st.sampled_from(["\ud83d", "\ude00", "\udc00\ud800"]), st.text(max_size=20)))
COMMANDS = st.one_of(
    st.sampled_from([
        "/start", "/report", "/baotin", "/cancel", "/help", "/status", "/status TB-00000-00000", "/status abc",
        "/language", "/language en", "/language vi", "/language fr", "/language " + "x" * 300, "/remind",
        "/remind on", "/remind off", "/remind ben thanh", "/remind zzz", "/enroll", "/enroll CB-00000-00000-00000",
        "/START", "/start@tinbao_bot", "/report 2026-01-01 2026-02-01", "/nosuchcommand", "/help extra words",
    ]),
    st.builds(lambda name, args: f"{name} {args}".strip(), st.sampled_from(sorted(OFFICER_COMMANDS)),
              st.sampled_from(["", "K7QM2X", "K7QM2X duplicate", "ABC a question?", "x" * 500])),
)
PAYLOADS = st.one_of(
    st.sampled_from([
        "t:open:K7QM2X", "t:nv:K7QM2X:duplicate", "t:valuable:K7QM2X", "t:release:K7QM2X", "t:queue", "t:",
        "t:nosuch:x", "b:1:send", "b:1:cancel", "b:x", "remind:on", "remind:off", "remind:add=79.26734",
        "remind:add=nosuch", "remind:del=79", "remind:zzz", "lang=en", "lang=vi", "lang=fr", "lang=", "menu:report",
        "menu:status", "menu:help", "menu:nosuch", "category:drugs", "category:nosuch", "category:", "when:now",
        "area:area=79.26734", "area:area=01", "place:skip", "people:skip", "evidence:done", "evidence:clear",
        "identity:phone", "identity:anonymous", "identity:no_followup", "identity:nosuch", "review:submit",
        "review:cancel", "review:edit=category", "review:edit=evidence", "review:edit=review", "review:edit=nosuch",
        "scammer:skip", ":", "", "\x00",
    ]),
    st.text(max_size=80),
)
FILES = st.sampled_from(["photo", "broken_photo", "pdf", "voice", "too_big", "unreachable", "album", "odd_name"])
PHONES = st.sampled_from(["0987650123", "+84987650123", "123", "", "not a phone", "+" + "9" * 40, "0987\ud83d650123",
                          "\x000987650123"])
COORDINATES = st.floats(allow_nan=True, allow_infinity=True)
CHAT = st.integers(0, len(CHATS) - 1)

# (kind, chat, payload, together): `together` runs it at the same time as the updates drawn before it.
ACTIONS = st.one_of(
    st.tuples(st.just("answer"), CHAT, st.integers(0, 20)),
    st.tuples(st.just("answer"), CHAT, st.integers(0, 20)),
    st.tuples(st.just("answer"), CHAT, st.integers(0, 20)),
    st.tuples(st.just("text"), CHAT, TEXTS),
    st.tuples(st.just("command"), CHAT, COMMANDS),
    st.tuples(st.just("command"), CHAT, st.sampled_from(["/cancel", "/report", "/start", "/help", "/status"])),
    st.tuples(st.just("tap"), CHAT, st.integers(0, 20)),
    st.tuples(st.just("old_button"), CHAT, st.integers(0, 500)),
    st.tuples(st.just("choice"), CHAT, PAYLOADS),
    st.tuples(st.just("unsupported"), CHAT, st.sampled_from(["sticker", "poll", "dice", "animation"])),
    st.tuples(st.just("contact"), CHAT, st.tuples(PHONES, st.booleans())),
    st.tuples(st.just("location"), CHAT, st.tuples(COORDINATES, COORDINATES)),
    st.tuples(st.just("file"), CHAT, st.tuples(FILES, st.one_of(st.none(), TEXTS))),
    st.tuples(st.just("redeliver"), CHAT, st.integers(0, 500)),
    st.tuples(st.just("clock"), CHAT, st.sampled_from([1, 23, 25])),
    st.tuples(st.just("sweep"), CHAT, st.none()),
).flatmap(lambda action: st.tuples(*[st.just(part) for part in action], st.booleans()))


# --- the catalogs, for the checks ---------------------------------------------------------------

def vi_catalog_entries() -> list[str]:
    with (LOCALES / "vi" / "LC_MESSAGES" / "tinbao.po").open("rb") as fh:
        return [m.id for m in read_po(fh, locale="vi") if m.id]


def _receipt_prefixes() -> set[str]:
    msgid = next(m for m in vi_catalog_entries() if m.startswith("Your tip has been received."))
    return {translator(lang)(msgid).split("{code}")[0] for lang in ("vi", "en")}


def _english_only_fragments() -> set[str]:
    """Long literal pieces of English texts that no Vietnamese text contains: in a vi chat, untranslated text."""
    vi = translator("vi")
    translations = " ".join(vi(m) for m in vi_catalog_entries())
    fragments = set()
    for msgid in vi_catalog_entries():
        for literal, *_ in string.Formatter().parse(msgid):
            for piece in literal.split("\n"):
                piece = piece.strip()
                if len(piece) >= 16 and piece not in translations:
                    fragments.add(piece)
    return fragments


RECEIPT_PREFIXES = _receipt_prefixes()
RECEIPT = re.compile(r"TB-[0-9A-Z]{5}-[0-9A-Z]{5}")
ENGLISH_ONLY = _english_only_fragments()
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:[:!][^{}]*)?\}")
NEUTRAL = {lang: translator(lang)("Sorry, I did not understand that.") for lang in ("vi", "en")}
SORRY = {translator(lang)("Sorry, something went wrong on our side and your last message was not saved. "
                          "Please send it again.") for lang in ("vi", "en")}


# --- one sequence, against a fresh tip line ------------------------------------------------------

class FailedTurns(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or "could not be handled" in record.getMessage():
            self.records.append(record)


class StandingClock:
    """Stands still until a jump, so the windows a sequence fills are the same on every run."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def _file(kind: str) -> list[IncomingFile]:
    def incoming(data: bytes, kind: str, *, size: int | None = None, fail: bool = False,
                 filename: str | None = None, mime: str | None = None) -> IncomingFile:
        async def fetch() -> bytes:
            if fail:
                raise ConnectionError("file service down")
            return data
        return IncomingFile(kind=kind, size=len(data) if size is None else size, fetch=fetch, filename=filename,
                            mime=mime)
    photo = jpeg_with_gps()
    return {
        "photo": lambda: [incoming(photo, "photo")],
        "broken_photo": lambda: [incoming(b"\xff\xd8 not really a jpeg", "photo", mime="image/jpeg")],
        "pdf": lambda: [incoming(b"%PDF-1.4 evidence", "document", filename="bằng chứng.pdf", mime="application/pdf")],
        "voice": lambda: [incoming(b"OggS voice", "voice", mime="audio/ogg")],
        "too_big": lambda: [incoming(b"", "video", size=10**9)],
        "unreachable": lambda: [incoming(b"", "document", fail=True)],
        "odd_name": lambda: [incoming(b"%PDF-1.4", "document", filename="bi\ud83dn b\u1ea3n\x00.pdf",
                                      mime="application/pdf\udc00")],
        "album": lambda: [incoming(photo, "photo"), incoming(photo, "photo"), incoming(b"%PDF", "document")],
    }[kind]()


class Sequence:
    """Plays the drawn updates against one tip line and checks every answer and the state after it."""

    def __init__(self, services: Services, clock: StandingClock) -> None:
        self.services, self.clock = services, clock
        self.tipline = TipLine(services)
        self.update_ids = iter(range(1, 10**9))
        self.delivered: list[Inbound] = []  # pristine copies, for redelivery
        self.last: dict[int, list[Reply]] = {i: [] for i in range(len(CHATS))}
        self.buttons: dict[int, list[str]] = {i: [] for i in range(len(CHATS))}  # every button ever shown
        self.sent_texts: dict[int, list[str]] = {i: [] for i in range(len(CHATS))}
        self.receipts: list[tuple[int, str]] = []  # (chat, code)
        self.step: dict[int, str | None] = {i: None for i in range(len(CHATS))}  # the question each chat is at
        self.steps: list[str] = []  # what happened, for the failure message
        self.reached: set[str] = set()  # the questions any chat got to

    def inbound(self, chat: int, **fields) -> Inbound:
        channel, chat_id, language = CHATS[chat]
        return Inbound(channel=channel, chat_id=chat_id, language=language,
                       update_id=str(next(self.update_ids)), **fields)

    def chat_key(self, chat: int) -> str:
        channel, chat_id, _ = CHATS[chat]
        return self.services.keyring.pseudonym(CHANNEL_PREFIXES[channel], chat_id)

    def make(self, kind: str, chat: int, payload) -> Inbound | None:
        """The update an action stands for (None for actions that are not an update)."""
        last_choices = [c.id for r in self.last[chat] for c in r.choices]
        if kind == "answer":  # what a cooperative citizen would send next
            if self.step[chat] is None:
                return self.inbound(chat, text="/report")
            forward = [c for c in last_choices if not re.search(r":(cancel|clear|edit=)|^remind:off$|^lang=", c)]
            if forward:
                return self.inbound(chat, choice=forward[payload % len(forward)])
            typed = {"area": ["ben thanh", "hoan kiem", "sai gon"], "location": ["12 Hàng Bài"],
                     "contact": ["0987650123", "+84 987 650 123"]}.get(QUESTIONNAIRE.step(self.step[chat]).kind,
                                                                         [DESCRIPTION])
            return self.inbound(chat, text=typed[payload % len(typed)])
        if kind in ("text", "command"):
            return self.inbound(chat, text=payload)
        if kind == "tap":
            return self.inbound(chat, choice=last_choices[payload % len(last_choices)]) if last_choices else None
        if kind == "old_button":
            shown = self.buttons[chat]
            return self.inbound(chat, choice=shown[payload % len(shown)]) if shown else None
        if kind == "choice":
            return self.inbound(chat, choice=payload)
        if kind == "unsupported":
            return self.inbound(chat, unsupported=payload)
        if kind == "contact":
            return self.inbound(chat, contact=Contact(*payload))
        if kind == "location":
            return self.inbound(chat, location=Location(*payload))
        if kind == "file":
            files_kind, caption = payload
            return self.inbound(chat, files=_file(files_kind), text=caption)
        raise AssertionError(kind)

    async def play(self, actions) -> None:
        batch: list[tuple] = []
        for action in actions:
            if batch and not action[3]:
                await self.run_batch(batch)
                batch = []
            batch.append(action)
        if batch:
            await self.run_batch(batch)
        await self.check_whole_database()

    def report(self) -> None:
        """How far the drawn sequences got (pytest --hypothesis-show-statistics)."""
        event(f"receipts: {len(self.receipts)}")
        event(f"furthest question: {max(self.reached, key=STEP_ORDER.index, default='none')}")

    async def run_batch(self, batch: list[tuple]) -> None:
        singles = [a for a in batch if a[0] in ("redeliver", "clock", "sweep")]
        for kind, chat, payload, _together in singles:  # these look at the state before and after: alone
            await self.run_single(kind, chat, payload)
        turns = []
        for kind, chat, payload, _together in batch:
            if kind not in ("redeliver", "clock", "sweep"):
                inbound = self.make(kind, chat, payload)
                if inbound is not None:
                    turns.append((chat, inbound))
        if not turns:
            return
        chats = [chat for chat, _ in turns]
        pristine = [dataclasses.replace(inbound) for _, inbound in turns]
        self.steps += [f"chat {chat}: {_describe(inbound)}" + (" (together)" if len(turns) > 1 else "")
                       for chat, inbound in turns]
        results = await asyncio.gather(*(answered(self.tipline, inbound) for _, inbound in turns))
        self.delivered += pristine
        for (chat, inbound), replies in zip(turns, results):
            alone = chats.count(chat) == 1
            await self.check_turn(chat, inbound, replies, language_known=alone)

    async def run_single(self, kind: str, chat: int, payload) -> None:
        if kind == "clock":
            self.clock.now += timedelta(hours=payload)
            self.steps.append(f"the clock jumps {payload} h")
        elif kind == "sweep":
            self.steps.append("the sweep of stale drafts runs")
            await wipe_stale_drafts(self.services)
            for i in range(len(CHATS)):
                await self.check_conversation(i)
        elif kind == "redeliver" and self.delivered:
            again = dataclasses.replace(self.delivered[payload % len(self.delivered)])
            chat = next(i for i, (channel, chat_id, _) in enumerate(CHATS)
                        if (channel, chat_id) == (again.channel, again.chat_id))
            self.steps.append(f"chat {chat}: redelivered update {again.update_id}")
            before = await self.snapshot(chat)
            replies = await answered(self.tipline, again)
            assert replies == [], self.explain(f"a redelivered update was answered again: {replies}")
            assert await self.snapshot(chat) == before, self.explain("a redelivered update changed the state")

    def explain(self, problem: str) -> str:
        return problem + "\nafter:\n  " + "\n  ".join(self.steps[-40:])

    # --- checks after each turn ------------------------------------------------------------------

    async def check_turn(self, chat: int, inbound: Inbound, replies: list[Reply], *, language_known: bool) -> None:
        failed = self.failures.records
        if failed:
            record = failed[0]
            trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
            raise AssertionError(self.explain(f"an update could not be handled: {record.getMessage()}\n{trace}"))
        for reply in replies:
            assert reply.text not in SORRY, self.explain("the citizen was told something went wrong")
        if inbound.text:
            self.sent_texts[chat].append(inbound.text)
        conversation = await self.check_conversation(chat)
        lang = pick_language(conversation.language if conversation else None, inbound.language)
        for reply in replies:
            self.check_reply(chat, inbound, reply, lang=lang if language_known else None)
        own = [r for r in replies if r.to is None]
        command = inbound.command
        if command and command[0] in OFFICER_COMMANDS:  # nobody here is an officer
            assert own and own[-1].text.startswith(tuple(NEUTRAL.values())) and len(replies) == len(own), \
                self.explain(f"a citizen's {command[0]} got more than the neutral answer: {replies}")
        if own:
            self.last[chat] = own
            self.buttons[chat] += [c.id for r in own for c in r.choices]
        for reply in own:
            if any(reply.text.startswith(prefix) for prefix in RECEIPT_PREFIXES):
                codes = RECEIPT.findall(reply.text)
                assert codes, self.explain(f"a receipt without a code: {reply.text!r}")
                self.receipts.append((chat, codes[0]))

    def check_reply(self, chat: int, inbound: Inbound, reply: Reply, *, lang: str | None) -> None:
        where = self.explain
        assert reply.text.strip() or reply.files, where(f"an empty reply: {reply}")
        ids = [c.id for c in reply.choices]
        assert len(ids) == len(set(ids)), where(f"two buttons with one id: {ids}")
        for choice in reply.choices:
            assert choice.id and len(choice.id.encode()) <= 64, where(f"a button id Telegram refuses: {choice.id!r}")
            assert choice.label.strip(), where(f"a button without a label: {choice}")
        typed = "".join(self.sent_texts[chat])
        left = [p for p in PLACEHOLDER.findall(reply.text) if p not in typed]
        assert not left, where(f"placeholders left in a reply: {left} in {reply.text!r}")
        assert reply.commands_menu in (None, "citizen"), where(f"a citizen got the {reply.commands_menu} menu")
        if lang == "vi" and reply.to is None:
            english = [f for f in ENGLISH_ONLY if f in reply.text and f not in typed]
            assert not english, where(f"English in a Vietnamese chat: {english} in {reply.text!r}")

    async def snapshot(self, chat: int) -> dict:
        """Everything one update of this chat could change."""
        async with self.services.db.transaction() as session:
            conversation = (await session.exec(
                select(Conversation).where(Conversation.chat_key == self.chat_key(chat)))).one_or_none()
            rows = {}
            for model in (Tip, Attachment, DataKeyRecord, ReminderSubscriber, FollowUp):
                rows[model.__name__] = sorted(str(r) for r in (await session.exec(select(model))).all())
        return {"conversation": conversation and conversation.model_dump(), "rows": rows,
                "blobs": sorted(p.name for p in self.services.blobs.root.iterdir())}

    async def check_conversation(self, chat: int) -> Conversation | None:
        """The chat's row is whole: flow, draft id and draft agree; the draft opens and stands somewhere real."""
        where = self.explain
        async with self.services.db.transaction() as session:
            conv = (await session.exec(
                select(Conversation).where(Conversation.chat_key == self.chat_key(chat)))).one_or_none()
            self.step[chat] = None
            if conv is None:
                return None
            parts = (conv.flow, conv.draft_id, conv.draft)
            assert all(p is None for p in parts) or all(p is not None for p in parts), where(
                f"a half-written conversation: flow={conv.flow!r} draft_id={conv.draft_id!r} "
                f"draft={'set' if conv.draft else None}")
            if conv.flow is None:
                return conv
            assert conv.flow == FLOW, where(f"an unknown flow {conv.flow!r}")
            key = await load_data_key(session=session, keyring=self.services.keyring, owner_id=conv.draft_id)
            assert key is not None, where("the draft's data key is gone")
            state = json.loads(key.open_text(DRAFT_FIELD, conv.draft))
            step = self.step[chat] = state["step"]
            self.reached.add(step)
            assert step in STEP_IDS, where(f"the draft stands at a step that does not exist: {step!r}")
            answers = state.get("answers", {})
            assert QUESTIONNAIRE.step(step).applies(answers), where(f"the draft stands at {step}, which does not apply")
            for answered in answers:
                assert answered in STEP_IDS and QUESTIONNAIRE.step(answered).kind != "review", where(
                    f"an answer to {answered!r}")
                assert QUESTIONNAIRE.step(answered).applies(answers), where(f"an answer kept for {answered}")
            kept = (await session.exec(select(Attachment).where(Attachment.owner_id == conv.draft_id))).all()
            if step in MEDIA_STEPS:
                expected = state.get("pending", {}).get("files", 0)
            else:
                expected = sum(answers.get(s, {}).get("count", 0) for s in MEDIA_STEPS)
            assert len(kept) == expected, where(f"the draft counts {expected} file(s) but keeps {len(kept)}")
        return conv

    # --- checks after the whole sequence -------------------------------------------------------

    async def check_whole_database(self) -> None:
        where = self.explain
        services = self.services
        async with services.db.transaction() as session:
            tips = (await session.exec(select(Tip))).all()
            assert len(tips) == len(self.receipts), where(
                f"{len(tips)} tip(s) stored for {len(self.receipts)} receipt code(s) handed out")
            for chat, code in self.receipts:
                tip = await find_tip_by_receipt(session=session, receipt_hash=services.keyring.receipt_hash(
                    tipoff.normalize_receipt_code(code)))
                assert tip is not None, where(f"receipt {code} finds no tip")
                key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
                fields = await read_tip_fields(session=session, data_key=key)
                assert len(json.loads(fields["description"])["text"]) >= 10, where("a tip without its description")
                if REPLY_ROUTE_FIELD in fields:
                    route = json.loads(fields[REPLY_ROUTE_FIELD])
                    assert (route["channel"], route["chat_id"]) == CHATS[chat][:2], where(
                        f"the tip of chat {chat} would answer {route['channel']}:{route['chat_id']}")
                evidence = await open_attachments(session=session, blobs=services.blobs, data_key=key)
                assert len(evidence) == tip.attachment_count, where("a tip's evidence count is wrong")
            drafts = {c.draft_id for c in (await session.exec(select(Conversation))).all() if c.draft_id}
            owners = drafts | {t.id for t in tips}
            owners |= {s.route_key_id for s in (await session.exec(select(ReminderSubscriber))).all()}
            owners |= {o.route_key_id for o in (await session.exec(select(Officer))).all()}
            owners |= {f.id for f in (await session.exec(select(FollowUp))).all()}
            keys = set((await session.exec(select(DataKeyRecord.id))).all())
            assert keys <= owners, where(f"{len(keys - owners)} data key(s) belong to nothing (a wiped draft's?)")
            attachments = (await session.exec(select(Attachment))).all()
            orphans = [a for a in attachments if a.owner_id not in drafts | {t.id for t in tips}]
            assert not orphans, where(f"{len(orphans)} attachment(s) of a wiped draft are still stored")
        files = {p.name for p in services.blobs.root.iterdir()}
        assert files == {a.blob_name for a in attachments}, where(
            f"evidence files and attachment rows differ: {sorted(files ^ {a.blob_name for a in attachments})}")


def _describe(inbound: Inbound) -> str:
    parts = []
    if inbound.text is not None:
        parts.append(f"text {inbound.text[:60]!r}" + ("…" if len(inbound.text) > 60 else ""))
    if inbound.choice is not None:
        parts.append(f"button {inbound.choice!r}")
    if inbound.files:
        parts.append(f"files {[f.kind for f in inbound.files]}")
    for name in ("location", "contact", "unsupported"):
        if getattr(inbound, name) is not None:
            parts.append(f"{name} {getattr(inbound, name)}")
    return ", ".join(parts) or "an empty update"


# --- running one example on a clean database ---------------------------------------------------

async def _empty_tables(db: Database) -> None:
    """Every example starts from the migrated, empty schema (the fixtures' database lives per test)."""
    async with db.engine.begin() as conn:
        if db.is_sqlite:
            for table in reversed(SQLModel.metadata.sorted_tables):
                await conn.execute(delete(table))
        else:
            names = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))


async def _play(database_url: str, root: Path, actions) -> Sequence:
    db = Database(database_url)
    failures = FailedTurns()
    logger = logging.getLogger("handlers")
    logger.addHandler(failures)
    try:
        await _empty_tables(db)
        workdir = Path(tempfile.mkdtemp(dir=root))
        areas = AreaIndex(TEST_AREAS)
        clock = StandingClock()
        services = Services(
            db=db, keyring=Keyring.create(workdir / "keyring.json"), blobs=BlobStore(workdir / "blobs"),
            settings=TipLineSettings(areas=areas, limits=LIMITS, units=UnitTree(TEST_UNITS, areas)), clock=clock)
        sequence = Sequence(services, clock)
        sequence.failures = failures
        await sequence.play(actions)
        return sequence
    finally:
        logger.removeHandler(failures)
        await db.dispose()


def warmed_up_chaos():
    """Each chat first answers 0 to 12 questions (so the chaos starts anywhere in a tip), then random updates."""
    def warm_up(counts_and_picks):
        counts, picks = counts_and_picks
        return [("answer", chat, picks[(chat * 13 + n) % len(picks)], False)
                for n in range(max(counts)) for chat, count in enumerate(counts) if n < count]
    counts = st.lists(st.integers(0, 12), min_size=len(CHATS), max_size=len(CHATS))
    warmed = st.tuples(counts, st.lists(st.integers(0, 20), min_size=1, max_size=40)).map(warm_up)
    return st.tuples(warmed, st.lists(ACTIONS, min_size=1, max_size=30)).map(lambda parts: parts[0] + parts[1])


def cooperative_with_noise():
    """A citizen who answers every question, with a random update (from anyone) before some answers."""
    noise = st.lists(ACTIONS, max_size=1)
    return st.lists(st.tuples(noise, st.integers(0, 20)), min_size=12, max_size=20).map(
        lambda rounds: [a for extra, pick in rounds for a in extra + [("answer", 0, pick, False)]])


@SETTINGS
@given(actions=warmed_up_chaos())
def test_random_updates_from_three_chats_leave_every_answer_and_state_whole(database_url, tmp_path, actions):
    asyncio.run(_play(database_url, tmp_path, actions)).report()


@SETTINGS
@given(actions=cooperative_with_noise())
def test_a_citizen_answering_through_noise_gets_one_whole_tip_per_receipt(database_url, tmp_path, actions):
    asyncio.run(_play(database_url, tmp_path, actions)).report()


async def test_the_cooperative_citizen_reaches_a_receipt(database_url, tmp_path):
    """The checks above are not vacuous: the cooperative citizen does get a tip through, and it is checked."""
    sequence = await _play(database_url, tmp_path, [("answer", 0, 0, False)] * 12)
    assert len(sequence.receipts) == 1
