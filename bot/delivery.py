"""Replies addressed to another chat (a tipster's answer to an officer, a verdict to a tipster) go
out through whichever channel that chat uses, even when it differs from the one that wrote."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from handlers.messages import Reply, Route
from handlers.reply_outbox import REFUSED, SENT, TurnReplies

log = logging.getLogger(__name__)
Sender = Callable[[str, list[Reply]], Awaitable[int | None]]  # how many messages did not go out


class Deliveries:
    def __init__(self) -> None:
        self._senders: dict[str, Sender] = {}

    def register(self, channel: str, sender: Sender) -> None:
        self._senders[channel] = sender

    async def send(self, replies: list[Reply], *, origin: Route) -> None:
        """Each reply to its chat, in order; a failure for one chat does not stop the others. The replies of
        a stored turn are marked one by one as they go (handlers/reply_outbox.py): none is sent twice."""
        if isinstance(replies, TurnReplies):
            await replies.outbox.deliver(replies, lambda reply: self.send_one(reply, origin=origin))
            return
        for reply in replies:
            await self.send_one(reply, origin=origin)

    async def send_one(self, reply: Reply, *, origin: Route) -> str:
        """One reply to its chat (the one that wrote, or ``reply.to``); what became of it."""
        target = reply.to or origin
        sender = self._senders.get(target.channel)
        if sender is None:
            log.warning("no %s channel is running here; a message to another chat was not sent", target.channel)
            return REFUSED
        try:
            undelivered = await sender(target.chat_id, [reply])
        except Exception:
            if target == origin:
                raise
            log.exception("a message to another chat could not be sent")
            return REFUSED
        return SENT if not undelivered else REFUSED

    async def send_left_over(self, origin: Route, reply: Reply) -> str:
        """For the outbox's sweep: a reply of a turn a dead worker had handled."""
        return await self.send_one(reply, origin=origin)
