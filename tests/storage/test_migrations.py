"""The schema the migrations build is exactly the one the models describe (both backends), so a model
change without a migration fails here, like `alembic check` would."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import storage.related  # noqa: F401  (its tables live beside their repository)
from storage.db import normalize_url
from storage.migrate import alembic_config, schema_heads, upgrade


@pytest.fixture
async def engine(database_url: str):
    engine = create_async_engine(normalize_url(database_url))
    yield engine
    await engine.dispose()


def _diff(connection, metadata: sa.MetaData) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                           "compare_server_default": False})
    return compare_metadata(context, metadata)


async def test_migrated_schema_has_exactly_the_model_tables(engine) -> None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    assert tables - {"alembic_version"} == set(SQLModel.metadata.tables)
    assert "alembic_version" in tables


async def test_database_is_at_the_head_revision(engine, database_url: str) -> None:
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1, f"migration history has branched: {heads}"
    async with engine.connect() as conn:
        current = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
    assert current == heads


async def test_models_and_migrations_do_not_differ(engine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff, SQLModel.metadata)
    assert diff == [], "the models differ from the migrated schema; add a migration:\n" + "\n".join(map(repr, diff))


async def test_the_comparison_notices_a_model_change_without_a_migration(engine) -> None:
    # The guard above is only worth something if it can fail: change a copy of the models.
    changed = sa.MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["tip"].append_column(sa.Column("district_name", sa.String(64), nullable=True))
    changed.tables["data_key"].c.kek_id.type = sa.String(64)
    sa.Table("officer_note", changed, sa.Column("id", sa.Integer, primary_key=True))

    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff, changed)
    flat = [d for entry in diff for d in (entry if isinstance(entry, list) else [entry])]
    kinds = {(d[0], d[2] if d[0] == "add_column" else None) for d in flat if d[0] in ("add_column", "add_table")}
    assert ("add_column", "tip") in kinds
    assert any(d[0] == "add_table" and d[1].name == "officer_note" for d in flat)
    assert any(d[0] == "modify_type" and d[2] == "data_key" and d[3] == "kek_id" for d in flat)


def test_the_start_knows_the_newest_migration_without_alembic(database_url: str) -> None:
    # The start skips Alembic (and its memory) when the database is at schema_heads(): a file parsed wrong
    # here would leave a database unmigrated.
    assert schema_heads() == set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def test_an_older_database_is_still_migrated_at_start(database_url: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "-1")
    try:
        await upgrade(database_url)
        engine = create_async_engine(normalize_url(database_url))
        async with engine.connect() as conn:
            current = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
        await engine.dispose()
        assert set(current) == schema_heads()
    finally:
        await upgrade(database_url)
