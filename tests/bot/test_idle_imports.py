"""A worker that has started but made no chart, spreadsheet or case file has not loaded the libraries that
make them: each costs every idle worker megabytes (python-docx with lxml alone ~15 MB) for a file an officer
asks for now and then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MADE_ON_REQUEST = {"matplotlib", "openpyxl", "docx", "lxml"}
STARTED = ("import sys, bot.cli, bot.runtime, bot.webhook, bot.channels.telegram, bot.channels.zalo_bot, "
           "bot.channels.zalo_oa, handlers.router; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")


def test_a_started_worker_has_not_loaded_the_libraries_of_charts_spreadsheets_or_case_files():
    done = subprocess.run([sys.executable, "-c", STARTED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {"bot", "handlers", "storage", "aiogram", "sqlalchemy"} <= loaded  # it did load the bot
    assert loaded & MADE_ON_REQUEST == set()
