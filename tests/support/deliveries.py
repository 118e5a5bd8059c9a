"""Waiting for a bot's whole answer in channel tests: replies to every chat, sent."""

from __future__ import annotations

import asyncio

from bot.delivery import Deliveries


class Handled(Deliveries):
    """Counts updates whose replies have all been sent (to every chat), so a test can wait for that."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._changed = asyncio.Event()

    async def send(self, replies, *, origin) -> None:
        try:
            await super().send(replies, origin=origin)
        finally:
            self.count += 1
            self._changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()
