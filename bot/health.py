"""/healthz and /metrics: on the webhook listener, and in polling mode on a listener of their own
(`[bot] health_listen`). /healthz answers 200 while the database answers and the keyring is loaded, else
503, and says when each channel last polled or took a webhook call successfully."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from typing import Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import GetUpdates
from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics
from handlers.context import Services
from storage.service_state import database_answers

log = logging.getLogger(__name__)
# The OA channel counts its own refusals.
COUNTS_OWN_REFUSALS = {"zalo_oa"}


class _PollWatch(BaseRequestMiddleware):
    """Notes each getUpdates Telegram answered, whatever it held."""

    def __init__(self, health: Health, channel: str) -> None:
        self.health, self.channel = health, channel

    async def __call__(self, make_request, bot, method):
        result = await make_request(bot, method)
        if isinstance(method, GetUpdates):
            self.health.seen(self.channel)
        return result


class Health:
    """What one `tinbao run` tells its orchestrator and its Prometheus."""

    def __init__(self, services: Services, *, clock=time.time) -> None:
        self.services, self.clock = services, clock
        self.metrics = Metrics(services)
        self.channels: list[str] = []
        self.last_ok: dict[str, float] = {}
        self.webhook_paths: dict[str, str] = {}  # each watched channel's webhook path -> its name

    def seen(self, channel: str) -> None:
        self.last_ok[channel] = self.clock()

    def watch(self, name: str, channel: Any, *, bot: Any = None, client: Any = None) -> None:
        """Report this channel: its outcome counter, and each successful poll (aiogram's bot, or a Zalo
        client's get_updates)."""
        self.channels.append(name)
        self.metrics.count(name, channel.outcomes)
        if getattr(channel, "webhook_path", None):
            self.webhook_paths[channel.webhook_path] = name
        if bot is not None:
            bot.session.middleware(_PollWatch(self, name))
        if client is not None:
            get_updates = client.get_updates

            @functools.wraps(get_updates)
            async def watched(*args, **kwargs):
                events = await get_updates(*args, **kwargs)
                self.seen(name)
                return events
            client.get_updates = watched

    # --- HTTP -----------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """/healthz and /metrics on this app, and the webhook calls it takes watched."""
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.middlewares.append(self._watch_webhooks)

    @web.middleware
    async def _watch_webhooks(self, request: web.Request, handler):
        response = await handler(request)
        channel = self.webhook_paths.get(request.path)
        if channel is not None and request.method == "POST":
            if response.status == 200:
                self.seen(channel)
            elif response.status == 401 and channel not in COUNTS_OWN_REFUSALS:
                self.metrics.refuse(channel)
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            async with self.services.db.transaction() as session:
                database = "ok" if await database_answers(session=session) else "unreachable"
        except Exception as exc:  # noqa: BLE001  (the probe says what failed, never crashes)
            database = f"unreachable ({type(exc).__name__})"
        keyring = "loaded" if self.services.keyring.active_id else "missing"
        now = self.clock()
        channels = {name: {"last_ok_seconds_ago": round(now - self.last_ok[name], 1) if name in self.last_ok
                           else None} for name in self.channels}
        healthy = database == "ok" and keyring == "loaded"
        body = {"status": "ok" if healthy else "failing", "database": database, "keyring": keyring,
                "channels": channels}
        return web.Response(status=200 if healthy else 503, text=json.dumps(body), content_type="application/json")

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def serve(self, listen: str) -> None:
        """A listener of its own for /healthz and /metrics (polling mode has no webhook listener)."""
        app = web.Application()
        self.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = listen.rpartition(":")
        try:
            await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
            log.info("serving /healthz and /metrics on %s", listen)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

