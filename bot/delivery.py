"""Replies addressed to another chat (a tipster's answer to an officer, a verdict to a tipster) go
out through whichever channel that chat uses, even when it differs from the one that wrote."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from handlers.messages import Reply, Route

log = logging.getLogger(__name__)
Sender = Callable[[str, list[Reply]], Awaitable[None]]


class Deliveries:
    def __init__(self) -> None:
        self._senders: dict[str, Sender] = {}

    def register(self, channel: str, sender: Sender) -> None:
        self._senders[channel] = sender

    async def send(self, replies: list[Reply], *, origin: Route) -> None:
        """Each reply to its chat, in order; a failure for one chat does not stop the others."""
        for reply in replies:
            target = reply.to or origin
            sender = self._senders.get(target.channel)
            if sender is None:
                log.warning("no %s channel is running here; a message to another chat was not sent", target.channel)
                continue
            try:
                await sender(target.chat_id, [reply])
            except Exception:
                if target == origin:
                    raise
                log.exception("a message to another chat could not be sent")
