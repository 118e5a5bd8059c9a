"""Figures end to end: /stats and /report through the real aiogram client and the fake Telegram Bot
API server, and `tinbao report` through `bot.cli.main`, on the hand-counted dataset of
tests/storage/test_stats.py."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image
from sqlmodel import select

from bot.channels.telegram import TelegramChannel, make_bot
from bot.cli import main
from bot.config import ENV_OVERRIDES
from handlers.figures import movement_report
from handlers.figures.charts import HEIGHT, WIDTH
from handlers.officer.accounts import create_invite_code
from handlers.router import TipLine
from storage.crypto import Keyring
from storage.models import AuditEntry
from tests.fakes.telegram_api import FakeTelegram
from tests.storage.test_stats import january_tips, load
from tests.support.deliveries import Handled
from tests.support.deployment import config_toml

BOSS = 5550701  # supervisor of ca-hcm
CITIZEN = 5550702
NOW = datetime(2026, 2, 10, 3, tzinfo=timezone.utc)


@pytest.fixture
async def telegram(services):
    """The bot polling a fake Telegram server, with January 2026 in its database."""
    services.clock = lambda: NOW
    await load(services.db, january_tips())
    fake, handled = FakeTelegram(), Handled()
    await fake.start()
    channel = TelegramChannel(bot=make_bot(fake.token, fake.base_url), tipline=TipLine(services), deliveries=handled)
    task = asyncio.create_task(channel.run_polling())

    async def say(chat: int, text: str) -> list[dict]:
        start, count = len(fake.sent), handled.count
        fake.send_text(chat, text, language_code="en")
        await handled.wait_for(count + 1, timeout=20)  # a chart takes a moment on a slow machine
        return [m for m in fake.sent[start:] if m["chat_id"] == chat]
    say.fake = fake
    try:
        yield say
    finally:
        await channel.stop()
        await asyncio.wait_for(task, 5)
        await channel.bot.session.close()
        await fake.close()


async def test_stats_sends_a_text_and_a_photo(telegram, services):
    code = await create_invite_code(services, unit_id="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    assert "You are enrolled" in (await telegram(BOSS, f"/enroll {code}"))[0]["text"]
    menu = {c["command"] for c in telegram.fake.commands[("chat", BOSS, "")]}
    assert {"stats", "baocao", "next"} <= menu  # a supervisor's chat menu offers the figures
    text, photo = await telegram(BOSS, "/stats 01/01/2026-31/01/2026")
    assert text["method"] == "sendMessage" and "Received: 10 tips" in text["text"]
    assert "Valuable: 4 (40.0%)" in text["text"] and "Not valuable: <3" in text["text"]
    assert photo["method"] == "sendPhoto"
    image = Image.open(io.BytesIO(photo["photo"]))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)


async def test_report_sends_the_paragraph_and_two_documents(telegram, services):
    code = await create_invite_code(services, unit_id="ca-hcm", role="admin", name="Trung tá Sơn")
    await telegram(BOSS, f"/enroll {code}")
    paragraph, caption, csv_doc, xlsx_doc = await telegram(BOSS, "/report 01/01/2026 31/01/2026")
    assert paragraph["text"].startswith("From 01/01/2026 to 31/01/2026, Công an Thành phố Hồ Chí Minh received 10 "
                                        "crime tips, of which 4 were valuable, helping to clarify 3 cases involving "
                                        "10 subjects.")
    assert "By area:" in paragraph["text"] and "CSV" in caption["text"]
    assert [d["method"] for d in (csv_doc, xlsx_doc)] == ["sendDocument", "sendDocument"]
    rows = list(csv.reader(io.StringIO(csv_doc["document"].decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(xlsx_doc["document"])).worksheets[0]
    assert rows[1][:4] == ["Total", "Công an Thành phố Hồ Chí Minh", "10", "4"]
    assert [c.value for c in sheet[2]][:4] == ["Total", "Công an Thành phố Hồ Chí Minh", 10, 4]
    # /baocao is the same report, and a citizen's /report still starts a tip-off.
    assert len(await telegram(BOSS, "/baocao 01/01/2026-31/01/2026")) == 4
    [question] = await telegram(CITIZEN, "/report 01/01/2026 31/01/2026")
    assert "What kind of crime" in question["text"]


# --- `tinbao report` -----------------------------------------------------------------------------

@pytest.fixture
def config_path(tmp_path: Path, database_url: str, db, monkeypatch):
    for variable in [*ENV_OVERRIDES, "TINBAO_CONFIG"]:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)

    def write(k: int = 3) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(config_toml(database_url, extra=f"[stats]\nmin_cell = {k}\n"), encoding="utf-8")
        if not (tmp_path / "keyring.json").exists():
            Keyring.create(tmp_path / "keyring.json")
        return path
    return write


async def tinbao(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_cli_report_gives_the_same_figures_in_every_format(config_path, db, tmp_path, capsys):
    path = config_path(k=1)
    await load(db, january_tips())
    common = ["--config", str(path), "report", "--from", "01/01/2026", "--to", "31/01/2026", "--unit", "ca-hcm"]
    assert await tinbao(*common, "--format", "text") == 0
    text = capsys.readouterr().out
    assert text.startswith("Từ ngày 01/01/2026 đến ngày 31/01/2026, Công an Thành phố Hồ Chí Minh đã tiếp nhận 10 "
                           "tin tố giác tội phạm, trong đó 4 tin có giá trị, giúp làm rõ 3 vụ, liên quan 10 đối "
                           "tượng. Có 2 tin không có giá trị và 4 tin đang tiếp tục xác minh, xử lý. Một nửa số tin "
                           "đã có kết quả đánh giá trong vòng 5 giờ kể từ khi tiếp nhận.")
    assert "Công an Thành phố Hồ Chí Minh" in text and "10" in text and "Ma túy" in text
    assert await tinbao(*common, "--format", "csv") == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[1][2:] == ["10", "4", "40.0", "2", "4", "3", "10"]
    assert await tinbao(*common, "--format", "xlsx", "--output", str(tmp_path / "r.xlsx")) == 0
    sheet = load_workbook(tmp_path / "r.xlsx").worksheets[0]
    assert [c.value for c in sheet[2]][2:] == [10, 4, 40, 2, 4, 3, 10]
    assert [r[1] for r in rows[1:]] == [c.value for c in sheet["B"]][1:]
    assert await tinbao(*common, "--format", "xlsx") == 0  # no --output: a file named after unit and dates
    assert (tmp_path / "tinbao-ca-hcm-20260101-20260131.xlsx").exists()


async def test_cli_report_hides_small_counts_and_names_bad_input(config_path, db, capsys):
    path = config_path(k=3)
    await load(db, january_tips())
    base = ["--config", str(path), "report", "--from", "01/01/2026", "--to", "31/01/2026"]
    assert await tinbao(*base, "--unit", "ca-saigon", "--format", "csv") == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[1][2] == "5" and "<3" in rows[1]
    assert await tinbao(*base, "--unit", "ca-nowhere") == 2
    assert "unknown unit 'ca-nowhere'" in capsys.readouterr().err
    assert await tinbao("--config", str(path), "report", "--from", "31/01/2026", "--to", "01/01/2026",
                        "--unit", "ca-hcm") == 2
    assert "is after --to" in capsys.readouterr().err
    assert await tinbao("--config", str(path), "report", "--from", "2026-01-01", "--to", "31/01/2026",
                        "--unit", "ca-hcm") == 2
    assert "dd/mm/yyyy" in capsys.readouterr().err


async def test_cli_report_shows_progress_on_long_runs(config_path, db, capsys, monkeypatch):
    path = config_path(k=1)
    await load(db, january_tips())
    args = ["--config", str(path), "report", "--from", "01/01/2026", "--to", "31/01/2026", "--unit", "ca-hcm",
            "--format", "csv"]
    assert await tinbao(*args) == 0
    assert capsys.readouterr().err == ""  # ten tips: over before a bar could help
    monkeypatch.setattr(movement_report, "PROGRESS_FROM", 10)  # as if these ten were a province's year
    assert await tinbao(*args) == 0
    out, err = capsys.readouterr()
    assert "counting 10 tips [" in err and err.rstrip().endswith("3/3")
    assert list(csv.reader(io.StringIO(out)))[1][2:] == ["10", "4", "40.0", "2", "4", "3", "10"]  # stdout stays clean
    async with db.transaction() as session:
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.action == "report"))).all()
    assert [(e.actor, e.detail) for e in entries] == [("cli", "unit=ca-hcm from=2026-01-01 to=2026-01-31 for=published")] * 2


async def test_csv_redirected_to_a_file_opens_in_excel_with_its_vietnamese(config_path, db, tmp_path):
    """The README's own `tinbao report … --format csv > h1.csv`: Excel on Windows needs the BOM to read
    UTF-8, so stdout carries it as the file written with --output does."""
    path = config_path(k=1)
    await load(db, january_tips())
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")}
    command = (f"{shlex.quote(sys.executable)} -m bot.cli --config {shlex.quote(str(path))} report --from 01/01/2026 "
               f"--to 31/01/2026 --unit ca-hcm --format csv > h1.csv")
    done = await asyncio.to_thread(subprocess.run, command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                                   timeout=120)
    assert done.returncode == 0, done.stderr
    data = (tmp_path / "h1.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # what Excel looks for
    assert data.decode("utf-8").startswith("\ufeffNhóm,Mục,Tiếp nhận")
    assert await tinbao("--config", str(path), "report", "--from", "01/01/2026", "--to", "31/01/2026", "--unit",
                        "ca-hcm", "--format", "csv", "--output", str(tmp_path / "h2.csv")) == 0
    assert (tmp_path / "h2.csv").read_bytes() == data


async def test_cli_report_is_for_publishing_unless_asked_for_the_supervisors(config_path, db, tmp_path, capsys):
    path = config_path(k=3)
    path.write_text(path.read_text(encoding="utf-8").replace("min_cell = 3", "min_cell = 3\nmin_cell_supervisors = 1"),
                    encoding="utf-8")
    await load(db, january_tips())
    base = ["--config", str(path), "report", "--from", "01/01/2026", "--to", "31/01/2026", "--unit", "ca-hcm",
            "--language", "en"]
    assert await tinbao(*base) == 0
    published = capsys.readouterr().out
    assert "Fewer than 3 tips were not valuable" in published and "police force only" not in published
    assert await tinbao(*base, "--audience", "supervisors") == 0
    own = capsys.readouterr().out
    assert "2 tips were not valuable and 4 are still being handled" in own
    assert "For use within the police force only: counts below 3" in own
    assert "congbo" not in own  # a chat's hint; the command line has --audience
