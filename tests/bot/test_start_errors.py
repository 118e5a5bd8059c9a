"""What an operator sees when `tinbao` cannot start as asked, run as a real process: a token the platform
refuses, a platform or a database out of reach. One line naming the key or variable to fix (plus one
line per new attempt where trying again makes sense), never a traceback, a URL, a token or a password."""

from __future__ import annotations

import os
import re
import signal
import socket

import pytest
from sqlalchemy.engine import make_url

from tests.fakes.telegram_api import ApiError, FakeTelegram
from tests.fakes.zalo_bot_api import FakeZaloBot
from tests.support.processes import Site, child_environment

WAIT = 60  # a bound for a hang, not a speed claim
PASSWORD = "Canary-Pw-31337"
PG_URL = os.environ.get("TINBAO_TEST_DATABASE_URL")


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RefusingTelegram(FakeTelegram):
    """Telegram answers 404 Not Found, not 401, for a token of the wrong shape."""

    async def _handle_api(self, request):
        if request.match_info["token"] != self.token:
            return ApiError(404, "Not Found").response()
        return await super()._handle_api(request)


@pytest.fixture
async def telegram():
    server = FakeTelegram()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def zalo():
    server = FakeZaloBot()
    await server.start()
    yield server
    await server.close()


def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/site/data/tinbao.db"


def assert_no_leak(text: str, *secrets: str) -> None:
    assert "Traceback" not in text and "http" not in text, text
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("server", [FakeTelegram, RefusingTelegram], ids=["401", "404"])
async def test_a_refused_telegram_token_is_one_line_naming_the_variable(tmp_path, server):
    fake = server()
    await fake.start()
    try:
        site = Site(tmp_path / "site", sqlite_url(tmp_path), extra=f'[telegram]\napi_base = "{fake.base_url}"\n')
        await site.init()
        async with site.start("run", env=child_environment(TINBAO_TELEGRAM_TOKEN="123:abc")) as bot:
            code = await bot.wait(timeout=WAIT)
    finally:
        await fake.close()
    assert code == 2
    status = "401 Unauthorized" if server is FakeTelegram else "404 Not Found"
    [line] = bot.stderr_lines
    assert line.startswith(f"tinbao: telegram.token: Telegram refused it ({status}); check TINBAO_TELEGRAM_TOKEN")
    assert_no_leak(bot.stderr, "123:abc")
    assert not (site.root / "data" / "tinbao.db").exists(), "nothing is written before the token is known good"


async def test_a_refused_zalo_token_is_one_line_naming_the_variable(tmp_path, zalo):
    site = Site(tmp_path / "site", sqlite_url(tmp_path), extra=f'[zalo_bot]\napi_base = "{zalo.base_url}"\n')
    await site.init()
    async with site.start("run", env=child_environment(TINBAO_ZALO_BOT_TOKEN="999:not-the-token")) as bot:
        code = await bot.wait(timeout=WAIT)
    assert code == 2
    [line] = bot.stderr_lines
    assert line.startswith("tinbao: zalo_bot.token: Zalo refused it (401 Unauthorized); check TINBAO_ZALO_BOT_TOKEN")
    assert_no_leak(bot.stderr, "not-the-token")


async def test_telegram_out_of_reach_is_tried_again_while_zalo_serves(tmp_path, zalo):
    token = "123456:TEST-token-abcdef"
    site = Site(tmp_path / "site", sqlite_url(tmp_path), extra=(
        f'[telegram]\ntoken = "{token}"\napi_base = "http://127.0.0.1:{closed_port()}"\n\n'
        f'[zalo_bot]\ntoken = "{zalo.token}"\napi_base = "{zalo.base_url}"\n'))
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Zalo by long polling")
        zalo.send_text("chat-1", "/start")
        [welcome] = await zalo.wait_for_messages("chat-1", 1, timeout=WAIT)  # Zalo does not wait for Telegram
        assert "113" in welcome["text"]
        await bot.wait_for_line("trying again in 4 s")
        bot.send_signal(signal.SIGTERM)
        code = await bot.wait(timeout=WAIT)
    assert code == 0, bot.stderr
    tries = [line for line in bot.stderr_lines if "Telegram cannot be reached" in line]
    assert [re.search(r"trying again in (\d+) s", line).group(1) for line in tries][:3] == ["1", "2", "4"]
    assert all(line.endswith(f"Telegram cannot be reached (network error (ClientConnectorError)); trying again "
                             f"in {wait} s") for line, wait in zip(tries, ["1", "2", "4"]))
    assert "serving Telegram" not in bot.stderr and bot.stderr_lines[-1].endswith("stopped cleanly")
    assert_no_leak(bot.stderr, token, zalo.token)


async def test_the_database_out_of_reach_is_tried_for_a_while_then_one_line_and_exit_2(tmp_path, telegram):
    port = closed_port()
    site = Site(tmp_path / "site", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/tinbao",
                extra=f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n')
    await site.init()
    async with site.start("run", "--wait-for-database", "3") as bot:
        code = await bot.wait(timeout=WAIT)
    assert code == 2
    *tries, last = bot.stderr_lines
    where = f"the database tinbao at 127.0.0.1:{port}"
    assert tries and all(line.split(" ", 2)[2].startswith(
        f"WARNING bot.startup: database.url / TINBAO_DATABASE_URL: {where} cannot be reached (connection "
        f"refused); trying again in ") for line in tries), bot.stderr
    assert last == (f"tinbao: database.url / TINBAO_DATABASE_URL: {where} could not be reached for 3 s "
                    f"(connection refused)")
    assert_no_leak(bot.stderr, PASSWORD, telegram.token)


async def test_a_stop_while_waiting_for_the_database_is_a_clean_exit(tmp_path, telegram):
    site = Site(tmp_path / "site", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/tinbao",
                extra=f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n')
    await site.init()
    async with site.start("run") as bot:
        await bot.wait_for_line("cannot be reached (connection refused); trying again in 1 s")
        bot.send_signal(signal.SIGINT)
        code = await bot.wait(timeout=WAIT)
    assert code == 0, bot.stderr
    assert bot.stderr_lines[-2].endswith("SIGINT received: stopping; the answers under way get up to 10 s")
    assert bot.stderr_lines[-1].endswith("stopped cleanly")
    assert_no_leak(bot.stderr, PASSWORD, telegram.token)


@pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server (TINBAO_TEST_DATABASE_URL)")
async def test_a_database_that_does_not_exist_is_one_line_at_once(tmp_path, telegram):
    missing = make_url(PG_URL).set(database="tinbao_no_such_database", password=PASSWORD)
    site = Site(tmp_path / "site", missing.render_as_string(hide_password=False),
                extra=f'[telegram]\ntoken = "{telegram.token}"\napi_base = "{telegram.base_url}"\n')
    await site.init()
    async with site.start("run") as bot:
        code = await bot.wait(timeout=WAIT)
    assert code == 2
    [line] = bot.stderr_lines
    assert line == (f"tinbao: database.url / TINBAO_DATABASE_URL: the database tinbao_no_such_database at "
                    f"{missing.host}:{missing.port or 5432} cannot be used: database \"tinbao_no_such_database\" "
                    f"does not exist")
    assert_no_leak(bot.stderr, PASSWORD)


COMMANDS = {
    "db upgrade": ["db", "upgrade"],
    "officers list": ["officers", "list"],
    "keys status": ["keys", "status"],
    "keys rotate": ["keys", "rotate"],
    "report": ["report", "--from", "01/01/2026", "--to", "30/06/2026", "--unit", "ca-hcm"],
    "purge": ["purge"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
async def test_every_command_with_the_database_out_of_reach_is_one_line_and_exit_2(tmp_path, command):
    port = closed_port()
    site = Site(tmp_path / "site", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/tinbao")
    await site.init()
    keyring_before = site.keyring_path.read_bytes()
    async with site.start(*command) as cli:
        code = await cli.wait(timeout=WAIT)
    assert code == 2
    assert cli.stderr_lines == [f"tinbao: database.url / TINBAO_DATABASE_URL: the database tinbao at 127.0.0.1:{port} "
                                f"could not be reached (connection refused)"]
    assert cli.stdout == ""
    assert site.keyring_path.read_bytes() == keyring_before  # `keys rotate` added no key it could not use
    assert_no_leak(cli.stderr, PASSWORD)
