"""The citizen tip-off: a guided questionnaire, sealed as a draft, submitted as a tip with a receipt.

```mermaid
flowchart LR
    start([/report]) --> category --> description --> scammer{{fraud?}}
    scammer -- yes --> scammer_q[scammer's account] --> when
    scammer -- no --> when
    when --> area --> place --> people --> evidence --> identity --> review
    review -- edit a step --> category
    review -- submit --> receipt([receipt code])
    review -- cancel --> cancelled([draft wiped])
```
The steps are data (``handlers/data/questionnaire.toml``); the diagram shows the shipped ones.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from datetime import datetime

from handlers.areas import fold
from handlers.buttons import any_step_value, step_button, step_value
from handlers.codes import RECEIPT
from handlers.i18n import number
from handlers.limits import day_window, tips_today
from handlers.messages import Choice, IncomingFile, Reply
from handlers.questionnaire import Step
from handlers.turn import Turn
from storage import keys as key_store
from storage import tips as tip_store
from storage.conversations import stale_drafts
from storage.crypto import DataKey
from storage.limits import add_to_window
from storage.media import UnsupportedImage, strip_image_metadata

log = logging.getLogger(__name__)

FLOW = "tipoff"
DRAFT_FIELD = "draft"
REPLY_ROUTE_FIELD = "reply_route"
CONTACT_FIELD = "contact"
PHONE = re.compile(r"^\+?[0-9][0-9 .\-]{7,16}[0-9]$")
IDENTITY_MODES = ("anonymous", "no_followup", "phone")


# --- receipt codes -------------------------------------------------------------------------------

new_receipt_code = RECEIPT.new
normalize_receipt_code = RECEIPT.normalize


# --- the sealed draft ----------------------------------------------------------------------------

class Draft:
    """The answers so far, opened with the draft's own data key (later the tip's key)."""

    def __init__(self, key: DataKey, state: dict) -> None:
        self.key = key
        self.step: str = state["step"]
        self.answers: dict[str, dict] = state.get("answers", {})
        self.pending: dict = state.get("pending", {})

    @property
    def id(self) -> str:
        return self.key.owner_id

    def sealed(self) -> bytes:
        state = {"step": self.step, "answers": self.answers, "pending": self.pending}
        return self.key.seal(DRAFT_FIELD, json.dumps(state, ensure_ascii=False))


async def _load_draft(turn: Turn) -> Draft | None:
    conv = turn.conversation
    if conv.flow != FLOW or not conv.draft_id or conv.draft is None:
        return None
    key = await key_store.load_data_key(session=turn.session, keyring=turn.services.keyring, owner_id=conv.draft_id)
    if key is None:
        return None
    return Draft(key, json.loads(key.open_text(DRAFT_FIELD, conv.draft)))


def _save_draft(turn: Turn, draft: Draft) -> None:
    turn.conversation.draft = draft.sealed()
    turn.session.add(turn.conversation)


async def wipe_draft(turn: Turn) -> bool:
    """Delete the draft, its evidence files and its key; True if there was one."""
    conv = turn.conversation
    had = conv.draft_id is not None
    if conv.draft_id:
        await _wipe_owner(turn.session, turn.services.blobs, conv.draft_id)
    conv.flow = conv.draft_id = conv.draft = None
    turn.session.add(conv)
    return had


async def _wipe_owner(session, blobs, owner_id: str) -> None:
    await tip_store.delete_attachments(session=session, blobs=blobs, owner_id=owner_id)
    await key_store.delete_data_key(session=session, owner_id=owner_id)


async def wipe_stale_drafts(services, *, now: datetime | None = None) -> int:
    """Drafts untouched for longer than the configured time are deleted with their files."""
    cutoff = (now or services.clock()) - services.settings.limits.draft_ttl
    async with services.db.transaction() as session:
        stale = await stale_drafts(session=session, untouched_since=cutoff)
        for conv in stale:
            await _wipe_owner(session, services.blobs, conv.draft_id)
            conv.flow = conv.draft_id = conv.draft = None
            session.add(conv)
    if stale:
        await services.db.checkpoint()
    return len(stale)


def is_expired(turn: Turn) -> bool:
    conv = turn.conversation
    return conv.draft_id is not None and conv.updated_at < turn.now - turn.services.settings.limits.draft_ttl


# --- prompts -------------------------------------------------------------------------------------

def _button(step: Step, value: str, label: str) -> Choice:
    return Choice(id=step_button(step.id, value), label=label)


def prompt(turn: Turn, draft: Draft, *, lead: str | None = None) -> Reply:
    """The current question, with its buttons."""
    _ = turn._
    step = turn.services.settings.questionnaire.step(draft.step)
    if step.kind == "review":
        return _review(turn, draft, lead=lead)
    text = step.prompt(turn.lang)
    reply = Reply(text=text)
    if step.kind == "choice":
        reply.choices = [_button(step, o.id, o.label(turn.lang)) for o in step.choices]
        reply.columns = 2 if len(step.choices) > 4 else 1
    elif step.kind == "area" and draft.pending.get("area_options"):
        areas = turn.services.settings.areas
        reply.text = _("Which one do you mean? Pick it, or type another name.")
        reply.choices = [_button(step, f"area={code}", areas.display(code)) for code in draft.pending["area_options"]]
    elif step.kind == "location":
        reply.location_button = _("📍 Send my location")
    elif step.kind == "media":
        count = draft.pending.get("files", 0)
        if count:
            reply.text += "\n" + _("Files received so far: {count}.").format(count=number(count, turn.lang))
        reply.choices = [_button(step, "done", _("Done") if count else _("No evidence, continue"))]
        if count:
            reply.choices.append(_button(step, "clear", _("Remove all files")))
    elif step.kind == "contact":
        if draft.pending.get("awaiting_phone"):
            reply.text = _("Tap «📞 Share my phone number» below, or type your phone number.")
            reply.contact_button = _("📞 Share my phone number")
            reply.choices = [_button(step, "anonymous", _("Stay anonymous instead"))]
        else:
            reply.choices = [
                _button(step, "anonymous", _("Anonymous (recommended)")),
                _button(step, "no_followup", _("Anonymous, and do not contact me again")),
                _button(step, "phone", _("Leave my phone number")),
            ]
    if step.optional and step.kind not in ("media", "choice"):
        reply.choices.append(_button(step, "skip", _("Skip")))
    if lead:
        reply.text = lead + "\n\n" + reply.text
    return reply


def shown_answer(turn: Turn, step: Step, answer: dict | None) -> str:
    _ = turn._
    if answer is None or answer.get("skipped"):
        return _("(skipped)")
    if step.kind == "choice":
        option = step.option(answer.get("choice", ""))
        return option.label(turn.lang) if option else answer.get("text", "")
    if step.kind == "area":
        return turn.services.settings.areas.display(answer["code"])
    if step.kind == "location":
        if "latitude" in answer:
            return _("Map pin ({lat:.5f}, {lon:.5f})").format(lat=answer["latitude"], lon=answer["longitude"])
        return answer.get("address", "")
    if step.kind == "media":
        return _("{count} file(s)").format(count=number(answer.get("count", 0), turn.lang))
    if step.kind == "contact":
        if answer["mode"] == "phone":
            return _("Phone number {phone}").format(phone=answer["phone"])
        if answer["mode"] == "no_followup":
            return _("Anonymous, no follow-up")
        return _("Anonymous")
    text = answer.get("text", "")
    return text if len(text) <= 600 else text[:600] + "…"


def _review(turn: Turn, draft: Draft, *, lead: str | None) -> Reply:
    _ = turn._
    questionnaire = turn.services.settings.questionnaire
    steps = [s for s in questionnaire.steps if s.kind != "review" and s.applies(draft.answers)]
    review = questionnaire.step(draft.step)
    lines = [review.prompt(turn.lang), ""]
    lines += [f"• {s.label(turn.lang)}: {shown_answer(turn, s, draft.answers.get(s.id))}" for s in steps]
    text = "\n".join(lines)
    choices = [_button(review, f"edit={s.id}", _("Edit: {label}").format(label=s.label(turn.lang))) for s in steps]
    choices += [_button(review, "submit", _("Send the tip")), _button(review, "cancel", _("Cancel"))]
    return Reply(text=f"{lead}\n\n{text}" if lead else text, choices=choices)


# --- starting, answering, finishing -------------------------------------------------------------

def _first_open_step(turn: Turn, draft: Draft) -> str:
    """The first question that applies and has no answer yet; the review when all are answered."""
    questionnaire = turn.services.settings.questionnaire
    # An answer to a step that no longer applies (the category changed) must not be submitted.
    for step in questionnaire.steps:
        if step.id in draft.answers and not step.applies(draft.answers):
            draft.answers.pop(step.id)
    for step in questionnaire.steps:
        if step.kind != "review" and step.applies(draft.answers) and step.id not in draft.answers:
            return step.id
    return questionnaire.steps[-1].id


async def start(turn: Turn) -> list[Reply]:
    """/report: a new draft with its own data key, then the first question."""
    _ = turn._
    limits = turn.services.settings.limits
    if await tips_today(turn) >= limits.tips_per_day:
        return [Reply(_("You have sent {n} tips today, the most we accept in one day. Please try again "
                        "tomorrow. In an emergency, call {emergency}.").format(
            n=number(limits.tips_per_day, turn.lang), emergency=turn.services.settings.emergency_number))]
    draft_id = tip_store.new_id()
    key = await key_store.create_data_key(session=turn.session, keyring=turn.services.keyring, owner_id=draft_id)
    draft = Draft(key, {"step": ""})
    draft.step = _first_open_step(turn, draft)
    conv = turn.conversation
    conv.flow, conv.draft_id = FLOW, draft_id
    _save_draft(turn, draft)
    lead = _("Thank you for reporting. Your tip is anonymous unless you choose to leave a phone number. "
             "Send /cancel at any time to stop.")
    return [prompt(turn, draft, lead=lead)]


async def reprompt(turn: Turn, *, lead: str | None = None) -> list[Reply]:
    draft = await _load_draft(turn)
    return [prompt(turn, draft, lead=lead)] if draft else []


async def answer(turn: Turn) -> list[Reply]:
    """Take the citizen's answer to the current question, or say clearly what is wrong with it."""
    draft = await _load_draft(turn)
    if draft is None:  # a half-written row (should not happen); start clean rather than guess
        await wipe_draft(turn)
        return await start(turn)
    step = turn.services.settings.questionnaire.step(draft.step)
    handler = _ANSWERS[step.kind]
    outcome = await handler(turn, draft, step)
    if isinstance(outcome, Reply):  # finished (submitted or cancelled)
        return [outcome]
    if isinstance(outcome, str):  # a problem: say it, ask again, change nothing else
        return [prompt(turn, draft, lead=outcome)]
    if outcome is not None:  # the step took an answer
        draft.answers[step.id] = outcome
        draft.pending = {}
        draft.step = _first_open_step(turn, draft)
    _save_draft(turn, draft)
    return [prompt(turn, draft, lead=_ack(turn, step, outcome))]


def _ack(turn: Turn, step: Step, outcome: dict | None) -> str | None:
    if outcome is None:
        return None
    if step.kind == "choice" and outcome.get("choice") in step.urgent_choices:
        return turn._("If someone is in danger right now, call {emergency} immediately.").format(
            emergency=turn.services.settings.emergency_number)
    return None


def _control(turn: Turn, step: Step) -> str | None:
    """The value of a tapped button of this step, or of a typed number or label of its buttons."""
    inbound = turn.inbound
    if inbound.choice is not None:
        value = step_value(step.id, inbound.choice)
        return "\0stale" if value is None else value
    return None


def _typed(turn: Turn, choices: list[Choice]) -> str | None:
    """Map "2" or the words of a choice back to it, for channels without buttons (or typists)."""
    text = (turn.inbound.text or "").strip()
    if not text:
        return None
    if text.isdecimal() and len(text) < 4 and 1 <= int(text) <= len(choices):
        return any_step_value(choices[int(text) - 1].id)
    wanted = fold(text)
    for choice in choices:
        if wanted and fold(choice.label) == wanted:
            return any_step_value(choice.id)
    return None


def _selected(turn: Turn, draft: Draft, step: Step) -> str | None:
    tapped = _control(turn, step)
    if tapped is not None:
        return tapped
    return _typed(turn, prompt(turn, draft).choices)


def _wrong_kind(turn: Turn, step: Step) -> str:
    _ = turn._
    inbound = turn.inbound
    if inbound.choice is not None:
        if step_value(step.id, inbound.choice) is not None:
            return _("Please pick one of the options.")
        return _("That button belongs to an earlier question.")
    if inbound.unsupported:
        return _("Sorry, this kind of message cannot be used here.")
    if inbound.files and step.kind != "media":
        return _("Thank you. You can send photos and files at the evidence question; please answer this one first.")
    if inbound.location and step.kind != "location":
        return _("A map location is not an answer to this question.")
    return _("Please answer this question.")


def _clean_text(turn: Turn, step: Step) -> str | dict:
    _ = turn._
    text = unicodedata.normalize("NFC", turn.inbound.text or "").strip()
    if len(text) < step.min_length:
        return _("That is too short: please write at least {n} characters.").format(
            n=number(step.min_length, turn.lang))
    if len(text) > step.max_length:
        return _("That is too long ({length} characters): please keep it under {n} characters.").format(
            length=number(len(text), turn.lang), n=number(step.max_length, turn.lang))
    return {"text": text}


async def _answer_choice(turn: Turn, draft: Draft, step: Step) -> dict | str:
    value = _selected(turn, draft, step)
    if value is not None and step.option(value):
        return {"choice": value}
    if value is None and step.free_text and turn.inbound.text and not turn.inbound.files:
        return _clean_text(turn, step)
    if value is None and turn.inbound.text:
        return turn._("Please pick one of the options.")
    return _wrong_kind(turn, step)


async def _answer_text(turn: Turn, draft: Draft, step: Step) -> dict | str:
    value = _selected(turn, draft, step)
    if value == "skip" and step.optional:
        return {"skipped": True}
    if turn.inbound.text and value is None and not turn.inbound.files:
        return _clean_text(turn, step)
    return _wrong_kind(turn, step)


async def _answer_area(turn: Turn, draft: Draft, step: Step) -> dict | str | None:
    _ = turn._
    areas = turn.services.settings.areas
    value = _selected(turn, draft, step)
    if value and value.startswith("area=") and value[5:] in draft.pending.get("area_options", []):
        return {"code": value[5:]}
    if value is not None or not turn.inbound.text:
        return _wrong_kind(turn, step)
    query = unicodedata.normalize("NFC", turn.inbound.text).strip()[:100]
    found = areas.search(query)
    if not found:
        draft.pending = {}
        return _("No ward or commune matches «{query}». Try another part of the name.").format(query=query)
    if len(found) == 1:
        return {"code": found[0].code}
    draft.pending = {"area_options": [a.code for a in found]}
    return None  # stays on the step, now with the matches as buttons


async def _answer_location(turn: Turn, draft: Draft, step: Step) -> dict | str:
    inbound = turn.inbound
    if inbound.location is not None:
        lat, lon = inbound.location.latitude, inbound.location.longitude
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            return {"latitude": lat, "longitude": lon}
    value = _selected(turn, draft, step)
    if value == "skip":
        return {"skipped": True}
    if inbound.text and value is None and not inbound.files:
        cleaned = _clean_text(turn, step)
        return {"address": cleaned["text"]} if isinstance(cleaned, dict) else cleaned
    return _wrong_kind(turn, step)


async def _answer_media(turn: Turn, draft: Draft, step: Step) -> dict | str | None:
    _ = turn._
    services = turn.services
    if turn.inbound.files:
        problems: list[str] = []
        for incoming in turn.inbound.files:
            problem = await _keep_file(turn, draft, incoming)
            if problem:
                problems.append(problem)
        if problems:
            # Files kept beside a refused one are stored, so they must be counted too: otherwise the
            # count shown is wrong and max_files can be walked around one mixed album at a time.
            _save_draft(turn, draft)
            return "\n".join(problems)
        return None
    value = _selected(turn, draft, step)
    if value == "done":
        return {"count": draft.pending.get("files", 0)}
    if value == "clear":
        await tip_store.delete_attachments(session=turn.session, blobs=services.blobs, owner_id=draft.id)
        draft.pending["files"] = 0
        return None
    if turn.inbound.unsupported == "sticker":
        return _("Stickers cannot be used as evidence. Send photos, videos, voice notes or documents.")
    if turn.inbound.text and value is None:
        return _("Send your files here, or tap «{done}» to continue.").format(
            done=_("Done") if draft.pending.get("files") else _("No evidence, continue"))
    return _wrong_kind(turn, step)


async def _keep_file(turn: Turn, draft: Draft, incoming: IncomingFile) -> str | None:
    """Download, clean and seal one file; a problem is returned as a message, not raised."""
    _ = turn._
    limits = turn.services.settings.limits
    count = draft.pending.get("files", 0)
    if count >= limits.max_files:
        return _("You can send at most {n} files; this one was not kept.").format(n=number(limits.max_files, turn.lang))
    too_big = _("This file is too large (the limit is {mb} MB); it was not kept.").format(
        mb=number(round(limits.max_file_bytes / (1024 * 1024), 1), turn.lang))
    if incoming.size is not None and incoming.size > limits.max_file_bytes:
        return too_big
    try:
        data = await incoming.fetch()
    except Exception as exc:  # the platform's file service failed; the citizen can simply resend
        log.warning("evidence download failed: %s", type(exc).__name__)
        return _("This file could not be downloaded; please send it again.")
    if len(data) > limits.max_file_bytes:
        return too_big
    mime, filename = incoming.mime, incoming.filename
    if incoming.kind == "photo" or (mime or "").startswith("image/"):
        unreadable = _("This image could not be read, so its hidden data (such as location) could not be removed. "
                       "Please send it as a photo instead.")
        try:
            data, mime = strip_image_metadata(data)
        except UnsupportedImage:
            return unreadable
        except Exception as exc:  # noqa: BLE001
            # Pillow raises some refusals past UnsupportedImage (DecompressionBombError: a tiny file claiming
            # billions of pixels). A hostile image is refused like an unreadable one, not answered with
            # "something went wrong, send it again".
            log.warning("evidence image refused: %s", type(exc).__name__)
            return unreadable
    await tip_store.save_attachment(session=turn.session, blobs=turn.services.blobs, data_key=draft.key,
                                    kind=incoming.kind, data=data, filename=filename, mime=mime)
    draft.pending["files"] = count + 1
    return None


async def _answer_contact(turn: Turn, draft: Draft, step: Step) -> dict | str | None:
    _ = turn._
    inbound = turn.inbound
    if draft.pending.get("awaiting_phone"):
        if inbound.contact is not None:
            if not inbound.contact.is_own:
                return _("Please share your own phone number, not someone else's contact.")
            return {"mode": "phone", "phone": inbound.contact.phone}
        value = _selected(turn, draft, step)
        if value == "anonymous":
            return {"mode": "anonymous"}
        if inbound.text and value is None:
            phone = inbound.text.strip()
            if PHONE.match(phone):
                return {"mode": "phone", "phone": re.sub(r"[ .\-]", "", phone)}
            return _("That does not look like a phone number.")
        return _wrong_kind(turn, step)
    value = _selected(turn, draft, step)
    if value == "phone":
        draft.pending = {"awaiting_phone": True}
        return None
    if value in IDENTITY_MODES:
        return {"mode": value}
    if inbound.text and value is None:
        return _("Please pick one of the options.")
    return _wrong_kind(turn, step)


async def _answer_review(turn: Turn, draft: Draft, step: Step) -> dict | str | Reply | None:
    _ = turn._
    value = _selected(turn, draft, step)
    questionnaire = turn.services.settings.questionnaire
    if value == "submit":
        return await _submit(turn, draft)
    if value == "cancel":
        await wipe_draft(turn)
        return Reply(_("Your tip was cancelled and deleted. Send /report to start again."))
    if value and value.startswith("edit="):
        target = value[5:]
        if any(s.id == target and s.kind != "review" and s.applies(draft.answers) for s in questionnaire.steps):
            draft.step = target
            draft.pending = {"files": draft.answers.get(target, {}).get("count", 0)} if (
                questionnaire.step(target).kind == "media") else {}
            return None
    if turn.inbound.text:
        return _("Please use the buttons: edit an answer, send the tip, or cancel.")
    return _wrong_kind(turn, step)


async def _submit(turn: Turn, draft: Draft) -> Reply | str:
    """Seal every answer into the tip, hand out the receipt code, forget the draft."""
    _ = turn._
    services = turn.services
    questionnaire = services.settings.questionnaire
    limits = services.settings.limits
    if await tips_today(turn) >= limits.tips_per_day:
        return _("You have already sent {n} tips today, the most we accept in one day. Your draft is kept: "
                 "you can send it tomorrow.").format(n=number(limits.tips_per_day, turn.lang))
    answers = {s.id: draft.answers[s.id] for s in questionnaire.steps
               if s.kind != "review" and s.applies(draft.answers) and s.id in draft.answers}
    identity = next((answers.pop(s.id) for s in questionnaire.steps if s.kind == "contact" and s.id in answers),
                    {"mode": "anonymous"})
    fields = {step_id: json.dumps(value, ensure_ascii=False) for step_id, value in answers.items()}
    if identity["mode"] == "phone":
        fields[CONTACT_FIELD] = identity["phone"]
    if identity["mode"] != "no_followup":
        # Sealed under the tip's key: officers can reach the tipster through the bot without seeing who it is.
        fields[REPLY_ROUTE_FIELD] = json.dumps(
            {"channel": turn.inbound.channel, "chat_id": turn.inbound.chat_id, "language": turn.lang})
    urgency = next((s for s in questionnaire.steps if s.role == "urgency"), None)
    urgent = bool(urgency and answers.get(urgency.id, {}).get("choice") in urgency.urgent_choices)
    code = new_receipt_code()
    area_code = answers[questionnaire.by_role("area").id]["code"]
    await tip_store.create_tip(
        session=turn.session, data_key=draft.key, channel=turn.inbound.channel,
        category=answers[questionnaire.category_step.id]["choice"], area_code=area_code, urgent=urgent,
        receipt_hash=services.keyring.receipt_hash(normalize_receipt_code(code)), fields=fields,
        unit_id=services.settings.unit_tree.route(area_code))
    await add_to_window(session=turn.session, chat_key=turn.conversation.chat_key, bucket="tips",
                        window_start=day_window(turn.now))
    conv = turn.conversation
    conv.flow = conv.draft_id = conv.draft = None  # the data key now belongs to the tip
    turn.session.add(conv)
    log.info("tip submitted")
    text = _("Your tip has been received. Thank you!\n\nReceipt code: {code}\n\nKeep this code: send "
             "/status {code} at any time, from any account, to see what became of your tip. "
             "It is the only way to find your tip again; we cannot look it up for you.").format(code=code)
    if urgent:
        text += "\n\n" + _("Since it is happening now, please also call {emergency} immediately.").format(
            emergency=services.settings.emergency_number)
    return Reply(text)


_ANSWERS = {
    "choice": _answer_choice, "text": _answer_text, "area": _answer_area, "location": _answer_location,
    "media": _answer_media, "contact": _answer_contact, "review": _answer_review,
}
