"""Starts what `tinbao run` and `tinbao chat` need: schema, keyring, storage, the tip line."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.config import Config, ConfigError
from handlers import tipoff
from handlers.context import Services
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database
from storage.migrate import upgrade

log = logging.getLogger(__name__)
DRAFT_SWEEP_SECONDS = 600


async def open_services(config: Config) -> Services:
    """Keyring first (a wrong one stops us before anything is written), then the schema."""
    keyring = Keyring.load(config.bot.keyring)
    settings = config.tipline_settings()
    url = config.database_url()
    await upgrade(url)
    config.bot.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Services(db=Database(url), keyring=keyring, blobs=BlobStore(config.bot.data_dir / "blobs"),
                    settings=settings)


async def sweep_stale_drafts(services: Services, *, every: float = DRAFT_SWEEP_SECONDS) -> None:
    """Half-written tips left alone longer than the configured time are wiped, files included."""
    while True:
        try:
            wiped = await tipoff.wipe_stale_drafts(services)
            if wiped:
                log.info("wiped %d stale drafts", wiped)
        except Exception:
            log.exception("stale-draft sweep failed; retrying later")
        await asyncio.sleep(every)


async def run(config: Config, *, webhook: bool | None = None) -> None:
    """Serve Telegram by long polling (default) or by webhook, until interrupted."""
    from bot.channels.telegram import TelegramChannel, make_bot
    from handlers.tipline import TipLine

    token = config.telegram.token.get_secret_value()
    if not token:
        raise ConfigError("telegram.token: empty; set TINBAO_TELEGRAM_TOKEN (or try the bot with `tinbao chat`)")
    services = await open_services(config)
    channel = TelegramChannel(bot=make_bot(token, config.telegram.api_base), tipline=TipLine(services))
    sweeper = asyncio.create_task(sweep_stale_drafts(services))
    use_webhook = config.telegram.mode == "webhook" if webhook is None else webhook
    try:
        if use_webhook:
            from bot.webhook import serve_webhook
            await serve_webhook(channel, config.telegram)
        else:
            log.info("serving Telegram by long polling")
            await channel.run_polling()
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await channel.bot.session.close()
        await services.db.dispose()
