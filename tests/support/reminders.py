"""Test tools for reminders: many subscribers at once (sealed exactly as /remind on seals them), a clock
the test moves, and a counting sender that stands in for a platform."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlmodel import select

from bot.channels.base import SENT, Outcome
from handlers.messages import CHANNEL_PREFIXES, Reply
from storage.crypto import DataKey
from storage.models import DataKeyRecord, ReminderSubscriber, ReminderSubscriberArea
from storage.tips import new_id


async def add_subscribers(services, chat_ids, *, channel: str = "telegram", areas: tuple[str, ...] = (),
                          language: str = "vi", now: datetime | None = None) -> None:
    """Opted-in subscribers in bulk: what 10,000 citizens sending /remind on would leave in the database."""
    now = now or services.clock()
    keyring = services.keyring
    chat_ids = [str(c) for c in chat_ids]
    for start in range(0, len(chat_ids), 1000):
        keys, subscribers = [], []
        for chat_id in chat_ids[start:start + 1000]:
            owner = new_id()
            data_key = DataKey.generate(owner)
            kek_id, wrapped = keyring.wrap(data_key)
            keys.append({"id": owner, "kek_id": kek_id, "wrapped": wrapped, "created_at": now})
            subscribers.append({
                "chat_key": keyring.pseudonym(CHANNEL_PREFIXES[channel], chat_id), "channel": channel,
                "language": language, "active": True, "route_key_id": owner, "opted_in_at": now,
                "route": data_key.seal("route", json.dumps({"channel": channel, "chat_id": chat_id}))})
        async with services.db.transaction() as session:
            await session.exec(insert(DataKeyRecord).values(keys))
            await session.exec(insert(ReminderSubscriber).values(subscribers))
            if areas:
                ids = (await session.exec(select(ReminderSubscriber.id).where(
                    ReminderSubscriber.chat_key.in_([s["chat_key"] for s in subscribers])))).all()
                await session.exec(insert(ReminderSubscriberArea).values(
                    [{"subscriber_id": i, "area_code": a} for i in ids for a in areas]))


class Clock:
    """services.clock for a test: stands still until moved, or (``running``) ticks on from ``now`` in real
    time, so waits such as a retry's backoff pass while the calendar stays on the chosen day."""

    def __init__(self, now: datetime, *, running: bool = False) -> None:
        self.now, self.running, self._started = now, running, time.monotonic()

    def __call__(self) -> datetime:
        if self.running:
            return self.now + timedelta(seconds=time.monotonic() - self._started)
        return self.now

    def move_to(self, now: datetime) -> None:
        self.now, self._started = now, time.monotonic()


class CountingSender:
    """A platform in this process: counts what it receives. ``delay`` holds each answer back after the
    message is counted, the way a request that reached Telegram can still be waiting for its answer."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: Counter[str] = Counter()
        self.texts: list[str] = []

    async def __call__(self, chat_id: str, reply: Reply) -> Outcome:
        self.received[chat_id] += 1
        self.texts.append(reply.text)
        if self.delay:
            await asyncio.sleep(self.delay)
        return SENT
