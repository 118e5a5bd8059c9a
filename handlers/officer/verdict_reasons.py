"""Why a tip is not valuable, in words and in the short codes officers type (Vietnamese or English), and what
/tip says of a tip's verdict: the reason, the original tip of a duplicate, the explanation of "other", and a
reopening.

A verdict's details are read back from its audit entry (``not_valuable reason=duplicate original=K7QM2X``,
``not_valuable reason=other note=3``): the explanation itself is the tip's sealed note of that number, so
nothing an officer writes is ever in clear in the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.areas import fold
from handlers.chat_turn import Turn
from handlers.context import VIETNAM
from handlers.i18n import N_
from storage.audit import entries_of_tip
from storage.models import AuditEntry, Officer, Tip
from storage.tip_states import TipStatus

MAX_EXPLANATION = 300  # "other" takes a short explanation, not a report: that is what /note is for
_STATE_WORDS = {TipStatus.VALUABLE: N_("valuable"), TipStatus.NOT_VALUABLE: N_("not valuable")}


@dataclass(frozen=True)
class Reason:
    code: str  # kept in the tip's clear verdict_reason column, counted by the figures
    vi_code: str  # what a Vietnamese officer types: the words without accents
    words: str  # a catalog message


REASONS = (
    Reason("insufficient", "thieu", N_("Not enough information")),
    Reason("false", "sai", N_("Untrue")),
    Reason("duplicate", "trung", N_("Duplicate")),
    Reason("out_of_scope", "ngoai", N_("Outside our jurisdiction")),
    Reason("other", "khac", N_("Other")),
)
BY_CODE = {reason.code: reason for reason in REASONS}
_TYPED = {fold(word): reason for reason in REASONS for word in (reason.code, reason.vi_code)}


def parse_reason(word: str) -> Reason | None:
    """The reason an officer typed: "trung", "trùng", "duplicate", "khác", "other", "out_of_scope" …"""
    return _TYPED.get(fold(word)) if word.strip() else None


def typed_code(turn: Turn, reason: Reason) -> str:
    """The code to type, in the officer's language (both are understood)."""
    return reason.vi_code if turn.lang == "vi" else reason.code


def reason_label(turn: Turn, reason: Reason) -> str:
    """ "Trùng lặp (trung)": the words, and what to type for them."""
    return f"{turn._(reason.words)} ({typed_code(turn, reason)})"


def reasons_help(turn: Turn) -> str:
    """The reasons as /help lists them."""
    _ = turn._
    shown = {"duplicate": _("{code} ORIGINAL_REF"), "other": _("{code} EXPLANATION")}
    return _("Reasons for /notvaluable: {reasons}").format(reasons="; ".join(
        f"{shown.get(r.code, '{code}').format(code=typed_code(turn, r))}: {_(r.words)}" for r in REASONS))


# --- what /tip says of the verdict --------------------------------------------------------------------

def detail_fields(entry: AuditEntry) -> dict[str, str]:
    """ "not_valuable reason=other note=3" → {"verdict": "not_valuable", "reason": "other", "note": "3"}."""
    words = entry.detail.split()
    fields = dict(word.split("=", 1) for word in words if "=" in word)
    if words and "=" not in words[0]:
        fields["verdict"] = words[0]
    return fields


async def verdict_history(turn: Turn, tip: Tip) -> list[AuditEntry]:
    """The tip's verdicts and reopenings, oldest first."""
    return await entries_of_tip(session=turn.session, tip_ref=tip.ref, actions=("verdict", "reopen"))


async def was_reopened(turn: Turn, tip: Tip) -> bool:
    """A verdict on this tip was taken back once already: its tipster heard all they will hear."""
    return any(entry.action == "reopen" for entry in await verdict_history(turn, tip))


def verdict_text(turn: Turn, fields: dict[str, str], sealed: dict[str, str]) -> str:
    """ "not valuable: Trùng lặp (trung), the original is K7QM2X" from a verdict's audit detail."""
    _ = turn._
    if fields.get("verdict") == TipStatus.VALUABLE:
        return _("valuable")
    reason = BY_CODE.get(fields.get("reason", ""))
    if reason is None:
        return _("not valuable")
    text = _("not valuable: {reason}").format(reason=reason_label(turn, reason))
    if reason.code == "duplicate" and fields.get("original"):
        text += ", " + _("a repeat of {original}").format(original=fields["original"])
    explanation = sealed.get(f"note:{fields.get('note')}")
    if reason.code == "other" and explanation:
        text += f": «{explanation}»"
    return text


async def officer_name(turn: Turn, actor: str) -> str:
    """The officer behind an audit actor ("officer:12"), or what the entry says for the tipster and the system."""
    _ = turn._
    if actor == "tipster":
        return _("the tipster")
    if actor.startswith("officer:") and actor[8:].isdecimal():
        officer = await turn.session.get(Officer, int(actor[8:]))
        if officer is not None:
            return officer.name
    return actor


def _at(entry: AuditEntry) -> str:
    return entry.at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


async def verdict_lines(turn: Turn, tip: Tip, sealed: dict[str, str]) -> list[str]:
    """The lines of /tip about its verdicts, oldest first: a verdict given once reads "Verdict: …"; after a
    reopening, each reopening with the verdict it took back, then the current verdict, if it was judged again."""
    _ = turn._
    lines = []
    taken_back: AuditEntry | None = None  # the verdict the next reopening takes back
    reopened = False
    for entry in await verdict_history(turn, tip):
        fields = detail_fields(entry)
        if entry.action == "verdict":
            taken_back = entry
            continue
        reopened = True
        if taken_back is not None:
            was = _("{verdict}, {name}, {when}").format(
                verdict=verdict_text(turn, detail_fields(taken_back), sealed),
                name=await officer_name(turn, taken_back.actor), when=_at(taken_back))
        else:  # no verdict entry before it: the reopening's own entry still says which state it took back
            was = _(_STATE_WORDS[fields["from"]]) if fields.get("from") in _STATE_WORDS else "?"
        lines.append(_("• Verdict reopened by {name} on {when} (was: {was}): {reason}").format(
            name=await officer_name(turn, entry.actor), when=_at(entry), was=was,
            reason=sealed.get(f"note:{fields.get('note')}", "?")))
        taken_back = None
    if tip.status in (TipStatus.VALUABLE, TipStatus.NOT_VALUABLE) and taken_back is not None:
        if reopened:
            line = _("• Current verdict: {verdict} ({name}, {when})")
        else:
            line = _("• Verdict: {verdict} ({name}, {when})")
        lines.append(line.format(verdict=verdict_text(turn, detail_fields(taken_back), sealed),
                                 name=await officer_name(turn, taken_back.actor), when=_at(taken_back)))
    return lines
