"""Telegram long polling: one getUpdates at a time, each update taken on its own, and the offset moved past an
update only once it is handled, so a worker that dies leaves its updates to the next start."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter, TelegramUnauthorizedError

from bot.channels.base import ChatQueue, pause_unless_stopped, unless_stopped
from bot.channels.telegram_albums import AlbumTracker
from bot.channels.telegram_updates import (ALLOWED_UPDATES, DEFERRED, UNDECODABLE, RawUpdates, chat_key, failure, log,
                                           update_id_of)
from bot.config import ConfigError

POLL_TIMEOUT = 25  # seconds Telegram holds a getUpdates open when nothing is waiting
REPOLL_WHILE_BUSY = 0.5  # seconds: while a turn runs, newer updates are fetched this often
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0
STOP_TIMEOUT = 10.0  # seconds the turns already taken get to finish when polling stops
UNAUTHORIZED_HINT = "Telegram refused the bot token (401 Unauthorized): check TINBAO_TELEGRAM_TOKEN"


class PollingWindow:
    """Which update ids polling has taken: the offset passes an update only once it is handled, and
    an update fetched again while an earlier one is still being handled is not handled twice."""

    def __init__(self) -> None:
        self.offset: int | None = None
        self.asked: int | None = None  # the offset of the getUpdates under way: its answer starts there
        self.running: dict[int, asyncio.Task] = {}
        self.done: set[int] = set()  # handled or skipped, at or above the offset asked for
        self.highest: int | None = None

    def knows(self, update_id: int) -> bool:
        return update_id in self.running or update_id in self.done

    def finished(self, update_id: int) -> None:
        self.running.pop(update_id, None)
        self.done.add(update_id)
        self.advance()

    def seen(self, update_id: int) -> None:
        self.highest = update_id if self.highest is None else max(self.highest, update_id)

    def advance(self) -> None:
        if self.highest is None:
            return
        waiting = [uid for uid in self.running if self.offset is None or uid >= self.offset]
        offset = min(waiting) if waiting else self.highest + 1
        self.offset = offset if self.offset is None else max(self.offset, offset)
        # An answer to a getUpdates asked with an older offset may still bring those ids: they stay known.
        floor = self.offset if self.asked is None else min(self.offset, self.asked)
        self.done = {uid for uid in self.done if uid >= floor}

    def redelivered(self, update_id: int) -> bool:
        """Telegram sent again an update we had confirmed (it was below the offset we asked with)."""
        return self.asked is not None and update_id < self.asked


class PolledChannel(Protocol):
    """What polling needs of the Telegram channel it feeds."""

    bot: Bot
    stopping: asyncio.Event
    chats: ChatQueue
    albums: AlbumTracker
    outcomes: Counter[str]
    backoff_start: float
    backoff_max: float
    poll_timeout: int

    async def set_commands(self) -> None: ...

    async def process_patiently(self, raw: Any, *, again: bool) -> str: ...


class TelegramPolling:
    """One run of long polling for a channel, until the channel is stopped."""

    def __init__(self, channel: PolledChannel) -> None:
        self.channel = channel
        self.bot = channel.bot
        self.stopping = channel.stopping
        self.window = PollingWindow()

    async def run(self) -> None:
        """Ask Telegram for updates one long poll at a time until the stop: each update on its own, the
        offset past it only once it is handled; failures are retried with growing waits."""
        channel, window = self.channel, self.window
        delay, started, worked, polled = channel.backoff_start, False, False, False
        while not self.stopping.is_set():
            try:
                if not started:
                    await unless_stopped(self._start(), self.stopping)
                    started = worked = not self.stopping.is_set()  # the token was taken
                    continue
                # The first call does not wait: what queued while we were down is taken at once, and /healthz
                # can report Telegram answering from the start, not a long poll later.
                at_once = bool(window.running) or not polled
                window.asked = window.offset
                entries = await unless_stopped(self.bot(
                    RawUpdates(offset=window.offset, timeout=0 if at_once else channel.poll_timeout,
                               allowed_updates=ALLOWED_UPDATES),
                    request_timeout=int(self.bot.session.timeout + channel.poll_timeout)), self.stopping)
            except TelegramUnauthorizedError:
                if not worked:
                    raise ConfigError(f"telegram.token: {UNAUTHORIZED_HINT}") from None
                log.error("%s; trying again in %.0f s", UNAUTHORIZED_HINT, delay)
                delay = await self._back_off(delay)
                continue
            except TelegramRetryAfter as exc:
                log.warning("Telegram asked us to wait %s s before polling again", exc.retry_after)
                await pause_unless_stopped(exc.retry_after, self.stopping)
                continue
            except Exception as exc:
                log.warning("Telegram polling failed (%s); trying again in %.0f s", failure(exc), delay)
                delay = await self._back_off(delay)
                continue
            worked, polled, delay = True, True, channel.backoff_start
            if entries is None:  # the stop came during the call
                break
            for raw in entries:
                self._take(raw)
            window.advance()
            if window.running:
                await self._while_busy()
        await self._finish()

    async def _start(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)  # getUpdates is refused while one is set
        await self.channel.set_commands()

    def _take(self, raw: Any) -> None:
        window = self.window
        update_id = update_id_of(raw)
        if update_id is None:
            self.channel.outcomes[UNDECODABLE] += 1
            return
        if window.knows(update_id):
            return  # fetched again while an earlier update is still being handled: it is already taken
        again = window.redelivered(update_id)
        window.seen(update_id)
        albums = self.channel.albums
        albums.taken(raw, update_id)  # before it runs: an earlier file of its album then knows it follows
        task = self.channel.chats.run(chat_key(raw), lambda: self.channel.process_patiently(raw, again=again))
        window.running[update_id] = task
        task.add_done_callback(lambda done: albums.finished(update_id, raw))
        # Deferred until the stop: the offset stays below it, and Telegram hands it to the next start.
        task.add_done_callback(lambda done: None if _deferred(done) else window.finished(update_id))

    async def _while_busy(self) -> None:
        """Wait until the offset can move or a moment passed (newer updates behind a slow turn are
        fetched then), or the stop comes."""
        running = self.window.running
        lowest = running[min(running)]
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({lowest, stopper}, timeout=REPOLL_WHILE_BUSY, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()

    async def _finish(self, timeout: float = STOP_TIMEOUT) -> None:
        """Let the turns already taken finish, then tell Telegram which updates are done."""
        window = self.window
        if window.running:
            await asyncio.wait(set(window.running.values()), timeout=timeout)
        window.advance()
        if window.offset is None:
            return
        try:
            # An offset confirms every update below it; the one update this call may return stays unconfirmed.
            await self.bot(RawUpdates(offset=window.offset, limit=1, timeout=0), request_timeout=5)
        except Exception as exc:
            log.warning("could not confirm the last updates to Telegram (%s); they will come again and be "
                        "recognised", failure(exc))

    async def _back_off(self, delay: float) -> float:
        await pause_unless_stopped(delay, self.stopping)
        return min(delay * 2, self.channel.backoff_max)


def _deferred(task: asyncio.Task) -> bool:
    return not task.cancelled() and task.exception() is None and task.result() == DEFERRED
