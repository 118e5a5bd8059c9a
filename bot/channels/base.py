"""What every channel is to the rest of the bot: the `Channel` protocol, the `Outcome` of one reminder,
and the per-chat queue that keeps one chat's updates in the order they came.

A channel turns its platform's updates into `Inbound`s for the tip line and renders the `Reply`s it gets
back; the runtime serves it, the cross-chat deliveries send through it, the reminder dispatcher hands it
one message at a time. Adding a channel is one module that implements this protocol and one row in
bot/channels/registry.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from handlers.messages import Reply


@dataclass(frozen=True)
class Outcome:
    """What a channel said about one message; the dispatcher decides what follows."""

    kind: str  # sent, retry_after, blocked, transient, rejected, refused, unknown
    retry_after: float = 0.0
    reason: str | None = None  # refused: the channel's reason, e.g. "outside_window"

    @classmethod
    def wait(cls, seconds: float) -> Outcome:
        return cls("retry_after", retry_after=max(float(seconds), 0.0))

    @classmethod
    def refused(cls, reason: str) -> Outcome:
        return cls("refused", reason=reason[:32])


SENT, BLOCKED, TRANSIENT, REJECTED, UNKNOWN = (Outcome(k) for k in ("sent", "blocked", "transient", "rejected",
                                                                    "unknown"))
# chat id, message → outcome. Never raises for an answer the platform gave.
ReminderSender = Callable[[str, Reply], Awaitable[Outcome]]


@runtime_checkable
class Channel(Protocol):
    """One messenger the tip line is served on."""

    name: str  # the channel's key in routes, outbox rows and pseudonyms: "telegram", "zalo", "zalo_oa"

    async def serve(self) -> None:
        """The channel's own job until stop() (long polling) or until cancelled (a webhook channel's upkeep)."""

    async def stop(self) -> None:
        """No new update is taken; the ones taken are finished."""

    async def send(self, chat_id: str, replies: list[Reply]) -> None:
        """Every reply to that chat, in order, the best way the platform allows."""

    async def send_reminder(self, chat_id: str, reply: Reply) -> Outcome:
        """One reminder; what the platform answered, as an Outcome (never raised)."""

    async def close(self) -> None:
        """The channel's HTTP session is closed."""


def reminder_senders(channels: Iterable[Channel]) -> dict[str, ReminderSender]:
    """A sender for each channel this process serves; a subscriber of another channel waits for a worker
    that serves it (or, past the event, is counted "too late")."""
    return {channel.name: channel.send_reminder for channel in channels}


class ChatQueue:
    """Each update in a task of its own, after the previous update of the same chat: one chat's updates are
    answered in the order they came, while chats run side by side. Idle chats are forgotten."""

    def __init__(self) -> None:
        self._last: dict[Any, asyncio.Task] = {}
        self.tasks: set[asyncio.Task] = set()

    def run(self, chat: Any, job: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task:
        """Start ``job()`` once the chat's previous update is done (None: no chat to wait for)."""
        previous = self._last.get(chat) if chat is not None else None
        task = asyncio.create_task(self._after(previous, job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if chat is not None:
            self._last[chat] = task
            task.add_done_callback(lambda done: self._forget(chat, done))
        return task

    @staticmethod
    async def _after(previous: asyncio.Task | None, job: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        if previous is not None:
            await asyncio.wait([previous])  # its own failure is logged there; only the order matters here
        return await job()

    def _forget(self, chat: Any, task: asyncio.Task) -> None:
        if self._last.get(chat) is task:  # so memory does not grow with every chat ever seen
            del self._last[chat]

    async def drain(self, timeout: float | None = 30.0) -> None:
        """Let the updates already taken finish, so no citizen loses an answer on shutdown."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


async def unless_stopped(call: Awaitable[Any], stopping: asyncio.Event) -> Any:
    """The call's result, or None as soon as ``stopping`` is set (the call is then abandoned)."""
    work = asyncio.ensure_future(call)
    stopper = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    return work.result() if not work.cancelled() else None


async def pause_unless_stopped(seconds: float, stopping: asyncio.Event) -> None:
    """Wait ``seconds``, or less if ``stopping`` is set meanwhile."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass
