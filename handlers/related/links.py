"""/link REF OTHER [duplicate]: an officer ties two tips of their units together by hand; each tip's /tip then
shows the other under "Liên quan". Both tips get an audit entry."""

from __future__ import annotations

from handlers.areas import fold
from handlers.chat_turn import Turn
from handlers.messages import Reply
from handlers.officer.accounts import actor
from handlers.officer.triage import Refusal, _tip_in_scope
from storage import related
from storage.audit import append_audit
from storage.models import Officer

REASON_WORDS = {"duplicate": "duplicate", "trung": "duplicate", "dup": "duplicate"}  # "trùng" folded


async def link_command(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/link REF OTHER [duplicate]: the two tips are linked; a tip outside the officer's units is refused the
    same way as one that does not exist."""
    _ = turn._
    words = args.split()
    usage = _("Use: /link REF OTHER_REF, or /link REF OTHER_REF duplicate, for example /link K7QM2X P3RT9A")
    if len(words) not in (2, 3) or (len(words) == 3 and fold(words[2]) not in REASON_WORDS):
        return [Reply(usage)]
    first = await _tip_in_scope(turn, officer, words[0], lock=False)
    second = await _tip_in_scope(turn, officer, words[1], lock=False)
    for tip in (first, second):
        if tip.purged_at is not None:
            raise Refusal(_("Tip {ref} was purged under the retention rules.").format(ref=tip.ref))
    if first.id == second.id:
        return [Reply(_("A tip cannot be linked to itself."))]
    reason = REASON_WORDS[fold(words[2])] if len(words) == 3 else "manual"
    if not await related.link_tips(session=turn.session, tip_id=first.id, other_tip_id=second.id,
                                   officer_id=officer.id, reason=reason):
        return [Reply(_("Tips {ref} and {other} are already linked.").format(ref=first.ref, other=second.ref))]
    for tip, other in ((first, second), (second, first)):
        await append_audit(session=turn.session, keyring=turn.services.keyring, actor=actor(officer), action="link",
                           tip_ref=tip.ref, detail=f"other={other.ref} reason={reason}")
    return [Reply(_("Tips {ref} and {other} are linked: /tip shows each under «Related».").format(
        ref=first.ref, other=second.ref))]
