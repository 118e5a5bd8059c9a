"""Starts what `tinbao run` and `tinbao chat` need (schema, keyring, storage, the tip line), serves the
messengers, and stops cleanly on SIGTERM or SIGINT.

A stop: updates stop coming in (polling stops fetching, the webhook listeners close), the answers under
way get up to ``stop_grace`` seconds to be sent, the reminder dispatcher hands its unsent rows back,
the Zalo channels drain, the SQLite WAL is folded into the file, the HTTP sessions and the database
close, and one line says so. A second signal cuts the wait for the answers short.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from bot.config import Config, ConfigError
from bot.polling_alone import poll_alone
from bot.logs import RedactSecrets, install_log_hygiene, log_round_failure
from bot.startup import DATABASE_WAIT, TokenCheck, make_private_folder, open_schema, pause, reach_database
from handlers.citizen import drafts
from handlers.officer import maintenance
from handlers.context import Services
from handlers.messages import Inbound, Reply, Route
from handlers.reply_outbox import ReplyOutbox
from handlers.router import TipLine
from storage.audit import AuditAnchor
from storage.blobs import BlobStore
from storage.crypto import Keyring
from storage.db import Database

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 600
LEFT_OVER_SECONDS = 60
AUDIT_ANCHOR_FILE = "audit-anchor.json"  # in the data directory, outside the database like the keyring
PURGE_EVERY = timedelta(days=1)
STOP_GRACE = 10.0  # seconds the answers under way get once a stop is asked for
STOP_AGAIN_EVERY = 0.5  # seconds between stop() calls to a polling channel that has not stopped yet


class StartInterrupted(Exception):
    """A stop was asked for before the bot was serving: nothing to hand back, nothing was lost."""


async def open_services(config: Config, *, database_wait: float = 0.0,
                        stopping: asyncio.Event | None = None) -> Services:
    """Keyring first (a wrong one stops us before anything is written), then the database (tried again
    for ``database_wait`` seconds while it cannot be reached), then the schema."""
    keyring = Keyring.load(config.bot.keyring)
    settings = config.tipline_settings()
    url = config.database_url()
    make_private_folder(config.bot.data_dir)  # before the schema: SQLite lives there
    if not await reach_database(url, wait=database_wait, stopping=stopping):
        raise StartInterrupted
    await open_schema(url, keyring)  # a wrong keyring stops here, before anything is read or written
    services = Services(db=Database(url), keyring=keyring, blobs=BlobStore(config.bot.data_dir / "blobs"),
                        settings=settings, audit_anchor=AuditAnchor(config.bot.data_dir / AUDIT_ANCHOR_FILE))
    return services


async def housekeeping(services: Services, deliveries, *, every: float = HOUSEKEEPING_SECONDS,
                       stopping: asyncio.Event | None = None) -> None:
    """On a timer: wipe stale drafts, remind officers of tips waiting too long, once a day purge tips
    judged not valuable past the retention period and delete evidence files no tip points to, then
    record the audit log's head outside the database. A failed round is retried next time; a stop
    lets the round under way finish."""
    last_purge = None
    while True:
        try:
            wiped = await drafts.wipe_stale_drafts(services)
            if wiped:
                log.info("wiped %d stale drafts", wiped)
            await deliveries.send(await maintenance.remind_officers(services), origin=Route("system", "-"))
            now = services.clock()
            if last_purge is None or now - last_purge >= PURGE_EVERY:
                await maintenance.purge_not_valuable(services, now=now)
                await maintenance.sweep_stray_files(services, now=now)
                await maintenance.prune_processed_updates(services, now=now)
                last_purge = now
            await maintenance.anchor_audit(services)  # last: the purge above is audited too
        except Exception as exc:
            log_round_failure(log, "housekeeping round failed; retrying later", exc)
        if not await pause(every, stopping):
            return


async def resend_left_over_replies(outbox: ReplyOutbox, deliveries, channels=(), *,
                                   every: float = LEFT_OVER_SECONDS, stopping: asyncio.Event | None = None) -> None:
    """On a timer, from the start: what a killed worker left on platforms that send nothing twice: the
    updates it had taken and not handled (Zalo Bot), the replies of turns it had committed and not sent."""
    while True:
        try:
            for channel in channels:
                take = getattr(channel, "take_left_over", None)
                if take is not None and (handled := await take()):
                    log.info("handling %d update(s) a stopped worker had taken", handled)
            taken = await outbox.sweep(deliveries.send_left_over)
            if taken:
                log.info("sent the replies of %d turn(s) a stopped worker had left", taken)
        except Exception as exc:
            log_round_failure(log, "sending left-over replies failed; retrying later", exc)
        if not await pause(every, stopping):
            return


# Background jobs whose round under way runs to its end at a stop (each then sees the stop and returns): one
# cancelled mid-statement leaves its connection to be reset by the pool, which logs that with a traceback.
ROUNDS_FINISH_AT_STOP = ("housekeeping", "left-over replies")


def _redact_in_logs(*secrets: str) -> None:
    """Add secrets to the redaction set up by `setup_logging` (the CLI registers Telegram's only)."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactSecrets):
                found.secrets.extend(s for s in secrets if s and s not in found.secrets)


# --- stopping ---------------------------------------------------------------------------------------

class StopRequest:
    """SIGTERM (systemd, Docker, Kubernetes) or SIGINT (Ctrl-C): the first asks for a clean stop, a second
    one for a quicker one (the answers under way are not waited for; the rest of the stop still runs)."""

    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self.requested = asyncio.Event()
        self.hurried = asyncio.Event()
        self._signals: list[int] = []

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._received, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a platform without them: a stop then comes by cancelling
            self._signals.append(sig)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)  # back to the default: a later signal ends the process as usual
        self._signals.clear()

    def _received(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if not self.requested.is_set():
            log.info("%s received: stopping; the answers under way get up to %.0f s", name, self.grace)
            self.requested.set()
        elif not self.hurried.is_set():
            log.warning("%s received again: not waiting any longer for the answers under way", name)
            self.hurried.set()


class TurnsInFlight:
    """The tasks answering an update right now. A channel handles each update in a task of its own that
    ends once the replies are sent, so waiting for these tasks waits for the answers, whatever the channel."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task] = set()

    def enter(self) -> None:
        task = asyncio.current_task()
        if task is not None and task not in self.tasks:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


class TrackedTipLine(TipLine):
    """The tip line, noting which tasks are answering, so a stop can let them finish."""

    def __init__(self, services: Services, turns: TurnsInFlight) -> None:
        super().__init__(services)
        self.turns = turns

    async def handle(self, inbound: Inbound) -> list[Reply]:
        self.turns.enter()
        return await super().handle(inbound)


async def _quietly(what: str, step: Awaitable[Any]) -> None:
    """One closing step; its failure is one line, and the steps after it still run."""
    try:
        await step
    except Exception as exc:  # noqa: BLE001  (a traceback here would help no one stopping the bot)
        log.warning("while stopping, could not %s (%s)", what, type(exc).__name__)


async def _first(tasks: set[asyncio.Future], *, until: float, hurry: asyncio.Event) -> None:
    """Wait until one of ``tasks`` ends, the loop time ``until`` comes, or a hurry is asked for."""
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        await asyncio.wait(tasks | {hurried}, timeout=max(0.0, until - asyncio.get_running_loop().time()),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        hurried.cancel()


def _drop_cancel_traceback(task: asyncio.Future) -> None:
    """A cancelled task keeps its CancelledError, traceback and frames, until asked for it once."""
    if task.done() and task.cancelled():
        try:
            task.exception()
        except asyncio.CancelledError:
            pass


async def _cancel(tasks: set[asyncio.Future]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Serving:
    """The jobs of one `tinbao run`, and the order in which they are stopped."""

    def __init__(self, stop: StopRequest, turns: TurnsInFlight) -> None:
        self.stop, self.turns = stop, turns
        self.intake: dict[str, asyncio.Task] = {}  # polling and webhook jobs
        self.background: dict[str, asyncio.Task] = {}  # housekeeping, the OA's upkeep
        self.reminders: asyncio.Task | None = None
        self.stoppers: dict[str, Callable[[], Awaitable[None]]] = {}  # polling job → its channel's stop()
        self.drains: list[Callable[[float], Awaitable[None]]] = []  # the Zalo channels' drain(timeout)
        self.settled = asyncio.Event()  # set once the answers under way are done: the webhook apps may shut

    def start(self, name: str, job: Coroutine, *, kind: str = "intake") -> None:
        task = asyncio.create_task(job, name=name)
        if kind == "reminders":
            self.reminders = task
        else:
            (self.intake if kind == "intake" else self.background)[name] = task

    @property
    def jobs(self) -> set[asyncio.Task]:
        return set(self.intake.values()) | set(self.background.values()) | ({self.reminders} - {None})

    async def until_stop_or_failure(self) -> BaseException | None:
        """Serve until a stop is asked for (None) or a job fails (its error)."""
        asked = asyncio.ensure_future(self.stop.requested.wait())
        try:
            while True:
                running = {task for task in self.jobs if not task.done()}
                done, _ = await asyncio.wait(running | {asked}, return_when=asyncio.FIRST_COMPLETED)
                for task in done - {asked}:
                    if not task.cancelled() and task.exception() is not None:
                        return task.exception()
                if asked in done:
                    return None
        finally:
            asked.cancel()

    async def _stop_polling(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        for name, stopper in self.stoppers.items():
            if not self.intake[name].done():
                await _quietly("stop polling", asyncio.wait_for(stopper(), max(0.1, deadline - loop.time())))

    async def wind_down(self, *, hurry: bool = False) -> int:
        """Stop taking updates, let the answers under way finish (bounded), hand the reminder rows back.
        Returns how many answers were cut short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (0.0 if hurry else self.stop.grace)
        # A job that failed (a second poller refused, say) stops the process as a signal would: the rounds
        # that finish at a stop watch this event, and would otherwise sleep through the whole grace.
        self.stop.requested.set()
        # 1. No new updates: polling stops fetching; cancelled, the webhook job closes its listeners
        #    (and waits for `settled` before it shuts its apps down, which closes aiogram's session).
        await self._stop_polling(deadline)
        for name, task in self.intake.items():
            if name == "webhooks":
                task.cancel()
        # The OA's upkeep would only start more work; the reminder job's cancel is its way to stop: the
        # dispatcher releases the rows it claimed but did not hand to a channel and gives sends in flight its
        # grace, and the step under way in the database (a scheduler tick, a write of outcomes) ends first.
        for name, task in self.background.items():
            if name not in ROUNDS_FINISH_AT_STOP:
                task.cancel()
        if self.reminders is not None:
            self.reminders.cancel()
        # 2. The answers under way, the polling jobs ending, the Zalo channels' queued events.
        drains = {asyncio.ensure_future(drain(max(0.0, deadline - loop.time()))) for drain in self.drains}
        waited = ({t for n, t in self.intake.items() if n != "webhooks"}
                  | {self.background.get(name) for name in ROUNDS_FINISH_AT_STOP} | drains) - {None}
        while not self.stop.hurried.is_set() and loop.time() < deadline:
            pending = {t for t in waited if not t.done()} | self.turns.tasks
            if not pending:
                break
            await _first(pending, until=min(deadline, loop.time() + STOP_AGAIN_EVERY), hurry=self.stop.hurried)
            await self._stop_polling(deadline)  # a channel still starting when asked misses the first stop()
        # 3. Past the bound (or hurried): what is left is cut. A cut turn's transaction rolls back.
        cut = {t for t in self.turns.tasks if not t.done()}
        # A polling job waits for its own answers; those are reported as cut, not the job a second time.
        late = sorted(name for name, t in (self.intake | self.background).items()
                      if t in waited and not t.done() and not (cut and name in self.stoppers))
        await _cancel(cut | {t for t in waited if not t.done()})
        if cut:
            log.warning("%d answer(s) under way were cut short by the stop", len(cut))
        if late and not self.stop.hurried.is_set():
            log.warning("did not end in time, cut short: %s", ", ".join(late))
        self.settled.set()
        # 4. The webhook apps shut down; the reminder hand-back is never cut (its own grace bounds it).
        webhooks = self.intake.get("webhooks")
        if webhooks is not None:
            await asyncio.wait({webhooks}, timeout=max(1.0, deadline - loop.time()))
            await _cancel({webhooks})
        if self.reminders is not None:
            await asyncio.gather(self.reminders, return_exceptions=True)
        await _cancel({t for t in self.jobs if not t.done()})
        # A task cut in the middle of a query leaves its SQLite connection open, in its transaction (write
        # lock, old snapshot), until the garbage collector frees the cursor its traceback holds: freed now,
        # so that shredding the replies and folding the WAL neither wait SQLite's busy timeout nor fail.
        count = len(cut)
        for task in cut | waited | self.jobs:
            _drop_cancel_traceback(task)
        del cut, waited
        gc.collect()
        return count


async def _first_attempts(checks: list[TokenCheck], stop: StopRequest) -> None:
    """Each token asked once, side by side, before anything starts: a refused one stops the start here
    (ConfigError), with nothing begun; an unreachable one is tried again later by its channel's job."""
    if not checks:
        return
    attempts = {asyncio.ensure_future(check.attempt()) for check in checks}
    asked = asyncio.ensure_future(stop.requested.wait())
    try:
        while attempts:
            done, attempts = await asyncio.wait(attempts | {asked}, return_when=asyncio.FIRST_COMPLETED)
            attempts.discard(asked)
            for task in done - {asked}:
                task.result()  # a refused token raises here
            if asked in done:
                raise StartInterrupted
    finally:
        asked.cancel()
        await _cancel(attempts)


async def _when_accepted(checks: list[TokenCheck], stop: StopRequest, serve: Callable[[], Awaitable[None]],
                         *, serving: str | None = None) -> None:
    """Serve once every platform of this job has taken its token (at once when the first attempt did)."""
    for check in checks:
        if not await check.until_accepted(stop.requested):
            return  # stopped while the platform was still out of reach
    if stop.requested.is_set():
        return
    if serving:
        log.info("%s", serving)
    await serve()


# --- `tinbao run` -----------------------------------------------------------------------------------

async def run(config: Config, *, webhook: bool | None = None, stop_grace: float = STOP_GRACE,
              database_wait: float = DATABASE_WAIT) -> None:
    """Serve every messenger that has a token, Telegram and Zalo at once if both have one, each by
    long polling or by webhook as configured (``webhook=True``: every one by webhook), until SIGTERM or
    SIGINT (then stop cleanly) or cancelled (then stop at once)."""
    stop = StopRequest(grace=stop_grace)
    stop.install()
    try:
        await _run(config, webhook=webhook, stop=stop, database_wait=database_wait)
    except StartInterrupted:
        log.info("stopped cleanly")
    finally:
        stop.remove()


async def _run(config: Config, *, webhook: bool | None, stop: StopRequest, database_wait: float) -> None:
    from bot.channels.base import reminder_senders
    from bot.channels.registry import plan
    from bot.delivery import Deliveries
    from bot.health import Health
    from bot.webhook import serve_webhooks

    install_log_hygiene(asyncio.get_running_loop())
    oa_section = config.zalo_oa
    if not (config.telegram.token.get_secret_value() or config.zalo_bot.token.get_secret_value()
            or oa_section.configured):
        raise ConfigError("telegram.token and zalo_bot.token are both empty: set TINBAO_TELEGRAM_TOKEN and/or "
                          "TINBAO_ZALO_BOT_TOKEN, or set up [zalo_oa] (or try the bot with `tinbao chat`)")
    _redact_in_logs(config.zalo_bot.token.get_secret_value(), config.zalo_bot.webhook_secret.get_secret_value(),
                    oa_section.secret_key.get_secret_value(), oa_section.app_secret.get_secret_value())
    planned = []
    try:
        planned += plan(config, webhook=webhook)
        await _first_attempts([p.check for p in planned if p.check is not None], stop)
        services = await open_services(config, database_wait=database_wait, stopping=stop.requested)
        try:
            turns = TurnsInFlight()
            serving = Serving(stop, turns)
            tipline = TrackedTipLine(services, turns)  # one for all: a chat's key carries its channel ("tg:", "zl:")
            deliveries = Deliveries()  # one for all: a verdict written on Telegram reaches a tipster on Zalo
            health = Health(services)
            tipline.handle = health.metrics.timed(tipline.handle)
            health.metrics.watch_replies(tipline.outbox)
            channels, hooks = [], []
            waiting_for: list[TokenCheck] = []  # the platforms the webhook server waits for
            for entry in planned:
                channel = entry.build(tipline, deliveries)
                channels.append(channel)
                # Health notes each successful poll: aiogram's bot for Telegram, the client's getUpdates for Zalo Bot.
                health.watch(entry.name, channel, bot=getattr(channel, "bot", None) if entry.name == "telegram" else None,
                             client=getattr(channel, "client", None) if entry.name == "zalo" else None)
                drain = getattr(channel, "drain", None)
                if drain is not None:
                    serving.drains.append(drain)
                if entry.upkeep:
                    serving.start(entry.name, channel.serve(), kind="background")  # leftovers, token refresh, purges
                if entry.by_webhook:
                    hooks.append((channel, entry.section))
                    waiting_for += [entry.check] if entry.check is not None else []
                elif not entry.upkeep:
                    serving.stoppers[entry.name] = channel.stop
                    # One poller per bot and database: a second `tinbao run` is refused (bot/polling_alone.py).
                    # "serving" is said once the lease is held, not before: a start may wait for the database.
                    serving.start(entry.name, _when_accepted([entry.check], stop, functools.partial(
                        poll_alone, services, entry.name, channel.serve,
                        serving=functools.partial(log.info, "serving %s by long polling", channel.label))))
            if hooks:
                # One server for every channel by webhook, once each of their platforms took its token.
                serving.start("webhooks", _when_accepted(waiting_for, stop, functools.partial(
                    serve_webhooks, hooks, until_settled=serving.settled.wait, extra_routes=health.add_routes)))
            if config.bot.health_listen:
                serving.start("health", health.serve(config.bot.health_listen), kind="background")
            serving.start("housekeeping", housekeeping(services, deliveries, stopping=stop.requested),
                          kind="background")
            serving.start("left-over replies", resend_left_over_replies(tipline.outbox, deliveries, channels,
                                                                        stopping=stop.requested), kind="background")
            if config.reminders.enabled:
                from bot.reminder_dispatcher import run_reminders
                # Every channel's own sender (the OA's 7-day window: refused as "outside_window").
                serving.start("reminders", run_reminders(services, services.settings.reminders,
                                                         reminder_senders(channels)), kind="reminders")
            try:
                failure = await serving.until_stop_or_failure()
            except asyncio.CancelledError:
                await serving.wind_down(hurry=True)  # cancelled (a caller's own stop): nothing is waited for
                raise
            await serving.wind_down()  # a failed job does not cut the other chats' answers short
            await _quietly("shred the replies already sent", tipline.outbox.flush())
            if failure is not None:
                raise failure
        finally:
            await _quietly("fold the SQLite WAL into the database file", services.db.checkpoint())
            await _quietly("close the database", services.db.dispose())
    finally:
        for entry in reversed(planned):
            await _quietly(f"close the {entry.name} session", entry.close())
    log.info("stopped cleanly")
