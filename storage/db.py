"""The database: a SQLite file by default (WAL, secure_delete), PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import LargeBinary, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

# Set on a session by a transaction that deleted rows or replaced sealed bytes: after its commit the
# SQLite WAL is checkpointed and truncated, so no copy of what was deleted stays in the -wal file.
SHREDS = "tinbao.shreds"
# Callables run once the transaction that forgot something has committed (file removals).
AFTER_COMMIT = "tinbao.after_commit"


def shred_on_commit(session: AsyncSession | Session) -> None:
    """Mark this transaction as one that deletes what it promised to delete (for a replacement in place)."""
    (session.sync_session if isinstance(session, AsyncSession) else session).info[SHREDS] = True


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
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
        if "database is locked" in str(exc):
            return True
    if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in _ASYNCPG_AWAY:
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (ConnectionError, TimeoutError)) or type(cause).__name__ in _ASYNCPG_AWAY


# asyncpg's names for a server that is gone, shutting down or starting up (by name: asyncpg is optional).
_ASYNCPG_AWAY = frozenset({"ConnectionDoesNotExistError", "CannotConnectNowError", "AdminShutdownError",
                           "CrashShutdownError", "ConnectionFailureError", "PostgresConnectionError",
                           "ClientCannotConnectError", "ConnectionRejectionError", "TooManyConnectionsError"})


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
        self.engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
        # SQLite has one writer per file; queueing here beats "database is locked" errors.
        self._sqlite_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        if self._sqlite_lock is not None:
            async with self._sqlite_lock:
                async with AsyncSession(self.engine, expire_on_commit=False) as session:
                    async with session.begin():
                        yield session
                    # Still under the lock: the next writer must not add frames before the truncation.
                    if session.sync_session.info.pop(SHREDS, False):
                        await self._truncate_wal()
                    await _run_after_commit(session)
        else:
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                async with session.begin():
                    yield session
                session.sync_session.info.pop(SHREDS, None)  # PostgreSQL: dead tuples wait for VACUUM (README)
                await _run_after_commit(session)

    async def run_statement(self, statement) -> int:
        """One statement in a transaction of its own, without an ORM session (a mark on a hot path, a few
        times per update); returns the rows it changed."""
        if self._sqlite_lock is not None:
            async with self._sqlite_lock:
                return await self._autocommit(statement)
        return await self._autocommit(statement)

    async def _autocommit(self, statement) -> int:
        # One statement is its own transaction in both databases, as atomic and as durable as with BEGIN and
        # COMMIT around it: without them it is one round trip instead of three.
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return (await conn.execute(statement)).rowcount

    async def _truncate_wal(self) -> None:
        async with self.engine.connect() as conn:
            # A checkpoint cannot run inside a transaction.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            busy, _log_frames, _done = (await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
            if busy:  # a reader held an old snapshot; the next shredding commit (or the stop) tries again
                log.warning("the SQLite WAL could not be truncated now (a reader is busy); tried again later")

    async def checkpoint(self) -> None:
        """After a purge, fold the WAL back into the file so deleted pages do not linger there."""
        if self.is_sqlite:
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
        await self.engine.dispose()


async def _run_after_commit(session: AsyncSession) -> None:
    for action in session.sync_session.info.pop(AFTER_COMMIT, []):
        try:
            action()
        except OSError as exc:  # the file stays behind; the stray-file sweep removes it later
            log.warning("a file could not be removed after its commit (%s); the sweep will retry", exc.strerror)
