"""Polling serves one process only: Telegram hands updates to a single getUpdates consumer (a second one is
refused with "Conflict"), and a Zalo Bot's updates would be split between two. A lease row in the database
names the process polling each platform; a second `tinbao run` on the same database refuses to poll."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from bot.config import ConfigError
from handlers.context import Services
from storage.polling_lease import release_lease, renew_lease, take_lease

LEASE = timedelta(seconds=60)  # a crashed poller's lease runs out by itself after this
RENEW_EVERY = 15.0


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
                     holder: str | None = None, lease: timedelta = LEASE, renew_every: float = RENEW_EVERY) -> None:
    """Run ``poll()`` while holding the platform's lease; refuse with one line if another process holds it."""
    holder = holder or holder_name()
    for _ in range(2):  # two first takers at once: the loser's insert fails on the key, then it sees the row
        try:
            async with services.db.transaction() as session:
                other = await take_lease(session=session, channel=channel, holder=holder, now=services.clock(),
                                         ttl=lease, holder_gone=holder_gone)
            break
        except IntegrityError:
            continue
    if other is not None:
        raise PollingTaken(f"{channel}: already served by long polling from {other.holder} on this database "
                           f"(its lease runs to {other.expires_at:%H:%M:%S} UTC unless renewed); polling serves one "
                           f"process only (stop that one, or serve by webhook to run several workers)")

    async def keep() -> None:
        while True:
            await asyncio.sleep(renew_every)
            async with services.db.transaction() as session:
                if not await renew_lease(session=session, channel=channel, holder=holder, now=services.clock(),
                                         ttl=lease):
                    raise PollingTaken(f"{channel}: another process took over long polling (this one was "
                                       f"out of reach of the database for over {lease.total_seconds():.0f} s)")
    keeper = asyncio.create_task(keep())
    polling = asyncio.ensure_future(poll())
    try:
        done, _ = await asyncio.wait({keeper, polling}, return_when=asyncio.FIRST_COMPLETED)
        if keeper in done:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
            keeper.result()
        await polling
    finally:
        for task in (keeper, polling):
            task.cancel()
        await asyncio.gather(keeper, polling, return_exceptions=True)
        try:
            async with services.db.transaction() as session:
                await release_lease(session=session, channel=channel, holder=holder)
        except Exception:  # noqa: BLE001  (the lease runs out by itself)
            pass
