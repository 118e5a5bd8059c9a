"""Sending the tip: every answer sealed into it, a receipt code for the citizen, the draft forgotten."""

from __future__ import annotations

import json
import logging

from handlers.codes import RECEIPT
from handlers.citizen.drafts import CONTACT_FIELD, REPLY_ROUTE_FIELD, Draft
from handlers.i18n import number
from handlers.limits import day_window, tips_today
from handlers.messages import Reply
from handlers.chat_turn import Turn
from handlers.related.indexing import index_submitted_tip
from storage import keys as key_store
from storage import tips as tip_store
from storage.limits import add_to_window

log = logging.getLogger(__name__)
new_receipt_code = RECEIPT.new  # a name of its own, so a test can fix the code it hands out


async def submit(turn: Turn, draft: Draft) -> Reply | str:
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
        receipt_hash=services.keyring.receipt_hash(RECEIPT.normalize(code)), fields=fields,
        unit_id=services.settings.unit_tree.route(area_code),
        every_field=[s.id for s in questionnaire.steps if s.kind not in ("review", "contact")]
        + [CONTACT_FIELD, REPLY_ROUTE_FIELD])
    # The numbers, accounts and plates it names, read now while the answers are in memory (never the contact).
    await index_submitted_tip(session=turn.session, keyring=services.keyring, data_key=draft.key, answers=answers,
                              questionnaire=questionnaire)
    await add_to_window(session=turn.session, keyring=turn.services.keyring,
                        chat_key=turn.conversation.chat_key, bucket="tips", window_start=day_window(turn.now))
    conv = turn.conversation
    key_store.forget_draft_key(owner_id=conv.draft_id)
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
