"""Festival reminders at run time: the scheduler tick, and the dispatcher that empties the outbox.

The scheduler turns the calendar into broadcasts when a reminder's time comes, and a due broadcast
into one outbox row per subscriber. Dispatchers (any number, in any number of processes) claim rows,
send them through the channels at one global pace, and record each outcome:

- sent; 403 (the citizen blocked the bot): failed, and the citizen is unsubscribed;
- 429: the row waits its retry_after, and so does every dispatcher (the pace is pushed back);
- 5xx, timeouts: tried again with growing waits, at most ``max_attempts`` times;
- a channel's own refusal (Zalo OA: outside the 7-day window): skipped under that reason;
- a row claimed by a dispatcher that died: "unknown", never sent again (at most once), counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from bot.channels.base import TRANSIENT, UNKNOWN, Outcome, ReminderSender
from bot.logs import log_round_failure
from handlers.context import Services
from handlers.reminders.festival_calendar import (ReminderSettings, broadcast_key, due_reminders, format_offsets,
                                                  parse_offsets, quiet_until, sendable_from)
from handlers.messages import Reply
from handlers.reminders.subscriptions import areas_within, reminder_reply
from storage import outbox
from storage import reminders as store
from storage.models import ReminderBroadcast, ReminderEvent

log = logging.getLogger(__name__)
T = TypeVar("T")


BURST = timedelta(seconds=0.05)  # how far a worker may run ahead of its own pace to make up for timer jitter
TICK = 0.01  # seconds: the dispatcher sends what is due in small groups, not one wake-up per message


def wall_clock() -> datetime:
    """The real time: the pace governs real requests, even when a test moves the calendar's clock."""
    return datetime.now(timezone.utc)


# --- scheduler -------------------------------------------------------------------------------------

@dataclass
class TickReport:
    scheduled: int = 0  # broadcasts made from the calendar
    queued: int = 0  # outbox rows made
    unknown: int = 0  # rows a stopped worker left mid-send
    skipped: dict[str, int] = field(default_factory=dict)


async def sync_calendar(services: Services, settings: ReminderSettings, *, now: datetime | None = None) -> int:
    """The calendar file's events into the database; events removed from the file stop."""
    now = now or services.clock()
    keys = []
    async with services.db.transaction() as session:
        for event in settings.calendar:
            key = f"calendar:{event.id}"
            keys.append(key)
            await store.upsert_calendar_event(session=session, key=key, now=now, values=dict(
                title=event.titles["vi"], title_en=event.titles.get("en"),
                description=event.descriptions.get("vi", ""), description_en=event.descriptions.get("en"),
                place=event.place, dates=",".join(event.dates), start_time=event.start_time,
                offsets=format_offsets(event.offsets or settings.default_offsets), area_code=event.area))
        await store.retire_calendar_events(session=session, keep_keys=keys, now=now)
    return len(keys)


async def schedule_due(services: Services, *, now: datetime) -> int:
    """Every event's reminder whose time has come becomes a broadcast, once (its key is unique)."""
    made = 0
    async with services.db.transaction() as session:
        for event in await store.active_events(session=session):
            for due in due_reminders(dates=event.dates, start_time=event.start_time,
                                     offsets=parse_offsets(event.offsets), now=now):
                made += await store.create_broadcast(
                    session=session, key=broadcast_key(event.id, due.occurrence, due.offset), kind="reminder",
                    send_at=due.send_at, now=now, event_id=event.id, occurs_on=due.occurrence.day,
                    reminder_offset=str(due.offset), area_code=event.area_code, expires_at=due.occurrence.ends)
    return made


async def fan_out_due(services: Services, settings: ReminderSettings, *, now: datetime) -> int:
    """Each due broadcast becomes one outbox row per subscriber it reaches, one broadcast per transaction."""
    rows = 0
    not_before = sendable_from(now, settings)
    while True:
        async with services.db.transaction() as session:
            due = await store.due_broadcasts(session=session, now=now, limit=1)
            if not due:
                return rows
            broadcast = due[0]
            reach = None if broadcast.area_code is None else areas_within(services.settings.areas, broadcast.area_code)
            made = await store.fan_out(session=session, broadcast=broadcast, area_codes=reach, not_before=not_before,
                                       now=now)
        log.info("broadcast %d queued for %d subscriber(s)", broadcast.id, made)
        rows += made


async def sweep(services: Services, settings: ReminderSettings, *, now: datetime) -> tuple[int, dict[str, int]]:
    """Rows of a worker that stopped mid-send become "unknown"; rows too late or for a leaver are skipped."""
    async with services.db.transaction() as session:
        unknown = await outbox.mark_stale_unknown(session=session, claimed_before=now - settings.unknown_after, now=now)
        skipped = await outbox.skip_unsendable(session=session, now=now)
    if unknown:
        # At most once: these may or may not have reached the citizen, so they are reported, not resent.
        log.warning("%d reminder message(s) were being sent by a worker that stopped; their delivery is unknown "
                    "and they will not be sent again", unknown)
    return unknown, skipped


async def tick(services: Services, settings: ReminderSettings, *, now: datetime | None = None) -> TickReport:
    """One pass of the scheduler: sweep, make the due reminders, queue the due broadcasts."""
    now = now or services.clock()
    report = TickReport()
    report.unknown, report.skipped = await sweep(services, settings, now=now)
    report.scheduled = await schedule_due(services, now=now)
    report.queued = await fan_out_due(services, settings, now=now)
    return report


async def to_its_end(step: Awaitable[T]) -> T:
    """Run a step that uses the database to its end even when its job is cancelled meanwhile; the cancel
    then takes effect. Cancelled in the middle of a query, an SQLite connection stays open holding the write
    lock and an old snapshot until the garbage collector closes it: every write after it waits the busy
    timeout, and the stop cannot fold the WAL into the file."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Kept even when the step has just finished: a cancel that lands in the same turn of the loop as
            # the step's end must still end the job (taken for the step's own, it was lost, and a stopping
            # bot waited on a scheduler that ticked on for ever).
            cancelled = True
        except Exception:  # noqa: BLE001  (the step's own failure: raised below, once it is done)
            pass
    if cancelled:
        if not task.cancelled():
            task.exception()  # looked at: the caller is told of the cancel, not of this
        raise asyncio.CancelledError
    return task.result()


async def run_scheduler(services: Services, settings: ReminderSettings, *, wake: asyncio.Event | None = None) -> None:
    """Tick every ``tick_seconds``; a failed tick is logged and tried again at the next one. Cancelled (the
    bot stopping), the tick under way still ends first."""
    while True:  # a database away at the start is waited out like a failed tick, not the end of reminders
        try:
            await to_its_end(sync_calendar(services, settings))
            break
        except Exception as exc:
            log_round_failure(log, "reminder calendar sync failed; trying again at the next tick", exc)
        await asyncio.sleep(settings.tick_seconds)
    while True:
        try:
            report = await to_its_end(tick(services, settings))
            if report.queued and wake is not None:
                wake.set()
        except Exception as exc:
            log_round_failure(log, "reminder scheduler tick failed; trying again at the next tick", exc)
        await asyncio.sleep(settings.tick_seconds)


# --- dispatcher ------------------------------------------------------------------------------------

@dataclass
class _Batch:
    messages: list[outbox.ClaimedMessage]
    start: datetime  # wall-clock time of the first booked slot
    wait: float = 0.0  # nothing claimed: seconds to wait before asking again


class Dispatcher:
    """Claims due outbox rows and sends them through the channel senders at the global pace."""

    def __init__(self, services: Services, settings: ReminderSettings, senders: dict[str, ReminderSender], *,
                 name: str | None = None, max_in_flight: int = 64, batch_seconds: float = 0.2,
                 idle_seconds: float = 2.0, grace_seconds: float = 2.0, send_timeout: float = 20.0,
                 flush_seconds: float = 0.2, wake: asyncio.Event | None = None) -> None:
        self.services, self.settings, self.senders = services, settings, senders
        self.name = name or f"d-{secrets.token_hex(6)}"
        self.rate = float(settings.rate_per_second)
        # Short batches interleave the workers finely on the shared pace; at least 10 rows, so a slow
        # pace is not one transaction per message; at most 500, so a crash loses little to "unknown".
        self.batch_size = max(10, min(500, int(self.rate * batch_seconds)))
        self.ahead = timedelta(seconds=max(1.0, 2 * self.batch_size / self.rate))
        self.idle_seconds, self.grace_seconds, self.send_timeout = idle_seconds, grace_seconds, send_timeout
        self.flush_seconds = flush_seconds
        self.wake = wake or asyncio.Event()
        self.sent = 0  # this dispatcher's successful sends, for logs, tests and the benchmark
        self._in_flight: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._unsent: dict[int, outbox.ClaimedMessage] = {}  # claimed, not yet handed to a channel
        self._results: list[tuple[outbox.ClaimedMessage, Outcome]] = []
        self._writing = asyncio.Lock()  # one flush at a time, and "idle" only once none is half-way
        self._paused_until = datetime.min.replace(tzinfo=timezone.utc)
        self._next_at = wall_clock()  # this worker's own pace (see BURST)
        self._quiet_now, self._quiet_checked_until = False, self._next_at
        self._broadcasts: dict[int, ReminderBroadcast] = {}
        self._events: dict[int, ReminderEvent] = {}
        self._replies: dict[tuple[int, str], Reply] = {}

    # --- the loop ---

    async def run(self, *, until_idle: bool = False) -> None:
        """Send until cancelled (or, ``until_idle``, until nothing is left to send). On the way out, rows
        not yet handed to a channel go back to pending; sends in flight get ``grace_seconds`` to finish,
        and any that do not are recorded "unknown", never sent again."""
        flusher = asyncio.create_task(self._flush_forever())
        claiming: asyncio.Task | None = None
        try:
            claiming = asyncio.create_task(self._claim())
            while True:
                try:
                    # Shielded: stopping must not cut a claim off mid-commit, or its rows would be lost track of.
                    batch = await asyncio.shield(claiming)
                except Exception as exc:
                    # The database may be restarting: the bot keeps serving chats, reminders wait.
                    log_round_failure(log, "reminder claim failed; trying again shortly", exc)
                    batch = _Batch([], wall_clock(), wait=self.idle_seconds)
                claiming = None
                if batch.messages:
                    # Book the following slots while this batch goes out, so the pace has no gaps.
                    claiming = asyncio.create_task(self._claim())
                    await self._send_batch(batch)
                    continue
                if until_idle and await self._idle():
                    break
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), batch.wait or self.idle_seconds)
                claiming = asyncio.create_task(self._claim())
            await self._settle(cancel=False)
        finally:
            if claiming is not None:
                # Never cancelled half-way: a claim that committed must have its rows released below.
                with contextlib.suppress(Exception):
                    batch = await asyncio.shield(claiming)
                    self._unsent.update({m.id: m for m in batch.messages})
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await asyncio.shield(self._settle(cancel=True))

    async def _idle(self) -> bool:
        try:
            await self._flush()
            if self._in_flight or self._results:
                return False
            return await to_its_end(self._nothing_pending())
        except Exception as exc:
            log_round_failure(log, "could not tell whether reminders are left to send; looking again shortly", exc)
            return False

    async def _nothing_pending(self) -> bool:
        async with self.services.db.transaction() as session:
            return await outbox.count_pending(session=session, channels=list(self.senders)) == 0

    async def _settle(self, *, cancel: bool) -> None:
        """Let sends in flight finish (or, stopping, give them up as unknown), then write every outcome."""
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=self.grace_seconds if cancel else None)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                # At most once: these may have reached the citizens; they are counted, never resent.
                log.warning("%d reminder message(s) were in flight when sending stopped; their delivery is unknown "
                            "and they will not be sent again", len(pending))
        if self._unsent:
            released = list(self._unsent.values())
            self._unsent.clear()
            self._results += [(m, Outcome("release")) for m in released]
        await self._flush()

    # --- claiming ---

    async def _claim(self) -> _Batch:
        """Book slots on the shared pace and claim that many due rows, in one transaction."""
        now = self.services.clock()
        quiet = quiet_until(now, self.settings)
        if quiet is not None:
            # Nothing goes out in the quiet hours; look again in a while (the clock may be a test's).
            return _Batch([], wall_clock(), wait=min(self.idle_seconds, (quiet - now).total_seconds()))
        skipped: list[tuple[outbox.ClaimedMessage, Outcome]] = []
        async with self.services.db.transaction() as session:
            wall = wall_clock()
            pace = await outbox.lock_pace(session=session, now=wall)
            if pace.next_at > wall + self.ahead:
                return _Batch([], wall, wait=(pace.next_at - wall - self.ahead).total_seconds())
            claimed = await outbox.claim_due(session=session, keyring=self.services.keyring, worker=self.name,
                                             channels=list(self.senders), now=now, limit=self.batch_size)
            await self._load(session, {m.broadcast_id for m in claimed})
            sendable = []
            for message in claimed:
                reason = self._unsendable(message, now)
                if reason is None:
                    sendable.append(message)
                else:
                    skipped.append((message, Outcome("skip", reason=reason)))
            await self._write(session, skipped, now)
            start = outbox.book_slots(pace=pace, count=len(sendable), rate=self.rate, now=wall)
            session.add(pace)
        self._unsent.update({m.id: m for m in sendable})
        return _Batch(sendable, start)

    async def _load(self, session, broadcast_ids: set[int]) -> None:
        missing = [i for i in broadcast_ids if i not in self._broadcasts]
        for broadcast_id in missing:
            broadcast = await store.broadcast_by_id(session=session, broadcast_id=broadcast_id)
            self._broadcasts[broadcast_id] = broadcast
            if broadcast.event_id is not None and broadcast.event_id not in self._events:
                self._events[broadcast.event_id] = await session.get(ReminderEvent, broadcast.event_id)

    def _unsendable(self, message: outbox.ClaimedMessage, now: datetime) -> str | None:
        broadcast = self._broadcasts[message.broadcast_id]
        if message.route is None:
            return "unsubscribed"
        if broadcast.expires_at is not None and broadcast.expires_at <= now:
            return "expired"
        return None

    # --- sending ---

    def _quiet(self) -> bool:
        """Whether the quiet hours have begun, looked at about once a second (not for every message)."""
        wall = wall_clock()
        if wall >= self._quiet_checked_until:
            self._quiet_now = quiet_until(self.services.clock(), self.settings) is not None
            self._quiet_checked_until = wall + timedelta(seconds=1)
        return self._quiet_now

    async def _send_batch(self, batch: _Batch) -> None:
        """Each message at its booked slot; none while a 429 pause lasts or once the quiet hours begin."""
        interval = timedelta(seconds=1.0 / self.rate)
        for index, message in enumerate(batch.messages):
            slot = batch.start + index * interval
            if slot >= self._paused_until:
                # Besides its slot, a message waits for this worker's own pace (a token bucket holding
                # BURST of slack): after a stall, a slow first request or a busy CPU, the worker goes on
                # at the pace instead of bursting through every slot it missed.
                delay = (max(slot, self._next_at - BURST) - wall_clock()).total_seconds()
                if delay > 0:
                    # Woken at most every TICK: at 1,000/s a wake-up per message costs more than the send.
                    await asyncio.sleep(max(delay, TICK))
            if slot < self._paused_until or self._quiet():
                self._unsent.pop(message.id, None)
                self._results.append((message, Outcome("release")))  # back in line, not attempted
                continue
            self._next_at = max(self._next_at, wall_clock()) + interval
            await self._slots.acquire()
            self._unsent.pop(message.id, None)
            task = asyncio.create_task(self._send(message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, message: outbox.ClaimedMessage) -> None:
        try:
            outcome = UNKNOWN
            try:
                reply = self._reply(message)
                async with asyncio.timeout(self.send_timeout):
                    outcome = await self.senders[message.channel](message.route["chat_id"], reply)
            except TimeoutError:
                outcome = TRANSIENT
            except asyncio.CancelledError:
                outcome = UNKNOWN  # it may have reached the platform: never sent again
                raise
            except Exception as exc:
                log_round_failure(log, "a reminder sender failed unexpectedly; the message will be tried again", exc)
                outcome = TRANSIENT
            finally:
                self._results.append((message, outcome))
            if outcome.kind == "sent":
                self.sent += 1
            elif outcome.kind == "retry_after":
                await self._pause(outcome.retry_after)
        finally:
            self._slots.release()

    def _reply(self, message: outbox.ClaimedMessage) -> Reply:
        key = (message.broadcast_id, message.language)
        if key not in self._replies:
            broadcast = self._broadcasts[message.broadcast_id]
            self._replies[key] = reminder_reply(broadcast=broadcast, event=self._events.get(broadcast.event_id),
                                                lang=message.language, areas=self.services.settings.areas)
        return self._replies[key]

    async def _pause(self, seconds: float) -> None:
        """A 429: this dispatcher stops at once, and the shared pace makes every other one wait too."""
        until = wall_clock() + timedelta(seconds=seconds)
        if until > self._paused_until:
            self._paused_until = until
            log.warning("the channel asked to slow down: reminders pause for %s s", seconds)
            await to_its_end(self._pause_pace(until))

    async def _pause_pace(self, until: datetime) -> None:
        async with self.services.db.transaction() as session:
            await outbox.pause_pace(session=session, until=until)

    # --- outcomes ---

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self._flush()
            except Exception as exc:
                log_round_failure(log, "reminder outcomes could not be written yet; trying again", exc)

    async def _flush(self) -> None:
        """Write the outcomes gathered so far, in one transaction (one per message would not keep up)."""
        async with self._writing:
            if not self._results:
                return
            results, self._results = self._results, []
            writing = asyncio.ensure_future(self._write_outcomes(results))
            try:
                await to_its_end(writing)  # the flusher is cancelled at a stop: the write under way ends first
            finally:
                if writing.cancelled() or writing.exception() is not None:
                    self._results = results + self._results  # not lost: the next flush writes them

    async def _write_outcomes(self, results: list[tuple[outbox.ClaimedMessage, Outcome]]) -> None:
        async with self.services.db.transaction() as session:
            await self._write(session, results, self.services.clock())

    async def _write(self, session, results: list[tuple[outbox.ClaimedMessage, Outcome]], now: datetime) -> None:
        finished: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        released, retries, deferred, blocked = [], defaultdict(list), defaultdict(list), []
        for message, outcome in results:
            kind = outcome.kind
            if kind == "sent":
                finished["sent", None].append(message.id)
            elif kind == "blocked":
                finished["failed", "blocked"].append(message.id)
                blocked.append(message.subscriber_id)
            elif kind == "rejected":
                finished["failed", "rejected"].append(message.id)
            elif kind in ("refused", "skip"):
                finished["skipped", outcome.reason].append(message.id)
            elif kind == "unknown":
                finished["unknown", "interrupted"].append(message.id)
            elif kind == "release":
                released.append(message.id)
            elif kind == "retry_after":
                # Refused, so certainly not delivered: back in line after the wait, not counted as a try.
                deferred[now + timedelta(seconds=outcome.retry_after)].append(message.id)
            elif message.attempts + 1 >= self.settings.max_attempts:
                finished["failed", "transient"].append(message.id)
            else:
                retries[now + self._backoff(message.attempts)].append(message.id)
        for (status, reason), ids in finished.items():
            await outbox.finish(session=session, ids=ids, status=status, reason=reason, now=now)
        await outbox.release(session=session, ids=released)
        for not_before, ids in deferred.items():
            await outbox.release(session=session, ids=ids, not_before=not_before)
        for not_before, ids in retries.items():
            await outbox.retry_later(session=session, ids=ids, not_before=not_before)
        if blocked:
            # The citizen blocked the bot: they are unsubscribed, and their sealed route shredded.
            await store.unsubscribe(session=session, subscriber_ids=blocked, reason="blocked", now=now)

    def _backoff(self, attempts: int) -> timedelta:
        base = self.settings.retry_seconds * (2 ** attempts)
        return timedelta(seconds=min(base, 3600) * random.uniform(0.8, 1.2))  # spread, so retries do not bunch


async def run_reminders(services: Services, settings: ReminderSettings, senders: dict[str, ReminderSender]) -> None:
    """`tinbao run`'s reminder job: the scheduler and one dispatcher, side by side, until cancelled."""
    wake = asyncio.Event()
    dispatcher = Dispatcher(services, settings, senders, wake=wake)
    log.info("reminders: %d channel(s), %s messages/s", len(senders), settings.rate_per_second)
    tasks = [asyncio.create_task(run_scheduler(services, settings, wake=wake)), asyncio.create_task(dispatcher.run())]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
