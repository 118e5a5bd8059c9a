"""/export REF: one tip's file for the case record (hồ sơ), a Word document sent through the bot.

It holds what /tip shows (every answer, the verdict), the tip's timeline (received, claimed, notes, questions
to the tipster and their answers, verdicts, reopenings, transfers, links, a case and its removal) and the list
of its evidence files (name, type, size: the files themselves stay with /tip). The document is made in memory and leaves
as a reply: like a /stats chart, it is only ever on disk sealed in the reply outbox until sent, never as
a file of its own. The export is audited as a view of the tip.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from datetime import datetime


from handlers.chat_turn import Turn
from handlers.citizen.drafts import CONTACT_FIELD, REPLY_ROUTE_FIELD
from handlers.citizen.step_kinds import shown_answer, shown_without_step
from handlers.context import VIETNAM
from handlers.i18n import number
from handlers.messages import OutgoingFile, Reply
from handlers.officer.accounts import scope
from handlers.officer.triage import STATUS_NAMES, Refusal, _audit, _stored_answer, _tip_in_scope
from handlers.officer.verdict_reasons import detail_fields, officer_name, verdict_text
from storage import keys as key_store
from storage import related
from storage import tips as tip_store
from storage.audit import entries_of_tip
from storage.models import Officer, Tip

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FONT = "Times New Roman"  # the font of Vietnamese administrative documents, with every diacritic
# What the timeline leaves out: reading the tip (and this export) is in the audit log, not the case's story.
_NOT_IN_TIMELINE = {"view", "evidence", "related"}  # reads, not acts: the audit log has them


@dataclass(frozen=True)
class Event:
    when: datetime | None  # None: a sealed note or answer whose time the store does not know
    who: str
    what: str


async def export_tip(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/export REF: the case file of a tip of the officer's units, as a .docx document in this chat."""
    _ = turn._
    tip = await _tip_in_scope(turn, officer, args.split(" ")[0] if args.strip() else "", lock=False)
    if tip.purged_at is not None:
        raise Refusal(_("Tip {ref} was purged under the retention rules.").format(ref=tip.ref))
    services = turn.services
    data_key = await key_store.load_data_key(session=turn.session, keyring=services.keyring, owner_id=tip.id)
    fields = await tip_store.read_tip_fields(session=turn.session, data_key=data_key)
    opened = await tip_store.open_attachments(session=turn.session, blobs=services.blobs, data_key=data_key)
    # Only what the list shows is kept; the evidence's bytes are let go at once.
    files = [(filename or f"{kind}-{i}", mime or kind, len(data)) for i, (kind, data, filename, mime)
             in enumerate(opened, 1)]
    del opened
    await _audit(turn, officer, "view", tip, "export=docx")
    document = CaseFile(
        tip=tip, answers=_answers(turn, fields), verdict=await _verdict(turn, tip, fields),
        timeline=await timeline(turn, tip, fields), files=files, links=await _links(turn, officer, tip),
        exported_by=officer.name, exported_at=turn.now)
    # python-docx takes a few tens of milliseconds: off the event loop, as the charts are.
    data = await asyncio.to_thread(render_docx, turn, document)
    name = f"ho-so-{tip.ref}.docx"
    return [Reply(_("Case file of {ref}: every answer, the timeline and the list of evidence files (the evidence "
                    "itself is sent by /tip {ref}).").format(ref=tip.ref),
                  files=[OutgoingFile("document", data, filename=name, mime=DOCX_MIME)])]


@dataclass(frozen=True)
class CaseFile:
    tip: Tip
    answers: list[tuple[str, str]]
    verdict: str
    timeline: list[Event]
    files: list[tuple[str, str, int]]  # name, type, size in bytes
    links: list[str]
    exported_by: str
    exported_at: datetime


def _answers(turn: Turn, fields: dict[str, str]) -> list[tuple[str, str]]:
    """Every answer, as /tip shows it: the questionnaire's own, then any it no longer names, then the contact."""
    _ = turn._
    steps = turn.services.settings.questionnaire.steps
    rows = [(step.label(turn.lang), shown_answer(turn, step, json.loads(fields[step.id])))
            for step in steps if step.id in fields and step.kind not in ("review", "contact")]
    named = {step.id for step in steps}
    for name in sorted(n for n in fields if n not in named and ":" not in n and n not in (CONTACT_FIELD,
                                                                                            REPLY_ROUTE_FIELD)):
        answer = _stored_answer(fields[name])
        if answer is not None:
            rows.append((name, shown_without_step(turn, answer)))
    rows.append((_("Tipster"), _("phone {phone} (they chose to give it)").format(phone=fields[CONTACT_FIELD])
                 if CONTACT_FIELD in fields else _("anonymous")))
    return rows


async def _verdict(turn: Turn, tip: Tip, fields: dict[str, str]) -> str:
    _ = turn._
    status = _(STATUS_NAMES.get(tip.status, tip.status))
    verdicts = await entries_of_tip(session=turn.session, tip_ref=tip.ref, actions=("verdict",))
    if tip.verdict_at is None or not verdicts:
        return status
    return verdict_text(turn, detail_fields(verdicts[-1]), fields)


async def _links(turn: Turn, officer: Officer, tip: Tip) -> list[str]:
    """The tips linked to this one; those of other units only counted, as /tip does."""
    _ = turn._
    mine = set(scope(turn, officer))
    lines, elsewhere = [], 0
    for link in await related.links_of(session=turn.session, tip_id=tip.id):
        if link.tip.unit_id in mine:
            reason = _("duplicate") if link.reason == "duplicate" else _("linked by an officer")
            lines.append(f"{link.tip.ref} ({reason}, {link.created_at.astimezone(VIETNAM):%d/%m/%Y})")
        else:
            elsewhere += 1
    if elsewhere:
        lines.append(_("{n} tip(s) of other units").format(n=number(elsewhere, turn.lang)))
    return lines


# --- the timeline: the audit log of the tip, with the sealed texts it points at -------------------------

async def timeline(turn: Turn, tip: Tip, fields: dict[str, str]) -> list[Event]:
    """When, who and what, oldest first. Notes, questions and answers are numbered as they were written and
    each was audited as it was written, so the n-th "ask" entry is question n; a verdict's or reopening's
    note names its number. A sealed text no entry accounts for comes last, without a time."""
    _ = turn._
    units = turn.services.settings.unit_tree
    events = [Event(tip.created_at, _("the tipster"), _("Tip received ({channel})").format(channel=tip.channel))]
    used: set[str] = set()
    counters = {"note": 0, "question": 0, "answer": 0}
    linked: str | None = None

    def sealed(prefix: str, number_: int | str | None = None) -> str:
        if number_ is None:
            counters[prefix] += 1
            number_ = counters[prefix]
        else:
            counters[prefix] = max(counters[prefix], int(number_))
        name = f"{prefix}:{number_}"
        used.add(name)
        return fields.get(name, "?")

    for entry in await entries_of_tip(session=turn.session, tip_ref=tip.ref):
        if entry.action in _NOT_IN_TIMELINE:
            continue
        detail = detail_fields(entry)
        note = detail.get("note")
        what = {
            "claim": lambda: _("Claimed for review"),
            "release": lambda: _("Back to the queue"),
            "note": lambda: _("Note: {text}").format(text=sealed("note")),
            "ask": lambda: _("Question to the tipster: {text}").format(text=sealed("question")),
            "answer": lambda: _("Answer of the tipster: {text}").format(text=sealed("answer")),
            "verdict": lambda: _("Verdict: {verdict}").format(verdict=verdict_text(turn, detail, fields)),
            "reopen": lambda: _("Verdict reopened: {reason}").format(reason=sealed("note", note) if note else "?"),
            "transfer": lambda: _("Transferred from {a} to {b}").format(a=units.name(detail.get("from")),
                                                                          b=units.name(detail.get("to"))),
            "case": lambda: _("Link to case {case} removed: judged not valuable").format(case=linked or "?")
            if detail.get("removed") == "not_valuable" else _("Linked to case {case} with {n} subject(s)").format(
                case=detail.get("case", "?"), n=detail.get("subjects", "?")),
            "link": lambda: _("Linked to tip {other}").format(other=detail.get("other", "?")),
        }.get(entry.action)
        if what is None:
            events.append(Event(entry.at, await officer_name(turn, entry.actor), entry.action))
            continue
        text = what()
        if entry.action == "verdict" and note:
            if detail.get("reason") == "other":
                sealed("note", note)  # the explanation, already in the verdict's words
            else:
                text += " · " + _("Note: {text}").format(text=sealed("note", note))
        events.append(Event(entry.at, await officer_name(turn, entry.actor), text))
        if entry.action == "case":  # a removal names no case: it is the one linked last
            linked = detail.get("case")
    labels = {"note": _("Note: {text}"), "question": _("Question to the tipster: {text}"),
              "answer": _("Answer of the tipster: {text}")}
    for name in sorted((n for n in fields if n.split(":")[0] in labels and n not in used),
                       key=lambda n: (n.split(":")[0], int(n.split(":")[1]) if n.split(":")[1].isdecimal() else 0)):
        events.append(Event(None, "", labels[name.split(":")[0]].format(text=fields[name])))
    return events


# --- the document ----------------------------------------------------------------------------------------

def _size(turn: Turn, size: int) -> str:
    if size < 1024:
        return turn._("{n} bytes").format(n=number(size, turn.lang))
    if size < 1024 * 1024:
        return turn._("{n} KB").format(n=number(round(size / 1024), turn.lang))
    return turn._("{n} MB").format(n=f"{size / 1024 / 1024:.1f}".replace(".", "," if turn.lang == "vi" else "."))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M") if moment else "—"


def _table(document, header: list[str], rows: list[list[str]]) -> None:
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header):
        cell.text = ""
        cell.paragraphs[0].add_run(text).bold = True
    for row in rows:
        for cell, text in zip(table.add_row().cells, row):
            cell.text = text


def render_docx(turn: Turn, case: CaseFile) -> bytes:
    """The case file as .docx bytes, in the officer's language."""
    _ = turn._
    settings = turn.services.settings
    tip = case.tip
    # Here, not at the top: python-docx and lxml add ~15 MB to every idle worker for a file made now and then.
    from docx import Document
    from docx.shared import Pt
    document = Document()
    normal = document.styles["Normal"]
    normal.font.name, normal.font.size = FONT, Pt(13)
    properties = document.core_properties
    # The document's own metadata names the tip and the export, nobody's account.
    properties.title = _("Case file of tip {ref}").format(ref=tip.ref)
    properties.author = properties.last_modified_by = "tinbao"
    properties.created = properties.modified = case.exported_at.replace(tzinfo=None)
    properties.comments = properties.keywords = properties.subject = ""
    document.add_heading(_("Case file of tip {ref}").format(ref=tip.ref), level=1)
    document.add_paragraph(_("Exported by {name} on {when}").format(name=case.exported_by,
                                                                    when=_when(case.exported_at)))
    category = settings.questionnaire.category_step.option(tip.category)
    _table(document, [_("Tip"), tip.ref], [
        [_("Received"), _when(tip.created_at)],
        [_("Category"), category.label(turn.lang) if category else tip.category],
        [_("Area"), settings.areas.display(tip.area_code)],
        [_("Unit"), settings.unit_tree.name(tip.unit_id)],
        [_("Status"), case.verdict],
        [_("Evidence files"), number(len(case.files), turn.lang)],
    ] + ([[_("Case"), _("{case}, {n} subject(s)").format(case=tip.case_ref, n=number(tip.subject_count, turn.lang))]]
         if tip.case_ref else []))
    document.add_heading(_("Answers of the tipster"), level=2)
    _table(document, [_("Question"), _("Answer")], [[label, answer] for label, answer in case.answers])
    document.add_heading(_("Timeline"), level=2)
    _table(document, [_("When"), _("Who"), _("What")], [[_when(e.when), e.who, e.what] for e in case.timeline])
    document.add_heading(_("Evidence files"), level=2)
    if case.files:
        _table(document, ["#", _("Name"), _("Type"), _("Size")],
               [[str(i), name, kind, _size(turn, size)] for i, (name, kind, size) in enumerate(case.files, 1)])
    else:
        document.add_paragraph(_("No files."))
    if case.links:
        document.add_heading(_("Linked tips"), level=2)
        for line in case.links:
            document.add_paragraph(line, style="List Bullet")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
