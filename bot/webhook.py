"""Telegram by webhook: an aiohttp server that accepts only calls carrying our secret token."""

from __future__ import annotations

import asyncio
import logging

from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.channels.telegram import TelegramChannel

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/telegram/webhook"


def webhook_app(channel: TelegramChannel, secret: str) -> web.Application:
    """The web app; a call without the right X-Telegram-Bot-Api-Secret-Token header gets 401."""
    app = web.Application()
    SimpleRequestHandler(dispatcher=channel.dispatcher, bot=channel.bot, secret_token=secret).register(
        app, path=WEBHOOK_PATH)
    setup_application(app, channel.dispatcher, bot=channel.bot)
    return app


async def serve_webhook(channel: TelegramChannel, telegram) -> None:
    secret = telegram.webhook_secret.get_secret_value()
    host, _, port = telegram.webhook_listen.rpartition(":")
    runner = web.AppRunner(webhook_app(channel, secret), access_log=None)  # access logs would carry ids
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    url = telegram.webhook_url.rstrip("/")
    if not url.endswith(WEBHOOK_PATH):
        url += WEBHOOK_PATH
    await channel.set_commands()
    await channel.bot.set_webhook(url, secret_token=secret, allowed_updates=["message", "callback_query"])
    log.info("serving Telegram by webhook on %s", telegram.webhook_listen)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
