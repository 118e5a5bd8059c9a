"""Fixed-window counters per chat pseudonym: flood control, tips a day, /status attempts."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.models import RateCounter

# The row is named by a keyed hash of (what it counts, whose it is): the database alone tells neither
# which pseudonym a counter belongs to nor whether it counts tips, messages or /status attempts.
HIDDEN_BUCKET = "-"


async def count_in_window(*, session: AsyncSession, keyring: Keyring, chat_key: str, bucket: str,
                          window_start: datetime) -> int:
    row = await session.get(RateCounter, (keyring.counter_key(chat_key, bucket), HIDDEN_BUCKET))
    return row.count if row is not None and row.window_start == window_start else 0


async def add_to_window(*, session: AsyncSession, keyring: Keyring, chat_key: str, bucket: str,
                        window_start: datetime) -> int:
    """Count one more event in the current window (windows are aligned, not per event, so the
    counters say little about when a given tip was sent); returns the new count."""
    name = keyring.counter_key(chat_key, bucket)
    row = await session.get(RateCounter, (name, HIDDEN_BUCKET))
    if row is None:
        row = RateCounter(chat_key=name, bucket=HIDDEN_BUCKET, window_start=window_start, count=0)
    elif row.window_start != window_start:
        row.window_start, row.count = window_start, 0
    row.count += 1
    session.add(row)
    await session.flush()
    return row.count
