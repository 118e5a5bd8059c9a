"""The database: a SQLite file by default (WAL, secure_delete), PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timezone
from pathlib import Path

from sqlalchemy import LargeBinary, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

# Set on a session by a transaction that deleted rows or replaced sealed bytes: after its commit the
# SQLite WAL is checkpointed and truncated, so no copy of what was deleted stays in the -wal file.
SHREDS = "tinbao.shreds"
# Callables run once the transaction that forgot something has committed (file removals).
AFTER_COMMIT = "tinbao.after_commit"
# Set by a transaction that deleted only short-lived sealed rows (a turn's replies once sent): the WAL is
# truncated within SHRED_SOON_WITHIN, not after every such commit, which would cost every update a checkpoint.
SHREDS_SOON = "tinbao.shreds_soon"
SHRED_SOON_WITHIN = 1.0  # seconds
_DRIVER = "tinbao.driver"


def shred_on_commit(session: AsyncSession | Session) -> None:
    """Mark this transaction as one that deletes what it promised to delete (for a replacement in place)."""
    (session.sync_session if isinstance(session, AsyncSession) else session).info[SHREDS] = True


def shred_soon(session: AsyncSession) -> None:
    """Mark this transaction as one that deleted a turn's sent replies: no copy of them stays in the SQLite
    WAL for longer than SHRED_SOON_WITHIN."""
    session.sync_session.info[SHREDS_SOON] = True


def after_commit(session: AsyncSession, action) -> None:
    """Run ``action`` (a file removal) only once this transaction has committed; never if it rolls back."""
    session.sync_session.info.setdefault(AFTER_COMMIT, []).append(action)


@event.listens_for(Session, "do_orm_execute")
def _bulk_delete_shreds(state) -> None:
    # delete(...) and update(...) statements: a DELETE always shreds; an UPDATE that writes a sealed
    # (binary) column replaces or clears ciphertext, whose old bytes the WAL would otherwise keep.
    if state.is_delete:
        state.session.info[SHREDS] = True
    elif state.is_update and _writes_sealed(state.statement):
        state.session.info[SHREDS] = True


def _writes_sealed(statement) -> bool:
    table = getattr(statement, "table", None)
    for key in getattr(statement, "_values", None) or {}:
        column = None if table is None else table.c.get(getattr(key, "key", key))
        if column is not None and isinstance(column.type, LargeBinary):
            return True
    return False


@event.listens_for(Session, "after_transaction_end")
def _forget_driver(session: Session, transaction) -> None:
    # The connection goes back to the pool with its transaction: a Driver of it must not outlive it.
    if transaction.parent is None:
        session.info.pop(_DRIVER, None)


@event.listens_for(Session, "before_flush")
def _flush_shreds(session: Session, _context, _instances) -> None:
    # session.delete(row), or a sealed column set to None on a loaded row (an opt-out's route).
    if session.deleted:
        session.info[SHREDS] = True
        return
    for obj in session.dirty:
        state = inspect(obj)
        for attr in state.mapper.column_attrs:
            column = attr.columns[0]
            if isinstance(column.type, LargeBinary):
                history = state.attrs[attr.key].history
                if history.deleted and any(old is not None for old in history.deleted) and history.added == [None]:
                    session.info[SHREDS] = True
                    return


def insert_into(session: AsyncSession | Session, table):
    """An INSERT that can say ON CONFLICT, in the session's own database's dialect; the other one is never
    imported (a SQLite worker would carry SQLAlchemy's PostgreSQL dialect for nothing: 2 MB of idle RSS)."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def normalize_url(url: str) -> str:
    """Pick the async driver for a plain URL (``postgresql://`` → asyncpg, ``sqlite://`` → aiosqlite)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: use a sqlite:/// path or a postgresql:// URL")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; secure_delete overwrites deleted tip data in the
    # file instead of leaving it in free pages; FULL sync so an acknowledged tip survives power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # We say BEGIN ourselves (below) instead of letting the driver start transactions lazily.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn) -> None:
    # Take the write lock when the transaction starts, not at its first write: another process on the
    # same file (the CLI beside the bot) must not read a row we are about to change, e.g. the last
    # audit entry a new one chains onto.
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        # Straight to aiosqlite: it runs at every transaction, and SQLAlchemy's statement machinery around
        # a fixed BEGIN would cost as much as a turn's own statements; its cursor would be three trips to
        # aiosqlite's thread (open, execute, close) where this is one.
        await_only(conn.connection.driver_connection.execute("BEGIN IMMEDIATE"))


def _sqlite_reset(dbapi_connection, _record, state) -> None:
    # SQLAlchemy rolls back every connection handed back to its pool, even one whose transaction has just
    # committed: a trip to aiosqlite's thread after every transaction. sqlite3 knows whether one is open.
    if not state.asyncio_safe or state.terminate_only:
        return  # the pool closes it (a connection collected outside the loop is never rolled back here)
    try:
        open_ = dbapi_connection.driver_connection.in_transaction
    except ValueError:  # aiosqlite's word for a connection already closed
        return
    if open_:
        dbapi_connection.rollback()


class DatabaseAway(Exception):
    """The database did not answer (PostgreSQL restarting, the network cut, SQLite locked past its wait):
    what was asked of it did not happen, and can be asked again later."""


def out_of_reach(exc: BaseException) -> bool:
    """Whether a failure means the database could not be reached, rather than that it refused something."""
    if isinstance(exc, DatabaseAway):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    # Driver statements and the BEGIN IMMEDIATE of a transaction reach sqlite3 without SQLAlchemy, whose
    # wrapping they do not get: its own OperationalError says the same.
    if isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in _ASYNCPG_AWAY:
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (ConnectionError, TimeoutError)) or type(cause).__name__ in _ASYNCPG_AWAY


# asyncpg's names for a server that is gone, shutting down or starting up (by name: asyncpg is optional).
_ASYNCPG_AWAY = frozenset({"ConnectionDoesNotExistError", "CannotConnectNowError", "AdminShutdownError",
                           "CrashShutdownError", "ConnectionFailureError", "PostgresConnectionError",
                           "ClientCannotConnectError", "ConnectionRejectionError", "TooManyConnectionsError"})


class Driver:
    """The turn's own connection, spoken to without SQLAlchemy, for the few fixed statements that every update
    runs (bench/RESULTS.md: a statement costs a fifth of its CPU through the ORM). SQL is written with ``?``
    placeholders; on PostgreSQL they become ``$1``, ``$2`` …; times are passed as ``Driver.when`` gives them."""

    def __init__(self, connection, *, postgresql: bool) -> None:
        self._connection, self.postgresql = connection, postgresql
        self._numbered: dict[str, str] = {}

    def when(self, moment):
        """An aware datetime as the column stores it: asyncpg takes it as it is; SQLite keeps SQLAlchemy's
        text form of the UTC time, so rows written here and by the ORM read and compare the same."""
        if self.postgresql:
            return moment
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")

    def _sql(self, sql: str) -> str:
        if not self.postgresql:
            return sql
        numbered = self._numbered.get(sql)
        if numbered is None:
            parts = sql.split("?")
            numbered = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
            self._numbered[sql] = numbered
        return numbered

    async def execute(self, sql: str, *params) -> int:
        """Run one statement; returns the rows it changed."""
        if self.postgresql:
            status = await self._connection.execute(self._sql(sql), *params)
            return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0
        cursor = await self._connection.execute(sql, params)
        return cursor.rowcount

    async def on_thread(self, function, *args):
        """SQLite: ``function(sqlite3_connection, *args)`` on aiosqlite's thread, in one trip (on_sqlite_thread)."""
        return await on_sqlite_thread(self._connection, function, *args)

    async def fetchone(self, sql: str, *params) -> tuple | None:
        """Run one statement (a SELECT, or a write with RETURNING); returns its first row."""
        if self.postgresql:
            row = await self._connection.fetchrow(self._sql(sql), *params)
            return None if row is None else tuple(row)
        rows = await self._connection.execute_fetchall(sql, params)  # read to the end: the statement finishes
        return tuple(rows[0]) if rows else None


async def on_sqlite_thread(connection, function, *args):
    """``function(sqlite3_connection, *args)`` run on aiosqlite's thread in one trip there and back, however
    many statements it runs: each trip costs a wake-up of that thread and of the event loop, and a turn made
    a dozen. aiosqlite's ``Connection._execute`` queues a call on its thread, as its own methods do (and as
    SQLAlchemy's aiosqlite dialect does); ``_conn`` is the sqlite3 connection it wraps."""
    return await connection._execute(lambda: function(connection._conn, *args))


def _committed_statement(connection: sqlite3.Connection, sql: str, params: tuple) -> int:
    changed = connection.execute(sql, params).rowcount
    if connection.in_transaction:
        # Outside BEGIN a statement is its own transaction; a connection in sqlite3's implicit transactions
        # (isolation_level not None: never one of ours, but a commit here costs no trip) opened one for it.
        connection.commit()
    return changed


async def driver(session: AsyncSession) -> Driver:
    """The driver connection of this session's transaction (begun if it was not), for Driver statements."""
    found = session.sync_session.info.get(_DRIVER)
    if found is not None:
        return found
    connection = await session.connection()  # begins the transaction (SQLite: BEGIN IMMEDIATE)
    raw = await connection.get_raw_connection()
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        await _begun_on_asyncpg(raw.dbapi_connection)
    found = Driver(raw.driver_connection, postgresql=postgresql)
    session.sync_session.info[_DRIVER] = found
    return found


class Database:
    """Engine plus the one way to run a transaction, with SQLite's single writer honoured."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
        kwargs: dict = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            kwargs.update(pool_reset_on_return=None)  # _sqlite_reset does it, where a transaction is open
        self.engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
            event.listen(self.engine.sync_engine.pool, "reset", _sqlite_reset)
        # SQLite has one writer per file; queueing here beats "database is locked" errors.
        self._sqlite_lock = asyncio.Lock() if self.is_sqlite else None
        self._truncated_at = 0.0  # loop time of the last WAL truncation
        self._truncation_due: asyncio.TimerHandle | None = None
        self._truncating: asyncio.Task | None = None

    async def run_driver_statement(self, sql: str, *params) -> int:
        """One fixed statement in a transaction of its own, straight to the driver (a reply's in-flight mark,
        once per reply); returns the rows it changed."""
        if self._sqlite_lock is not None:
            async with self._sqlite_lock:
                return await self._driver_autocommit(sql, params)
        return await self._driver_autocommit(sql, params)

    async def _driver_autocommit(self, sql: str, params: tuple) -> int:
        # Outside BEGIN and COMMIT one statement is its own transaction in both databases, as atomic and as
        # durable: one round trip instead of three. SQLAlchemy begins nothing on a connection it ran nothing on.
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            if not self.is_sqlite:
                return await Driver(raw, postgresql=True).execute(sql, *params)
            return await on_sqlite_thread(raw, _committed_statement, sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        if self._sqlite_lock is not None:
            async with self._sqlite_lock:
                async with AsyncSession(self.engine, expire_on_commit=False) as session:
                    async with session.begin():
                        yield session
                    # Still under the lock: the next writer must not add frames before the truncation.
                    info = session.sync_session.info
                    soon = info.pop(SHREDS_SOON, False)
                    if info.pop(SHREDS, False):
                        await self._truncate_wal()
                    elif soon:
                        self._truncate_soon()
                    await _run_after_commit(session)
        else:
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                async with session.begin():
                    yield session
                session.sync_session.info.pop(SHREDS, None)  # PostgreSQL: dead tuples wait for VACUUM (README)
                session.sync_session.info.pop(SHREDS_SOON, None)
                await _run_after_commit(session)

    def _truncate_soon(self) -> None:
        # At most one truncation per SHRED_SOON_WITHIN for a turn's sent replies, however many turns commit:
        # with many citizens they share it, and a lone citizen's next turn does not wait for one.
        if self._truncation_due is not None:
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._truncated_at + SHRED_SOON_WITHIN - loop.time())
        self._truncation_due = loop.call_later(wait, self._start_due_truncation)

    def _start_due_truncation(self) -> None:
        self._truncation_due = None
        self._truncating = asyncio.get_running_loop().create_task(self._due_truncation())

    async def _due_truncation(self) -> None:
        try:
            async with self._sqlite_lock:
                await self._truncate_wal()
        except Exception as exc:  # noqa: BLE001  (the next shredding commit or the stop tries again)
            log.warning("the SQLite WAL could not be truncated (%s); tried again later", type(exc).__name__)
            self._truncate_soon()

    async def _truncate_wal(self) -> None:
        self._truncated_at = asyncio.get_running_loop().time()
        async with self.engine.connect() as conn:
            # A checkpoint cannot run inside a transaction: straight to the driver, where SQLAlchemy begins none
            # (its AUTOCOMMIT would leave the connection in sqlite3's implicit transactions once handed back).
            raw = (await conn.get_raw_connection()).driver_connection
            busy, _log_frames, _done = (await raw.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))[0]
            if busy:  # a reader held an old snapshot; the next shredding commit (or the stop) tries again
                log.warning("the SQLite WAL could not be truncated now (a reader is busy); tried again later")

    async def checkpoint(self) -> None:
        """After a purge, fold the WAL back into the file so deleted pages do not linger there."""
        if self.is_sqlite:
            if self._truncation_due is not None:  # this one does what it was waiting for
                self._truncation_due.cancel()
                self._truncation_due = None
            # Under the writers' lock: a second checkpoint at the same moment (the shared one, a turn's) would
            # find this one busy and leave the WAL as it is.
            async with self._sqlite_lock:
                await self._truncate_wal()

    async def vacuum(self, tables: list[str]) -> None:
        """PostgreSQL: reclaim the dead row versions a purge left in these tables (SQLite: nothing to do)."""
        if self.is_sqlite or not tables:
            return
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM refuses a transaction
            for table in tables:
                await conn.execute(text(f'VACUUM "{table}"'))

    async def dispose(self) -> None:
        """Close the connections; a truncation still due is done first, so no sent reply stays in the WAL."""
        if self._truncation_due is not None:
            self._truncation_due.cancel()
            self._truncation_due = None
            await self._due_truncation()
        if self._truncating is not None:
            await asyncio.gather(self._truncating, return_exceptions=True)
            self._truncating = None
        await self.engine.dispose()


async def _begun_on_asyncpg(adapted) -> None:
    # SQLAlchemy's asyncpg adapter starts its transaction lazily, at the first statement it runs itself;
    # a Driver statement must not run before it, outside the transaction (SQLAlchemy 2.x's adapter API).
    async with adapted._execute_mutex:
        if adapted._transaction is None:
            await adapted._start_transaction()


async def _run_after_commit(session: AsyncSession) -> None:
    for action in session.sync_session.info.pop(AFTER_COMMIT, []):
        try:
            action()
        except OSError as exc:  # the file stays behind; the stray-file sweep removes it later
            log.warning("a file could not be removed after its commit (%s); the sweep will retry", exc.strerror)
