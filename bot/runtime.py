"""Starts what `tinbao run` and `tinbao chat` need: schema, keyring, storage, the tip line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.config import Config, ConfigError
from bot.logs import RedactSecrets, install_log_hygiene
from handlers import maintenance, tipoff
from handlers.context import Services
from handlers.messages import Route
from storage.audit import AuditAnchor
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database
from storage.migrate import upgrade

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 600
AUDIT_ANCHOR_FILE = "audit-anchor.json"  # in the data directory, outside the database like the keyring
PURGE_EVERY = timedelta(days=1)


async def open_services(config: Config) -> Services:
    """Keyring first (a wrong one stops us before anything is written), then the schema."""
    keyring = Keyring.load(config.bot.keyring)
    settings = config.tipline_settings()
    url = config.database_url()
    config.bot.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # before the schema: SQLite lives there
    await upgrade(url)
    services = Services(db=Database(url), keyring=keyring, blobs=BlobStore(config.bot.data_dir / "blobs"),
                        settings=settings, audit_anchor=AuditAnchor(config.bot.data_dir / AUDIT_ANCHOR_FILE))
    return services


async def housekeeping(services: Services, deliveries, *, every: float = HOUSEKEEPING_SECONDS) -> None:
    """On a timer: wipe stale drafts, remind officers of tips waiting too long, once a day purge tips
    judged not valuable past the retention period and delete evidence files no tip points to, then
    record the audit log's head outside the database. A failed round is retried next time."""
    last_purge = None
    while True:
        try:
            wiped = await tipoff.wipe_stale_drafts(services)
            if wiped:
                log.info("wiped %d stale drafts", wiped)
            await deliveries.send(await maintenance.remind_officers(services), origin=Route("system", "-"))
            now = services.clock()
            if last_purge is None or now - last_purge >= PURGE_EVERY:
                await maintenance.purge_not_valuable(services, now=now)
                await maintenance.sweep_stray_files(services, now=now)
                last_purge = now
            await maintenance.anchor_audit(services)  # last: the purge above is audited too
        except Exception:
            log.exception("housekeeping round failed; retrying later")
        await asyncio.sleep(every)


def _redact_in_logs(*secrets: str) -> None:
    """Add secrets to the redaction set up by `setup_logging` (the CLI registers Telegram's only)."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactSecrets):
                found.secrets.extend(s for s in secrets if s and s not in found.secrets)


def _by_webhook(section, key: str, forced: bool | None) -> bool:
    """The section's mode, unless --webhook forces it; a forced webhook still needs its secret and URL."""
    if not (forced if forced is not None else section.mode == "webhook"):
        return False
    if not section.webhook_secret.get_secret_value():
        # Without it anyone who finds the URL could post forged messages in any citizen's name.
        raise ConfigError(f"{key}.webhook_secret: required to serve by webhook (16–256 characters of "
                          f"A-Z a-z 0-9 _ -)")
    if not section.webhook_url.startswith("https://"):
        raise ConfigError(f"{key}.webhook_url: serving by webhook needs the public https:// address")
    return True


async def run(config: Config, *, webhook: bool | None = None) -> None:
    """Serve every messenger that has a token, Telegram and Zalo at once if both have one, each by
    long polling or by webhook as configured (``webhook=True``: every one by webhook), until interrupted."""
    from bot.channels.telegram import TelegramChannel, make_bot
    from bot.channels.zalo_bot import ZaloBotChannel, ZaloBotClient
    from bot.delivery import Deliveries
    from bot.webhook import serve_webhooks
    from handlers.tipline import TipLine

    install_log_hygiene(asyncio.get_running_loop())
    telegram_token = config.telegram.token.get_secret_value()
    zalo_token = config.zalo_bot.token.get_secret_value()
    oa_section = config.zalo_oa
    if not telegram_token and not zalo_token and not oa_section.configured:
        raise ConfigError("telegram.token and zalo_bot.token are both empty: set TINBAO_TELEGRAM_TOKEN and/or "
                          "TINBAO_ZALO_BOT_TOKEN, or set up [zalo_oa] (or try the bot with `tinbao chat`)")
    _redact_in_logs(zalo_token, config.zalo_bot.webhook_secret.get_secret_value(),
                    oa_section.secret_key.get_secret_value(), oa_section.app_secret.get_secret_value())
    telegram_hook = bool(telegram_token) and _by_webhook(config.telegram, "telegram", webhook)
    zalo_hook = bool(zalo_token) and _by_webhook(config.zalo_bot, "zalo_bot", webhook)
    services = await open_services(config)
    tipline = TipLine(services)  # one for both: a chat's key carries its channel ("tg:", "zl:")
    deliveries = Deliveries()  # one for both: a verdict written on Telegram reaches a tipster on Zalo
    telegram = zalo = zalo_oa = None
    jobs: list[Callable[[], Awaitable[None]]] = [functools.partial(housekeeping, services, deliveries)]
    hooks: dict = {}
    try:
        if telegram_token:
            telegram = TelegramChannel(bot=make_bot(telegram_token, config.telegram.api_base), tipline=tipline,
                                       deliveries=deliveries)
            if telegram_hook:
                hooks["telegram"] = (telegram, config.telegram)
            else:
                log.info("serving Telegram by long polling")
                jobs.append(telegram.run_polling)
        if zalo_token:
            zalo = ZaloBotChannel(client=ZaloBotClient(zalo_token, api_base=config.zalo_bot.api_base),
                                  tipline=tipline, deliveries=deliveries)
            await _check_zalo_token(zalo.client)
            if zalo_hook:
                hooks["zalo"] = (zalo, config.zalo_bot)
            else:
                log.info("serving Zalo by long polling")
                jobs.append(zalo.run_polling)
        if oa_section.configured:
            from bot.channels.zalo_oa import channel_from_config
            # Webhook only (Zalo OA has no polling); events are checked by signature, not by a path secret.
            zalo_oa = channel_from_config(oa_section, tipline=tipline, deliveries=deliveries)
            hooks["zalo_oa"] = (zalo_oa, oa_section)
            jobs.append(zalo_oa.maintain)  # leftover events, the token refresh about every 20 h, purges
        if hooks:
            jobs.append(functools.partial(serve_webhooks, **hooks))
        if config.reminders.enabled:
            from bot.reminders import reminder_senders, run_reminders
            senders = reminder_senders(telegram=telegram, zalo=zalo)
            if zalo_oa is not None:
                senders["zalo_oa"] = zalo_oa.send_reminder  # its 7-day window: refused as "outside_window"
            jobs.append(functools.partial(run_reminders, services, services.settings.reminders, senders))
        await _until_one_fails([job() for job in jobs])
    finally:
        if zalo is not None:
            await zalo.stop()
            await zalo.drain(timeout=10)
            await zalo.client.close()
        if zalo_oa is not None:
            await zalo_oa.drain(timeout=10)
            await zalo_oa.client.close()
        if telegram is not None:
            await telegram.bot.session.close()
        await services.db.dispose()


async def _check_zalo_token(client) -> None:
    """A token Zalo refuses stops the start with the key to fix; a network failure only warns
    (polling backs off and tries again)."""
    from bot.channels.zalo_bot import UNAUTHORIZED, ZaloBotError
    try:
        await client.get_me()
    except ZaloBotError as exc:
        if exc.error_code == UNAUTHORIZED:
            raise ConfigError("zalo_bot.token: Zalo refused it (401 Unauthorized); check TINBAO_ZALO_BOT_TOKEN, "
                              "or ask Zalo Bot Manager for a new token") from None
        log.warning("could not check the Zalo token yet: %s", exc)


async def _until_one_fails(jobs: list[Awaitable[None]]) -> None:
    """Run the jobs side by side; the first one to fail stops the others and its error is raised."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
