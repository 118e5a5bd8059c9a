"""Shared fixtures: a real database (SQLite always, PostgreSQL when TINBAO_TEST_DATABASE_URL is set),
a real keyring and blob store in a temporary folder, and the tip line built on them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from handlers.areas import AreaIndex
from handlers.context import Limits, Services, TipLineSettings
from handlers.units import UnitTree
from handlers.router import TipLine
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database, normalize_url
from storage.migrate import upgrade_sync
from tests.support.chat import ChatClient
from tests.support.deployment import TEST_AREAS, TEST_UNITS

PG_URL = os.environ.get("TINBAO_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])

async def _pg_reset_schema(url: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(normalize_url(url).replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_migrated() -> str | None:
    """PostgreSQL gets the real migrations once per run; each test then starts from empty tables."""
    if not PG_URL:
        return None
    asyncio.run(_pg_reset_schema(PG_URL))
    upgrade_sync(PG_URL)
    return PG_URL


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/tinbao.db"
        (tmp_path / "tinbao.db").touch(mode=0o600)  # as `tinbao run` makes it: a bot started on it has nothing to close
        upgrade_sync(url)
        return url
    return request.getfixturevalue("pg_migrated")


@pytest.fixture
async def db(database_url: str):
    database = Database(database_url)
    if not database.is_sqlite:
        from sqlalchemy import text
        async with database.engine.begin() as conn:
            tables = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))
            ).scalars().all()
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    yield database
    await database.dispose()


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.create(tmp_path / "secrets" / "keyring.json")


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
def services(db, keyring, tmp_path: Path, limits: Limits) -> Services:
    areas = AreaIndex(TEST_AREAS)
    settings = TipLineSettings(areas=areas, limits=limits, units=UnitTree(TEST_UNITS, areas))
    return Services(db=db, keyring=keyring, blobs=BlobStore(tmp_path / "data" / "blobs"), settings=settings)


@pytest.fixture
def tipline(services) -> TipLine:
    return TipLine(services)


@pytest.fixture
def citizen(tipline) -> ChatClient:
    return ChatClient(tipline, chat_id="700100200")
