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
from tests.support.databases import emptied



def _own_database(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets a database of its own beside the one given (tinbao_ci →
    tinbao_ci_gw0 …), made here if missing: the tests empty their tables, so workers cannot share one.
    Written back to the environment, so tests that read the variable themselves see it too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    from sqlalchemy.engine import make_url
    given = make_url(url)
    own = given.set(database=f"{given.database}_{worker}")

    async def create() -> None:
        import asyncpg
        conn = await asyncpg.connect(given.set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", own.database):
                await conn.execute(f'CREATE DATABASE "{own.database}"')
        finally:
            await conn.close()
    asyncio.run(create())
    own_url = own.render_as_string(hide_password=False)
    os.environ["TINBAO_TEST_DATABASE_URL"] = own_url
    return own_url


PG_URL = _own_database(os.environ.get("TINBAO_TEST_DATABASE_URL"))
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
    await emptied(database)
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
