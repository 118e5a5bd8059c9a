"""N workers started together on an empty database migrate it once: the first takes the lock and
migrates, the others wait for it and find the work done. Real processes, let go at the same moment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import normalize_url
from storage.migrate import alembic_config
from tests.support.processes import Site, scratch_postgres

PG_URL = os.environ.get("TINBAO_TEST_DATABASE_URL")
WAIT = 120  # a bound for a hang, not a speed claim


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request, tmp_path):
    """A database with nothing in it yet: a new SQLite file, or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    if not PG_URL:
        pytest.skip("needs a PostgreSQL server (TINBAO_TEST_DATABASE_URL)")
    async with scratch_postgres(PG_URL) as url:
        yield url


async def schema_of(url: str) -> tuple[list[str], set[str]]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as connection:
            versions = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
            tables = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return list(versions), tables


def head(url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(url)).get_heads())


async def let_go_together(workers, barrier) -> list[int]:
    for worker in workers:
        await worker.wait_for_line("at the barrier", stdout=True, timeout=WAIT)
    barrier.touch()
    return [await worker.wait(timeout=WAIT) for worker in workers]


async def test_two_upgrades_at_the_same_moment_both_succeed_and_migrate_once(tmp_path, empty_database):
    sites = [Site(tmp_path / f"worker-{n}", empty_database) for n in (1, 2)]
    barrier = tmp_path / "go"
    async with contextlib.AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(site.start("db", "upgrade", barrier=barrier)) for site in sites]
        codes = await let_go_together(workers, barrier)
    assert codes == [0, 0], "\n".join(w.stderr for w in workers)
    assert all(w.stdout.endswith("database schema is up to date") and w.stderr == "" for w in workers)
    versions, tables = await schema_of(empty_database)
    assert versions == head(empty_database)
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
    if empty_database.startswith("sqlite"):  # made by us, before anything else opened it: for our eyes only
        assert (tmp_path / "empty.db").stat().st_mode & 0o077 == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_two_bots_started_together_on_an_empty_postgresql_both_serve(tmp_path):
    if not PG_URL:
        pytest.skip("needs a PostgreSQL server (TINBAO_TEST_DATABASE_URL): N workers share one PostgreSQL")
    from tests.fakes.telegram_api import FakeTelegram
    fake = FakeTelegram()
    await fake.start()
    try:
        async with scratch_postgres(PG_URL) as url:
            sites = []
            for n in (1, 2):  # two workers behind one load balancer: same keyring, each its own port
                sites.append(Site(tmp_path / f"worker-{n}", url, extra=(
                    f'[telegram]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\nmode = "webhook"\n'
                    f'webhook_url = "https://tin.example.vn"\nwebhook_listen = "127.0.0.1:{_free_port()}"\n'
                    f'webhook_secret = "telegram-Secret_0123456789"\n')))
            await sites[0].init()
            shutil.copy2(sites[0].keyring_path, sites[1].keyring_path)
            barrier = tmp_path / "go"
            async with contextlib.AsyncExitStack() as stack:
                workers = [await stack.enter_async_context(site.start("run", barrier=barrier)) for site in sites]
                for worker in workers:
                    await worker.wait_for_line("at the barrier", stdout=True, timeout=WAIT)
                barrier.touch()
                for worker in workers:
                    await worker.wait_for_line("serving Telegram by webhook", timeout=WAIT)
                    worker.send_signal(signal.SIGTERM)
                codes = [await worker.wait(timeout=WAIT) for worker in workers]
            assert codes == [0, 0], "\n".join(w.stderr for w in workers)
            assert not [w for w in workers if "Traceback" in w.stderr or "ERROR" in w.stderr]
            versions, tables = await schema_of(url)
            assert versions == head(url) and tables == set(SQLModel.metadata.tables) | {"alembic_version"}
    finally:
        await fake.close()
