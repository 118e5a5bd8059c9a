"""A worker that has started but made no chart, spreadsheet or case file, cleaned no photo and indexed no tip
has not loaded the libraries that do those: each costs every idle worker megabytes (python-docx with lxml
alone ~15 MB, Pillow ~2.5 MB, phonenumbers ~1.7 MB; bench/RESULTS.md, "Memory of an idle worker") for work a
citizen or an officer asks for now and then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
}
STARTED = ("import sys, bot.cli, bot.runtime, bot.startup, bot.health, bot.webhook, bot.channels.telegram, "
           "bot.channels.zalo_bot, bot.channels.zalo_oa, handlers.router; "
           "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")


def test_a_started_worker_has_not_loaded_the_libraries_of_work_asked_for_now_and_then():
    done = subprocess.run([sys.executable, "-c", STARTED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {"bot", "handlers", "storage", "aiogram", "sqlalchemy"} <= loaded  # it did load the bot
    assert {name: LOADED_WHEN_NEEDED[name] for name in loaded & LOADED_WHEN_NEEDED.keys()} == {}


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
