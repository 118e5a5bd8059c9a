"""Conversation rows: one per chat pseudonym, locked while one update of that chat is handled."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

from sqlalchemy import delete, inspect
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import limits
from storage.db import driver
from storage.models import Conversation, ProcessedUpdate, utcnow

# Every update of every chat runs the statements of this module: they go straight to the driver (storage/db.py
# Driver), and the row comes back as the ORM object the handlers change.
_COLUMNS = ("id", "chat_key", "channel", "language", "offered", "flow", "draft_id", "draft", "created_at",
            "updated_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM conversation WHERE chat_key = ?"
_WRITTEN = _COLUMNS[3:]  # what a turn may change
_MAPPER = Conversation.__mapper__


def _aware(value) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=timezone.utc) if moment.utcoffset() is None else moment.astimezone(timezone.utc)


def _attached(session: AsyncSession, row: tuple) -> Conversation:
    values = dict(zip(_COLUMNS, row))
    values["created_at"], values["updated_at"] = _aware(values["created_at"]), _aware(values["updated_at"])
    if values["draft"] is not None:
        values["draft"] = bytes(values["draft"])
    existing = session.sync_session.identity_map.get((Conversation, (values["id"],), None))
    if existing is not None:  # loaded before in this transaction: the same object, refreshed
        for key, value in values.items():
            set_committed_value(existing, key, value)
        return existing
    # Made as the ORM makes a row it loaded, without __init__ (SQLModel's costs a tenth of a turn): then as if
    # loaded, so the ORM sees later changes and writes no INSERT.
    if not _MAPPER.configured:  # what a first Conversation(...) would have done
        configure_mappers()
    conversation = _MAPPER.class_manager.new_instance()
    for key, value in values.items():
        set_committed_value(conversation, key, value)
    make_transient_to_detached(conversation)
    session.add(conversation)
    return conversation


# A conversation keeps the day it began, and the time of its last turn only while a draft is open (for the
# stale-draft wipe): a tip's time of arrival must not be found again on the conversation it came from.


def _day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def touch_conversation(*, conversation: Conversation, now: datetime) -> None:
    """Note the turn: while a draft is open, its time (the stale-draft wipe needs it); with no draft, the day
    the conversation began, so that the turn that sends a tip leaves no time behind."""
    conversation.updated_at = now if conversation.draft_id is not None else conversation.created_at


_INSERT = "INSERT INTO conversation (chat_key, channel, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT"
_MARK = "INSERT INTO processed_update (channel, update_id, handled_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"


class OpenedTurn(NamedTuple):
    conversation: Conversation
    counted: int | None  # the count of the window given as ``count``, this update included (None: none given)


def _turn_on_postgresql(*, marked: bool, counted: bool) -> str:
    # One statement, data-modifying CTEs. The conflict's DO UPDATE row-locks the chat's row until the turn
    # commits, as SELECT … FOR UPDATE would; with an update id, the row is written only when the id was new: a
    # redelivery touches nothing, not even to make a row for a chat that has none. The counter is counted from
    # the chat's row (FROM chat): never for a redelivery, and only once that row is locked, in the order the
    # turns of one chat have always taken their locks.
    columns = ", ".join(_COLUMNS)
    upsert = f"ON CONFLICT (chat_key) DO UPDATE SET chat_key = excluded.chat_key RETURNING {columns}"
    if marked:
        chat = ("INSERT INTO conversation (chat_key, channel, created_at, updated_at) SELECT ?::varchar, ?::varchar, "
                f"?::timestamptz, ?::timestamptz WHERE EXISTS (SELECT 1 FROM mark) {upsert}")
        ctes = ["mark AS (INSERT INTO processed_update (channel, update_id, handled_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING 1)", f"chat AS ({chat})"]
    else:
        ctes = [f"chat AS (INSERT INTO conversation (chat_key, channel, created_at, updated_at) VALUES (?, ?, ?, ?) "
                f"{upsert})"]
    if counted:
        ctes.append("counted AS (" + limits.ADD_ONE.format(
            values="SELECT ?::varchar, ?::varchar, ?::timestamptz, 1 FROM chat") + ")")
    last = "(SELECT count FROM counted)" if counted else "NULL"
    return f"WITH {', '.join(ctes)} SELECT {columns}, {last} FROM chat"


_ON_POSTGRESQL = {(marked, counted): _turn_on_postgresql(marked=marked, counted=counted)
                  for marked in (False, True) for counted in (False, True)}


async def open_turn(*, session: AsyncSession, channel: str, update_id: str | None, chat_key: str,
                    count: limits.WindowCount | None = None) -> OpenedTurn | None:
    """The update's id recorded, then the chat's row for its turn, created if new and row-locked on PostgreSQL
    so workers take turns, and ``count`` counted one more, in one round trip; None, and no row touched (not
    even the counter), when the update was handled before (a redelivery)."""
    db = await driver(session)
    if db.postgresql:
        now = utcnow()
        day = _day(now)
        params = (channel, update_id, now) if update_id is not None else ()
        params += (chat_key, channel, day, day) + (() if count is None else count.params(db))
        row = await db.fetchone(_ON_POSTGRESQL[update_id is not None, count is not None], *params)
        return None if row is None else OpenedTurn(_attached(session, row[:-1]), row[-1])
    day = db.when(_day(utcnow()))
    mark = None if update_id is None else (channel, update_id, db.when(utcnow()))
    opened = await db.on_thread(_open_on_sqlite, mark, (chat_key, channel, day, day),
                                None if count is None else count.params(db))
    return None if opened is None else OpenedTurn(_attached(session, opened[0]), opened[1])


def _open_on_sqlite(connection, mark: tuple | None, new_row: tuple, count: tuple | None) -> tuple | None:
    # Every update opens its turn so: four statements in one trip to aiosqlite's thread, not four trips.
    # The chat's row only after a new update id: a redelivery touches nothing, not even to make a row or count
    # it. (SQLite has one writer, the whole file locked by BEGIN IMMEDIATE: DO UPDATE would write the row at
    # every turn, which costs more than a read.)
    if mark is not None and connection.execute(_MARK, mark).rowcount != 1:
        return None
    connection.execute(f"{_INSERT} DO NOTHING", new_row)
    row = connection.execute(_SELECT, new_row[:1]).fetchone()
    if count is None:
        return row, None
    [(counted,)] = connection.execute(limits.ADD_ONE_VALUES, count).fetchall()  # read to the end: the statement finishes
    return row, counted


async def save_conversation(*, session: AsyncSession, conversation: Conversation) -> None:
    """Write what the turn changed of the chat's row (nothing when nothing changed), in the turn's transaction;
    the row then leaves the session."""
    state = inspect(conversation)
    if not state.persistent or state.deleted:
        return  # new, or deleted by the turn: the ORM's own flush does what is right
    changed = [key for key in _WRITTEN if state.attrs[key].history.has_changes()]
    if changed:
        db = await driver(session)
        values = [getattr(conversation, key) for key in changed]
        values = [db.when(v) if isinstance(v, datetime) else v for v in values]
        await db.execute(f"UPDATE conversation SET {', '.join(f'{key} = ?' for key in changed)} WHERE id = ?",
                         *values, conversation.id)
    # Written: out of the session, or the ORM's flush at the commit would work through the row (a fifth of a
    # turn's CPU) to find nothing left to write.
    session.expunge(conversation)


async def peek_conversation(*, session: AsyncSession, chat_key: str) -> Conversation | None:
    """The chat's row as it stands, neither created nor locked."""
    return (await session.exec(select(Conversation).where(Conversation.chat_key == chat_key))).first()


async def was_processed(*, session: AsyncSession, channel: str, update_id: str) -> bool:
    """Whether this update was handled before (a redelivery), without recording anything."""
    found = await session.exec(select(ProcessedUpdate.update_id).where(ProcessedUpdate.channel == channel,
                                                                      ProcessedUpdate.update_id == update_id))
    return found.first() is not None


async def prune_processed_updates(*, session: AsyncSession, handled_before: datetime) -> int:
    """Forget update ids older than any redelivery; returns how many went."""
    result = await session.exec(delete(ProcessedUpdate).where(ProcessedUpdate.handled_at < handled_before))
    return result.rowcount


async def stale_drafts(*, session: AsyncSession, untouched_since: datetime) -> list[Conversation]:
    query = select(Conversation).where(Conversation.draft_id.is_not(None),
                                       Conversation.updated_at < untouched_since)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await session.exec(query)).all())
