"""What /tip shows beside the answers: one timeline of notes, questions, answers, verdicts and reopenings; a
map link and a pin for a location; the evidence files, sent once and then on request.

The sealed fields (note:1, question:1, answer:1 …) hold no time and no author. The audit log does: every
note, question, answer and verdict is an entry, with its time and actor, that names the field it wrote
(``field=note:3``). Entries written before they named it are matched in order, one entry per field.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from handlers.buttons import OFFICER
from handlers.context import VIETNAM
from handlers.i18n import number
from handlers.messages import Choice, Location, OutgoingFile, Reply
from handlers.officer.accounts import actor
from handlers.chat_turn import Turn
from storage import tips as tip_store
from storage.audit import append_audit, has_audit_entry, tip_history
from storage.models import AuditEntry, Officer, Tip

# The sealed fields of the timeline, and the audit action that writes each.
_ACTIONS = {"note": "note", "question": "ask", "answer": "answer"}
VERDICT_ACTIONS = ("verdict", "reopen")  # what verdict_reasons.verdict_history reads: a part of the timeline's
TIMELINE_ACTIONS = (*_ACTIONS.values(), *VERDICT_ACTIONS)
_FIELD = re.compile(r"\bfield=(\S+)")
_NOTE = re.compile(r"\bnote=(\d+)")
TIPSTER = "tipster"  # the audit actor of an answer


def _number(name: str) -> int:
    tail = name.partition(":")[2]
    return int(tail) if tail.isdecimal() else 0


async def timeline_entries(turn: Turn, tip: Tip) -> list[AuditEntry]:
    """The audit entries a tip's timeline is made of, oldest first."""
    return await tip_history(session=turn.session, tip_ref=tip.ref, actions=TIMELINE_ACTIONS)


async def timeline_lines(turn: Turn, tip: Tip, fields: dict[str, str], describe: Callable[[AuditEntry], str], *,
                         entries: list[AuditEntry] | None = None) -> list[str]:
    """Notes, questions to the tipster, their answers, verdicts and reopenings, oldest first: when, who, what.
    ``describe`` words a verdict; a note a verdict or a reopening names (an "other" explanation, a
    reopening's reason) is shown with it (verdict_reasons.verdict_lines), not again on its own.
    ``entries``: timeline_entries of this tip, when the caller has read them this turn."""
    _ = turn._
    if entries is None:
        entries = await timeline_entries(turn, tip)
    named = {m.group(1): e for e in entries if (m := _FIELD.search(e.detail or ""))}
    # A note a verdict or a reopening names: an "other" explanation or a reopening's reason is worded with
    # it (verdict_reasons), a verdict's own note goes beside it; none is listed again on its own.
    told = {f"note:{m.group(1)}": e for e in entries if e.action in ("verdict", "reopen")
            if (m := _NOTE.search(e.detail or ""))}
    events: list[tuple[int, AuditEntry | None, str]] = []
    loose_notes: list[str] = []
    for prefix, action in _ACTIONS.items():
        legacy = [e for e in entries if e.action == action and not _FIELD.search(e.detail or "")]
        for name in sorted((n for n in fields if n.startswith(prefix + ":") and n not in told), key=_number):
            entry = named.get(name) or (legacy.pop(0) if legacy else None)
            if entry is None and prefix == "note":
                loose_notes.append(name)
            else:
                events.append((entry.id if entry else 1 << 62, entry, _what(turn, prefix, fields[name])))
    # A note given with the verdict ("/valuable REF note") has no entry of its own: it is the verdict's note,
    # the latest notes going with the latest verdicts.
    verdicts = [e for e in entries if e.action == "verdict"]
    notes_of = dict(zip(reversed([v.id for v in verdicts]), reversed(loose_notes)))
    for name in loose_notes[:max(len(loose_notes) - len(verdicts), 0)]:
        events.append((1 << 62, None, _what(turn, "note", fields[name])))
    beside = {e.id: name for name, e in told.items() if e.action == "verdict" and "reason=other" not in (e.detail or "")}
    for verdict in verdicts:
        what = describe(verdict)
        note = beside.get(verdict.id) or notes_of.get(verdict.id)
        if note in fields:
            what += " · " + _("Note: {text}").format(text=fields[note])
        events.append((verdict.id, verdict, what))
    # Each reopening between the verdict it took back and the next one, with its (sealed) reason.
    for reopening in (e for e in entries if e.action == "reopen"):
        note = _NOTE.search(reopening.detail or "")
        reason = fields.get(f"note:{note.group(1)}", "?") if note else "?"
        events.append((reopening.id, reopening, _("Verdict reopened: {reason}").format(reason=reason)))
    if not events:
        return []
    names = await _officer_names(turn, [e for _k, e, _w in events if e is not None])
    lines = ["", _("Timeline:")]
    for _key, entry, what in sorted(events, key=lambda event: event[0]):
        when = entry.at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M") if entry else "?"
        who = _who(turn, entry, names)
        lines.append(f"• {when} · {who} · {what}")
    return lines


def _what(turn: Turn, prefix: str, text: str) -> str:
    _ = turn._
    if prefix == "question":
        return _("Question to the tipster: {text}").format(text=text)
    if prefix == "answer":
        return _("Answer: {text}").format(text=text)
    return _("Note: {text}").format(text=text)


async def _officer_names(turn: Turn, entries: list[AuditEntry]) -> dict[str, str]:
    names: dict[str, str] = {}
    for entry in entries:
        kind, _sep, officer_id = entry.actor.partition(":")
        if kind == "officer" and officer_id.isdecimal() and entry.actor not in names:
            officer = await turn.session.get(Officer, int(officer_id))
            names[entry.actor] = officer.name if officer else "?"
    return names


def _who(turn: Turn, entry: AuditEntry | None, names: dict[str, str]) -> str:
    if entry is None:
        return "?"
    if entry.actor == TIPSTER:
        return turn._("the tipster")
    return names.get(entry.actor, entry.actor)


# --- a location ----------------------------------------------------------------------------------

def map_link(latitude: float, longitude: float) -> str:
    """The place on OpenStreetMap, opened in any browser (no account, no app, no key)."""
    lat, lon = f"{latitude:.5f}", f"{longitude:.5f}"
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


def location_of(answer: dict) -> Location | None:
    """The map pin of a location answer; None for a typed address or anything else."""
    try:
        return Location(float(answer["latitude"]), float(answer["longitude"]))
    except (KeyError, TypeError, ValueError):
        return None


# --- the evidence ----------------------------------------------------------------------------------

def files_button(turn: Turn, tip: Tip) -> list[Choice]:
    """📎 under the tip: its evidence again, on request."""
    if tip.purged_at is not None or not tip.attachment_count:
        return []
    return [Choice(OFFICER.pack("files", tip.ref),
                   turn._("📎 Files ({n})").format(n=number(tip.attachment_count, turn.lang)))]


async def evidence(turn: Turn, officer: Officer, tip: Tip, data_key, *, only_first_time: bool) -> list[Reply]:
    """The tip's evidence files, audited like a view; with only_first_time, only if this officer never had them."""
    if tip.purged_at is not None or not tip.attachment_count or data_key is None:
        return []
    who = actor(officer)
    if only_first_time and await has_audit_entry(session=turn.session, tip_ref=tip.ref, actor=who, action="evidence"):
        return []
    opened = await tip_store.open_attachments(session=turn.session, blobs=turn.services.blobs, data_key=data_key)
    if not opened:
        return []
    await append_audit(session=turn.session, keyring=turn.services.keyring, actor=who, action="evidence",
                       tip_ref=tip.ref, detail=f"files={len(opened)}")
    files = [OutgoingFile(kind, data, filename=filename, mime=mime) for kind, data, filename, mime in opened]
    return [Reply(turn._("Evidence of {ref}:").format(ref=tip.ref), files=files)]
