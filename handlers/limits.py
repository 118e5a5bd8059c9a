"""Per-citizen limits, counted by pseudonym in fixed windows (Vietnam days, clock minutes and hours)."""

from __future__ import annotations

from datetime import datetime, timezone

from handlers.context import VIETNAM
from handlers.chat_turn import Turn
from storage.limits import add_to_window, count_in_window


def day_window(now: datetime) -> datetime:
    """Midnight in Vietnam, as UTC: "tips a day" means a Vietnamese calendar day."""
    local = now.astimezone(VIETNAM).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(timezone.utc)


def minute_window(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(second=0, microsecond=0)


def hour_window(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


async def tips_today(turn: Turn) -> int:
    return await count_in_window(session=turn.session, keyring=turn.services.keyring,
        chat_key=turn.conversation.chat_key, bucket="tips", window_start=day_window(turn.now))


async def count_message(turn: Turn) -> int:
    """Count this message toward the flood limit; returns how many this minute. The files of one album are one
    message: ten photos sent at once must not use up half the minute's allowance."""
    if turn.inbound.album is not None and await in_album_answered(turn):
        return await count_in_window(session=turn.session, keyring=turn.services.keyring,
            chat_key=turn.conversation.chat_key, bucket="messages", window_start=minute_window(turn.now))
    return await add_to_window(session=turn.session, keyring=turn.services.keyring,
        chat_key=turn.conversation.chat_key, bucket="messages", window_start=minute_window(turn.now))


async def in_album_answered(turn: Turn) -> bool:
    """Whether this file belongs to an album whose first file the tip-off already took and answered."""
    from handlers.citizen.drafts import load_draft  # the draft module needs nothing from here; loaded lazily
    draft = await load_draft(turn)
    return draft is not None and draft.album is not None and draft.album == turn.inbound.album


async def count_status_check(turn: Turn) -> int:
    return await add_to_window(session=turn.session, keyring=turn.services.keyring,
        chat_key=turn.conversation.chat_key, bucket="status", window_start=hour_window(turn.now))
