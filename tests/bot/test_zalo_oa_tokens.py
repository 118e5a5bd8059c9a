"""The Zalo OA's tokens: refreshed once across workers, a spent or refused refresh never sent again and the
admins told; `tinbao zalo-oa connect` and `tinbao run` end to end. Our real client against the fake OA."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import runtime
from bot.channels.zalo_oa.channel import WEBHOOK_PATH as ZALO_OA_WEBHOOK_PATH
from bot.channels.zalo_oa.channel import ZaloOAChannel
from bot.channels.zalo_oa.client import ZaloOAClient
from bot.channels.zalo_oa.connect import ConnectError, connect
from bot.channels.zalo_oa.tokens import TokenKeeper
from bot.config import ConfigError, load_config
from storage import zalo_oa as store
from storage.crypto import Keyring
from storage.db import Database
from tests.bot.test_zalo_oa import (USER, Collector, citizen, client, connected, deliveries,  # noqa: F401
                                    enrol, fake, make_client, oa, oa_settings)
from tests.fakes.zalo_oa_api import APP_ID, APP_SECRET, OA_ID, OA_SECRET, FakeZaloOA



# --- tokens --------------------------------------------------------------------------------------------

async def stored_pair(services) -> store.StoredTokens:
    async with services.db.transaction() as session:
        return await store.load_tokens(session=session, keyring=services.keyring, oa_id=OA_ID)


async def everything_in_the_database(services) -> bytes:
    """Every row of every table as bytes (and on SQLite the file and its WAL): for "not in clear" checks."""
    chunks: list[bytes] = []
    db = services.db
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            path = Path(db.engine.url.database)
            for file in (path, path.with_name(path.name + "-wal")):
                if file.exists():
                    chunks.append(file.read_bytes())
        else:
            tables = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"))).scalars().all()
            for table in tables:
                chunks += [str(r).encode() for r in (await conn.execute(text(f'SELECT t::text FROM "{table}" t'))).all()]
    return b"\n".join(chunks)


async def answered(channel, sending) -> None:
    """Send a citizen's event and wait until its turn has run to the end (the positive signal that it was
    handled, its reply tried), so what did not happen after it can be checked."""
    before = channel.outcomes["handled"]
    assert await sending  # the webhook took it: its task was started before Zalo got the 200
    await channel.drain()
    assert channel.outcomes["handled"] == before + 1


async def test_a_token_expiring_mid_conversation_is_refreshed_once_and_the_message_retried(
        fake, citizen, services, connected, caplog):
    old_access, old_refresh = connected
    assert "Bạn muốn báo tin về loại vụ việc nào?" in await citizen.say("/report")
    fake.expire_access_tokens()  # 25 hours later, in the middle of the tip-off
    assert "Hãy kể lại sự việc" in await citizen.tap("Ma túy")
    assert fake.refresh_calls == [old_refresh] and fake.reused_refresh == []
    assert ("/v3.0/oa/message/cs", -216) in fake.refused
    stored = await stored_pair(services)
    new_access, new_refresh = stored.access_token, stored.refresh_token
    assert stored.version == 2 and fake.access_tokens[new_access] and fake.refresh_tokens[new_refresh] == "live"
    assert stored.refresh_state == "ok" and citizen.channel.tokens.refreshes == 1
    # Sealed: neither pair is in the database in clear (nor in SQLite's file or WAL), nor in the log.
    dump = await everything_in_the_database(services)
    for token in (old_access, old_refresh, new_access, new_refresh):
        assert token.encode() not in dump and token not in caplog.text
    assert "Vui lòng" not in caplog.text and USER not in caplog.text
    # Refused again minutes after it was issued: not refreshed again (no refresh per message for a dead grant).
    fake.expire_access_tokens()
    await answered(citizen.channel, fake.send_text(USER, "/help"))
    assert "withdrawn the app's permission" in caplog.text and fake.refresh_calls == [old_refresh]


async def keeper_on_its_own_connection(fake, services, url: str) -> tuple[TokenKeeper, Database, ZaloOAClient]:
    """A second worker: its own database pool and HTTP session, the same database and OA."""
    database = Database(url)
    from handlers.context import Services
    other = Services(db=database, keyring=services.keyring, blobs=services.blobs, settings=services.settings)
    zalo = make_client(fake)
    return TokenKeeper(other, zalo, OA_ID), database, zalo


@pytest.mark.parametrize("workers", [2, 5])
async def test_workers_refreshing_at_once_spend_the_refresh_token_exactly_once(
        fake, services, connected, database_url, workers):
    fake.refresh_delay = 0.5  # the OAuth call is slow: every worker is waiting on the lock meanwhile
    keepers = [await keeper_on_its_own_connection(fake, services, database_url) for _ in range(workers)]
    try:
        tokens = await asyncio.wait_for(asyncio.gather(
            *(keeper.refresh(stale_version=1) for keeper, _db, _c in keepers)), 30)
    finally:
        for _keeper, database, zalo in keepers:
            await zalo.close()
            await database.dispose()
    assert fake.refresh_calls == [connected[1]] and fake.reused_refresh == []
    stored = await stored_pair(services)
    assert stored.version == 2 and set(tokens) == {stored.access_token}
    assert sum(keeper.refreshes for keeper, _db, _c in keepers) == 1


async def test_a_refresh_whose_answer_never_came_is_not_sent_again_and_the_admins_are_told(
        fake, client, services, tipline, connected, deliveries, caplog):
    console = Collector()
    deliveries.register("console", console)
    await enrol(services, tipline, "admin-ha", role="admin", unit="ca-hcm")
    slow = make_client(fake, oauth_timeout=0.3)
    channel = ZaloOAChannel(client=slow, tipline=tipline, settings=oa_settings(), deliveries=deliveries)
    fake.hang_after_spending = 1.0
    try:
        assert await channel.tokens.refresh(stale_version=1) is None
        assert await channel.tokens.refresh(stale_version=1) is None  # asked again: nothing is sent
    finally:
        await slow.close()
    assert fake.refresh_calls == [connected[1]]
    stored = await stored_pair(services)
    assert (stored.version, stored.refresh_state, stored.access_token) == (1, "unknown", connected[0])
    assert "tinbao zalo-oa connect" in console.texts("admin-ha")


async def test_a_failed_refresh_alerts_the_admins_and_keeps_the_old_pair(
        fake, citizen, services, tipline, connected, deliveries, caplog):
    console = Collector()
    deliveries.register("console", console)
    await enrol(services, tipline, "admin-ha", role="admin", unit="ca-hcm")
    await enrol(services, tipline, "officer-lan")  # not an admin: not told
    caplog.set_level(logging.INFO)
    fake.fail_next_refresh()  # HTTP 200, without an access_token
    fake.expire_access_tokens()
    await answered(citizen.channel, fake.send_text(USER, "/start"))
    assert fake.messages_to(USER) == []  # the reply could not go: the token is dead and was not replaced
    alert = console.texts("admin-ha")
    assert "Zalo OA" in alert and "-14014" in alert and "tinbao zalo-oa connect" in alert
    assert console.texts("officer-lan") == ""
    assert "Zalo OA token refresh failed" in caplog.text and "stored pair is kept" in caplog.text
    stored = await stored_pair(services)
    assert (stored.version, stored.access_token, stored.refresh_token) == (1, *connected)
    assert (stored.refresh_state, stored.failure) == ("failed", "-14014 Invalid refresh token")
    assert fake.refresh_calls == [connected[1]]
    # A second message within the hour does not hammer Zalo with the refused token.
    await answered(citizen.channel, fake.send_text(USER, "/help"))
    assert fake.refresh_calls == [connected[1]]
    for token in connected:
        assert token not in caplog.text and token not in alert


async def test_the_scheduled_refresh_runs_about_every_20_hours(fake, client, tipline, services, connected):
    channel = ZaloOAChannel(client=client, tipline=tipline, settings=oa_settings())
    assert await channel.tokens.refresh_if_due() is False and fake.refresh_calls == []
    start = services.clock()
    services.clock = lambda: start + timedelta(hours=20, minutes=1)
    assert await channel.tokens.refresh_if_due() is True
    assert await channel.tokens.refresh_if_due() is False  # just refreshed
    assert fake.refresh_calls == [connected[1]] and (await stored_pair(services)).version == 2


# --- `tinbao zalo-oa connect` and `tinbao run` ----------------------------------------------------------

AREAS = ('[[areas]]\ncode = "79"\nname = "Thành phố Hồ Chí Minh"\n[[areas]]\ncode = "79.26734"\n'
         'name = "Phường Bến Thành"\nparent = "79"\n')


def oa_config_file(tmp_path: Path, fake: FakeZaloOA, port: int) -> Path:
    Keyring.create(tmp_path / "keyring.json")
    path = tmp_path / "config.toml"
    path.write_text(
        '[bot]\ndata_dir = "data"\nkeyring = "keyring.json"\n'
        f'[zalo_oa]\napp_id = "{APP_ID}"\noa_id = "{OA_ID}"\nredirect_uri = "https://tin.example.vn/zalo-oa/granted"\n'
        f'api_base = "{fake.base_url}"\noauth_base = "{fake.base_url}"\n'
        f'webhook_listen = "127.0.0.1:{port}"\n[reminders]\nenabled = false\n' + AREAS, encoding="utf-8")
    return path


def _free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_connect_then_run_serves_the_oa(tmp_path, fake, monkeypatch, capsys, caplog):
    from bot import cli
    port = _free_port()
    path = oa_config_file(tmp_path, fake, port)
    monkeypatch.setenv("TINBAO_ZALO_OA_SECRET_KEY", OA_SECRET)
    monkeypatch.setenv("TINBAO_ZALO_OA_APP_SECRET", APP_SECRET)

    def paste(prompt: str) -> str:
        url = re.search(r"(http://\S+/v4/oa/permission\?\S+)", capsys.readouterr().out).group(1)
        code, state = fake.permission_code(url)
        return f"https://tin.example.vn/zalo-oa/granted?code={code}&oa_id={OA_ID}&state={state}"
    monkeypatch.setattr("builtins.input", paste)
    assert await asyncio.to_thread(cli.main, ["--config", str(path), "zalo-oa", "connect"]) == 0
    assert "Connected" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["--config", str(path), "zalo-oa", "status"]) == 0
    assert "version 1" in capsys.readouterr().out
    [issued] = [t for t, state in fake.refresh_tokens.items() if state == "live"]
    config = load_config(path)
    task = asyncio.create_task(runtime.run(config))
    try:
        fake.webhook_url = f"http://127.0.0.1:{port}{ZALO_OA_WEBHOOK_PATH}"
        async with asyncio.timeout(15):
            while True:
                try:
                    await fake.send_text(USER, "/start")
                    break
                except Exception:
                    await asyncio.sleep(0.1)  # the server is still starting
        [reply] = await fake.wait_for_messages(USER, 1, timeout=15)
        assert "113" in reply["text"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert issued not in caplog.text and OA_SECRET not in caplog.text


async def test_connect_refuses_a_grant_for_another_oa_or_attempt(tmp_path, fake, services, monkeypatch):
    path = oa_config_file(tmp_path, fake, 8080)
    section = load_config(path, environ={"TINBAO_ZALO_OA_SECRET_KEY": OA_SECRET,
                                         "TINBAO_ZALO_OA_APP_SECRET": APP_SECRET}).zalo_oa
    said: list[str] = []
    for answer, problem in (("https://x/?code=C&oa_id=999&state={state}", "the grant is for OA 999"),
                            ("https://x/?code=C&state=other", "another attempt"), ("", "no code")):
        def ask(prompt: str, answer=answer) -> str:
            state = re.search(r"state=([^&\s]+)", said[-1]).group(1)
            return answer.replace("{state}", state)
        with pytest.raises(ConnectError, match=problem):
            await connect(section, services, ask=ask, say=said.append)
    assert await stored_pair(services) is None


def test_an_oa_section_without_its_secret_names_the_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[zalo_oa]\napp_id = "{APP_ID}"\noa_id = "{OA_ID}"\n' + AREAS, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"zalo_oa\.secret_key: is required"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match=r"zalo_oa\.app_secret: is required") as caught:
        load_config(path, environ={"TINBAO_ZALO_OA_SECRET_KEY": OA_SECRET})
    assert OA_SECRET not in str(caught.value)
