"""The keyring belongs to its database, run as an operator runs tinbao: the first start ties the database to
its keyring (a check value: an HMAC of the keyring's pepper, which no key rotation changes); another
install's keyring then stops `tinbao run` with one line naming bot.keyring / TINBAO_KEYRING, before the
database file is read for tips or written at all. A database from before check values gets one at its
next start."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from storage.crypto import Keyring
from tests.fakes.telegram_api import FakeTelegram
from tests.support.processes import Site

WAIT = 60  # a bound for a hang, not a speed claim
PG_URL = os.environ.get("TINBAO_TEST_DATABASE_URL")


@pytest.fixture
async def telegram():
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


def _site(tmp_path: Path, telegram: FakeTelegram) -> Site:
    return Site(tmp_path / "site", f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db",
                extra=f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n')


def _files(site: Site) -> dict[str, str]:
    """Every file of the data folder and its content's hash: what "nothing was written" is checked against."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((site.root / "data").rglob("*")) if p.is_file()}


def _swap_keyring(site: Site) -> bytes:
    """Put another install's keyring where this one's was; returns the original, to put it back."""
    original = site.keyring_path.read_bytes()
    other = Keyring.create(site.root / "other-keyring.json")
    site.keyring_path.unlink()
    other.path.rename(site.keyring_path)
    return original


async def _officers_list(site: Site) -> int:
    async with site.start("officers", "list") as cli:
        return await cli.wait(timeout=WAIT)


async def test_another_installs_keyring_stops_the_bot_before_anything_is_read_or_written(tmp_path, telegram):
    site = _site(tmp_path, telegram)
    await site.init()
    assert await _officers_list(site) == 0  # the first start: the schema, and the check value with it
    before = _files(site)
    assert "tinbao.db" in before
    original = _swap_keyring(site)
    async with site.start("run") as bot:
        code = await bot.wait(timeout=WAIT)
    assert code == 2
    [line] = bot.stderr_lines
    assert line.startswith("tinbao: bot.keyring / TINBAO_KEYRING: ") and "is not the keyring of the SQLite file" in line
    assert _files(site) == before  # no -wal appeared, not a byte of the database changed
    site.keyring_path.unlink()
    site.keyring_path.write_bytes(original)
    site.keyring_path.chmod(0o600)
    assert await _officers_list(site) == 0  # its own keyring opens it again


async def test_a_database_from_before_check_values_is_tied_at_its_next_start(tmp_path, telegram):
    site = _site(tmp_path, telegram)
    await site.init()
    async with site.start("db", "upgrade") as upgrade:  # the schema without a check value, as before this version
        assert await upgrade.wait(timeout=WAIT) == 0
    assert await _officers_list(site) == 0  # stores it
    _swap_keyring(site)
    async with site.start("officers", "list") as cli:
        assert await cli.wait(timeout=WAIT) == 2
    assert "bot.keyring / TINBAO_KEYRING" in cli.stderr_lines[0]


async def test_a_rotated_keyring_is_still_its_databases(tmp_path, telegram):
    """`tinbao keys rotate` adds a key: the check value, made from the pepper, does not change."""
    site = _site(tmp_path, telegram)
    await site.init()
    assert await _officers_list(site) == 0
    async with site.start("keys", "rotate") as rotate:
        assert await rotate.wait(timeout=WAIT) == 0, rotate.stderr
    assert await _officers_list(site) == 0


async def test_two_workers_tying_an_empty_database_at_once_agree_on_the_first_keyring(db, tmp_path):
    """Both find the database untied and tie it in the same moment: no error, and both read back one keyring."""
    import asyncio

    from storage import keys as key_store
    ours, theirs = Keyring.create(tmp_path / "ours.json"), Keyring.create(tmp_path / "theirs.json")
    if db.is_sqlite:  # one writer at a time there: the second looks only once the first committed
        async with db.transaction() as session:
            first = await key_store.store_check_value(session=session, keyring=ours)
        async with db.transaction() as session:
            second = await key_store.store_check_value(session=session, keyring=theirs)
        assert first == second == ours.check_value()
        return
    inside = asyncio.Barrier(2)

    async def tie(keyring: Keyring) -> str:
        async with db.transaction() as session:
            assert await key_store.stored_check_value(session=session) is None
            await inside.wait()  # both looked before either wrote
            return await key_store.store_check_value(session=session, keyring=keyring)
    tied = await asyncio.wait_for(asyncio.gather(tie(ours), tie(theirs)), 30)
    assert tied[0] == tied[1] and tied[0] in (ours.check_value(), theirs.check_value())
