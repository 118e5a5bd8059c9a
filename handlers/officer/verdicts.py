"""Verdicts: valuable, not valuable with a reason, and a supervisor's reopening.

```mermaid
flowchart TD
    nv["/notvaluable REF (or ❌)"] --> list{reason given?}
    list -- no --> buttons["the reasons, in words and codes"]
    buttons --> list
    list -- "trung" --> original{original REF given?}
    original -- no --> ask_ref["«Which tip does it repeat?»: the next message"] --> original
    original -- yes --> linked["judged, and linked to the original (both /tip show it)"]
    list -- "khac" --> why{explanation given?}
    why -- no --> ask_why["«Why?»: the next message"] --> why
    why -- yes --> sealed["judged; the explanation sealed as a note"]
    list -- "thieu, sai, ngoai" --> judged[judged]
    judged --> reopen["/reopen REF REASON (supervisors): in review again"]
    linked --> reopen
    sealed --> reopen
```
The tipster is thanked for a valuable tip once: the first verdict closes their contact, and a verdict after
a reopening sends them nothing. Every verdict and reopening is audited; what officers write is sealed.
A reopened tip keeps its case link (/case) until it is judged again: judged not valuable, the link is removed,
and that removal is audited too.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta

from handlers.chat_turn import Turn
from handlers.i18n import N_
from handlers.messages import Choice, Reply
from handlers.buttons import OFFICER
from handlers.officer.accounts import actor
from handlers.officer.triage import (STATUS_NAMES, Refusal, _add_note, _audit, _tip_in_scope, close_contact,
                                     notify_tipster, officer_route_of, tip_to_work_on)
from handlers.officer.verdict_reasons import (BY_CODE, MAX_EXPLANATION, parse_reason, reason_label, typed_code,
                                              was_reopened)
from handlers.i18n import translator
from storage import related
from storage import tip_states
from storage.audit import append_audit
from storage.models import Officer, Tip
from storage.officers import still_enrolled
from storage.tip_states import TipStatus

# An officer who tapped "Khác" or "Trùng" is asked for the explanation or the original's reference as their
# next message; the question is kept on their chat (``conversation.flow``: "why:o:K7QM2X:29450123", the last
# part the minute it was asked) and lapses after a while, so a message typed much later is not taken for it.
WAIT_PREFIX = "why:"
WAIT_FOR = timedelta(minutes=15)
_WAIT_CODES = {"o": "other", "d": "duplicate"}


async def judge_valuable(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/valuable REF [note]: the tip helped; the tipster is thanked (once: not after a reopening)."""
    _ = turn._
    tip, note = await tip_to_work_on(turn, officer, args)
    detail = "valuable"
    if note.strip():
        detail += f" note={await _note(turn, tip, note.strip())}"
    reopened = await was_reopened(turn, tip)
    tip_states.judge(session=turn.session, tip=tip, verdict=TipStatus.VALUABLE, reason=None, officer_id=officer.id,
                     now=turn.now)
    await _audit(turn, officer, "verdict", tip, detail)
    told = [] if reopened else await notify_tipster(
        turn, tip, N_("Your tip of {date} was judged valuable. Thank you for helping keep our community safe!"))
    await close_contact(turn, tip)
    return [Reply(_("Tip {ref} is judged valuable. Link it to a case with /case {ref} CASE SUBJECTS.").format(
        ref=tip.ref))] + told


async def judge_not_valuable(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/notvaluable REF REASON [ORIGINAL_REF | EXPLANATION]: the reason from the list; the tipster is never told."""
    _ = turn._
    tip, rest = await tip_to_work_on(turn, officer, args)
    word, _sep, more = rest.strip().partition(" ")
    reason = parse_reason(word)
    if reason is None:
        return [Reply(_("Why is tip {ref} not valuable?").format(ref=tip.ref), columns=1,
                      choices=[Choice(OFFICER.pack("nv", tip.ref, r.code), reason_label(turn, r))
                               for r in BY_CODE.values()])]
    more = unicodedata.normalize("NFC", more).strip()
    detail = f"not_valuable reason={reason.code}"
    if reason.code == "duplicate":
        if not more:
            return _ask_next(turn, tip, "d", _("Which tip does {ref} repeat? Send the original's reference as your "
                                                "next message, or write it after the command: /notvaluable {ref} "
                                                "{code} ORIGINAL_REF").format(ref=tip.ref, code=typed_code(turn, reason)))
        original = await _original(turn, officer, tip, more.split()[0])
        detail += f" original={original.ref}"
    elif reason.code == "other":
        if not more:
            return _ask_next(turn, tip, "o", _("Why is tip {ref} not valuable? Send a short explanation as your next "
                                                "message, or write it after the command: /notvaluable {ref} {code} "
                                                "EXPLANATION").format(ref=tip.ref, code=typed_code(turn, reason)))
        if len(more) > MAX_EXPLANATION:
            return [Reply(_("Keep the explanation short, under {n} characters; a longer text goes in a /note.").format(
                n=MAX_EXPLANATION))]
        detail += f" note={await _note(turn, tip, more)}"
    tip_states.judge(session=turn.session, tip=tip, verdict=TipStatus.NOT_VALUABLE, reason=reason.code,
                     officer_id=officer.id, now=turn.now)
    await _audit(turn, officer, "verdict", tip, detail)
    unlinked = await _unlink_case(turn, officer, tip)
    await close_contact(turn, tip)
    done = _("Tip {ref} is judged not valuable: {reason}.").format(ref=tip.ref, reason=reason_label(turn, reason))
    if reason.code == "duplicate":
        done += "\n" + _("It is linked to {original}: /tip of either shows the other.").format(original=original.ref)
    if unlinked:
        done += "\n" + _("Its link to case {case} was removed: only a valuable tip is linked to a case.").format(
            case=unlinked)
    return [Reply(done)]


async def _unlink_case(turn: Turn, officer: Officer, tip: Tip) -> str | None:
    """A tip once valuable, judged not valuable after a reopening, loses its case link (audited); the case, or None."""
    case = tip.case_ref
    if case is None:
        return None
    tip.case_ref, tip.subject_count = None, 0
    turn.session.add(tip)
    await _audit(turn, officer, "case", tip, "removed=not_valuable")
    return case


async def _note(turn: Turn, tip: Tip, text: str) -> str:
    """A sealed note on the tip; its number, for the audit entry that says what it was for."""
    name = await _add_note(turn, tip, text)
    return name.split(":")[1]


async def _original(turn: Turn, officer: Officer, tip: Tip, ref: str) -> Tip:
    """The tip a duplicate repeats, linked to it; one outside the officer's units is refused as if it did not exist."""
    _ = turn._
    original = await _tip_in_scope(turn, officer, ref, lock=False)
    if original.id == tip.id:
        raise Refusal(_("A tip cannot be a duplicate of itself."))
    if original.purged_at is not None:
        raise Refusal(_("Tip {ref} was purged under the retention rules.").format(ref=original.ref))
    # Already linked by hand (/link): the first link stays, and the verdict's audit entry names the original.
    if await related.link_tips(session=turn.session, tip_id=tip.id, other_tip_id=original.id, officer_id=officer.id,
                               reason="duplicate"):
        for one, other in ((tip, original), (original, tip)):
            await append_audit(session=turn.session, keyring=turn.services.keyring, actor=actor(officer),
                               action="link", tip_ref=one.ref, detail=f"other={other.ref} reason=duplicate")
    return original


# --- the next message answers "which tip?" or "why?" ---------------------------------------------------

def _ask_next(turn: Turn, tip: Tip, code: str, question: str) -> list[Reply]:
    """Wait for the officer's next message, unless this chat is in the middle of something else (a tip-off of
    its own): then only the inline form is offered."""
    conversation = turn.conversation
    if conversation.flow is None:
        conversation.flow = f"{WAIT_PREFIX}{code}:{tip.ref}:{int(turn.now.timestamp() // 60)}"
        turn.session.add(conversation)
    return [Reply(question)]


def take_wait(turn: Turn) -> str | None:
    """The question this chat's next message answers ("REF other", "REF duplicate"), taken off the chat; None
    if there is none, or it lapsed. Whatever the message is, the question is asked only once."""
    flow = turn.conversation.flow
    if not flow or not flow.startswith(WAIT_PREFIX):
        return None
    turn.conversation.flow = None
    turn.session.add(turn.conversation)
    code, ref, minute = (flow[len(WAIT_PREFIX):].split(":") + ["", "", ""])[:3]
    if code not in _WAIT_CODES or not minute.isdecimal():
        return None
    if turn.now.timestamp() // 60 - int(minute) > WAIT_FOR.total_seconds() // 60:
        return None
    return f"{ref} {_WAIT_CODES[code]}"


async def answer_wait(turn: Turn, officer: Officer, waiting: str) -> list[Reply]:
    """The officer's message after «Which tip?» or «Why?»: the verdict, as if typed after the command."""
    return await judge_not_valuable(turn, officer, f"{waiting} {turn.inbound.text or ''}")


# --- reopening -------------------------------------------------------------------------------------------

async def reopen(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/reopen REF REASON (supervisors and admins): the verdict is taken back and the tip is in review again,
    held by the officer who judged it, who is told (the tipster is not); if that officer was revoked, the
    supervisor holds it and is told so. A case link stays until the next verdict."""
    _ = turn._
    if officer.role == "officer":  # before the tip is looked up: the answer says nothing of it
        raise Refusal(_("Only a supervisor or an admin can reopen a verdict."))
    ref, _sep, reason = args.strip().partition(" ")
    tip = await _tip_in_scope(turn, officer, ref)
    if tip.purged_at is not None:
        raise Refusal(_("Tip {ref} was purged under the retention rules.").format(ref=tip.ref))
    if tip.status not in tip_states.JUDGED:
        return [Reply(_("Tip {ref} has no verdict to reopen: it is {status}.").format(
            ref=tip.ref, status=_(STATUS_NAMES.get(tip.status, tip.status))))]
    reason = unicodedata.normalize("NFC", reason).strip()
    if not reason:
        return [Reply(_("Write why after the reference: /reopen {ref} REASON").format(ref=tip.ref))]
    if len(reason) > MAX_EXPLANATION:
        return [Reply(_("Keep the explanation short, under {n} characters; a longer text goes in a /note.").format(
            n=MAX_EXPLANATION))]
    was, judge = tip.status, tip.claimed_by  # judge() left the tip with the officer who judged it
    # Before any audit entry of this turn: a revoke waiting on the share lock below must not hold the audit
    # log's lock that this turn would then wait for.
    holder = judge if judge is not None and await still_enrolled(session=turn.session, officer_id=judge) \
        else officer.id
    note = await _note(turn, tip, reason)
    tip_states.reopen(session=turn.session, tip=tip, now=turn.now, holder_id=holder)
    await _audit(turn, officer, "reopen", tip, f"from={was} note={note} holder={holder}")
    done = _("The verdict on {ref} is reopened: the tip is in review again. The tipster is not told.").format(
        ref=tip.ref)
    if tip.case_ref:
        done += "\n" + _("Its link to case {case} stays for now; a verdict of not valuable removes it.").format(
            case=tip.case_ref)
    if judge not in (None, holder):
        gone = await turn.session.get(Officer, judge)
        done += "\n" + _("{name}, who judged it, is no longer enrolled: you hold the tip now.").format(
            name=gone.name if gone else "?")
    replies = [Reply(done)]
    if holder != officer.id:
        found = await officer_route_of(turn, holder)
        if found is not None:
            route, lang = found
            text = translator(lang)(N_("{name} reopened the verdict on {ref}: «{reason}». It is in review again: "
                                       "/tip {ref}"))
            replies.append(Reply(text.format(name=officer.name, ref=tip.ref, reason=reason), to=route, language=lang))
    return replies
