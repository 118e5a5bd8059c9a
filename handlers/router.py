"""The entry point for every update: deduplicate, take the chat's turn, apply limits, route.

A /command goes by the COMMANDS table at the end of this module (officers' commands get the neutral
answer for anyone who is not an officer). Then a reserved button kind, by
the BUTTONS table, then the answer to the tip-off's current question, then the neutral "I did not
understand", which is also what any unknown command gets.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from handlers import buttons
from handlers.citizen import drafts, tipoff
from handlers.officer import accounts, files, followup, queue, triage, verdicts
from handlers.related.links import link_command
from handlers.related.search import search_command
from handlers.reminders import broadcasts, subscriptions
from handlers.areas import typed_label
from handlers.commands import EVERYONE, NC_, OFFICER, SUPERVISOR, Command, menu_commands
from handlers.context import Services
from handlers.evidence_images import clean_images_first
from handlers.i18n import LANGUAGES, pick_language, translator
from handlers.limits import count_message, message_counted_on_opening
from handlers.reply_outbox import ReplyOutbox
from handlers.messages import CHANNEL_PREFIXES, CHANNELS_WITHOUT_FILES, Choice, Inbound, Reply
from handlers.citizen.status import show_status
from handlers.chat_turn import Turn
from storage.db import DatabaseAway, out_of_reach
from storage.conversations import (open_turn, peek_conversation, save_conversation, touch_conversation,
                                   was_processed)

log = logging.getLogger(__name__)


def _at_first_use(module: str, name: str) -> Callable:
    """An officer's handler whose module (figures, charts, case files) is imported when the
    handler is first called: an idle worker does not hold what only officers ask for now and then."""
    async def handler(*args):
        return await getattr(importlib.import_module(module), name)(*args)
    return handler


_send_report = _at_first_use("handlers.figures.movement_report", "send_report")
_show_stats = _at_first_use("handlers.figures.stats", "show_stats")
_export_tip = _at_first_use("handlers.officer.export", "export_tip")


class ChatTurns:
    """One update per chat at a time inside this process (PostgreSQL also row-locks across workers)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # forget idle chats so memory does not grow with every citizen
                del self._users[key], self._locks[key]


class TipLine:
    """Channel-neutral: give it an Inbound, get the replies to send back to that chat."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._turns = ChatTurns()
        self.outbox = ReplyOutbox(services)

    def chat_key(self, inbound: Inbound) -> str:
        return self.services.keyring.pseudonym(CHANNEL_PREFIXES[inbound.channel], inbound.chat_id)

    async def handle(self, inbound: Inbound) -> list[Reply]:
        chat_key = self.chat_key(inbound)
        async with self._turns.hold(chat_key):
            try:
                if inbound.files and await self._wants_files(inbound, chat_key):
                    # Before the transaction: a large image must not hold the database while it is decoded.
                    await clean_images_first(inbound, max_file_bytes=self.services.settings.limits.max_file_bytes)
                return await self._handle_locked(inbound, chat_key)
            except Exception as exc:
                if out_of_reach(exc):
                    # Nothing was kept, and nothing is answered: the channel leaves the update with the
                    # platform (no 200, no offset) or keeps it, and it is handled once the database is back.
                    log.warning("the database did not answer; the update is left to be handled later")
                    raise DatabaseAway() from None
                # Never the message itself in the log: only that something failed, and where.
                log.exception("update could not be handled; the transaction was rolled back")
                # The same rule as every other reply ("en-US" reads English); the chat's own /language
                # choice is out of reach here, its transaction having been rolled back.
                _ = translator(pick_language(None, inbound.language, self.services.settings.default_language))
                return [Reply(_("Sorry, something went wrong on our side and your last message was not saved. "
                                "Please send it again."))]

    async def _wants_files(self, inbound: Inbound, chat_key: str) -> bool:
        """A new update whose chat stands at the evidence question; a file sent anywhere else is never fetched."""
        async with self.services.db.transaction() as session:
            if inbound.update_id is not None and await was_processed(
                    session=session, channel=inbound.channel, update_id=str(inbound.update_id)):
                return False
            conversation = await peek_conversation(session=session, chat_key=chat_key)
            return await drafts.waiting_for_files(self.services, session=session, conversation=conversation)

    async def _handle_locked(self, inbound: Inbound, chat_key: str) -> list[Reply]:
        services = self.services
        async with services.db.transaction() as session:
            now = services.clock()
            opened = await open_turn(
                session=session, channel=inbound.channel, chat_key=chat_key,
                update_id=None if inbound.update_id is None else str(inbound.update_id),
                count=message_counted_on_opening(keyring=services.keyring, inbound=inbound, chat_key=chat_key,
                                                 now=now))
            if opened is None:
                # A redelivery: it was handled already; what it answered and did not get out goes now.
                left = await self.outbox.left_over(session=session, inbound=inbound)
                return left if left is not None else []  # an empty one still settles (or keeps) its row
            conversation = opened.conversation
            turn = Turn(services=services, session=session, conversation=conversation, inbound=inbound, now=now)
            replies = await self._flood_guard(turn, opened.counted)
            if replies is None:
                replies = _files_left_behind(turn, await route(turn))
            for reply in replies:
                if reply.language is None and reply.to is None:  # to another chat: its sender says which
                    reply.language = turn.lang
            if conversation.flow is None:
                conversation.offered = ",".join(c.id for r in replies for c in r.choices)[:255] or None
            touch_conversation(conversation=conversation, now=turn.now)  # coarse, and none once the tip is sent
            if inbound.update_id is not None and replies:
                # Committed with the turn: a worker killed before they went out leaves them to the redelivery.
                replies = await self.outbox.keep(session=session, inbound=inbound, replies=replies)
            await save_conversation(session=session, conversation=conversation)
        return replies

    async def _flood_guard(self, turn: Turn, counted_on_opening: int | None) -> list[Reply] | None:
        limit = self.services.settings.limits.messages_per_minute
        count = await count_message(turn, counted_on_opening=counted_on_opening)
        if count <= limit:
            return None
        if count == limit + 1:  # say it once; after that, stay quiet until the minute is over
            return [Reply(turn._("You are sending messages too quickly. Please wait a minute, then continue."))]
        return []


async def route(turn: Turn) -> list[Reply]:
    _ = turn._
    lead = None
    if drafts.is_expired(turn):
        await drafts.wipe_draft(turn)
        lead = _("Your unfinished tip was deleted after {hours} hours without activity.").format(
            hours=int(turn.services.settings.limits.draft_ttl.total_seconds() // 3600))
    replies = await _route(turn)
    if lead:
        replies.insert(0, Reply(lead))
    return replies


def _files_left_behind(turn: Turn, replies: list[Reply]) -> list[Reply]:
    """On a channel that cannot carry our files (a chart, a report, evidence), say which stayed behind."""
    if turn.inbound.channel not in CHANNELS_WITHOUT_FILES:
        return replies
    for reply in replies:
        if reply.files and reply.to is None:
            note = turn._("This chat cannot receive files, so these were not sent: {names}. The bot on Telegram "
                          "sends them.").format(names=", ".join(f.filename or f.kind for f in reply.files))
            reply.text = f"{reply.text}\n\n{note}" if reply.text else note
            reply.files = []
    return replies


def _typed_menu_choice(turn: Turn) -> str | None:
    """On channels without buttons, "2" or the words of a menu button mean that button."""
    offered = (turn.conversation.offered or "").split(",")
    text = (turn.inbound.text or "").strip()
    if not text:
        return None
    if text.isdecimal() and len(text) < 4:
        return offered[int(text) - 1] if offered[0] and 1 <= int(text) <= len(offered) else None
    labels = {c.id: c.label for c in _menu(turn) + _language_choices()}
    # The menu's words are understood even where the menu was not just shown ("to giac" for «Tố giác tội phạm»).
    ids = [i for i in offered if i in labels] or [c.id for c in _menu(turn)]
    picked = typed_label(text, [labels[i] for i in ids])
    return None if picked is None else ids[picked]


async def _route(turn: Turn) -> list[Reply]:
    _ = turn._
    inbound = turn.inbound
    in_tipoff = turn.conversation.flow == drafts.FLOW
    waiting = verdicts.take_wait(turn)  # «Which tip?» / «Why?» after a verdict's button: asked once, whatever comes
    if waiting and inbound.command is None and inbound.choice is None and inbound.text:
        return await _as_officer(turn, verdicts.answer_wait, waiting, in_tipoff)
    if (not in_tipoff and inbound.choice is None and inbound.command is None
            and not await followup.question_waiting(turn)):  # "2" may answer an officer's question
        inbound.choice = _typed_menu_choice(turn)
    if inbound.command is not None:
        return await _command(turn, *inbound.command, in_tipoff=in_tipoff)
    kind = buttons.reserved_kind(inbound.choice)
    if kind is not None:
        return await BUTTONS[kind](turn, inbound.choice, in_tipoff)
    if in_tipoff:  # a questionnaire step's button, or the answer typed
        return await tipoff.answer(turn)
    if inbound.choice is None and not inbound.files:
        answered = await followup.pending_answer(turn)
        if answered is not None:
            return answered
    if inbound.text and tipoff.normalize_receipt_code(inbound.text) and inbound.text.strip().upper().startswith("TB"):
        return await show_status(turn, inbound.text)
    return await _not_understood(turn, in_tipoff)


async def _command(turn: Turn, name: str, args: str, *, in_tipoff: bool) -> list[Reply]:
    """A /command: an officer's (the neutral answer for anyone else), everyone's, or not understood."""
    command = _BY_NAME.get(name)
    if command is None:
        return await _not_understood(turn, in_tipoff)
    if command.audience != EVERYONE:
        return await _as_officer(turn, command.handler, args, in_tipoff)
    replies = await command.handler(turn, args)
    if command.resumes and in_tipoff:  # answered on the side: the tip-off's question comes again
        replies += await tipoff.reprompt(turn)
    return replies


async def _cancel(turn: Turn, _args: str) -> list[Reply]:
    _ = turn._
    if turn.conversation.flow == drafts.FLOW:
        return await tipoff.ask_cancel(turn)  # «Delete the tip you are writing?» before anything goes
    if await drafts.wipe_draft(turn):
        return [Reply(_("Your tip was cancelled and deleted. Send /report to start again."))]
    return [Reply(_("There is nothing to cancel."))]


async def _help(turn: Turn, _args: str) -> list[Reply]:
    officer = await accounts.current_officer(turn)
    extra = [Reply(accounts.officer_help(turn) + "\n" + broadcasts.officer_help(turn))] if officer else []
    return [Reply(help_text(turn) + "\n\n" + subscriptions.citizen_help(turn))] + extra


async def _unfinished(turn: Turn) -> list[Reply] | None:
    """In the middle of a tip, /start and /report lead back to it rather than starting again."""
    if turn.conversation.flow != drafts.FLOW:
        return None
    return await tipoff.reprompt(turn, lead=turn._("You have an unfinished tip. Let us continue it, "
                                                   "or send /cancel to delete it."))


async def _start(turn: Turn, _args: str) -> list[Reply]:
    return await _unfinished(turn) or welcome(turn)


async def _new_tip(turn: Turn, _args: str) -> list[Reply]:
    return await _unfinished(turn) or await tipoff.start(turn)


async def _report(turn: Turn, args: str) -> list[Reply]:
    if args and await _is_supervisor(turn):
        # "/report FROM TO" from a supervisor is the movement report; bare /report, and /report from
        # anyone else, stays the citizen's tip-off, so no citizen ever learns the other meaning.
        return await _as_officer(turn, _send_report, args, turn.conversation.flow == drafts.FLOW)
    return await _new_tip(turn, args)


_OFFICER_BUTTONS = {
    "open": triage.read_tip, "queue": queue.show_queue, "files": files.send_files, "valuable": verdicts.judge_valuable,
    "notvaluable": verdicts.judge_not_valuable, "nv": verdicts.judge_not_valuable, "release": triage.release,
}


async def _officer_tap(turn: Turn, payload: str, in_tipoff: bool) -> list[Reply]:
    """Under a tip or the queue: "t:nv:K7QM2X:duplicate" is /notvaluable K7QM2X duplicate; unknown ones are neutral."""
    action, *args = buttons.OFFICER.unpack(payload)
    return await _as_officer(turn, _OFFICER_BUTTONS.get(action), " ".join(args), in_tipoff)


async def _announcement_tap(turn: Turn, payload: str, in_tipoff: bool) -> list[Reply]:
    """✅ Send / ✖ Cancel under an announcement's preview, for its admin only."""
    return await _as_officer(turn, broadcasts.on_button, " ".join(buttons.ANNOUNCEMENT.unpack(payload, parts=2)),
                             in_tipoff)


async def _reminder_tap(turn: Turn, payload: str, in_tipoff: bool) -> list[Reply]:
    """🔕 under a reminder, or an area to add or remove; the tip-off's question comes again after it."""
    [action] = buttons.REMINDER.unpack(payload, parts=1)
    return await subscriptions.on_button(turn, action) + (await tipoff.reprompt(turn) if in_tipoff else [])


async def _language_tap(turn: Turn, payload: str, in_tipoff: bool) -> list[Reply]:
    """Tiếng Việt / English after /language."""
    [wanted] = buttons.LANGUAGE.unpack(payload, parts=1)
    return await _language(turn, wanted)


async def _menu_tap(turn: Turn, payload: str, in_tipoff: bool) -> list[Reply]:
    """The welcome's buttons; during a tip-off they are old buttons like any other."""
    _ = turn._
    if in_tipoff:
        return await tipoff.answer(turn)
    [item] = buttons.MENU.unpack(payload, parts=1)
    if item == "report":
        return await tipoff.start(turn)
    if item == "status":
        return [Reply(_("Send /status followed by your receipt code, for example: /status TB-7K3MP-9QXFA"))]
    if item == "help":  # the menu again under it, so a "2" typed next still means «Check a tip»
        return [Reply(help_text(turn), choices=_menu(turn))]
    return await _not_understood(turn, in_tipoff)


# Every reserved button kind and what a tap on it does (handlers/buttons.py has their payloads). A tap on
# a questionnaire step's button, or on anything else, goes to the tip-off's current question or is not
# understood. A forged or garbled payload of a known kind gets the same neutral answer and changes nothing.
BUTTONS = {
    buttons.OFFICER: _officer_tap,
    buttons.ANNOUNCEMENT: _announcement_tap,
    buttons.REMINDER: _reminder_tap,
    buttons.LANGUAGE: _language_tap,
    buttons.MENU: _menu_tap,
}


async def _is_supervisor(turn: Turn) -> bool:
    officer = await accounts.current_officer(turn)
    return officer is not None and officer.role in ("supervisor", "admin")


async def _as_officer(turn: Turn, action, args: str, in_tipoff: bool) -> list[Reply]:
    """Officer commands and buttons; anyone else, or a forged button, gets the neutral answer."""
    officer = await accounts.current_officer(turn)
    if officer is None or action is None:
        if in_tipoff and turn.inbound.choice is not None:
            return await tipoff.answer(turn)  # answered like any other old button: "t:" is not special
        replies = await _not_understood(turn, in_tipoff)
        if await accounts.was_officer(turn):  # revoked: take the officer menu off their chat too
            replies[-1].commands_menu = "citizen"
        return replies
    try:
        return await action(turn, officer, args)
    except triage.Refusal as refusal:
        return [Reply(str(refusal))]


async def _not_understood(turn: Turn, in_tipoff: bool) -> list[Reply]:
    """The one neutral answer to anything unknown: it tells nobody which commands exist for others."""
    _ = turn._
    if in_tipoff:
        return await tipoff.reprompt(turn, lead=_("Sorry, I did not understand that. Please answer the question "
                                                  "below, or send /cancel to stop."))
    return [Reply(_("Sorry, I did not understand that."), choices=_menu(turn))]


def _menu(turn: Turn) -> list[Choice]:
    _ = turn._
    return [Choice(buttons.MENU.pack("report"), _("Report a crime")), Choice(buttons.MENU.pack("status"), _("Check a tip")),
            Choice(buttons.MENU.pack("help"), _("Help"))]


def welcome(turn: Turn) -> list[Reply]:
    """/start: who we are, that tips are anonymous, and what to tap."""
    _ = turn._
    text = _("Welcome to the police crime tip line (tin báo tố giác tội phạm).\n\n"
             "You can report a crime here, anonymously if you wish. Your tip is encrypted and only "
             "the police officers handling it can read it.\n\n"
             "In an emergency, call {emergency}.").format(emergency=turn.services.settings.emergency_number)
    return [Reply(text, choices=_menu(turn))]


def help_text(turn: Turn) -> str:
    _ = turn._
    return _("/report: report a crime\n/status CODE: see what became of your tip\n/cancel: stop and delete "
             "the tip you are writing\n/language: Tiếng Việt or English\n/help: this help\n\n"
             "Your tip is anonymous unless you choose to leave your phone number. In an emergency, call {emergency}."
             ).format(emergency=turn.services.settings.emergency_number)


async def _language(turn: Turn, args: str) -> list[Reply]:
    """/language vi|en switches at once; /language alone offers both."""
    wanted = args.strip().lower()[:2]
    if wanted in LANGUAGES:
        turn.conversation.language = wanted
        turn.session.add(turn.conversation)
        _ = translator(wanted)
        done = _("Language set to English.") if wanted == "en" else _("Language set to Vietnamese.")
        if turn.conversation.flow == drafts.FLOW:
            return await tipoff.reprompt(turn, lead=done)
        return [Reply(done)]
    return [Reply(turn._("Choose your language:"), choices=_language_choices())]


def _language_choices() -> list[Choice]:
    return [Choice(buttons.LANGUAGE.pack("vi"), "Tiếng Việt"), Choice(buttons.LANGUAGE.pack("en"), "English")]


# Every command, in the order of the chats' menus (handlers/commands.py says what each field means).
# Everyone's commands that answer on the side resume the tip-off's question after them. Anyone who is not
# an enrolled officer gets, for an officer's or supervisor's command, the same neutral answer as for an
# unknown one, so nobody learns that these exist. Plain officers are told figures are for supervisors.
COMMANDS = (
    Command("/report", EVERYONE, _report, NC_("command menu", "Report a crime")),
    Command("/status", EVERYONE, show_status, NC_("command menu", "Check a tip with its code"), resumes=True),
    Command("/cancel", EVERYONE, _cancel, NC_("command menu", "Cancel the tip you are writing")),
    Command("/remind", EVERYONE, subscriptions.remind, NC_("command menu", "Festival reminders"), resumes=True),
    # /language resumes the tip-off itself, after saying it is done
    Command("/language", EVERYONE, _language, NC_("command menu", "Change language")),
    Command("/help", EVERYONE, _help, NC_("command menu", "Help"), resumes=True),
    Command("/start", EVERYONE, _start),
    Command("/baotin", EVERYONE, _new_tip),
    Command("/enroll", EVERYONE, accounts.enroll),
    # triage
    Command("/queue", OFFICER, queue.show_queue, NC_("command menu", "Waiting tips of my unit")),
    Command("/judged", OFFICER, queue.show_judged, NC_("command menu", "Judged tips of my unit")),
    Command("/next", OFFICER, triage.claim_next, NC_("command menu", "Claim the next tip")),
    Command("/tip", OFFICER, triage.read_tip, NC_("command menu", "Read a tip: /tip REF")),
    Command("/files", OFFICER, files.send_files, NC_("command menu", "A tip's evidence files: /files REF")),
    Command("/valuable", OFFICER, verdicts.judge_valuable, NC_("command menu", "Valuable: /valuable REF")),
    Command("/notvaluable", OFFICER, verdicts.judge_not_valuable, NC_("command menu", "Not valuable: /notvaluable REF REASON")),
    Command("/reopen", SUPERVISOR, verdicts.reopen, NC_("command menu", "Reopen a verdict: /reopen REF REASON")),
    Command("/export", OFFICER, _export_tip, NC_("command menu", "Case file (hồ sơ) of a tip: /export REF")),
    Command("/ask", OFFICER, followup.ask, NC_("command menu", "Ask the tipster")),
    Command("/note", OFFICER, triage.add_note, NC_("command menu", "Note")),
    Command("/case", OFFICER, triage.link_case, NC_("command menu", "Link a case: /case REF CASE SUBJECTS")),
    Command("/release", OFFICER, triage.release, NC_("command menu", "Back to the queue")),
    Command("/transfer", OFFICER, triage.transfer, NC_("command menu", "Transfer to another unit")),
    # related tips: the same number, account, plate or handle across tips
    Command("/search", OFFICER, search_command, NC_("command menu", "Tips naming a number, account or plate")),
    Command("/link", OFFICER, link_command, NC_("command menu", "Link two tips: /link REF REF")),
    Command("/whoami", OFFICER, triage.whoami, NC_("command menu", "About me (officer)")),
    # festival reminders: any officer adds events for their areas and follows broadcasts; /announce is an admin's
    Command("/event", OFFICER, broadcasts.event_command, NC_("command menu", "Festival events: /event add")),
    Command("/broadcasts", OFFICER, broadcasts.show_broadcasts, NC_("command menu", "Progress of reminders and announcements")),
    Command("/announce", OFFICER, broadcasts.announce, NC_("command menu", "Announce (admin): /announce AREA | TEXT")),
    # figures (supervisors and admins)
    Command("/stats", SUPERVISOR, _show_stats, NC_("command menu", "Figures: /stats week|month|quarter|year")),
    Command("/baocao", SUPERVISOR, _send_report, NC_("command menu", "Movement report: /baocao FROM TO")),
)
_BY_NAME = {command.name: command for command in COMMANDS}
OFFICER_COMMANDS = frozenset(c.name for c in COMMANDS if c.audience != EVERYONE)


def command_menu(menu: str, lang: str) -> list[tuple[str, str]]:
    """The (command, description) lines of a chat's menu: "citizen", "officer" or "supervisor"."""
    return menu_commands(COMMANDS, menu, lang)
