"""/healthz and /metrics of a real `tinbao run` over real HTTP, and the refusal of a second process that
would long-poll the same bot from the same database (Telegram hands updates to one getUpdates consumer)."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections import Counter

import aiohttp
from aiohttp import web

from bot.channels.telegram import WEBHOOK_PATH
from bot.channels.zalo_bot import ZaloBotChannel, ZaloBotClient
from bot.health import Health
from handlers.context import Services
from storage.blobs import BlobStore
from storage.db import Database
from tests.fakes.zalo_bot_api import FakeZaloBot
from tests.support.fake_servers import fake_server
from tests.support.processes import Site
from tests.support.slow_telegram import SlowTelegram

CHAT = 5550101
WAIT = 60  # a bound for a hang on a busy machine, not a speed claim


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


fake = fake_server(SlowTelegram)


def polling_site(root, database_url: str, fake, *, health_port: int | None = None) -> Site:
    site = Site(root, database_url, extra=f'[telegram]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\n')
    if health_port is not None:
        text = site.config.read_text(encoding="utf-8")
        site.config.write_text(text.replace("[bot]\n", f'[bot]\nhealth_listen = "127.0.0.1:{health_port}"\n', 1),
                               encoding="utf-8")
    return site


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def until(check, *, what: str):
    async with asyncio.timeout(WAIT):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


def sample(metrics: str, name: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_polling_bot_reports_health_and_metrics_and_a_second_poller_is_refused(tmp_path, fake, db, database_url):
    # `db` empties the shared PostgreSQL database first: the keyring check value of an earlier test stays there.
    port = free_port()
    site = polling_site(tmp_path / "site", database_url, fake, health_port=port)
    await site.init()
    base = f"http://127.0.0.1:{port}"
    async with site.start("run") as bot:
        await bot.wait_for_line("serving Telegram by long polling", timeout=WAIT)

        async def polled():
            try:
                status, body = await get(f"{base}/healthz")
            except aiohttp.ClientError:
                return None  # the listener is not up yet
            return (status, body) if '"last_ok_seconds_ago": null' not in body else None
        status, body = await until(polled, what="a successful getUpdates reported")
        assert status == 200
        assert '"database": "ok"' in body and '"keyring": "loaded"' in body and '"telegram"' in body
        # Reported from the first getUpdates, which does not wait: not a whole long poll after the start.
        polls = [params for method, params in fake.calls if method == "getUpdates"]
        assert int(polls[0].get("timeout") or 0) == 0, polls[:2]

        before = len(fake.messages_to(CHAT))
        fake.send_text(CHAT, "/help", language_code="en")
        await fake.wait_for_messages(CHAT, before + 1, timeout=WAIT)
        status, metrics = await get(f"{base}/metrics")
        assert status == 200
        assert sample(metrics, 'tinbao_updates_total{channel="telegram",outcome="handled"}') == 1.0
        assert sample(metrics, 'tinbao_updates_total{channel="telegram",outcome="duplicate"}') == 0.0
        assert sample(metrics, 'tinbao_turn_seconds_count{channel="telegram"}') == 1.0
        assert sample(metrics, 'tinbao_outbox_messages{status="unknown"}') == 0.0
        assert sample(metrics, 'tinbao_replies_unknown_total') == 0.0  # the /help answer went out
        assert str(CHAT) not in metrics and fake.token not in metrics  # nothing personal, no secret

        # A second `tinbao run` on the same database, as a careless scale-up would start it.
        second = polling_site(tmp_path / "second", database_url, fake)
        shutil.copy2(site.keyring_path, second.keyring_path)  # mode 0600 too
        async with second.start("run") as other:
            assert await other.wait(timeout=WAIT) == 2
        refusal = [line for line in other.stderr_lines if "already served by long polling" in line]
        assert len(refusal) == 1 and refusal[0].startswith("tinbao: telegram: "), other.stderr
        assert "Traceback" not in other.stderr
        assert "did not end in time" not in other.stderr  # refused at once, not after the stop's whole grace
        assert bot.running  # the first one goes on serving
        fake.send_text(CHAT, "/help", language_code="en")
        await fake.wait_for_messages(CHAT, before + 2, timeout=WAIT)


async def test_healthz_says_503_when_the_database_does_not_answer(tmp_path, keyring, services):
    db = Database(f"postgresql://tinbao@127.0.0.1:{free_port()}/tinbao")  # nothing listens there
    health = Health(Services(db=db, keyring=keyring, blobs=BlobStore(tmp_path / "blobs"),
                             settings=services.settings))
    app = web.Application()
    health.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        status, body = await get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await runner.cleanup()
        await db.dispose()
    assert status == 503
    assert '"status": "failing"' in body and '"database": "unreachable' in body and '"keyring": "loaded"' in body



async def test_a_webhook_call_without_the_secret_is_counted_as_refused_and_a_good_one_as_seen(tmp_path, services):
    health = Health(services)
    # A stand-in for the Telegram channel: its outcome counter and the path its webhook route takes.
    health.watch("telegram", type("Channel", (), {"outcomes": Counter(), "webhook_path": WEBHOOK_PATH})())
    app = web.Application()
    health.add_routes(app)

    async def webhook(request: web.Request) -> web.Response:  # stands in for bot/webhook.py's route
        ok = request.headers.get("X-Telegram-Bot-Api-Secret-Token") == "right"
        return web.Response(status=200 if ok else 401)
    app.router.add_post(WEBHOOK_PATH, webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for secret in ("wrong", "wrong", "right"):
                async with http.post(f"{base}{WEBHOOK_PATH}", headers={"X-Telegram-Bot-Api-Secret-Token": secret}):
                    pass
        _, metrics = await get(f"{base}/metrics")
        _, body = await get(f"{base}/healthz")
    finally:
        await runner.cleanup()
    assert sample(metrics, 'tinbao_updates_total{channel="telegram",outcome="refused"}') == 2.0
    assert '"last_ok_seconds_ago": null' not in body and '"telegram"' in body


zalo_fake = fake_server(FakeZaloBot, name="zalo_fake")


async def test_zalo_polling_is_seen_from_a_first_short_poll_then_long_polls(zalo_fake, tipline, services):
    """An operator's /healthz sees Zalo answer within seconds of a start, not after a quiet 30 s long poll."""
    client = ZaloBotClient(zalo_fake.token, api_base=zalo_fake.base_url)
    channel = ZaloBotChannel(client=client, tipline=tipline)  # Zalo's own 30 s long poll, as `tinbao run` has it
    health = Health(services)
    health.watch("zalo", channel, client=client)
    task = asyncio.create_task(channel.run_polling())
    try:
        async with asyncio.timeout(10):  # under the 30 s a first long poll would hold, with room for a busy machine
            while "zalo" not in health.last_ok:
                await asyncio.sleep(0.05)
        zalo_fake.send_text("6ede9afa66b88fe6d6a9", "/start")
        await zalo_fake.wait_for_messages("6ede9afa66b88fe6d6a9", 1, timeout=WAIT)  # and it goes on serving
    finally:
        await channel.stop()
        await asyncio.wait_for(task, WAIT)
        await client.close()
    timeouts = [params.get("timeout") for method, params in zalo_fake.calls if method == "getUpdates"]
    assert timeouts[0] == "1" and set(timeouts[1:]) == {"30"}, timeouts
