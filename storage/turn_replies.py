"""The reply outbox: what a handled update answered, sealed, committed with the turn and shredded once sent.

Each step of a delivery is a compare-and-set on (next_index, in_flight), so two workers (the one that
handled the update and one that got it redelivered, or a sweep after a crash) never send the same reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.db import Database, driver, shred_soon
from storage.models import TurnReply, utcnow

KEY_OWNER = "turn-replies"  # one derived key for every row: rows live seconds, and are shredded when sent


@dataclass(frozen=True)
class StoredTurn:
    """A row as stored, opened."""

    row_id: int
    payload: bytes
    total: int
    next_index: int
    in_flight: bool


def _field(channel: str, update_id: str) -> str:
    return f"turn_reply:{channel}:{update_id}"  # a row's sealed replies open only in their own row


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


_INSERT = ("INSERT INTO turn_reply (channel, update_id, sealed, total, next_index, in_flight, created_at) "
           "VALUES (?, ?, ?, ?, 0, FALSE, ?) RETURNING id")


def _shred(count: int) -> str:
    return f"DELETE FROM turn_reply WHERE id IN ({', '.join('?' * count)})"


async def save_turn_replies(*, session: AsyncSession, keyring: Keyring, channel: str, update_id: str,
                            payload: bytes, total: int, finished: Sequence[int] = ()) -> int:
    """Keep a turn's replies, sealed, in the turn's own transaction, and shred in the same round trip the rows
    of ``finished`` turns (every reply of them went out); returns the new row's id."""
    data_key = keyring.transit_key(KEY_OWNER)
    db = await driver(session)  # every update that answers passes here: straight to the driver
    values = (channel, update_id, data_key.seal(_field(channel, update_id), payload), total,
              db.when(_minute(utcnow())))
    if not finished:
        return (await db.fetchone(_INSERT, *values))[0]
    if db.postgresql:  # one statement: the DELETE as a data-modifying CTE, run whether or not it is read
        row_id = (await db.fetchone(f"WITH shredded AS ({_shred(len(finished))}) {_INSERT}", *finished, *values))[0]
    else:
        row_id = await db.on_thread(_shred_and_insert, tuple(finished), values)
    shred_soon(session)  # as finish_turn_replies says
    return row_id


def _shred_and_insert(connection, finished: tuple, values: tuple) -> int:
    # Two statements in one trip to aiosqlite's thread.
    connection.execute(_shred(len(finished)), finished)
    [(row_id,)] = connection.execute(_INSERT, values).fetchall()  # read to the end: the statement finishes
    return row_id


async def load_turn_replies(*, session: AsyncSession, keyring: Keyring, channel: str,
                            update_id: str) -> StoredTurn | None:
    """The replies stored for this update, if any are left."""
    row = (await session.exec(select(TurnReply).where(TurnReply.channel == channel,
                                                      TurnReply.update_id == update_id))).first()
    return None if row is None else await _opened(session=session, keyring=keyring, row=row)


async def _opened(*, session: AsyncSession, keyring: Keyring, row: TurnReply) -> StoredTurn:
    data_key = keyring.transit_key(KEY_OWNER)
    payload = data_key.open(_field(row.channel, row.update_id), row.sealed)
    return StoredTurn(row_id=row.id, payload=payload, total=row.total, next_index=row.next_index,
                      in_flight=row.in_flight)


async def take_reply(*, db: Database, row_id: int, index: int, after_own: bool) -> bool:
    """Mark reply ``index`` in flight, in a transaction of its own, committed before it goes: True means this
    worker has it; False, another worker has it or it is done already.

    ``after_own``: this worker had reply ``index - 1`` in flight (now done); otherwise nobody may have
    reply ``index`` in flight."""
    condition = "next_index = ? AND in_flight" if after_own else "next_index = ? AND NOT in_flight"
    return await db.run_driver_statement(
        f"UPDATE turn_reply SET next_index = ?, in_flight = TRUE WHERE id = ? AND {condition}",
        index, row_id, index - 1 if after_own else index) == 1


async def finish_turn_replies(*, session: AsyncSession, row_ids: list[int]) -> None:
    """Every reply of these turns went out (or was settled): their rows are shredded."""
    if row_ids:
        db = await driver(session)
        await db.execute(_shred(len(row_ids)), *row_ids)
        # Sealed under the transit key, and sent already: gone from the SQLite WAL within a second
        # (storage/db.py SHRED_SOON_WITHIN), not by a checkpoint after every update.
        shred_soon(session)


async def skip_unknown_reply(*, session: AsyncSession, row_id: int, index: int) -> bool:
    """A reply a dead worker left in flight: its delivery is unknown, it is passed, never sent twice."""
    result = await session.exec(update(TurnReply).where(
        TurnReply.id == row_id, TurnReply.next_index == index, TurnReply.in_flight).values(
        next_index=index + 1, in_flight=False))
    return result.rowcount == 1


async def abandoned_turns(*, session: AsyncSession, keyring: Keyring, older_than: timedelta,
                          limit: int = 100) -> list[tuple[str, StoredTurn]]:
    """(channel, row) of replies left unsent by a worker that died, oldest first."""
    rows = (await session.exec(select(TurnReply).where(TurnReply.created_at < utcnow() - older_than)
                               .order_by(TurnReply.id).limit(limit))).all()
    return [(row.channel, await _opened(session=session, keyring=keyring, row=row)) for row in rows]
