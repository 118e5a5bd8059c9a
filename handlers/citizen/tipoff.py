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

from handlers.codes import RECEIPT
from handlers.citizen.drafts import FLOW, Draft, first_open_step, load_draft, save_draft, wipe_draft
from handlers.i18n import number
from handlers.limits import tips_today
from handlers.messages import Reply
from handlers.citizen.questionnaire_file import Step
from handlers.citizen.step_kinds import KINDS, prompt
from handlers.chat_turn import Turn
from storage import keys as key_store
from storage import tips as tip_store

normalize_receipt_code = RECEIPT.normalize


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


async def answer(turn: Turn) -> list[Reply]:
    """Take the citizen's answer to the current question, or say clearly what is wrong with it."""
    draft = await load_draft(turn)
    if draft is None:  # a half-written row (should not happen); start clean rather than guess
        await wipe_draft(turn)
        return await start(turn)
    step = turn.services.settings.questionnaire.step(draft.step)
    outcome = await KINDS[step.kind].take(turn, draft, step)
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


def _ack(turn: Turn, step: Step, outcome: dict | None) -> str | None:
    if outcome is None:
        return None
    if step.kind == "choice" and outcome.get("choice") in step.urgent_choices:
        return turn._("If someone is in danger right now, call {emergency} immediately.").format(
            emergency=turn.services.settings.emergency_number)
    return None

