"""The database: a SQLite file by default (WAL, secure_delete), PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)


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
        else:
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                async with session.begin():
                    yield session

    async def checkpoint(self) -> None:
        """After a purge, fold the WAL back into the file so deleted pages do not linger there."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                # A checkpoint cannot run inside a transaction.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    async def dispose(self) -> None:
        await self.engine.dispose()
