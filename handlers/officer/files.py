"""/files REF, and the 📎 button under a tip: its evidence files sent again, each sending audited."""

from __future__ import annotations

from handlers.chat_turn import Turn
from handlers.messages import Reply
from handlers.officer import tip_view
from handlers.officer.triage import _tip_in_scope
from storage import keys as key_store
from storage.models import Officer


async def send_files(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/files REF: the tip's photos, videos and documents, in this chat; a purged tip has none left."""
    _ = turn._
    tip = await _tip_in_scope(turn, officer, args.split(" ")[0] if args else "", lock=False)
    if tip.purged_at is not None:
        return [Reply(_("The content of this tip was purged under the retention rules."))]
    data_key = await key_store.load_data_key(session=turn.session, keyring=turn.services.keyring, owner_id=tip.id)
    sent = await tip_view.evidence(turn, officer, tip, data_key, only_first_time=False)
    return sent or [Reply(_("Tip {ref} has no files.").format(ref=tip.ref))]
