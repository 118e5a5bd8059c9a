"""Fixed-window counters per chat pseudonym: flood control, tips a day, /status attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.db import driver
from storage.models import RateCounter

# The row is named by a keyed hash of (what it counts, whose it is): the database alone tells neither
# which pseudonym a counter belongs to nor whether it counts tips, messages or /status attempts.
HIDDEN_BUCKET = "-"
_TABLE = RateCounter.__table__


async def count_in_window(*, session: AsyncSession, keyring: Keyring, chat_key: str, bucket: str,
                          window_start: datetime) -> int:
    found = (await session.exec(select(_TABLE.c.count).where(
        _TABLE.c.chat_key == keyring.counter_key(chat_key, bucket), _TABLE.c.bucket == HIDDEN_BUCKET,
        _TABLE.c.window_start == window_start))).scalar()
    return found or 0


async def add_to_window(*, session: AsyncSession, keyring: Keyring, chat_key: str, bucket: str,
                        window_start: datetime) -> int:
    """Count one more event in the current window (windows are aligned, not per event, so the
    counters say little about when a given tip was sent); returns the new count."""
    # One statement, not a read and a write, straight to the driver: every update of every chat passes here
    # (the flood counter).
    db = await driver(session)
    row = await db.fetchone(
        "INSERT INTO rate_counter (chat_key, bucket, window_start, count) VALUES (?, ?, ?, 1) "
        "ON CONFLICT (chat_key, bucket) DO UPDATE SET count = CASE WHEN rate_counter.window_start = "
        "excluded.window_start THEN rate_counter.count + 1 ELSE 1 END, window_start = excluded.window_start "
        "RETURNING count", keyring.counter_key(chat_key, bucket), HIDDEN_BUCKET, db.when(window_start))
    return row[0]
