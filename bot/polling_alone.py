"""Polling serves one process only: Telegram hands updates to a single getUpdates consumer (a second one is
refused with "Conflict"), and a Zalo Bot's updates would be split between two. A lease row in the database
names the process polling each platform; a second `tinbao run` on the same database refuses to poll."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from bot.config import ConfigError
from handlers.context import Services
from storage.db import out_of_reach
from storage.polling_lease import release_lease, renew_lease, take_lease

LEASE = timedelta(seconds=60)  # a crashed poller's lease runs out by itself after this
RENEW_EVERY = 15.0
# Polling stops this long before the lease, as last written, runs out while renewals fail: the clocks of
# two hosts differ a little, and another worker may take the lease the moment it sees it expired.
SAFETY_MARGIN = timedelta(seconds=10)
RETRY_START = 1.0  # seconds before a failed renewal or first take is tried again, doubling up to RENEW_EVERY

log = logging.getLogger(__name__)


def holder_name() -> str:
    """This process, as the operator would look for it: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(3)}"


class PollingTaken(ConfigError):
    """Another process polls this platform from the same database."""


def holder_gone(name: str) -> bool:
    """A holder on this host whose process no longer runs (killed, crashed): a restart takes over at once
    instead of waiting for the lease to run out. Elsewhere, or if unsure, the lease is waited for."""
    host, _, rest = name.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname()[:32] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # a restarted container has the dead one's pid: this process does not poll yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


async def poll_alone(services: Services, channel: str, poll: Callable[[], Awaitable[None]], *,
                     holder: str | None = None, lease: timedelta | None = None, renew_every: float | None = None,
                     serving: Callable[[], None] | None = None) -> None:
    """Run ``poll()`` while holding the platform's lease; refuse with one line if another process holds it.
    The database out of reach: the first take waits for it; a renewal is tried again while polling goes
    on, as long as the lease is still ours by time; past that, polling pauses until the lease is held again."""
    loop = asyncio.get_running_loop()
    holder = holder or holder_name()
    lease = LEASE if lease is None else lease  # read at the call, so a test may shorten them
    renew_every = RENEW_EVERY if renew_every is None else renew_every
    margin = min(SAFETY_MARGIN, lease / 4).total_seconds()
    held_until = await _take_first(services, channel, holder, lease, retry_max=renew_every) - margin
    if serving is not None:  # "serving …", said by the caller once the lease is held
        serving()
    polling: asyncio.Future | None = None
    renewal: asyncio.Future | None = None
    next_renewal, retry, paused = loop.time() + renew_every, None, False
    try:
        while True:
            if polling is None and loop.time() < held_until:
                if paused:
                    log.info("%s: the lease is held again; long polling resumes", channel)
                    paused = False
                polling = asyncio.ensure_future(poll())
            if renewal is None and loop.time() >= next_renewal:
                renewal = asyncio.ensure_future(_renew(services, channel, holder, lease, margin))
            wake = ([next_renewal] if renewal is None else []) + ([held_until] if polling is not None else [])
            timeout = max(0.0, min(wake) - loop.time()) if wake else None
            running = {task for task in (polling, renewal) if task is not None}
            if running:
                await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(timeout or 0.0)
            if polling is not None and polling.done():
                return polling.result()  # stopped (or failed: its error)
            if renewal is not None and renewal.done():
                try:
                    held_until = renewal.result()  # PollingTaken: another process holds the lease now
                except Exception as exc:
                    if not out_of_reach(exc):
                        raise
                    if retry is None:
                        log.warning("%s: the poller lease could not be renewed (the database did not answer); "
                                    "trying again, long polling goes on while the lease lasts", channel)
                    retry = RETRY_START if retry is None else min(retry * 2, renew_every)
                    next_renewal = loop.time() + retry
                else:
                    if retry is not None:
                        log.info("%s: the poller lease is renewed again", channel)
                    retry, next_renewal = None, loop.time() + renew_every
                renewal = None
            if polling is not None and loop.time() >= held_until:
                # Another worker may take the lease from now on: two getUpdates consumers would conflict.
                log.warning("%s: the poller lease ran out while the database was away; long polling pauses "
                            "until it is renewed", channel)
                polling.cancel()
                await asyncio.gather(polling, return_exceptions=True)
                polling, paused = None, True
    finally:
        for task in (polling, renewal):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (polling, renewal) if t is not None), return_exceptions=True)
        try:
            async with services.db.transaction() as session:
                await release_lease(session=session, channel=channel, holder=holder)
        except Exception:  # noqa: BLE001  (the lease runs out by itself)
            pass


async def _take_first(services: Services, channel: str, holder: str, lease: timedelta, *, retry_max: float) -> float:
    """The lease taken (the loop time it lasts to), waiting while the database is out of reach;
    PollingTaken if another live process holds it."""
    loop = asyncio.get_running_loop()
    retry = None
    while True:
        began = loop.time()
        try:
            async with services.db.transaction() as session:
                other = await take_lease(session=session, channel=channel, holder=holder, now=services.clock(),
                                         ttl=lease, holder_gone=holder_gone)
        except IntegrityError:
            continue  # two first takers at once: the loser's insert fails on the key, then it sees the row
        except Exception as exc:
            if not out_of_reach(exc):
                raise
            if retry is None:
                log.warning("%s: the database did not answer; long polling starts once it does", channel)
            retry = RETRY_START if retry is None else min(retry * 2, retry_max)
            await asyncio.sleep(retry)
            continue
        if other is not None:
            raise PollingTaken(f"{channel}: already served by long polling from {other.holder} on this database "
                               f"(its lease runs to {other.expires_at:%H:%M:%S} UTC unless renewed); polling serves "
                               f"one process only (stop that one, or serve by webhook to run several workers)")
        return began + lease.total_seconds()


async def _renew(services: Services, channel: str, holder: str, lease: timedelta, margin: float) -> float:
    """The lease pushed further (the loop time polling may go on to), or taken again if it was let go;
    PollingTaken if another process took it over."""
    began = asyncio.get_running_loop().time()
    async with services.db.transaction() as session:
        now = services.clock()
        if not await renew_lease(session=session, channel=channel, holder=holder, now=now, ttl=lease):
            if await take_lease(session=session, channel=channel, holder=holder, now=now, ttl=lease,
                                holder_gone=holder_gone) is not None:
                raise PollingTaken(f"{channel}: another process took over long polling (this one was "
                                   f"out of reach of the database for over {lease.total_seconds():.0f} s)")
    return began + lease.total_seconds() - margin
