"""Fixed-window counters per chat pseudonym: flood control, tips a day, /status attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.db import Driver, driver
from storage.models import RateCounter

# The row is named by a keyed hash of (what it counts, whose it is): the database alone tells neither
# which pseudonym a counter belongs to nor whether it counts tips, messages or /status attempts.
HIDDEN_BUCKET = "-"
_TABLE = RateCounter.__table__
# One statement, not a read and a write: a new window starts at 1, the current one counts one more.
ADD_ONE = ("INSERT INTO rate_counter (chat_key, bucket, window_start, count) {values} "
           "ON CONFLICT (chat_key, bucket) DO UPDATE SET count = CASE WHEN rate_counter.window_start = "
           "excluded.window_start THEN rate_counter.count + 1 ELSE 1 END, window_start = excluded.window_start "
           "RETURNING count")
ADD_ONE_VALUES = ADD_ONE.format(values="VALUES (?, ?, ?, 1)")


@dataclass(frozen=True)
class WindowCount:
    """One more event to count in a window, by a statement that does more (the turn's opening), with the
    counter named as add_to_window names it."""

    key: str  # the keyed hash of (bucket, pseudonym), never the pseudonym
    window_start: datetime

    def params(self, db: Driver) -> tuple:
        """The values of ADD_ONE's (chat_key, bucket, window_start)."""
        return self.key, HIDDEN_BUCKET, db.when(self.window_start)


def one_more_in_window(*, keyring: Keyring, chat_key: str, bucket: str, window_start: datetime) -> WindowCount:
    """What add_to_window would count, for a statement that counts it on the way (storage.conversations.open_turn)."""
    return WindowCount(key=keyring.counter_key(chat_key, bucket), window_start=window_start)


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
    # Straight to the driver: the tips of a day and /status attempts (the flood counter of most updates is
    # counted as the turn opens).
    db = await driver(session)
    count = one_more_in_window(keyring=keyring, chat_key=chat_key, bucket=bucket, window_start=window_start)
    row = await db.fetchone(ADD_ONE_VALUES, *count.params(db))
    return row[0]
