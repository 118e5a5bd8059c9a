"""`tinbao areas import` and `tinbao init --province` as an operator runs them: real processes, real files."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from bot.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def tinbao(tmp_path: Path, *args: str, stdin: str = "", database_url: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")}
    if database_url:
        env["TINBAO_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(tmp_path / "config.toml"), *args],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)


def test_init_with_a_province_writes_its_official_areas_and_units_and_the_bot_starts(tmp_path, database_url):
    init = tinbao(tmp_path, "init", "--province", "79")
    assert init.returncode == 0, init.stderr
    assert "1 provinces and 168 communes/wards" in init.stdout
    config = load_config(tmp_path / "config.toml", environ={})
    areas = {a.code: a for a in config.areas}
    assert len(areas) == 169 and areas["79"].name == "Thành phố Hồ Chí Minh" and areas["79"].parent is None
    ben_thanh = next(a for a in config.areas if a.name == "Phường Bến Thành")
    assert ben_thanh.parent == "79" and len(ben_thanh.code) == 5
    assert not any(a.name == "Thành phố Hà Nội" for a in config.areas)  # the example's other city is gone
    units = {u.id: u for u in config.units}
    top = units["ca-ho-chi-minh"]
    assert top.name == "Công an Thành phố Hồ Chí Minh" and top.parent is None and top.areas == ["79"]
    ward_unit = units["ca-ben-thanh"]
    assert (ward_unit.name, ward_unit.parent, ward_unit.areas) == ("Công an phường Bến Thành", "ca-ho-chi-minh",
                                                                    [ben_thanh.code])
    assert len(units) == 169
    settings = config.tipline_settings()
    assert settings.units.route(ben_thanh.code) == "ca-ben-thanh"
    # The rest of the example survives: its comments and its other sections.
    text = (tmp_path / "config.toml").read_text("utf-8")
    assert "[reminders]" in text and "# Police units (đơn vị)" in text
    chat = tinbao(tmp_path, "chat", stdin="/start\nben thanh\n/quit\n", database_url=database_url
                  if database_url.startswith("postgresql") else None)
    assert chat.returncode == 0, chat.stderr
    assert "Tố giác tội phạm" in chat.stdout


def test_an_existing_areas_list_is_kept_unless_replace_is_asked(tmp_path):
    init = tinbao(tmp_path, "init")
    assert init.returncode == 0
    assert "its [[areas]] are an example: `tinbao areas import --province <code or name> --replace`" in init.stdout
    before = (tmp_path / "config.toml").read_bytes()
    refused = tinbao(tmp_path, "areas", "import", "--province", "Hà Nội")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "--replace" in refused.stderr
    assert "already has 15 [[areas]] entries" in refused.stderr
    assert (tmp_path / "config.toml").read_bytes() == before
    replaced = tinbao(tmp_path, "areas", "import", "--province", "ha noi", "--province", "01", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    config = load_config(tmp_path / "config.toml", environ={})
    assert {a.parent for a in config.areas} == {None, "01"} and len(config.areas) == 1 + 126
    assert next(u for u in config.units if u.id == "ca-hoan-kiem").name == "Công an phường Hoàn Kiếm"


def test_a_province_nobody_knows_gets_one_line_and_changes_nothing(tmp_path):
    assert tinbao(tmp_path, "init").returncode == 0
    before = (tmp_path / "config.toml").read_bytes()
    result = tinbao(tmp_path, "areas", "import", "--province", "Sài Gòn Gia Định Xưa", "--replace")
    assert result.returncode == 2 and "no such province" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "config.toml").read_bytes() == before


def test_the_whole_country_to_a_file_is_valid_toml_with_unique_unit_ids(tmp_path):
    result = tinbao(tmp_path, "areas", "import", "--all", "--output", str(tmp_path / "areas.toml"))
    assert result.returncode == 0, result.stderr
    assert "34 provinces and 3321 communes/wards" in result.stderr
    data = tomllib.loads((tmp_path / "areas.toml").read_text("utf-8"))
    assert len(data["areas"]) == 34 + 3321 and len(data["units"]) == 34 + 3321
    ids = [u["id"] for u in data["units"]]
    assert len(set(ids)) == len(ids) and all(len(i) <= 32 for i in ids)
    stdout = tinbao(tmp_path, "areas", "import", "--province", "Lào Cai", "--output", "-")
    assert stdout.returncode == 0 and 'name = "Công an tỉnh Lào Cai"' in stdout.stdout
    assert tomllib.loads(stdout.stdout)["areas"][0] == {"code": "15", "name": "Tỉnh Lào Cai"}


async def test_a_fresh_init_with_a_province_serves_telegram_and_a_pin_finds_its_official_ward(
        tmp_path, database_url, db):  # db empties PostgreSQL: it would refuse a keyring not its own
    import signal

    from tests.fakes.telegram_api import FakeTelegram
    from tests.support.processes import TinbaoProcess, child_environment
    init = tinbao(tmp_path, "init", "--province", "Hồ Chí Minh")
    assert init.returncode == 0, init.stderr
    config = tmp_path / "config.toml"
    fake = FakeTelegram()
    await fake.start()
    # What an operator edits by hand: where Telegram is (here the fake Bot API); the token and database by env.
    config.write_text(config.read_text("utf-8").replace('api_base = "https://api.telegram.org"',
                                                        f'api_base = "{fake.base_url}"', 1), encoding="utf-8")
    env = child_environment(TINBAO_TELEGRAM_TOKEN=fake.token, TINBAO_DATABASE_URL=database_url)
    bot = await TinbaoProcess.start("run", config=config, env=env)
    try:
        await bot.wait_for_line("serving Telegram by long polling")
        chat = 5550077

        async def said(**sent) -> dict:
            before = len(fake.messages_to(chat))
            if "location" in sent:
                fake.send_location(chat, *sent["location"], language_code="en")
            elif "button" in sent:
                message = [m for m in fake.messages_to(chat) if fake.buttons(m)][-1]
                fake.click(chat, next(d for t, d in fake.buttons(message) if sent["button"] in t),
                           message_id=message["message_id"], language_code="en")
            else:
                fake.send_text(chat, sent["text"], language_code="en")
            return (await fake.wait_for_messages(chat, before + 1, timeout=60))[-1]
        await said(text="/report")
        await said(button="Theft")
        await said(text="Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
        question = await said(button="Today")
        assert question["reply_markup"]["keyboard"][0][0]["request_location"] is True
        message = await said(location=(10.7915, 106.6953))  # Đền Trần Hưng Đạo, in Phường Tân Định
        assert message["text"].startswith("Is this location in Phường Tân Định, TP. Hồ Chí Minh?")
        message = await said(button="Phường Tân Định")
        assert "people or vehicles" in message["text"]
        bot.send_signal(signal.SIGTERM)
        assert await bot.wait() == 0, bot.stderr
    finally:
        await bot.close()
        await fake.close()
