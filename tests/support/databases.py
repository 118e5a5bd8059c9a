"""The tests' databases."""

from __future__ import annotations

from sqlalchemy import text


async def emptied(database) -> None:
    """PostgreSQL's tables are shared by the tests of one worker: empty them (SQLite files are new each time)."""
    if database.is_sqlite:
        return
    async with database.engine.begin() as conn:
        tables = (await conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))
        ).scalars().all()
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
