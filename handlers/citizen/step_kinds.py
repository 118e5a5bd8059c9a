"""The kinds of questionnaire step: one class each, saying how the step asks, takes an answer, and shows it.

A step's ``kind`` in the questionnaire file names one of ``KINDS`` at the end of this module, and the
loader (handlers/citizen/questionnaire_file.py) refuses any other. To add a kind: a class here with ``ask``/``take``/
``show`` (and ``check`` for what the file must say), and its line in ``KINDS``.

``take`` returns the answer to keep (a dict, sealed in the draft), a message saying what is wrong (a str:
the question is asked again, nothing else changes), None to stay on the step (a partial answer: files so
far, a list of matching areas), or a Reply when the tip-off is over (sent or cancelled).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import TYPE_CHECKING, ClassVar

from handlers.areas import typed_label, yes_or_no
from handlers.buttons import any_step_value, step_button, step_value
from handlers.citizen.drafts import Draft, save_draft
from handlers.i18n import number
from handlers.messages import CHANNELS_WITHOUT_PIN_BUTTON, Choice, IncomingFile, Reply, TypeInstead
from handlers.citizen.submission import submit
from handlers.evidence_images import clean as clean_evidence_image, is_image
from storage import tips as tip_store
from storage.media import MAX_PIXELS

if TYPE_CHECKING:
    from handlers.citizen.questionnaire_file import Step
    from handlers.chat_turn import Turn

log = logging.getLogger(__name__)

PHONE = re.compile(r"^\+?[0-9][0-9 .\-]{7,16}[0-9]$")
IDENTITY_MODES = ("anonymous", "no_followup", "phone")


def _button(step: Step, value: str, label: str) -> Choice:
    return Choice(id=step_button(step.id, value), label=label)


def prompt(turn: Turn, draft: Draft, *, lead: str | None = None) -> Reply:
    """The current question, with its buttons (or «Delete the tip you are writing?» while that is asked)."""
    step = turn.services.settings.questionnaire.step(draft.step)
    reply = cancel_question(turn, step) if draft.cancelling else KINDS[step.kind].ask(turn, draft, step)
    if lead:
        reply.text = lead + "\n\n" + reply.text
    return reply


CANCEL_YES, CANCEL_NO = "cancel=yes", "cancel=no"  # the step's own buttons, so an old one is recognised


def cancel_question(turn: Turn, step: Step) -> Reply:
    """/cancel or a typed «hủy»: asked before anything is deleted."""
    _ = turn._
    return Reply(_("Delete the tip you are writing?"),
                 choices=[_button(step, CANCEL_YES, _("Yes, delete it")), _button(step, CANCEL_NO, _("No, keep writing"))])


def chosen(turn: Turn, draft: Draft, step: Step) -> str | None:
    """The value of the tapped button, or of the typed number or words of one of the buttons shown."""
    return _selected(turn, draft, step)


def shown_answer(turn: Turn, step: Step, answer: dict | None) -> str:
    """An answer as the citizen's review and the officer's view show it."""
    if answer is None or answer.get("skipped"):
        return turn._("(skipped)")
    return KINDS[step.kind].show(turn, step, answer)


def shown_without_step(turn: Turn, answer: dict) -> str:
    """A stored answer whose step the questionnaire no longer names (renamed, removed): read by its shape."""
    if answer.get("skipped"):
        return turn._("(skipped)")
    shape = next((kind for key, kind in _SHAPES if key in answer), TextStep)
    return KINDS[shape.name].show(turn, None, answer)


# --- what every kind shares: reading a tap or a typed choice, and saying what is wrong ----------

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
    picked = typed_label(text, [choice.label for choice in choices])
    return None if picked is None else any_step_value(choices[picked].id)


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
    mime, filename, cleaned = incoming.mime, incoming.filename, incoming.cleaned
    if cleaned is None:  # not an image, or not fetched before the turn (handlers/evidence_images.py)
        try:
            data = await incoming.fetch()
        except Exception as exc:  # the platform's file service failed; the citizen can simply resend
            log.warning("evidence download failed: %s", type(exc).__name__)
            return _("This file could not be downloaded; please send it again.")
        if len(data) > limits.max_file_bytes:
            return too_big
        if is_image(incoming):
            cleaned = await clean_evidence_image(data)  # still in the image worker, never on the event loop
    if cleaned is not None:
        if cleaned.refusal == "too_large":
            return _("This image is too large to check (more than {n} million pixels), so it was not kept. "
                     "Please send a smaller photo, or a screenshot of it.").format(
                         n=number(MAX_PIXELS // 1_000_000, turn.lang))
        if cleaned.refusal:
            return _("This image could not be read, so its hidden data (such as location) could not be removed. "
                     "Please send it as a photo instead.")
        data, mime = cleaned.data, cleaned.mime
    await tip_store.save_attachment(session=turn.session, blobs=turn.services.blobs, data_key=draft.key,
                                    kind=incoming.kind, data=data, filename=filename, mime=mime)
    draft.pending["files"] = count + 1
    return None


# --- the kinds ---------------------------------------------------------------------------------

class StepKind:
    """How one kind of step asks, takes an answer, and shows it."""

    name: ClassVar[str]
    skippable: ClassVar[bool] = True  # an optional step of this kind gets a «Skip» button

    def check(self, step: Step, where: str) -> str | None:
        """What is wrong with this step in the questionnaire file; None when nothing is."""
        return None

    def ask(self, turn: Turn, draft: Draft, step: Step) -> Reply:
        reply = Reply(text=step.prompt(turn.lang))
        self.offer(turn, draft, step, reply)
        if step.optional and self.skippable:
            reply.choices.append(_button(step, "skip", turn._("Skip")))
        return reply

    def offer(self, turn: Turn, draft: Draft, step: Step, reply: Reply) -> None:
        """The buttons (or hints) of this kind under the question."""

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str | Reply | None:
        raise NotImplementedError

    def show(self, turn: Turn, step: Step | None, answer: dict) -> str:
        text = answer.get("text", "")
        return text if len(text) <= 600 else text[:600] + "…"


class ChoiceStep(StepKind):
    """Buttons (a numbered list without them); ``free_text = true`` also takes typed text."""

    name = "choice"
    skippable = False

    def check(self, step: Step, where: str) -> str | None:
        return None if step.choices else f"{where} is a choice step without choices"

    def offer(self, turn: Turn, draft: Draft, step: Step, reply: Reply) -> None:
        reply.choices = [_button(step, o.id, o.label(turn.lang)) for o in step.choices]
        reply.columns = 2 if len(step.choices) > 4 else 1

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str:
        value = _selected(turn, draft, step)
        if value is not None and step.option(value):
            return {"choice": value}
        if value is None and step.free_text and turn.inbound.text and not turn.inbound.files:
            return _clean_text(turn, step)
        if value is None and turn.inbound.text:
            return turn._("Please pick one of the options.")
        return _wrong_kind(turn, step)

    def show(self, turn: Turn, step: Step | None, answer: dict) -> str:
        if step is None:  # its step is gone from the file: the option's id is all that is left to show
            return answer.get("text") or answer.get("choice", "")
        option = step.option(answer.get("choice", ""))
        return option.label(turn.lang) if option else answer.get("text", "")


class TextStep(StepKind):
    """Typed text, kept exactly (NFC), between ``min_length`` and ``max_length`` characters."""

    name = "text"

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str:
        value = _selected(turn, draft, step)
        if value == "skip" and step.optional:
            return {"skipped": True}
        if turn.inbound.text and value is None and not turn.inbound.files:
            return _clean_text(turn, step)
        return _wrong_kind(turn, step)


class AreaStep(StepKind):
    """A ward or commune of the configured areas: typed as today's name, part of it, a misspelling or an old name
    from before July 2025, always confirmed by the citizen; or «I don't know» for the province's own unit.

    A map pin sent here offers the configured wards it falls in or lies beside, to confirm; the pin is then kept
    as the answer to the location step that follows, so it is not asked for twice.

    ``pending`` holds where the step stands: ``confirm`` (one area, to confirm), ``area_options`` (areas to pick
    from), ``why`` (what the citizen's answer turned out to be: "former", "close", "province", "provinces",
    "pin", "pin_near"), ``old`` (the old unit's name), ``province`` (the province a whole-province answer named)
    and ``pin`` (the pin's latitude and longitude, while its wards are being confirmed).
    """

    name = "area"

    def offer(self, turn: Turn, draft: Draft, step: Step, reply: Reply) -> None:
        _ = turn._
        areas = turn.services.settings.areas
        pending = draft.pending
        why, old = pending.get("why"), pending.get("old", "")
        if why == "pin" and pending.get("confirm"):  # the pin falls well inside one ward
            reply.text = _("Is this location in {place}?").format(place=areas.display(pending["confirm"], short=True))
            reply.choices = [_button(step, "yes", _("Yes")), _button(step, "no", _("No, type another name"))]
        elif why in ("pin", "pin_near"):  # near a boundary, or just outside the configured wards
            first = areas.display(pending["area_options"][0], short=True)
            reply.text = _("Is this location in {place}? It is close to a boundary: pick the ward or commune where it "
                           "happened, or type another name.").format(place=first) if why == "pin" else _(
                "This location is not in any ward or commune this tip line serves, but it is close to those "
                "below. Pick the one where it happened, or type another name.")
            reply.choices = [_button(step, f"area={code}", areas.display(code)) for code in pending["area_options"]]
        elif pending.get("confirm"):
            place = areas.display(pending["confirm"], short=True)
            question = _("Is it {place}?").format(place=place)
            if why == "former":
                question = _("«{old}» is a name from before 1 July 2025; that area is now part of {place}.").format(
                    old=old, place=place) + "\n" + question
            reply.text = question
            reply.choices = [_button(step, "yes", _("Yes")), _button(step, "no", _("No, type another name"))]
        elif pending.get("area_options"):
            if why == "former":
                reply.text = _("«{old}» is a name from before 1 July 2025. Its area is now divided among the wards "
                               "and communes below: pick the one where it happened, or type another name.").format(
                                   old=old)
            elif why == "close":
                reply.text = _("Did you mean one of these? Pick it, or type another name.")
            elif why == "provinces":
                reply.text = _("In which province or city did it happen?")
            else:
                reply.text = _("Which one do you mean? Pick it, or type another name.")
            reply.choices = [_button(step, f"area={code}", areas.display(code)) for code in pending["area_options"]]
        elif why == "province":
            reply.text = _("{province} is a whole province or city. In which ward or commune did it happen? Type its "
                           "name, or choose «{unknown}».").format(province=areas.display(pending["province"]),
                                                                  unknown=_("I don't know the ward or commune"))
        if why != "provinces" and areas.provinces:
            reply.choices.append(_button(step, "unknown", _("I don't know the ward or commune")))
        if not pending and areas.places_pins and turn.inbound.channel not in CHANNELS_WITHOUT_PIN_BUTTON:
            # The button sends where the phone is: worth a tap for a citizen standing where it happened, and
            # what it gives is confirmed like a typed name.
            reply.location_button = _("📍 Send my location")
            reply.text += "\n" + _("If you are where it happened, you can also tap «{button}».").format(
                button=reply.location_button)

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str | None:
        _ = turn._
        areas = turn.services.settings.areas
        pending = draft.pending
        if turn.inbound.location is not None:
            return self._pin(turn, draft, step)
        value = _selected(turn, draft, step)
        if value is None and pending.get("confirm"):
            said = yes_or_no(turn.inbound.text)
            value = None if said is None else "yes" if said else "no"
        if value == "yes" and areas.get(pending.get("confirm", "")):
            return self._taken(turn, draft, step, pending["confirm"])
        picked = value[5:] if value and value.startswith("area=") else None
        if picked in pending.get("area_options", []) and areas.get(picked):
            return self._taken(turn, draft, step, picked)
        if value == "no":
            draft.pending = {}
            save_draft(turn, draft)
            return _("Then please type the name of the ward or commune again, or part of it.")
        if value == "unknown":
            return self._unknown(turn, draft)
        if value is not None or not turn.inbound.text or turn.inbound.files:
            return _wrong_kind(turn, step)
        query = unicodedata.normalize("NFC", turn.inbound.text).strip()[:100]
        found = areas.find_place(query)
        if found.former and not found.exact:  # an old name: the wards that took it over, to choose from
            old, successors = found.former[0][0], tuple(dict.fromkeys(c for _, codes in found.former for c in codes))
            draft.pending = ({"confirm": successors[0]} if len(successors) == 1
                             else {"area_options": list(successors[:8])}) | {"why": "former", "old": old}
            return None
        if found.province is not None and not found.exact:  # "ha noi": never taken silently as the whole city
            draft.pending = {"why": "province", "province": found.province}
            if found.choices:
                draft.pending["area_options"] = list(found.choices)
            return None
        if len(found.choices) == 1:
            draft.pending = {"confirm": found.choices[0]} | ({} if found.exact else {"why": "close"})
            return None
        if found.choices:
            draft.pending = {"area_options": list(found.choices)} | ({} if found.exact else {"why": "close"})
            return None
        draft.pending = {}
        save_draft(turn, draft)
        if not areas.provinces:  # no province above the areas: no «I don't know» to point to
            return _("No ward or commune matches «{query}». Try another part of the name.").format(query=query)
        return _("No ward or commune matches «{query}». Check the spelling or try another part of the name; if you "
                 "do not know it, choose «{unknown}».").format(query=query, unknown=_("I don't know the ward or commune"))

    def _pin(self, turn: Turn, draft: Draft, step: Step) -> str | None:
        """A map pin: the configured wards it falls in or lies beside, to confirm; never taken silently."""
        _ = turn._
        areas = turn.services.settings.areas
        if not areas.places_pins:  # none of the configured areas is an official ward, so no outline to look in
            return _("A map location cannot tell the ward or commune here; please type its name.")
        lat, lon = turn.inbound.location.latitude, turn.inbound.location.longitude
        match = areas.near_pin(lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None
        options = [] if match is None else [match.inside, *match.nearby] if match.inside else list(match.nearby)
        if not options:
            draft.pending = {}
            save_draft(turn, draft)
            if match is not None and match.outside:
                return _("Sorry, this location is in {place}, which is not among the wards and communes this tip "
                         "line serves.").format(place=match.outside)
            return _("Sorry, this location is not in any ward or commune this tip line serves.")
        why = "pin" if match.inside else "pin_near"
        draft.pending = {"why": why, "pin": [lat, lon]} | (
            {"confirm": options[0]} if why == "pin" and len(options) == 1 else {"area_options": options[:8]})
        return None

    def _taken(self, turn: Turn, draft: Draft, step: Step, code: str) -> dict:
        """The area chosen; a pin that led to it also answers the location step after this one."""
        pin = draft.pending.get("pin")
        if pin:
            steps = turn.services.settings.questionnaire.steps
            after = steps[next(i for i, s in enumerate(steps) if s.id == step.id) + 1:]
            place = next((s for s in after if s.kind == "location" and s.applies(draft.answers)), None)
            if place is not None and place.id not in draft.answers:
                draft.answers[place.id] = {"latitude": pin[0], "longitude": pin[1]}
                return {"code": code, "pin_kept": True}
        return {"code": code}

    def _unknown(self, turn: Turn, draft: Draft) -> dict | None:
        """«I don't know the ward or commune»: the province's own unit takes the tip."""
        areas = turn.services.settings.areas
        named = draft.pending.get("province")
        if named and areas.get(named):
            return {"code": named}
        if len(areas.provinces) == 1:
            return {"code": areas.provinces[0]}
        draft.pending = {"area_options": list(areas.provinces), "why": "provinces"}
        return None

    def show(self, turn: Turn, step: Step | None, answer: dict) -> str:
        areas = turn.services.settings.areas
        shown = areas.display(answer["code"])
        if answer["code"] in areas.provinces:
            return turn._("{province} (ward or commune not known)").format(province=shown)
        return shown


class LocationStep(StepKind):
    """A map pin, or a typed address where the channel has no location button."""

    name = "location"

    def offer(self, turn: Turn, draft: Draft, step: Step, reply: Reply) -> None:
        reply.location_button = turn._("📍 Send my location")
        reply.type_instead = TypeInstead.ADDRESS

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str:
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

    def show(self, turn: Turn, step: Step | None, answer: dict) -> str:
        if "latitude" in answer:
            return turn._("Map pin ({lat:.5f}, {lon:.5f})").format(lat=answer["latitude"], lon=answer["longitude"])
        return answer.get("address", "")


class MediaStep(StepKind):
    """Evidence files: photos (cleaned of their metadata), videos, voice notes, documents."""

    name = "media"
    skippable = False  # «No evidence, continue» is its skip

    def offer(self, turn: Turn, draft: Draft, step: Step, reply: Reply) -> None:
        _ = turn._
        count = draft.pending.get("files", 0)
        if count:
            reply.text += "\n" + _("Files received so far: {count}.").format(count=number(count, turn.lang))
        reply.choices = [_button(step, "done", _("Done") if count else _("No evidence, continue"))]
        if count:
            reply.choices.append(_button(step, "clear", _("Remove all files")))

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str | None:
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
                save_draft(turn, draft)
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

    def show(self, turn: Turn, step: Step | None, answer: dict) -> str:
        return turn._("{count} file(s)").format(count=number(answer.get("count", 0), turn.lang))


class ContactStep(StepKind):
    """Anonymous (the default), anonymous without follow-up, or a phone number."""

    name = "contact"

    def offer(self, turn: Turn, draft: Draft, step: Step, reply: Reply) -> None:
        _ = turn._
        if draft.pending.get("awaiting_phone"):
            reply.text = _("Tap «📞 Share my phone number» below, or type your phone number.")
            reply.contact_button = _("📞 Share my phone number")
            reply.type_instead = TypeInstead.PHONE
            reply.choices = [_button(step, "anonymous", _("Stay anonymous instead"))]
        else:
            reply.choices = [
                _button(step, "anonymous", _("Anonymous (recommended)")),
                _button(step, "no_followup", _("Anonymous, and do not contact me again")),
                _button(step, "phone", _("Leave my phone number")),
            ]

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str | None:
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

    def show(self, turn: Turn, step: Step | None, answer: dict) -> str:
        _ = turn._
        if answer["mode"] == "phone":
            return _("Phone number {phone}").format(phone=answer["phone"])
        if answer["mode"] == "no_followup":
            return _("Anonymous, no follow-up")
        return _("Anonymous")


class ReviewStep(StepKind):
    """The last step: every answer, a button to edit each, Send and Cancel."""

    name = "review"

    def ask(self, turn: Turn, draft: Draft, step: Step) -> Reply:
        _ = turn._
        questionnaire = turn.services.settings.questionnaire
        steps = [s for s in questionnaire.steps if s.kind != "review" and s.applies(draft.answers)]
        lines = [step.prompt(turn.lang), ""]
        lines += [f"• {s.label(turn.lang)}: {shown_answer(turn, s, draft.answers.get(s.id))}" for s in steps]
        choices = [_button(step, f"edit={s.id}", _("Edit: {label}").format(label=s.label(turn.lang))) for s in steps]
        choices += [_button(step, "submit", _("Send the tip")), _button(step, "cancel", _("Cancel"))]
        return Reply(text="\n".join(lines), choices=choices)

    async def take(self, turn: Turn, draft: Draft, step: Step) -> dict | str | Reply | None:
        _ = turn._
        value = _selected(turn, draft, step)
        questionnaire = turn.services.settings.questionnaire
        if value == "submit":
            return await submit(turn, draft)
        if value == "cancel":  # asked first, as /cancel is
            draft.cancelling = True
            return None
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


KINDS: dict[str, StepKind] = {kind.name: kind() for kind in (
    ChoiceStep, TextStep, AreaStep, LocationStep, MediaStep, ContactStep, ReviewStep)}
# An answer's keys tell which kind stored it, for answers whose step is gone from the file.
_SHAPES = (("choice", ChoiceStep), ("code", AreaStep), ("latitude", LocationStep), ("address", LocationStep),
           ("count", MediaStep), ("mode", ContactStep))
