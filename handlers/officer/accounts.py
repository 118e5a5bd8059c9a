"""Who is an officer: enrolment with a one-time code, and the scope of tips each role may see."""

from __future__ import annotations


from handlers.codes import INVITE
from handlers.i18n import N_
from handlers.limits import hour_window
from handlers.messages import Reply
from handlers.officer.verdict_reasons import reasons_help
from handlers.chat_turn import Turn
from storage.audit import append_audit
from storage.limits import add_to_window
from storage.models import Officer, Tip
from storage.officers import ROLES, active_officer, create_invite, officer_ever, redeem_invite

ROLE_NAMES = {"officer": N_("officer"), "supervisor": N_("supervisor"), "admin": N_("admin")}
ENROL_ATTEMPTS_PER_HOUR = 5
new_invite_code = INVITE.new
normalize_invite_code = INVITE.normalize


def actor(officer: Officer) -> str:
    return f"officer:{officer.id}"


async def current_officer(turn: Turn) -> Officer | None:
    return await active_officer(session=turn.session, chat_key=turn.conversation.chat_key)


async def was_officer(turn: Turn) -> bool:
    """A revoked officer: their chat should lose the officer command menu."""
    return await officer_ever(session=turn.session, chat_key=turn.conversation.chat_key) is not None


def scope(turn: Turn, officer: Officer) -> list[str]:
    """An officer sees their own unit; supervisors and admins also every unit below theirs."""
    if officer.role == "officer":
        return [officer.unit_id]
    return turn.services.settings.unit_tree.subtree(officer.unit_id)


def in_scope(turn: Turn, officer: Officer, tip: Tip) -> bool:
    return tip.unit_id is not None and tip.unit_id in scope(turn, officer)


async def enroll(turn: Turn, args: str) -> list[Reply]:
    """/enroll CODE: the code from `tinbao officers invite` makes this chat an officer's."""
    _ = turn._
    attempts = await add_to_window(session=turn.session, keyring=turn.services.keyring,
        chat_key=turn.conversation.chat_key, bucket="enroll", window_start=hour_window(turn.now))
    if attempts > ENROL_ATTEMPTS_PER_HOUR:
        return [Reply(_("Too many attempts. Please try again in an hour."))]
    code = normalize_invite_code(args)
    officer = None
    if code is not None:
        officer = await redeem_invite(
            session=turn.session, keyring=turn.services.keyring, code_hash=turn.services.keyring.invite_hash(code),
            chat_key=turn.conversation.chat_key, channel=turn.inbound.channel, now=turn.now,
            route={"channel": turn.inbound.channel, "chat_id": turn.inbound.chat_id, "language": turn.lang})
    if officer is None:
        return [Reply(_("This code is not valid, has expired or was already used. Ask your unit's admin for a new one."))]
    await append_audit(session=turn.session, keyring=turn.services.keyring, actor=actor(officer), action="enroll",
                       detail=f"unit={officer.unit_id} role={officer.role}")
    unit = turn.services.settings.unit_tree.name(officer.unit_id)
    text = _("Welcome, {name}. You are enrolled as {role} of {unit}.").format(
        name=officer.name, role=_(ROLE_NAMES[officer.role]), unit=unit) + "\n\n" + officer_help(turn)
    # Supervisors' and admins' menus also offer the figures; a plain officer would only be refused them.
    menu = "supervisor" if officer.role in ("supervisor", "admin") else "officer"
    return [Reply(text, commands_menu=menu)]


def officer_help(turn: Turn) -> str:
    _ = turn._
    return (_("/queue: the open tips of your unit; narrowed by category, area, status or «mine», e.g. /queue "
             "lua-dao mine\n/judged: the judged tips of your unit\n/next: take the next waiting tip\n/tip REF: read "
             "a tip (its evidence comes the first time)\n/files REF: a tip's evidence files again\n"
             "/valuable REF [note]\n/notvaluable REF REASON\n/note REF TEXT\n/ask REF QUESTION: ask the "
             "tipster through the bot\n/case REF CASE SUBJECTS: link a valuable tip to a case\n/release REF\n"
             "/search NUMBER: tips naming a phone number, account, plate or handle\n/link REF REF: link two tips\n"
             "/export REF: the tip's case file (hồ sơ) as a Word document\n/reopen REF REASON: take a verdict back "
             "(supervisors)\n"
             "/transfer REF UNIT (supervisors)\n/stats [period], /baocao FROM TO: figures (supervisors)\n"
             "/whoami: your name, role and unit")
            + "\n\n" + reasons_help(turn))


class InviteError(ValueError):
    """An invite that cannot be made (unknown unit or role); one line for the operator."""


async def create_invite_code(services, *, unit_id: str, role: str, name: str) -> str:
    """`tinbao officers invite`: a one-time code for /enroll, valid for the configured time."""
    units = services.settings.unit_tree
    if units.get(unit_id) is None:
        raise InviteError(f"unknown unit {unit_id!r}; configured units: {', '.join(sorted(units.units)) or 'none'}")
    if role not in ROLES:
        raise InviteError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not name.strip():
        raise InviteError("--name must not be empty")
    code = new_invite_code()
    async with services.db.transaction() as session:
        await create_invite(session=session, code_hash=services.keyring.invite_hash(normalize_invite_code(code)),
                            unit_id=unit_id, role=role, name=name.strip()[:100],
                            valid_for=services.settings.triage.invite_ttl)
        await append_audit(session=session, keyring=services.keyring, actor="cli", action="invite",
                           detail=f"unit={unit_id} role={role}")
    return code
