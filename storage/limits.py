"""Fixed-window counters per chat pseudonym: flood control, tips a day, /status attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
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
    # One statement, not a read and a write: every update of every chat passes here (the flood counter).
    insert = (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(_TABLE)
    insert = insert.values(chat_key=keyring.counter_key(chat_key, bucket), bucket=HIDDEN_BUCKET,
                           window_start=window_start, count=1)
    same_window = _TABLE.c.window_start == insert.excluded.window_start
    statement = insert.on_conflict_do_update(
        index_elements=[_TABLE.c.chat_key, _TABLE.c.bucket],
        set_={"count": case((same_window, _TABLE.c.count + 1), else_=1),
              "window_start": insert.excluded.window_start}).returning(_TABLE.c.count)
    return (await session.exec(statement)).scalar_one()
