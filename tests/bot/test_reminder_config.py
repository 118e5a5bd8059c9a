"""config.toml's [reminders]: defaults as documented, every key checked by name, the calendar replaceable;
and `tinbao reminders status|calendar`, what an operator sees of them."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ENV_OVERRIDES, ConfigError, load_config
from bot.runtime import open_services
from handlers.reminders.festival_calendar import Offset
from handlers.router import TipLine
from storage.crypto import Keyring
from tests.support.chat import ChatClient

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
AREAS = '[[areas]]\ncode = "79"\nname = "Thành phố Hồ Chí Minh"\n'


def settings_from(tmp_path: Path, body: str):
    path = tmp_path / "config.toml"
    path.write_text(AREAS + body, encoding="utf-8")
    return load_config(path, environ={}).reminder_settings()


def test_the_example_documents_the_defaults(tmp_path):
    example = load_config(EXAMPLE, environ={}).reminder_settings()
    assert example == settings_from(tmp_path, "")
    assert (example.rate_per_second, example.quiet_start, example.quiet_end) == (25, time(21), time(7))
    assert example.unknown_after == timedelta(minutes=10) and example.max_attempts == 5
    assert example.default_offsets == (Offset(7), Offset(1), Offset(0, time(7)))
    assert {e.id for e in example.calendar} == {"an-ninh-to-quoc", "mua-ngay-hoi", "dai-doan-ket"}
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in ("enabled", "rate_per_second", "quiet_start", "quiet_end", "tick_seconds", "max_attempts",
                "retry_seconds", "unknown_after_minutes", "default_offsets", "calendar"):
        assert f"\n{key} = " in text or f"\n# {key} = " in text, key


def test_the_paid_broadcast_tier_and_other_quiet_hours(tmp_path):
    raised = settings_from(tmp_path, '[reminders]\nrate_per_second = 1000\nquiet_start = "22:30"\nquiet_end = "6:00"\n')
    assert (raised.rate_per_second, raised.quiet_start, raised.quiet_end) == (1000, time(22, 30), time(6))


@pytest.mark.parametrize("body, named", [
    ('rate_per_second = 0', "reminders.rate_per_second: must be a whole number ≥ 1"),
    ('rate_per_second = "25"', "reminders.rate_per_second"),
    ('quiet_start = "25:00"', 'reminders.quiet_start: must be a time of day such as "21:00" (got "25:00")'),
    ('default_offsets = ["7 days"]', "reminders.default_offsets[0]"),
    ('quiet_hours = "21-7"', "reminders.quiet_hours: unknown key"),
])
def test_a_wrong_key_is_named(tmp_path, body, named):
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, f"[reminders]\n{body}\n")
    assert named in str(caught.value)


def test_the_calendar_can_be_replaced_and_is_checked(tmp_path):
    (tmp_path / "events.toml").write_text(
        '[[events]]\nid = "ngay-hoi-ben-thanh"\ndates = ["08-10"]\ntime = "19:30"\narea = "79"\n'
        'title = { vi = "Ngày hội phường" }\n', encoding="utf-8")
    own = settings_from(tmp_path, '[reminders]\ncalendar = "events.toml"\n')
    assert [(e.id, e.dates, e.start_time, e.area, e.offsets) for e in own.calendar] == [
        ("ngay-hoi-ben-thanh", ("08-10",), "19:30", "79", None)]
    (tmp_path / "events.toml").write_text(
        '[[events]]\nid = "x"\ndates = ["08-10"]\narea = "01"\ntitle = { vi = "X" }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match='reminders.calendar: event x: area "01" is not the code of any'):
        settings_from(tmp_path, '[reminders]\ncalendar = "events.toml"\n')
    with pytest.raises(ConfigError, match="reminders.calendar: calendar file .* does not exist"):
        settings_from(tmp_path, '[reminders]\ncalendar = "missing.toml"\n')


@pytest.fixture
def deployment(tmp_path: Path, database_url: str, db, monkeypatch) -> Path:
    """config.toml and keyring as `tinbao init` leaves them, on the test's (emptied) database."""
    for variable in [*ENV_OVERRIDES, "TINBAO_CONFIG"]:
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "config.toml"
    path.write_text(f'[bot]\nkeyring = "./keyring.json"\n[database]\nurl = "{database_url}"\n' + AREAS,
                    encoding="utf-8")
    Keyring.create(tmp_path / "keyring.json")
    return path


async def tinbao(config: Path, *args: str) -> int:
    return await asyncio.to_thread(main, ["--config", str(config), *args])  # the CLI runs its own loop


async def test_the_cli_shows_the_calendar_and_the_broadcasts(deployment, capsys):
    from bot.reminder_dispatcher import tick
    from storage import reminders as store
    services = await open_services(load_config(deployment))
    try:
        await ChatClient(TipLine(services), chat_id="801", language="en").send("/remind on")
        now = services.clock()
        async with services.db.transaction() as session:
            await store.create_broadcast(session=session, key="announce:cli", kind="announcement", send_at=now,
                                         now=now, area_code=None, text="Xin chào")
        await tick(services, services.settings.reminders)
    finally:
        await services.db.dispose()
    now = services.clock()
    async with services.db.transaction() as session:
        await store.create_broadcast(session=session, key="announce:cli", kind="announcement", send_at=now,
                                     now=now, area_code=None, text="Xin chào")
    capsys.readouterr()
    assert await tinbao(deployment, "reminders", "calendar") == 0
    calendar = capsys.readouterr().out
    assert "Ngày hội toàn dân bảo vệ an ninh Tổ quốc" in calendar and "Ngày hội Đại đoàn kết toàn dân tộc" in calendar
    assert "reminders: " in calendar and "/08/" in calendar
    assert await tinbao(deployment, "reminders", "status") == 0
    status = capsys.readouterr()
    assert "announcement\teveryone" in status.out and "sent 0, failed 0, pending 1, unknown 0" in status.out
    assert "going out" in status.err  # the bar of a broadcast still going out
