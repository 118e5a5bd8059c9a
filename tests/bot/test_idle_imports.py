"""A worker that has started but made no chart, spreadsheet or case file, cleaned no photo, indexed no tip and
showed no number has not loaded the libraries that do those: each costs every idle worker megabytes
(python-docx with lxml alone ~15 MB, Pillow ~2.5 MB, phonenumbers ~1.7 MB, Babel ~1 MB; bench/RESULTS.md,
"Memory of an idle worker") for work a citizen or an officer asks for now and then. And a worker on SQLite has
not loaded PostgreSQL's dialect and driver."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from tests.fakes.telegram_api import FakeTelegram
from tests.support.fake_servers import fake_server
from tests.support.processes import Site, TinbaoProcess, child_environment

ROOT = Path(__file__).resolve().parents[2]
# What loads each library, when it is first needed:
LOADED_WHEN_NEEDED = {
    "matplotlib": "a chart (handlers/figures/charts.py)",
    "openpyxl": "a spreadsheet (handlers/officer/export.py)",
    "docx": "a case file (handlers/officer/files.py)",
    "lxml": "a case file, through python-docx",
    "PIL": "the first photo or image a citizen sends (storage/media.py)",
    "phonenumbers": "the first tip indexed or phone number typed (handlers/related/extract.py)",
    "alembic": "a migration (storage/migrate.py); a start at the newest schema runs none",
    "babel": "the first number shown (handlers/i18n.py: the catalogs are read by the standard gettext) or a figure",
    # tinbao's own, imported at the officer's command that needs them (handlers/router.py)
    "handlers.figures": "/stats or /baocao",
    "handlers.officer.export": "/export",
}
STARTED = ("import sys, bot.cli, bot.runtime, bot.startup, bot.health, bot.webhook, bot.channels.telegram, "
           "bot.channels.zalo_bot, bot.channels.zalo_oa, handlers.router; "
           "print(' '.join(sorted(sys.modules)))")


def test_a_started_worker_has_not_loaded_the_libraries_of_work_asked_for_now_and_then():
    done = subprocess.run([sys.executable, "-c", STARTED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = done.stdout.split()
    loaded = {m.split(".")[0] for m in modules}
    assert {"bot", "handlers", "storage", "aiogram", "sqlalchemy"} <= loaded  # it did load the bot
    assert {name: why for name, why in LOADED_WHEN_NEEDED.items()
            if any(module == name or module.startswith(name + ".") for module in modules)} == {}


PLANNED = ("import sys; from bot.config import load_config; from bot.channels.registry import plan; "
           "planned = plan(load_config(sys.argv[1], environ={}), webhook=None); "
           "print(' '.join(p.name for p in planned)); print(' '.join(m for m in sys.modules if 'zalo' in m))")


def test_a_worker_serving_telegram_alone_has_not_loaded_the_zalo_channels(tmp_path):
    from tests.support.deployment import config_toml
    path = tmp_path / "config.toml"
    path.write_text(config_toml(f"sqlite:///{tmp_path}/tinbao.db",
                                extra='[telegram]\ntoken = "123456:TEST-token-abcdef"\n'), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", PLANNED, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    channels, zalo_modules = (done.stdout.splitlines() + ["", ""])[:2]
    assert channels == "telegram"
    assert zalo_modules == ""


# `tinbao run` as an operator starts it, which prints the modules it holds when sent SIGUSR1 (this test's
# hook, not tinbao's), so what is read is a worker that opened its database and serves, not a list of imports.
SERVING = """
import signal, sys
import bot.cli
signal.signal(signal.SIGUSR1, lambda *_: print("loaded:", *sorted(sys.modules), flush=True))
sys.exit(bot.cli.main(sys.argv[1:]))
"""
# What a worker on SQLite must not have loaded: each is PostgreSQL's alone.
LOADED_FOR_POSTGRESQL = {
    "sqlalchemy.dialects.postgresql": "SQLAlchemy's PostgreSQL dialect (~2 MB): its name as an index's "
                                      "option loads it (storage/models.py, _PartialIndex)",
    "asyncpg": "the PostgreSQL driver",
}

fake = fake_server(FakeTelegram)


async def test_a_serving_worker_on_sqlite_has_not_loaded_postgresql_nor_what_is_loaded_when_needed(tmp_path, fake):
    site = Site(tmp_path / "site", f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db",
                extra=f'[telegram]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n')
    await site.init()
    # At the newest schema, as every start but the first after an update: one that migrates holds Alembic,
    # and through it both dialects, for its life (bench/RESULTS.md, "Memory of an idle worker").
    async with site.start("db", "upgrade") as upgrade:
        assert await upgrade.wait() == 0, upgrade.stderr
    bot = TinbaoProcess(await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVING, "--config", str(site.config), "run", cwd=site.root,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_environment()))
    try:
        await bot.wait_for_line("serving Telegram by long polling")
        bot.send_signal(signal.SIGUSR1)
        loaded = set((await bot.wait_for_line("loaded:", stdout=True)).split()[1:])
        bot.send_signal(signal.SIGTERM)
        assert await bot.wait() == 0, bot.stderr
    finally:
        await bot.close()
    assert {"sqlalchemy.dialects.sqlite", "aiosqlite", "storage.models"} <= loaded  # it did open its database
    assert {name: why for name, why in (LOADED_FOR_POSTGRESQL | LOADED_WHEN_NEEDED).items()
            if any(module == name or module.startswith(name + ".") for module in loaded)} == {}
