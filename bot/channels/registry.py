"""Which channels `tinbao run` can serve, and how each is made from config.toml: adding a channel is a module
implementing bot/channels/base.py's `Channel` and one row in CHANNELS below."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.channels.base import Channel
from bot.config import Config, ConfigError
from bot.delivery import Deliveries
from bot.startup import TokenCheck, telegram_check, zalo_bot_check
from handlers.router import TipLine


@dataclass
class Planned:
    """A channel config.toml asks for, with its client made and its token not yet shown to the platform."""

    name: str
    section: Any  # its config section: mode, webhook_listen, webhook_url, webhook_secret
    by_webhook: bool
    check: TokenCheck | None  # its platform's getMe; None: no token to check (the OA's is stored)
    build: Callable[[TipLine, Deliveries], Channel]  # once the database is open
    close: Callable[[], Awaitable[None]]  # its client's session, whether or not it was built
    upkeep: bool = False  # serve() is background upkeep (the OA: events come by webhook), not intake


def by_webhook(section, key: str, forced: bool | None) -> bool:
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


# Each channel's module is imported once config.toml asks for that channel: a worker serving Telegram alone
# does not carry the Zalo clients (about 1.5 MB; bench/RESULTS.md, "Memory of an idle worker").

def telegram(config: Config, webhook: bool | None) -> Planned | None:
    token = config.telegram.token.get_secret_value()
    if not token:
        return None
    from bot.channels.telegram import TelegramChannel, make_bot
    hook = by_webhook(config.telegram, "telegram", webhook)
    bot = make_bot(token, config.telegram.api_base)
    return Planned("telegram", config.telegram, hook, telegram_check(bot),
                   lambda tipline, deliveries: TelegramChannel(bot=bot, tipline=tipline, deliveries=deliveries),
                   bot.session.close)


def zalo_bot(config: Config, webhook: bool | None) -> Planned | None:
    section = config.zalo_bot
    token = section.token.get_secret_value()
    if not token:
        return None
    from bot.channels.zalo_bot import ZaloBotChannel, ZaloBotClient
    hook = by_webhook(section, "zalo_bot", webhook)
    client = ZaloBotClient(token, api_base=section.api_base)
    return Planned("zalo", section, hook, zalo_bot_check(client),
                   lambda tipline, deliveries: ZaloBotChannel(client=client, tipline=tipline, deliveries=deliveries),
                   client.close)


def zalo_oa(config: Config, webhook: bool | None) -> Planned | None:
    section = config.zalo_oa
    if not section.configured:
        return None
    from bot.channels.zalo_oa.channel import channel_from_config
    made: list[Channel] = []

    def build(tipline: TipLine, deliveries: Deliveries) -> Channel:
        made.append(channel_from_config(section, tipline=tipline, deliveries=deliveries))
        return made[0]

    async def close() -> None:
        for channel in made:
            await channel.close()

    # Webhook only (Zalo OA has no polling); events are checked by signature, not by a path secret.
    return Planned("zalo_oa", section, True, None, build, close, upkeep=True)


# The order channels are started, and their clients closed in reverse.
CHANNELS: tuple[Callable[[Config, bool | None], Planned | None], ...] = (telegram, zalo_bot, zalo_oa)


def plan(config: Config, *, webhook: bool | None) -> list[Planned]:
    """Every channel config.toml has a token (or a [zalo_oa] section) for."""
    return [planned for factory in CHANNELS if (planned := factory(config, webhook)) is not None]
