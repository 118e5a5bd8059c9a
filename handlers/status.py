"""/status CODE: what became of a tip, from any account, without saying who sent it."""

from __future__ import annotations

from handlers.context import VIETNAM
from handlers.i18n import N_
from handlers.limits import count_status_check
from handlers.messages import Reply
from handlers.tipoff import normalize_receipt_code
from handlers.turn import Turn
from storage.tips import find_tip_by_receipt

# What a tipster may learn of each state; "not valuable" and its reason are never told.
STATUS_TEXTS = {
    "new": N_("Received, waiting for review."),
    "in_review": N_("Being reviewed by an officer."),
    "transferred": N_("Being reviewed by an officer."),
    "needs_info": N_("An officer has a question for you; please answer it in this chat."),
    "valuable": N_("Judged valuable. Thank you for helping keep our community safe!"),
    "not_valuable": N_("Review finished. Thank you for your tip."),
}


async def show_status(turn: Turn, args: str) -> list[Reply]:
    """The citizen types /status TB-XXXXX-XXXXX and sees the tip's state in their language."""
    _ = turn._
    limit = turn.services.settings.limits.status_checks_per_hour
    if not args.strip():
        return [Reply(_("Send /status followed by your receipt code, for example: /status TB-7K3MP-9QXFA"))]
    if await count_status_check(turn) > limit:
        return [Reply(_("Too many code checks in a short time. Please try again in an hour."))]
    code = normalize_receipt_code(args)
    tip = None
    if code is not None:
        tip = await find_tip_by_receipt(session=turn.session, receipt_hash=turn.services.keyring.receipt_hash(code))
    if tip is None:
        return [Reply(_("No tip has this code. Please check it and try again."))]
    received = tip.created_at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")
    state = _(STATUS_TEXTS.get(tip.status, STATUS_TEXTS["in_review"]))
    return [Reply(_("Tip received on {date}.\nStatus: {state}").format(date=received, state=state))]
