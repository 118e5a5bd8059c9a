"""Telegram, Zalo and the Zalo OA by webhook: an aiohttp server that accepts only calls carrying the channel's
secret (the OA: its signature)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.channels.telegram import UNDECODABLE, TelegramChannel
from bot.channels.zalo_bot import ZaloBotChannel
from bot.channels.zalo_oa import SIGNATURE_HEADER as ZALO_OA_SIGNATURE_HEADER
from bot.channels.zalo_oa import TIMESTAMP_HEADER as ZALO_OA_TIMESTAMP_HEADER
from bot.channels.zalo_oa import ZaloOAChannel

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/telegram/webhook"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TELEGRAM_MAX_BODY = 1024 * 1024  # an update is a few kilobytes; files come as ids, not bytes
ZALO_WEBHOOK_PATH = "/zalo/webhook"
ZALO_SECRET_HEADER = "X-Bot-Api-Secret-Token"
ZALO_OA_WEBHOOK_PATH = "/zalo-oa/webhook"
ZALO_OA_MAX_BODY = 256 * 1024  # an event is a few hundred bytes; attachments come as URLs


def add_telegram_route(app: web.Application, channel: TelegramChannel, secret: str) -> None:
    """POST /telegram/webhook: a call without the right X-Telegram-Bot-Api-Secret-Token header gets 401 and
    nothing else happens. A good call's update is decoded on its own and handled before Telegram gets its
    200; one that cannot be read or decoded is counted and answered 200 too (Telegram would only send it
    again, holding up the updates behind it)."""
    if not secret:  # without it any call would be taken: forged updates in any citizen's name
        raise ValueError("a Telegram webhook needs its secret token")
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        if not hmac.compare_digest(_header_bytes(request, TELEGRAM_SECRET_HEADER) or b"", expected):
            return web.Response(status=401)  # constant time, above: the secret is not guessed byte by byte
        raw = await _read_capped(request, TELEGRAM_MAX_BODY)
        try:
            if raw is None:
                raise ValueError("too large")
            update = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than Python goes
            channel.outcomes[UNDECODABLE] += 1
            log.warning("a Telegram webhook call was skipped: its body is %s",
                        "too large" if raw is None else "not UTF-8" if isinstance(exc, UnicodeDecodeError)
                        else "not JSON")
            return web.Response(status=200)
        await channel.process(update)
        return web.Response(status=200)

    app.router.add_post(WEBHOOK_PATH, receive)


def webhook_app(channel: TelegramChannel, secret: str) -> web.Application:
    """The web app for Telegram alone."""
    app = web.Application()
    add_telegram_route(app, channel, secret)
    return app


ZALO_MAX_BODY = ZALO_OA_MAX_BODY


def _header_bytes(request: web.Request, name: str) -> bytes | None:
    """A header's value exactly as the bytes that came (None if absent or sent twice).

    Compared as bytes, a header of any bytes at all is only ever a match or not: never a decoding error."""
    wanted = name.lower().encode()
    found = [value for key, value in request.raw_headers if key.lower() == wanted]
    return found[0] if len(found) == 1 else None


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
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


def add_zalo_route(app: web.Application, channel: ZaloBotChannel, secret: str) -> None:
    """POST /zalo/webhook: a call without the right X-Bot-Api-Secret-Token header gets 401, and
    nothing else happens (its body is not even read). A good call is answered 200 at once and each
    event in it handled in its own task, so Zalo never waits for our database or its own sendMessage.
    A body that cannot be read (not JSON, not an event, over ZALO_MAX_BODY) still gets 200 and is
    counted: Zalo would only send the same bytes again, and nothing in them can be answered."""
    if not secret:
        raise ValueError("a Zalo webhook needs its secret token")
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = _header_bytes(request, ZALO_SECRET_HEADER)
        # Constant time: the secret is not guessed byte by byte.
        if given is None or not hmac.compare_digest(given, expected):
            return web.Response(status=401)
        raw = await _read_capped(request, ZALO_MAX_BODY)
        if raw is None:
            channel.skip(f"webhook body over {ZALO_MAX_BODY // 1024} KiB")
        else:
            channel.receive(raw)  # each event on its own: one that cannot be read does not stop the others
        return web.json_response({"ok": True})

    app.router.add_post(ZALO_WEBHOOK_PATH, receive)


def zalo_webhook_app(channel: ZaloBotChannel, secret: str) -> web.Application:
    """The web app for Zalo alone."""
    app = web.Application()
    add_zalo_route(app, channel, secret)
    return app


def add_zalo_oa_route(app: web.Application, channel: ZaloOAChannel) -> None:
    """POST /zalo-oa/webhook: X-ZEvent-Signature is checked over the raw bytes; a bad or missing one gets
    401 and nothing else happens (bodies over ZALO_OA_MAX_BODY get 413: their signature is not worth
    checking). A good event is stored before Zalo gets its 200 (within Zalo's 2 seconds) and handled after;
    a signed one that cannot be read gets 200 too, and is counted, so Zalo stops sending it. Zalo's unsigned
    ``{}`` check, when the URL is saved, gets 200."""

    async def receive(request: web.Request) -> web.Response:
        raw = await _read_capped(request, ZALO_OA_MAX_BODY)
        if raw is None:
            channel.refuse(f"body over {ZALO_OA_MAX_BODY // 1024} KiB")
            return web.Response(status=413)
        # The raw bytes: the signature covers them, not re-serialised JSON; the headers as bytes too.
        status = await channel.receive(raw, _header_bytes(request, ZALO_OA_SIGNATURE_HEADER),
                                       _header_bytes(request, ZALO_OA_TIMESTAMP_HEADER))
        return web.json_response({"error": 0}) if status == 200 else web.Response(status=status)

    async def probe(request: web.Request) -> web.Response:
        return web.Response(status=200)  # a GET carries no event: nothing happens

    app.router.add_post(ZALO_OA_WEBHOOK_PATH, receive)
    app.router.add_get(ZALO_OA_WEBHOOK_PATH, probe)


def zalo_oa_webhook_app(channel: ZaloOAChannel) -> web.Application:
    """The web app for the Zalo OA alone."""
    app = web.Application()
    add_zalo_oa_route(app, channel)
    return app


def _public_url(base: str, path: str) -> str:
    url = base.rstrip("/")
    return url if url.endswith(path) else url + path


async def serve_webhooks(*, telegram: tuple[TelegramChannel, Any] | None = None,
                         zalo: tuple[ZaloBotChannel, Any] | None = None,
                         zalo_oa: tuple[ZaloOAChannel, Any] | None = None,
                         until_settled: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Serve each given (channel, config section) by webhook until cancelled.

    Channels listening on the same host:port share one server; each keeps its own path and secret.
    Cancelled, it stops taking calls at once, then waits for ``until_settled`` (the answers under way;
    without it, the Zalo channels' drain) before it shuts the apps down."""
    apps: dict[str, web.Application] = {}
    if telegram:
        channel, section = telegram
        add_telegram_route(apps.setdefault(section.webhook_listen, web.Application()), channel,
                           section.webhook_secret.get_secret_value())
    if zalo:
        channel, section = zalo
        add_zalo_route(apps.setdefault(section.webhook_listen, web.Application()), channel,
                       section.webhook_secret.get_secret_value())
    if zalo_oa:
        # The OA's webhook address is set by hand in the Zalo app's settings, not through the API.
        channel, section = zalo_oa
        add_zalo_oa_route(apps.setdefault(section.webhook_listen, web.Application()), channel)
    runners: list[web.AppRunner] = []
    try:
        for listen, app in apps.items():
            host, _, port = listen.rpartition(":")
            runner = web.AppRunner(app, access_log=None)  # access logs would carry ids
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        # Only now that we listen: Zalo calls the address to check it when it is set.
        if telegram:
            channel, section = telegram
            await channel.set_commands()
            await channel.bot.set_webhook(_public_url(section.webhook_url, WEBHOOK_PATH),
                                          secret_token=section.webhook_secret.get_secret_value(),
                                          allowed_updates=["message", "callback_query"])
            log.info("serving Telegram by webhook on %s", section.webhook_listen)
        if zalo:
            channel, section = zalo
            await channel.start_webhook(_public_url(section.webhook_url, ZALO_WEBHOOK_PATH),
                                        section.webhook_secret.get_secret_value())
            log.info("serving Zalo by webhook on %s", section.webhook_listen)
        if zalo_oa:
            log.info("serving the Zalo OA by webhook on %s at %s", zalo_oa[1].webhook_listen, ZALO_OA_WEBHOOK_PATH)
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
            if zalo:
                await zalo[0].drain()  # answers already under way still reach the citizens
            if zalo_oa:
                await zalo_oa[0].drain()
        for runner in runners:
            await runner.cleanup()


async def serve_webhook(channel: TelegramChannel, telegram) -> None:
    """Telegram alone by webhook (kept for callers of the first version)."""
    await serve_webhooks(telegram=(channel, telegram))
