"""Per-citizen limits, counted by pseudonym in fixed windows (Vietnam days, clock minutes and hours)."""

from __future__ import annotations

from datetime import datetime, timezone

from handlers.context import VIETNAM
from handlers.chat_turn import Turn
from handlers.messages import Inbound
from storage.crypto import Keyring
from storage.limits import WindowCount, add_to_window, count_in_window, one_more_in_window


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


def message_counted_on_opening(*, keyring: Keyring, inbound: Inbound, chat_key: str,
                               now: datetime) -> WindowCount | None:
    """The flood counter's one more message, counted by the statement that opens the turn (one round trip less
    for every update); None for a file of an album, which count_message counts, or not, once it has read the
    draft."""
    if inbound.album is not None:
        return None
    return one_more_in_window(keyring=keyring, chat_key=chat_key, bucket="messages", window_start=minute_window(now))


async def count_message(turn: Turn, *, counted_on_opening: int | None = None) -> int:
    """Count this message toward the flood limit (unless the turn's opening counted it already); returns how
    many this minute. The files of one album are one message: ten photos sent at once must not use up half the
    minute's allowance."""
    if counted_on_opening is not None:
        return counted_on_opening
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
