"""The citizen tip-off: a guided questionnaire, sealed as a draft, submitted as a tip with a receipt.

```mermaid
flowchart LR
    start([/report]) --> category --> description --> scammer{{fraud?}}
    scammer -- yes --> scammer_q[scammer's account] --> when
    scammer -- no --> when
    when --> area --> place --> people --> evidence --> identity --> review
    review -- edit a step --> category
    review -- submit --> receipt([receipt code])
    review -- cancel --> asked{{"Xóa tin đang soạn?"}}
    asked -- yes --> cancelled([draft wiped])
    asked -- no --> review
```
/cancel, or «hủy» typed at any question, asks the same before anything is deleted.
The steps are data (``handlers/data/questionnaire.toml``); the diagram shows the shipped ones.
"""

from __future__ import annotations

from handlers.areas import fold, yes_or_no
from handlers.codes import RECEIPT
from handlers.citizen.drafts import FLOW, Draft, first_open_step, load_draft, save_draft, wipe_draft
from handlers.i18n import N_, number
from handlers.limits import tips_today
from handlers.messages import Reply
from handlers.citizen.questionnaire_file import Step
from handlers.citizen.step_kinds import CANCEL_NO, CANCEL_YES, KINDS, chosen, prompt
from handlers.chat_turn import Turn
from storage import keys as key_store
from storage import tips as tip_store

normalize_receipt_code = RECEIPT.normalize
# Typed at any question, these ask «Delete the tip you are writing?» (accents or not: "hủy", "huy").
CANCEL_WORDS = frozenset({"huy", "huy bo", "huy tin", "huy tin bao", "xoa tin", "dung lai", "cancel"})


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
    draft.step = first_open_step(turn, draft)
    conv = turn.conversation
    conv.flow, conv.draft_id = FLOW, draft_id
    save_draft(turn, draft)
    lead = _("Thank you for reporting. Your tip is anonymous unless you choose to leave a phone number. "
             "Send /cancel at any time to stop.")
    return [prompt(turn, draft, lead=lead)]


async def reprompt(turn: Turn, *, lead: str | None = None) -> list[Reply]:
    draft = await load_draft(turn)
    return [prompt(turn, draft, lead=lead)] if draft else []


CANCELLED = N_("Your tip was cancelled and deleted. Send /report to start again.")


async def ask_cancel(turn: Turn) -> list[Reply]:
    """/cancel or «hủy»: «Delete the tip you are writing?», with a button to delete it and one to keep it."""
    draft = await load_draft(turn)
    if draft is None:
        await wipe_draft(turn)
        return [Reply(turn._(CANCELLED))]
    draft.cancelling = True
    save_draft(turn, draft)
    return [prompt(turn, draft)]


async def _settle_cancel(turn: Turn, draft: Draft, step: Step) -> list[Reply] | None:
    """The answer to «Delete the tip you are writing?»; None when the message was something else after all."""
    value = chosen(turn, draft, step)
    if value is None and draft.cancelling:
        said = yes_or_no(turn.inbound.text)
        value = None if said is None else CANCEL_YES if said else CANCEL_NO
    if value == CANCEL_YES:  # a tap on an old «Yes, delete it» is as clear a wish as a new one
        await wipe_draft(turn)
        return [Reply(turn._(CANCELLED))]
    asked, draft.cancelling = draft.cancelling, False
    if asked:
        save_draft(turn, draft)  # the question is withdrawn whatever the step makes of this message
    if value == CANCEL_NO:
        save_draft(turn, draft)
        return [prompt(turn, draft, lead=turn._("Your tip is kept. Let us continue.") if asked else None)]
    if not asked and fold(turn.inbound.text or "") in CANCEL_WORDS:
        return await ask_cancel(turn)
    return None  # anything else answers the question, as if the cancelling had not been asked


async def answer(turn: Turn) -> list[Reply]:
    """Take the citizen's answer to the current question, or say clearly what is wrong with it."""
    draft = await load_draft(turn)
    if draft is None:  # a half-written row (should not happen); start clean rather than guess
        await wipe_draft(turn)
        return await start(turn)
    step = turn.services.settings.questionnaire.step(draft.step)
    settled = await _settle_cancel(turn, draft, step)
    if settled is not None:
        return settled
    album = turn.inbound.album
    if album is not None and draft.album == album:
        return await _rest_of_album(turn, draft, step)
    if album is not None and turn.inbound.album_more and step.kind == "media":
        return await _album_file_before_its_last(turn, draft, step, album)
    quiet_before = album is not None and draft.pending.pop("album_quiet", None) == album
    if album is not None:
        draft.album = album
        save_draft(turn, draft)  # whatever the step makes of it, the album's other files are answered once
    outcome = await KINDS[step.kind].take(turn, draft, step)
    if album is not None and step.kind == "media" and outcome is None:
        save_draft(turn, draft)
        # Its files before it were kept quietly: this answer counts them all. Otherwise more may still come.
        lead = None if quiet_before else turn._("The files sent with it are being received too, without a "
                                                "message for each.")
        return [prompt(turn, draft, lead=lead)]
    if isinstance(outcome, Reply):  # finished (submitted or cancelled)
        return [outcome]
    if isinstance(outcome, str):  # a problem: say it, ask again, change nothing else
        return [prompt(turn, draft, lead=outcome)]
    if outcome is not None:  # the step took an answer
        draft.answers[step.id] = outcome
        draft.pending = {}
        draft.step = first_open_step(turn, draft)
    save_draft(turn, draft)
    return [prompt(turn, draft, lead=_ack(turn, step, outcome))]


async def _album_file_before_its_last(turn: Turn, draft: Draft, step: Step, album: str) -> list[Reply]:
    """A file of an album the channel knows more files of are coming right after: kept quietly (unless it
    cannot be kept), so the album's last file answers once with the count of all."""
    outcome = await KINDS[step.kind].take(turn, draft, step)
    draft.pending["album_quiet"] = album
    save_draft(turn, draft)
    return [Reply(outcome)] if isinstance(outcome, str) else []


async def _rest_of_album(turn: Turn, draft: Draft, step: Step) -> list[Reply]:
    """A further file of an album whose first file was answered: kept quietly, unless it cannot be kept."""
    outcome = await KINDS[step.kind].take(turn, draft, step)
    if step.kind != "media":  # refused like its first file, which already said where files go
        return []
    save_draft(turn, draft)
    return [Reply(outcome)] if isinstance(outcome, str) else []


def _ack(turn: Turn, step: Step, outcome: dict | None) -> str | None:
    if outcome is None:
        return None
    if step.kind == "choice" and outcome.get("choice") in step.urgent_choices:
        return turn._("If someone is in danger right now, call {emergency} immediately.").format(
            emergency=turn.services.settings.emergency_number)
    return None

