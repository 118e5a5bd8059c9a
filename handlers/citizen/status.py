"""/status CODE: what became of a tip, from any account, without saying who sent it."""

from __future__ import annotations

from handlers.context import VIETNAM
from handlers.i18n import N_
from handlers.limits import count_status_check
from handlers.messages import Reply
from handlers.citizen.tipoff import normalize_receipt_code
from handlers.chat_turn import Turn
from handlers.officer.verdict_reasons import detail_fields
from storage.audit import entries_of_tip
from storage.models import Tip
from storage.tip_states import JUDGED, TipStatus
from storage.tips import find_tip_by_receipt

# What a tipster may learn of each state; "not valuable" and its reason are never told.
STATUS_TEXTS = {
    TipStatus.NEW: N_("Received, waiting for review."),
    TipStatus.IN_REVIEW: N_("Being reviewed by an officer."),
    TipStatus.TRANSFERRED: N_("Being reviewed by an officer."),
    TipStatus.NEEDS_INFO: N_("An officer has a question for you; please answer it in this chat."),
    TipStatus.VALUABLE: N_("Judged valuable. Thank you for helping keep our community safe!"),
    TipStatus.NOT_VALUABLE: N_("Review finished. Thank you for your tip."),
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
    state = _(STATUS_TEXTS.get(await _state_told(turn, tip), STATUS_TEXTS[TipStatus.IN_REVIEW]))
    return [Reply(_("Tip received on {date}.\nStatus: {state}").format(date=received, state=state))]


async def _state_told(turn: Turn, tip: Tip) -> str:
    """The state the tipster may read. A reopened tip still reads as the verdict it had, until it is judged again:
    a reopening is the officers' own second look, which the tipster is never told of (README, /reopen)."""
    if tip.status in JUDGED:
        return tip.status
    reopenings = await entries_of_tip(session=turn.session, tip_ref=tip.ref, actions=("reopen",))
    was = detail_fields(reopenings[-1]).get("from") if reopenings else None
    return was if was in JUDGED else tip.status
