"""Officer triage in the bot: queue, claim, read, note, transfer, release, link to a case (verdicts: verdicts.py).

```mermaid
stateDiagram-v2
    [*] --> new: citizen sends
    new --> in_review: /next or claim
    transferred --> in_review: claim
    in_review --> needs_info: /ask
    needs_info --> in_review: tipster answers
    in_review --> new: /release
    new --> transferred: /transfer
    in_review --> transferred: /transfer
    in_review --> valuable: /valuable
    in_review --> not_valuable: /notvaluable
    valuable --> in_review: /reopen
    not_valuable --> in_review: /reopen
    not_valuable --> [*]: purged after the retention period
```
Every read of a tip's sealed content, and every change, is written to the audit log first.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from handlers.buttons import OFFICER
from handlers.context import VIETNAM
from handlers.i18n import N_, number, translator
from handlers.messages import CHANNEL_PREFIXES, Choice, Reply, Route
from handlers.officer import tip_view
from handlers.officer.accounts import ROLE_NAMES, actor, in_scope, officer_help, scope
from handlers.citizen.drafts import CONTACT_FIELD, REPLY_ROUTE_FIELD
from handlers.citizen.step_kinds import shown_answer, shown_without_step
from handlers.chat_turn import Turn
from handlers.officer.verdict_reasons import detail_fields, verdict_lines, verdict_text, was_reopened
from handlers.related.tip_view import related_lines
from storage import keys as key_store
from storage import tip_states
from storage import tips as tip_store
from storage import triage as triage_store
from storage.audit import append_audit, append_audits
from storage.crypto import DataKey
from storage.followups import close_follow_up, follow_ups_of
from storage.models import Officer, Tip, TipBase
from storage.officers import officer_route
from storage.tip_states import TipStatus

_NOT_ANSWERS = (CONTACT_FIELD, REPLY_ROUTE_FIELD)  # sealed beside the answers, shown (or not) on their own
STATUS_NAMES = {
    TipStatus.NEW: N_("new"), TipStatus.TRANSFERRED: N_("transferred"), TipStatus.IN_REVIEW: N_("in review"),
    TipStatus.NEEDS_INFO: N_("waiting for the tipster"), TipStatus.VALUABLE: N_("valuable"),
    TipStatus.NOT_VALUABLE: N_("not valuable"),
}
CASE_REF = re.compile(r"^[\w./-]{1,64}$")


# --- shared checks -------------------------------------------------------------------------------

class Refusal(Exception):
    """A triage command that cannot be done; the message says why, nothing was changed."""


async def _tip_in_scope(turn: Turn, officer: Officer, ref: str, *, lock: bool = True) -> Tip:
    """The tip, if this officer may see it; otherwise the same answer as for a tip that does not exist."""
    _ = turn._
    ref = ref.strip().upper()
    tip = await triage_store.tip_by_ref(session=turn.session, ref=ref, lock=lock) if ref else None
    if tip is None or not in_scope(turn, officer, tip):
        raise Refusal(_("There is no tip {ref} in your units.").format(ref=ref or "?"))
    return tip


def _check_open(turn: Turn, tip: Tip) -> None:
    _ = turn._
    if tip.purged_at is not None:
        raise Refusal(_("Tip {ref} was purged under the retention rules.").format(ref=tip.ref))
    if tip.status in tip_states.JUDGED:
        raise Refusal(_("Tip {ref} was already judged {verdict}.").format(ref=tip.ref, verdict=_(STATUS_NAMES[tip.status])))


async def _check_holder(turn: Turn, officer: Officer, tip: Tip) -> None:
    """Only the officer who claimed a tip (or a supervisor) may act on it while it is in review."""
    _ = turn._
    if tip.claimed_by not in (None, officer.id) and officer.role == "officer" and tip.status in tip_states.CLAIMED:
        holder = await turn.session.get(Officer, tip.claimed_by)
        raise Refusal(_("Tip {ref} is being reviewed by {name}.").format(ref=tip.ref, name=holder.name if holder else "?"))


async def tip_to_work_on(turn: Turn, officer: Officer, args: str) -> tuple[Tip, str]:
    """ "REF rest…": the tip, still open and not another officer's, and the rest of the arguments."""
    ref, _sep, rest = args.partition(" ")
    tip = await _tip_in_scope(turn, officer, ref)
    _check_open(turn, tip)
    await _check_holder(turn, officer, tip)
    return tip, rest


async def _audit(turn: Turn, officer: Officer, action: str, tip: Tip | None = None, detail: str = "") -> None:
    await append_audit(session=turn.session, keyring=turn.services.keyring, actor=actor(officer), action=action,
                       tip_ref=tip.ref if tip else None, detail=detail)


def _age(turn: Turn, since: datetime) -> str:
    _ = turn._
    minutes = int((turn.now - since).total_seconds() // 60)
    if minutes < 1:
        return _("just now")
    if minutes < 60:
        return _("{n} min").format(n=number(max(minutes, 0), turn.lang))
    if minutes < 48 * 60:
        return _("{n} h").format(n=number(minutes // 60, turn.lang))
    return _("{n} days").format(n=number(minutes // 1440, turn.lang))


def _summary(turn: Turn, tip: TipBase) -> str:
    """One line from clear columns only: what a queue may show without decrypting anything."""
    _ = turn._
    category = turn.services.settings.questionnaire.category_step.option(tip.category)
    urgent = "🔴 " if tip.urgent else ""
    return _("{urgent}{ref} · {category} · {area} · {age} · {files} file(s) · {status}").format(
        urgent=urgent, ref=tip.ref, category=category.label(turn.lang) if category else tip.category,
        area=turn.services.settings.areas.display(tip.area_code), age=_age(turn, tip.created_at),
        files=number(tip.attachment_count, turn.lang), status=_(STATUS_NAMES.get(tip.status, tip.status)))


def _tip_buttons(turn: Turn, tip: Tip) -> list[Choice]:
    _ = turn._
    if tip.status in tip_states.JUDGED or tip.purged_at:
        return []
    return [Choice(OFFICER.pack("valuable", tip.ref), _("✅ Valuable")),
            Choice(OFFICER.pack("notvaluable", tip.ref), _("❌ Not valuable")),
            Choice(OFFICER.pack("release", tip.ref), _("↩️ Release"))]


async def _tipster_route(turn: Turn, tip: Tip, fields: dict[str, str] | None = None) -> tuple[Route, str] | None:
    """Where the tipster's reply goes; from ``fields`` when the caller has opened the tip already."""
    if fields is None:
        fields = (await _open_tip(turn, tip))[1]
    if REPLY_ROUTE_FIELD not in fields:
        return None
    route = json.loads(fields[REPLY_ROUTE_FIELD])
    return Route(route["channel"], route["chat_id"]), route.get("language", "vi")


async def notify_tipster(turn: Turn, tip: Tip, text: str, fields: dict[str, str] | None = None) -> list[Reply]:
    """A message to the tipster in their language, through the bot; the officer never sees who it is."""
    found = await _tipster_route(turn, tip, fields)
    if found is None:
        return []
    route, lang = found
    _ = translator(lang)
    received = tip.created_at.astimezone(VIETNAM).strftime("%d/%m/%Y")
    return [Reply(_(text).format(date=received), to=route, language=lang)]


async def close_contact(turn: Turn, tip: Tip) -> None:
    """The tip is judged: forget how to reach its tipster, and withdraw any question still waiting."""
    found = await _tipster_route(turn, tip)
    if found is None:
        return
    route, _lang = found
    keyring = turn.services.keyring
    tipster_key = keyring.pseudonym(CHANNEL_PREFIXES[route.channel], route.chat_id)
    for follow_up, content in await follow_ups_of(session=turn.session, keyring=keyring, chat_key=tipster_key):
        if json.loads(content)["tip"] == tip.id:
            await close_follow_up(session=turn.session, follow_up=follow_up)
    await tip_store.delete_tip_field(session=turn.session, keyring=keyring, tip_id=tip.id, name=REPLY_ROUTE_FIELD)


# --- commands ------------------------------------------------------------------------------------

async def claim_next(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/next: take the next waiting tip (atomic: two officers never get the same one) and read it."""
    _ = turn._
    tip = await tip_states.claim_next(session=turn.session, unit_ids=scope(turn, officer), officer_id=officer.id,
                                        now=turn.now)
    if tip is None:
        return [Reply(_("No tip is waiting in your units."))]
    # The claim and the view the officer is about to read, chained in one trip to the database.
    await append_audits(session=turn.session, keyring=turn.services.keyring, actor=actor(officer),
                        entries=[("claim", tip.ref, ""), ("view", tip.ref, "")])
    opened = await _open_tip(turn, tip)  # once, for the notice and the view
    told = await notify_tipster(turn, tip, N_("Your tip of {date} is now being reviewed by an officer."), opened[1])
    return await _read(turn, officer, tip, opened, view_audited=True) + told


async def read_tip(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/tip REF: the tip decrypted, its timeline, and its evidence the first time; the view is audited."""
    tip = await _tip_in_scope(turn, officer, args.split(" ")[0] if args else "", lock=False)
    replies: list[Reply] = []
    opened = None
    if tip.status in tip_states.PENDING and tip.purged_at is None:
        if await tip_states.claim(session=turn.session, tip=tip, officer_id=officer.id, now=turn.now):
            await _audit(turn, officer, "claim", tip)
            opened = await _open_tip(turn, tip)
            replies += await notify_tipster(turn, tip, N_("Your tip of {date} is now being reviewed by an officer."),
                                            opened[1])
    return await _read(turn, officer, tip, opened) + replies


async def _open_tip(turn: Turn, tip: Tip) -> tuple[DataKey | None, dict[str, str]]:
    """The tip's data key and its sealed fields, opened; (None, {}) once purged."""
    return await tip_store.open_tip(session=turn.session, keyring=turn.services.keyring, tip_id=tip.id)


async def _read(turn: Turn, officer: Officer, tip: Tip, opened: tuple[DataKey | None, dict[str, str]] | None = None,
                *, view_audited: bool = False) -> list[Reply]:
    """The tip as an officer reads it, the view audited; ``opened``: the tip as _open_tip gave it this turn;
    ``view_audited``: the caller wrote the view's entry already (/next, with its claim)."""
    _ = turn._
    header = _summary(turn, tip)
    if tip.purged_at is not None:
        return [Reply(header + "\n\n" + _("The content of this tip was purged under the retention rules."))]
    services = turn.services
    data_key, fields = opened if opened is not None else await _open_tip(turn, tip)
    if not view_audited:
        await _audit(turn, officer, "view", tip)
    lines = [header, _("Received: {when} · unit: {unit}").format(
        when=tip.created_at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M"),
        unit=services.settings.unit_tree.name(tip.unit_id)), ""]
    named = {step.id for step in services.settings.questionnaire.steps}
    pin = None
    for step in services.settings.questionnaire.steps:
        if step.id in fields and step.kind not in ("review", "contact"):
            answer = json.loads(fields[step.id])
            lines.append(f"• {step.label(turn.lang)}: {shown_answer(turn, step, answer)}")
            if isinstance(answer, dict) and (place := tip_view.location_of(answer)):
                lines.append("  🗺 " + tip_view.map_link(place.latitude, place.longitude))
                pin = pin or place
    # Answers to steps the questionnaire file no longer names (renamed, removed) are the tip's all the same.
    for name in sorted(n for n in fields if n not in named and ":" not in n and n not in _NOT_ANSWERS):
        answer = _stored_answer(fields[name])
        if answer is not None:
            lines.append(f"• {name}: {shown_without_step(turn, answer)}")
    if CONTACT_FIELD in fields:
        lines.append(_("• Tipster's phone (they chose to give it): {phone}").format(phone=fields[CONTACT_FIELD]))
    else:
        lines.append(_("• Tipster: anonymous"))
    if REPLY_ROUTE_FIELD not in fields and tip.status not in tip_states.JUDGED:
        if await was_reopened(turn, tip):  # the first verdict forgot the route, whatever the tipster chose
            lines.append(_("• The tipster can no longer be asked questions: the way to reach them, if they left "
                           "one, closed with the first verdict."))
        else:
            lines.append(_("• The tipster declined follow-up questions."))
    if tip.case_ref:
        lines.append(_("• Case {case}, {n} subject(s)").format(case=tip.case_ref, n=number(tip.subject_count, turn.lang)))
    # One read of the tip's history for both: verdict_lines reads its verdicts and reopenings again, and
    # only when there are some (a tip never judged, as most that /next takes, has none).
    history = await tip_view.timeline_entries(turn, tip)
    if any(entry.action in tip_view.VERDICT_ACTIONS for entry in history):
        lines += await verdict_lines(turn, tip, fields)
    lines += await tip_view.timeline_lines(turn, tip, fields, lambda entry: _("Verdict: {verdict}").format(
        verdict=verdict_text(turn, detail_fields(entry), fields)), entries=history)
    lines += await related_lines(turn, officer, tip, data_key)
    choices = _tip_buttons(turn, tip) + tip_view.files_button(turn, tip)
    replies = [Reply("\n".join(lines), choices=choices, columns=2, location=pin)]
    # The files go once to each officer; after that the 📎 button (or /files) sends them again.
    return replies + await tip_view.evidence(turn, officer, tip, data_key, only_first_time=True)


def _stored_answer(sealed_text: str) -> dict | None:
    """An answer as the tip-off stored it (a JSON object); None for anything else sealed beside it."""
    try:
        value = json.loads(sealed_text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _add_note(turn: Turn, tip: Tip, text: str) -> str:
    """A sealed note on the tip; its field's name ("note:3")."""
    data_key = await key_store.load_data_key(session=turn.session, keyring=turn.services.keyring, owner_id=tip.id)
    return await triage_store.add_sealed_field(session=turn.session, tip=tip, data_key=data_key, prefix="note",
                                               value=text[:2000])


async def add_note(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/note REF TEXT: a sealed note on the tip, for colleagues."""
    _ = turn._
    ref, _sep, text = args.partition(" ")
    tip = await _tip_in_scope(turn, officer, ref)
    if tip.purged_at is not None:
        raise Refusal(_("Tip {ref} was purged under the retention rules.").format(ref=tip.ref))
    if not text.strip():
        return [Reply(_("Write the note after the reference: /note {ref} TEXT").format(ref=tip.ref))]
    name = await _add_note(turn, tip, text.strip())
    await _audit(turn, officer, "note", tip, f"field={name}")  # which note, for the tip's timeline
    return [Reply(_("Note added to {ref}.").format(ref=tip.ref))]


async def release(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/release REF: give the tip back to the queue."""
    _ = turn._
    tip, _rest = await tip_to_work_on(turn, officer, args)
    if tip.status not in tip_states.CLAIMED:
        return [Reply(_("Tip {ref} is not claimed.").format(ref=tip.ref))]
    tip_states.release(session=turn.session, tip=tip, now=turn.now)
    await _audit(turn, officer, "release", tip)
    return [Reply(_("Tip {ref} is back in the queue.").format(ref=tip.ref))]


async def transfer(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/transfer REF UNIT (supervisors and admins): send the tip to another unit's queue."""
    _ = turn._
    ref, _sep, unit_id = args.partition(" ")
    tip = await _tip_in_scope(turn, officer, ref)
    _check_open(turn, tip)
    if officer.role == "officer":
        raise Refusal(_("Only a supervisor or an admin can transfer a tip."))
    units = turn.services.settings.unit_tree
    # A supervisor moves tips within their own province's tree; only an admin sends one to another
    # province, where it would leave the supervisor's view for good.
    allowed = set(units.units if officer.role == "admin" else units.subtree(units.province_of(officer.unit_id)))
    unit = units.get(unit_id.strip())
    if unit is None:
        known = ", ".join(sorted(allowed))
        return [Reply(_("Unknown unit «{unit}». Units: {known}").format(unit=unit_id.strip(), known=known))]
    if unit.id not in allowed:
        return [Reply(_("{unit} is outside your province: only an admin can transfer a tip there.").format(
            unit=unit.name))]
    if unit.id == tip.unit_id:
        return [Reply(_("Tip {ref} is already with {unit}.").format(ref=tip.ref, unit=unit.name))]
    previous = tip.unit_id
    tip_states.transfer(session=turn.session, tip=tip, unit_id=unit.id, now=turn.now)
    await _audit(turn, officer, "transfer", tip, f"from={previous} to={unit.id}")
    return [Reply(_("Tip {ref} was transferred to {unit}.").format(ref=tip.ref, unit=unit.name))]


async def link_case(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/case REF CASE SUBJECTS: a valuable tip helped clarify case CASE, with SUBJECTS people involved."""
    _ = turn._
    parts = args.split()
    usage = _("Use: /case REF CASE SUBJECTS, for example /case K7QM2X 125/2026/HS 3")
    if len(parts) != 3:
        return [Reply(usage)]
    tip = await _tip_in_scope(turn, officer, parts[0])
    if tip.status in tip_states.OPEN and await was_reopened(turn, tip):
        # Its verdict was taken back: a valuable tip, once, that may not stay one.
        return [Reply(_("Tip {ref} is in review again after a reopening: it can be linked to a case once it is "
                        "judged valuable again.").format(ref=tip.ref))]
    if tip.status != TipStatus.VALUABLE:
        return [Reply(_("Only a tip judged valuable can be linked to a case."))]
    if not CASE_REF.match(parts[1]) or not parts[2].isdecimal() or len(parts[2]) > 5 or int(parts[2]) > 10_000:
        return [Reply(usage)]
    tip.case_ref, tip.subject_count, tip.updated_at = parts[1], int(parts[2]), turn.now
    turn.session.add(tip)
    await _audit(turn, officer, "case", tip, f"case={parts[1]} subjects={parts[2]}")
    return [Reply(_("Tip {ref} is linked to case {case} with {n} subject(s).").format(
        ref=tip.ref, case=parts[1], n=number(int(parts[2]), turn.lang)))]


async def whoami(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/whoami (or /help as an officer): name, role, unit and the commands."""
    _ = turn._
    return [Reply(_("{name}, {role} of {unit}.").format(
        name=officer.name, role=_(ROLE_NAMES[officer.role]), unit=turn.services.settings.unit_tree.name(officer.unit_id))
        + "\n\n" + officer_help(turn))]


async def officer_route_of(turn: Turn, officer_id: int) -> tuple[Route, str] | None:
    """Where to reach an enrolled officer, and in which language."""
    officer = await turn.session.get(Officer, officer_id)
    if officer is None or officer.revoked_at is not None:
        return None
    route = await officer_route(session=turn.session, keyring=turn.services.keyring, officer=officer)
    return (Route(route["channel"], route["chat_id"]), route.get("language", "vi")) if route else None
