"""The fake Bot API server, slow when a test wants it: the bot's messages to chosen chats get no answer
until the test lets them through, the way a request can hang on a slow network. A held message is
recorded as sent only once it is let through, so "delivered" means Telegram answered it."""

from __future__ import annotations

import asyncio

from tests.fakes.telegram_api import FakeTelegram


class SlowTelegram(FakeTelegram):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._gates: dict[int, asyncio.Event] = {}
        self.held: list[int] = []  # chat ids of the messages that arrived while held, in order
        self._arrived = asyncio.Event()

    def hold(self, *chat_ids: int) -> None:
        """From now on, the bot's messages to these chats wait for `let_through`."""
        for chat_id in chat_ids:
            self._gates.setdefault(chat_id, asyncio.Event())

    def let_through(self, *chat_ids: int) -> None:
        for chat_id in chat_ids:
            self._gates.pop(chat_id).set()

    def held_for(self, chat_id: int) -> int:
        return self.held.count(chat_id)

    async def wait_until_held(self, chat_id: int, count: int = 1, timeout: float = 30.0) -> None:
        """Until the bot has sent (and is waiting on) ``count`` messages to this chat."""
        async with asyncio.timeout(timeout):
            while self.held_for(chat_id) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def _send_message(self, method: str, p: dict) -> dict:
        gate = self._gates.get(p.get("chat_id"))
        if gate is not None:
            self.held.append(p.get("chat_id"))
            self._arrived.set()
            await gate.wait()
        return await super()._send_message(method, p)
