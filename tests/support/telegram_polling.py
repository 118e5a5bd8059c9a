"""tinbao's Telegram channel long-polling a fake Bot API server, as `tinbao run` does, in the test's own loop."""

from __future__ import annotations

import asyncio

from bot.channels.telegram import TelegramChannel, make_bot
from handlers.router import TipLine
from tests.fakes.telegram_api import FakeTelegram


class Running:
    """The bot polling the fake server; can be stopped and started again."""

    def __init__(self, fake: FakeTelegram, services) -> None:
        self.fake, self.services = fake, services
        self.channel: TelegramChannel | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.channel = TelegramChannel(bot=make_bot(self.fake.token, self.fake.base_url),
                                       tipline=TipLine(self.services))
        self.task = asyncio.create_task(self.channel.run_polling())

    async def stop(self) -> None:
        await self.channel.stop()
        await asyncio.wait_for(self.task, 5)
        await self.channel.bot.session.close()
