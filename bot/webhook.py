"""Every channel served by webhook, on one aiohttp server per listening address: each channel adds its own
routes (and checks its own secret or signature); this module knows none of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger(__name__)


class WebhookChannel(Protocol):
    """What a channel served by webhook adds to the Channel protocol."""

    label: str  # for the log: "Telegram", "Zalo", "the Zalo OA"
    webhook_path: str

    def add_routes(self, app: web.Application, secret: str) -> None:
        """Its POST route (and any probe Zalo or Telegram makes) on ``app``."""

    async def drain(self, timeout: float = 30.0) -> None:
        """Let the events already taken finish."""


def header_bytes(request: web.Request, name: str) -> bytes | None:
    """A header's value exactly as the bytes that came (None if absent or sent twice).

    Compared as bytes, a header of any bytes at all is only ever a match or not: never a decoding error."""
    wanted = name.lower().encode()
    found = [value for key, value in request.raw_headers if key.lower() == wanted]
    return found[0] if len(found) == 1 else None


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it is over ``limit`` bytes (the rest is never read into memory)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_app(channel: WebhookChannel, secret: str = "") -> web.Application:
    """The web app for one channel alone."""
    app = web.Application()
    channel.add_routes(app, secret)
    return app


def public_url(base: str, path: str) -> str:
    url = base.rstrip("/")
    return url if url.endswith(path) else url + path


def _secret(section: Any) -> str:
    secret = getattr(section, "webhook_secret", None)
    return secret.get_secret_value() if secret is not None else ""


async def serve_webhooks(hooks: Iterable[tuple[WebhookChannel, Any]], *,
                         until_settled: Callable[[], Awaitable[Any]] | None = None,
                         extra_routes: Callable[[web.Application], None] | None = None) -> None:
    """Serve each given (channel, config section) by webhook until cancelled.

    Channels listening on the same host:port share one server; each keeps its own path and secret.
    Cancelled, it stops taking calls at once, then waits for ``until_settled`` (the answers under way;
    without it, each channel's drain) before it shuts the apps down."""
    hooks = list(hooks)
    apps: dict[str, web.Application] = {}
    for channel, section in hooks:
        channel.add_routes(apps.setdefault(section.webhook_listen, web.Application()), _secret(section))
    runners: list[web.AppRunner] = []
    try:
        for listen, app in apps.items():
            if extra_routes is not None:
                extra_routes(app)  # /healthz and /metrics (bot/health.py)
            host, _, port = listen.rpartition(":")
            runner = web.AppRunner(app, access_log=None)  # access logs would carry ids
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        # Only now that we listen: Zalo calls the address to check it when it is set.
        for channel, section in hooks:
            announce = getattr(channel, "announce", None)
            if announce is not None:
                await announce(public_url(section.webhook_url, channel.webhook_path), _secret(section))
                log.info("serving %s by webhook on %s", channel.label, section.webhook_listen)
            else:  # the Zalo OA's address is set by hand in the Zalo app's settings, not through the API
                log.info("serving %s by webhook on %s at %s", channel.label, section.webhook_listen,
                         channel.webhook_path)
        await asyncio.Event().wait()
    finally:
        # Stop taking calls first, connections kept alive included: Telegram and Zalo send them again
        # later (or to another worker). Then let the answers under way finish, and only then shut the
        # apps down: aiogram closes the bot's HTTP session when its app shuts down, under any reply still going.
        for runner in runners:
            for site in list(runner.sites):
                await site.stop()
            if runner.server is not None:
                # Idle connections close now; a call being read gets 5 s to be answered (a Zalo OA event
                # is stored within 1.5 s). The app itself (and aiogram's session) is left until cleanup().
                await runner.server.shutdown(5.0)
        if until_settled is not None:
            await until_settled()
        else:
            for channel, _section in hooks:
                drain = getattr(channel, "drain", None)
                if drain is not None:
                    await drain()  # answers already under way still reach the citizens
        for runner in runners:
            await runner.cleanup()
