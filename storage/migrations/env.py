"""Alembic environment: runs migrations over the async engine for SQLite or PostgreSQL, one upgrade at a time."""

import asyncio
import hashlib

from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import storage.related  # noqa: F401  (its tables live beside their repository)

target_metadata = SQLModel.metadata
# pg_advisory_xact_lock takes a bigint: the first 8 bytes of a hash of a fixed name, so every tinbao
# worker on the database asks for the same lock and nothing else is likely to.
MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tinbao-migrations").digest()[:8], "big", signed=True)
SQLITE_LOCK_WAIT = 120  # seconds a second process waits for the first one's upgrade


def _one_upgrade_at_a_time(connection) -> None:
    """N workers starting together on an empty database would all create the tables, and all but one
    fail (UniqueViolation on PostgreSQL, "table already exists" on SQLite). Each takes this lock first,
    on the connection that migrates, then reads the version: whoever comes second finds the work done."""
    if connection.dialect.name == "postgresql":
        # Transaction-level: held until the upgrade commits or rolls back, or the process dies; never left over.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # The file's own write lock, taken now rather than at the first write: SQLite's DDL does not wait
        # for one, so without it the second process creates tables the first has just made.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _run(connection) -> None:
    # The lock opens the transaction, so Alembic runs every step inside it, committed once below.
    _one_upgrade_at_a_time(connection)
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_LOCK_WAIT} if url.startswith("sqlite") else {})
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
