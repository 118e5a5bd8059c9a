"""Every file tinbao writes is its owner's only, from the first byte: the database and its -wal and -shm
0600, the data folder and every folder in it 0700. Run as an operator runs it, with umask 000, so that
the modes come from tinbao and not from the shell."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.fakes.telegram_api import FakeTelegram
from tests.support.processes import Site

WAIT = 60  # a bound for a hang, not a speed claim


def _modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


async def test_the_database_and_every_file_beside_it_are_private_from_the_first_byte(tmp_path):
    telegram = FakeTelegram()
    await telegram.start()
    old_umask = os.umask(0)  # the children inherit it: the loosest shell an operator could have
    try:
        site = Site(tmp_path / "site", f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db",
                    extra=f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n')
        await site.init()
        async with site.start("run") as bot:
            await bot.wait_for_line("serving Telegram by long polling", timeout=WAIT)
            telegram.send_text(4242, "/start")
            await telegram.wait_for_messages(4242, 1, timeout=WAIT)
            running = _modes(site.root / "data")  # -wal and -shm exist while the bot holds the database open
        assert {"tinbao.db", "tinbao.db-wal", "tinbao.db-shm"} <= set(running)
    finally:
        os.umask(old_umask)
        await telegram.close()
    loose = {name: f"{mode:o}" for name, mode in running.items()
             if mode != (0o700 if (site.root / "data" / name).is_dir() or name == "." else 0o600)}
    assert loose == {}, f"readable by others: {loose}"


async def test_a_database_and_data_folder_left_readable_before_are_closed_at_start(tmp_path):
    """An older version (or an operator's mkdir) left them 0644 and 0755: the next start closes them."""
    site = Site(tmp_path / "site", f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db")
    await site.init()
    data = site.root / "data"
    data.chmod(0o755)
    (data / "tinbao.db").touch()
    (data / "tinbao.db").chmod(0o644)
    async with site.start("officers", "list") as cli:
        assert await cli.wait(timeout=WAIT) == 0, cli.stderr
    assert _modes(data)["."] == 0o700 and _modes(data)["tinbao.db"] == 0o600
