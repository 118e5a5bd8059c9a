"""Applies the Alembic migrations that define the schema (``tinbao db upgrade`` and at start)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storage.db import Database, normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.MULTILINE)


def alembic_config(url: str):
    from alembic.config import Config  # Alembic only when a migration is run (about 12 MB of a bot's memory)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser would read "%" in a password as interpolation.
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    from alembic import command
    command.upgrade(alembic_config(url), revision)


def schema_heads() -> set[str]:
    """The newest revision(s) of the migrations shipped, read from their files without loading Alembic."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        if found := _REVISION.search(source):
            revisions.add(found.group(1))
        if down := _DOWN_REVISION.search(source):
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return revisions - parents


async def _stored_revisions(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            return {row[0] for row in await conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no alembic_version table yet: a new database
        return set()
    finally:
        await database.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; runs in a thread since Alembic drives its own loop."""
    if revision == "head" and await _stored_revisions(url) == schema_heads():
        return  # already there (every start but the first after an update): Alembic is not even loaded
    await asyncio.to_thread(upgrade_sync, url, revision)
