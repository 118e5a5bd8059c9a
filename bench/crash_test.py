"""Crash test: real `tinbao run` processes killed with SIGKILL at random moments and started again, while
scripted citizens go through whole tip-offs (11 steps, ending with "Send the tip" and its receipt TB-…),
a few of them then asking /status. Telegram is played by this process: by webhook it POSTs each update
with the secret header and sends the same update_id again until it gets a 200 (a refused or reset
connection while the bot is down is "not acknowledged"); by long polling the fake Bot API
(tests/fakes/telegram_api.py) keeps every update its offset has not passed.

    .venv/bin/python bench/crash_test.py --quick        # 10 conversations, 5 kills per run (CI)
    .venv/bin/python bench/crash_test.py                # 100 conversations, 50 kills per run
    options: --mode webhook,polling  --database-url sqlite,postgresql://…  --seed N
             --conversations N --kills N --concurrency N

Each (mode, database) run starts from an empty database. First two citizens go through the script with
no kill: their transcripts are the reference. Then the killed run. Once every citizen is done the last
process is stopped with SIGTERM; the turns a killed worker left in the reply outbox are dated back past
the sweep's 5 minutes and one more `tinbao run` sends them (the wait is skipped, not the code path).

Targets, each must be 0 (exit 1 otherwise):
  acked-unhandled   an update acknowledged (200, or the offset passed it) whose id the bot never recorded
  receipt-lost      a stored tip whose citizen never got a TB- code, beyond the replies the logs count unknown
  tip-lost          a citizen's "Send the tip" acknowledged, and no tip of theirs stored
  tip-twice         more than one stored tip for one citizen
  reply-twice       a bot message in a conversation more often than in the reference (the answers to the
                    citizen's own /report nudges after a lost reply are set aside first)
  no-resume         a conversation that could not be brought to its receipt
  undecryptable     a stored tip whose fields do not open with the keyring
Not a target, reported: unknown replies (the bot's log lines: a reply that may or may not have gone out,
never sent twice), replies left to the sweep, resumes, redeliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from bot.config import load_config  # noqa: E402
from bot.runtime import open_services  # noqa: E402
from storage.keys import load_data_key  # noqa: E402
from storage.models import ProcessedUpdate, Tip, TurnReply, utcnow  # noqa: E402
from storage.tips import read_tip_fields  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from tests.support.processes import Site, TinbaoProcess  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/tinbao_outbox_crash"
SECRET = "crash-" + secrets.token_hex(12)
SEND = "Send the tip"
STEPS = [("text", "/report"), ("tap", "Drugs"), ("text", "Vụ {n:05d}: có người bán ma túy ở quán cà phê đầu hẻm."),
         ("tap", "Happening now"), ("text", "ben thanh"), ("tap", "Phường Bến Thành"), ("location", None),
         ("text", "Hai thanh niên đi xe Exciter"), ("tap", "No evidence"), ("tap", "Anonymous"), ("tap", SEND)]
STATUS_EVERY = 4  # every 4th citizen asks /status with its code once it has it
UNKNOWN_LINES = ("a reply's delivery is unknown", "a reply was being sent when its worker stopped")
CODE = re.compile(r"TB-[0-9A-Z]{5}-[0-9A-Z]{5}")
CASE = re.compile(r"Vụ \d{5}")
CHOSEN = re.compile(r"\n\n» [^\n]*\Z")  # what the bot adds under a question once its button was tapped
WHEN = re.compile(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}")  # /status names the minute the tip came: not the reference's
ACK_WAIT = 120.0  # s a polled update may wait for the bot to come back: a bound for a hang
LATE_REPLY = 1.0  # s after the acknowledgement for the reply to show at the fake API (already sent by then)


def normal(text: str) -> str:
    """A bot message as compared between runs: codes, the citizen's case number and the tapped choice out."""
    return WHEN.sub("…", CASE.sub("Vụ #", CODE.sub("TB-…", CHOSEN.sub("", text or ""))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Figures:
    mode: str
    database: str
    kills: int = 0
    updates: int = 0  # distinct updates the citizens sent
    deliveries: int = 0  # webhook POSTs (with redeliveries), or polled updates the fake served
    conversations: int = 0
    acked_unhandled: int = 0
    receipt_lost: int = 0
    tip_lost: int = 0
    tip_twice: int = 0
    reply_twice: int = 0
    no_resume: int = 0
    undecryptable: int = 0
    unknown: int = 0
    left_to_sweep: int = 0
    resumes: int = 0
    seconds: float = 0.0
    findings: list[str] = field(default_factory=list)

    TARGETS = ("acked_unhandled", "receipt_lost", "tip_lost", "tip_twice", "reply_twice", "no_resume",
               "undecryptable")

    def missed(self) -> bool:
        return any(getattr(self, t) for t in self.TARGETS)


class Telegram:
    """Telegram's side of one run: the fake Bot API, and by webhook the poster that redelivers until 200."""

    def __init__(self, mode: str, port: int) -> None:
        self.mode, self.port = mode, port
        self.fake = FakeTelegram(token="424242:CRASH-test-token")
        self.acked: set[int] = set()  # webhook: answered 200
        self.sent_updates: dict[int, tuple[int, str]] = {}  # update_id -> (chat, what)
        self.posts = 0
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.fake.start()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90))

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        await self.fake.close()

    def config(self) -> str:
        section = f'[telegram]\ntoken = "{self.fake.token}"\napi_base = "{self.fake.base_url}"\n'
        if self.mode == "webhook":
            section += (f'mode = "webhook"\nwebhook_url = "https://crash.invalid"\n'
                        f'webhook_listen = "127.0.0.1:{self.port}"\nwebhook_secret = "{SECRET}"\n')
        return section + ('\n[limits]\ntips_per_day = 1000000\nmessages_per_minute = 1000000\n'
                          'status_checks_per_hour = 1000000\n\n[reminders]\nenabled = false\n')

    @property
    def ready_line(self) -> str:
        return "serving Telegram by webhook" if self.mode == "webhook" else "serving Telegram by long polling"

    def acknowledged(self, update_id: int) -> bool:
        if self.mode == "webhook":
            return update_id in self.acked
        return max(self.fake.offsets, default=0) > update_id

    async def put(self, chat: int, action: str, value, what: str) -> int:
        """One citizen action as an update; returns once Telegram counts it acknowledged."""
        fake = self.fake
        if action == "text":
            update_id = fake.send_text(chat, value, language_code="en")
        elif action == "location":
            update_id = fake.send_location(chat, 10.7726, 106.6980, language_code="en")
        else:
            update_id = fake.click(chat, value[0], message_id=value[1], language_code="en")
        self.sent_updates[update_id] = (chat, what)
        if self.mode == "webhook":
            fake._pending = [e for e in fake._pending if e[0] != update_id]  # nobody polls: Telegram posts it
            await self._post_until_200(fake._history[update_id])
        else:
            async with asyncio.timeout(ACK_WAIT):
                while not self.acknowledged(update_id):
                    fake._new_offset.clear()
                    try:
                        await asyncio.wait_for(fake._new_offset.wait(), 1.0)
                    except TimeoutError:
                        pass
        return update_id

    async def _post_until_200(self, body: dict) -> None:
        url = f"http://127.0.0.1:{self.port}/telegram/webhook"
        async with asyncio.timeout(ACK_WAIT * 3):
            while True:
                self.posts += 1
                try:
                    async with self.http.post(url, json=body, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as r:
                        if r.status == 200:
                            self.acked.add(body["update_id"])
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass  # refused, reset, or no answer: not acknowledged, sent again
                await asyncio.sleep(0.25)


class Bot:
    """The `tinbao run` processes of a run, one at a time, and the killer that takes them down."""

    def __init__(self, site: Site, telegram: Telegram) -> None:
        self.site, self.telegram = site, telegram
        self.processes: list[TinbaoProcess] = []
        self.current: TinbaoProcess | None = None
        self.kills = 0
        self.uptime = 0.0

    async def start(self) -> None:
        self.current = await TinbaoProcess.start("run", config=self.site.config)
        self.processes.append(self.current)
        await self.current.wait_for_line(self.telegram.ready_line, timeout=180)

    async def kill(self) -> None:
        self.current.kill()
        await self.current.wait(timeout=60)
        self.kills += 1

    async def stop(self) -> int:
        self.current.send_signal(signal.SIGTERM)
        return await self.current.wait(timeout=90)

    async def killer(self, rng: random.Random, target: int, done: asyncio.Event, progress) -> None:
        """SIGKILL after a random stretch of serving, then a start again at once, as systemd does."""
        while self.kills < target and not done.is_set():
            served, remaining = progress()
            mean = 1.5 if served == 0 or self.uptime == 0 else \
                min(20.0, self.uptime / served * remaining / max(1, target - self.kills))
            began = time.monotonic()
            try:
                await asyncio.wait_for(done.wait(), rng.uniform(0.1, 1.9) * mean)
                self.uptime += time.monotonic() - began
                return
            except TimeoutError:
                self.uptime += time.monotonic() - began
            await self.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await self.start()

    def unknown_replies(self) -> int:
        return sum(1 for p in self.processes for line in p.stderr_lines if any(u in line for u in UNKNOWN_LINES))

    async def close(self) -> None:
        for process in self.processes:
            await process.close()


class Citizen:
    """One scripted tip-off in one chat: each step sent, its answer waited for; a lost answer resumed with
    /report as a citizen would (the bot re-asks the open question)."""

    def __init__(self, n: int, chat: int, telegram: Telegram, reference: list[list[str]] | None,
                 rng: random.Random) -> None:
        self.n, self.chat, self.telegram, self.reference, self.rng = n, chat, telegram, reference, rng
        self.status = n % STATUS_EVERY == 0
        self.steps: list[list[str]] = []  # normalized answers per step (reference run)
        self.nudge_replies: list[str] = []  # answers to our own /report nudges, set aside in the comparison
        self.resumes = 0
        self.status_tries = 0
        self.send_acked = False
        self.code: str | None = None
        self.events: list[str] = []
        self.finished = False

    @property
    def fake(self) -> FakeTelegram:
        return self.telegram.fake

    def transcript(self) -> list[dict]:
        return self.fake.messages_to(self.chat)

    def script(self) -> list[tuple[str, object]]:
        steps = [(a, v.format(n=self.n) if isinstance(v, str) else v) for a, v in STEPS]
        return steps + ([("text", "/status {code}")] if self.status else [])

    def _button(self, label: str) -> tuple[str, int] | None:
        for record in reversed(self.transcript()):
            for text, data in self.fake.buttons(record):
                if label in text:
                    return data, record["message_id"]
        return None

    async def act(self, action: str, value, what: str) -> tuple[int, list[dict]]:
        """Send one action once; the messages that came after it (webhook: by the 200; polling: by the offset)."""
        before = len(self.transcript())
        if action == "tap":
            found = self._button(value)
            if found is None:
                raise LookupError(value)
            value = found
        elif action == "text" and "{code}" in value:
            value = value.format(code=self.code)
        update_id = await self.telegram.put(self.chat, action, value, what)
        if self.reference is not None:
            # Answered by now; a short wait covers the last message's answer still on its way to us.
            deadline = time.monotonic() + LATE_REPLY
            while time.monotonic() < deadline and len(self.transcript()) == before:
                await asyncio.sleep(0.05)
        return update_id, self.transcript()[before:]

    async def run(self) -> None:
        script, k = self.script(), 0
        while k < len(script):
            action, value = script[k]
            await asyncio.sleep(self.rng.uniform(0.0, 0.2))  # a citizen reads, then types
            try:
                update_id, came = await self.act(action, value, f"step {k + 1} {action} {value!r:.40}")
            except LookupError:
                came, update_id = [], None
                self.events.append(f"step {k + 1}: no button {value!r} to tap")
            if self.reference is None:  # the reference run: no kill, everything is answered
                self.steps.append([normal(m.get("text")) for m in came])
                if action == "tap" and value == SEND:
                    self.send_acked = True
                    self.code = next(iter(CODE.findall(" ".join(m.get("text") or "" for m in came))), None)
                k += 1
                continue
            if action == "tap" and value == SEND and update_id is not None:
                self.send_acked = True
            if await self._answered(k, came):
                k += 1
                continue
            if update_id is not None:
                self.events.append(f"step {k + 1} ({action} {str(value)[:30]!r}), update {update_id}: acknowledged, "
                                   f"expected answer missing; got {[normal(m.get('text'))[:50] for m in came]}")
            if action == "tap" and value == SEND:
                return  # without a code the citizen cannot follow the tip; filing it again would double it
            resumed = await self._resume(k, script)
            if resumed is None:
                return
            k = resumed
        self.finished = True

    async def _answered(self, k: int, came: list[dict]) -> bool:
        expected = self.reference[k][-1] if self.reference[k] else None
        got = [normal(m.get("text")) for m in came]
        if expected is None or expected in got:
            if k == len(STEPS) - 1:
                codes = CODE.findall(" ".join(m.get("text") or "" for m in came))
                self.code = codes[0] if codes else None
                return self.code is not None
            return True
        return False

    def _question_shown(self, last: str) -> int | None:
        """The step that answers the question ``last`` shows again, or None."""
        asked = [(j, self.reference[j][-1]) for j in range(len(STEPS) - 1) if self.reference[j]]
        # The question comes again under a lead ("You have an unfinished tip…"): its end is the question.
        for j, question in reversed(asked):
            if last.endswith(question):
                return j + 1
        # The first question came under the tip-off's welcome, which the lead replaces: only the question's own
        # paragraph is the same, taken when no other step ends with that paragraph.
        paragraph = last.rsplit("\n\n", 1)[-1]
        matching = [j for j, question in asked if question.rsplit("\n\n", 1)[-1] == paragraph]
        return matching[0] + 1 if len(matching) == 1 else None

    async def _resume(self, k: int, script) -> int | None:
        """Send /report until the bot shows a question of the script; the step that answers it."""
        for _ in range(5):
            self.resumes += 1
            if script[k][1] is not None and str(script[k][1]).startswith("/status"):
                self.status_tries += 1  # /status is simply asked again, a few times (it has a limit an hour)
                if self.status_tries > 5:
                    self.events.append("/status never gave the answer of the reference run")
                    return None
                return k
            _, came = await self.act("text", "/report", "resume /report")
            self.nudge_replies += [normal(m.get("text")) for m in came]
            if not came:
                continue
            last = normal(came[-1].get("text"))
            resumed = self._question_shown(last)
            if resumed is not None:
                self.events.append(f"resumed at step {resumed + 1}")
                return resumed
            self.events.append(f"resume: unexpected answer {last[:80]!r}")
        return None


async def fresh_database(url: str, work: Path, label: str) -> str:
    if url == "sqlite":
        return f"sqlite+aiosqlite:///{work / label / 'crash.db'}"
    import asyncpg
    parsed = make_url(url)
    admin = await asyncpg.connect(parsed.set(drivername="postgresql", database="postgres")
                                  .render_as_string(hide_password=False))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def services_of(site: Site):
    return await open_services(load_config(site.config, environ={}))


async def outbox_rows(site: Site, *, date_back: bool = False) -> int:
    services = await services_of(site)
    try:
        async with services.db.transaction() as session:
            count = (await session.exec(select(func.count()).select_from(TurnReply))).one()
            if date_back and count:
                await session.exec(update(TurnReply).values(created_at=utcnow() - timedelta(hours=1)))
        return count
    finally:
        await services.db.dispose()


async def stored(site: Site) -> tuple[Counter, int, set[str]]:
    """Tips by case number, how many do not open, and the update ids the bot recorded as handled."""
    services = await services_of(site)
    by_case, broken = Counter(), 0
    try:
        async with services.db.transaction() as session:
            for tip in (await session.exec(select(Tip))).all():
                try:
                    key = await load_data_key(session=session, keyring=services.keyring, owner_id=tip.id)
                    description = (await read_tip_fields(session=session, data_key=key))["description"]
                except Exception:  # noqa: BLE001  (any failure to open is the finding)
                    broken += 1
                    continue
                found = re.search(r"Vụ (\d{5})", description)
                by_case[int(found.group(1)) if found else -1] += 1
            handled = set((await session.exec(select(ProcessedUpdate.update_id)
                                              .where(ProcessedUpdate.channel == "telegram"))).all())
        return by_case, broken, handled
    finally:
        await services.db.dispose()


async def one_run(mode: str, url: str, args, rng: random.Random, work: Path) -> Figures:
    label = f"{mode}-{'sqlite' if url == 'sqlite' else 'postgresql'}"
    figures = Figures(mode, "SQLite" if url == "sqlite" else "PostgreSQL", conversations=args.conversations)
    began = time.monotonic()
    database_url = await fresh_database(url, work, label)
    telegram = Telegram(mode, free_port())
    await telegram.start()
    site = Site(work / label, database_url, extra=telegram.config())
    await site.init()
    bot = Bot(site, telegram)
    try:
        await bot.start()
        # The reference: the same script with no kill (one citizen with /status, one without).
        references = {}
        for status in (True, False):
            n = 99_996 + (not status)  # case numbers no citizen of the run has (99,996 asks /status)
            citizen = Citizen(n, 9_000_000 + n, telegram, None, rng)
            await citizen.run()
            references[status] = citizen
            if not citizen.code:
                raise SystemExit(f"{label}: the reference citizen got no receipt: {citizen.transcript()}")
        reference_ids, reference_posts = set(telegram.sent_updates), telegram.posts
        print(f"  {label}: reference done after {time.monotonic() - began:.0f} s", flush=True)

        citizens = [Citizen(n, 7_000_000 + n, telegram, references[n % STATUS_EVERY == 0].steps,
                            random.Random(rng.random())) for n in range(1, args.conversations + 1)]
        done = asyncio.Event()
        total = sum(len(c.script()) for c in citizens)

        def progress() -> tuple[int, int]:
            served = len(telegram.sent_updates) - len(reference_ids)
            return served, max(0, total - served)

        gate = asyncio.Semaphore(args.concurrency)

        async def go(citizen: Citizen) -> None:
            async with gate:
                try:
                    await citizen.run()
                except TimeoutError:
                    citizen.events.append("an update was never acknowledged within the bound")

        killer = asyncio.create_task(bot.killer(rng, args.kills, done, progress))
        talks = asyncio.ensure_future(asyncio.gather(*(go(c) for c in citizens)))
        await asyncio.wait([killer, talks], return_when=asyncio.FIRST_EXCEPTION)
        if killer.done() and killer.exception() is not None:
            talks.cancel()
            raise killer.exception()  # a start that failed: nothing else would make sense
        await talks
        done.set()
        await killer
        code = await bot.stop()
        if code != 0:
            figures.findings.append(f"{label}: the last process exited {code} on SIGTERM")

        # What killed workers left in the reply outbox: dated past the sweep's wait, and sent by a new process.
        figures.left_to_sweep = await outbox_rows(site, date_back=True)
        if figures.left_to_sweep:
            await bot.start()
            async with asyncio.timeout(120):
                while await outbox_rows(site):
                    await asyncio.sleep(0.5)
            await asyncio.sleep(LATE_REPLY)
            await bot.stop()

        by_case, figures.undecryptable, handled = await stored(site)
        figures.kills, figures.unknown = bot.kills, bot.unknown_replies()
        figures.updates = len(telegram.sent_updates) - len(reference_ids)
        figures.deliveries = telegram.posts - reference_posts if mode == "webhook" else len(telegram.fake.offsets)
        figures.resumes = sum(c.resumes for c in citizens)
        for update_id, (chat, what) in telegram.sent_updates.items():
            if update_id in reference_ids:
                continue
            if telegram.acknowledged(update_id) and str(update_id) not in handled:
                figures.acked_unhandled += 1
                figures.findings.append(f"{label}: update {update_id} (chat {chat}, {what}) acknowledged, never handled")
        missing_receipts, unfinished = [], []
        for citizen in citizens:
            tips = by_case.get(citizen.n, 0)
            got_code = any(CODE.search(m.get("text") or "") and "Please check" not in (m.get("text") or "")
                           for m in citizen.transcript())
            if tips > 1:
                figures.tip_twice += 1
                figures.findings.append(f"{label}: citizen {citizen.n} has {tips} tips stored")
            if citizen.send_acked and tips == 0:
                figures.tip_lost += 1
                figures.findings.append(f"{label}: citizen {citizen.n}: Send acknowledged, no tip stored")
            if tips and not got_code:
                missing_receipts.append(citizen)
            elif not citizen.finished and not got_code:
                unfinished.append(citizen)
            expected = Counter(m for step in references[citizen.status].steps for m in step)
            actual = Counter(normal(m.get("text")) for m in citizen.transcript())
            actual.subtract(Counter(citizen.nudge_replies))
            extra = {m: c - expected[m] for m, c in actual.items() if c > expected[m]}
            if extra:
                figures.reply_twice += sum(extra.values())
                figures.findings.append(f"{label}: citizen {citizen.n} got more than the reference: "
                                        f"{ {m[:70]: c for m, c in extra.items()} }; events {citizen.events}")
            if citizen.events and args.verbose:
                print(f"  {label} citizen {citizen.n}: {citizen.events}", flush=True)
        # A stored tip whose code never reached its citizen is a loss unless the bot counted a reply unknown.
        figures.receipt_lost = max(0, len(missing_receipts) - figures.unknown)
        for citizen in missing_receipts:
            figures.findings.append(f"{label}: citizen {citizen.n}: tip stored, no receipt (unknown replies "
                                    f"logged in this run: {figures.unknown}); events {citizen.events}")
        # Not brought to a receipt (a receipt that came late, from the sweep, counts as resumed).
        figures.no_resume = len(unfinished)
        for citizen in unfinished:
            figures.findings.append(f"{label}: citizen {citizen.n} did not finish: {citizen.events}")
    finally:
        await bot.close()
        await telegram.close()
    figures.seconds = time.monotonic() - began
    return figures


def table(rows: list[Figures]) -> str:
    head = ("| mode | database | kills | updates | deliveries | conversations | acked-unhandled | receipt-lost | "
            "tip-lost | tip-twice | reply-twice | no-resume | undecryptable | unknown replies | left to sweep | "
            "resumes | s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for f in rows:
        lines.append(f"| {f.mode} | {f.database} | {f.kills} | {f.updates} | {f.deliveries} | {f.conversations} | "
                     f"{f.acked_unhandled} | {f.receipt_lost} | {f.tip_lost} | {f.tip_twice} | {f.reply_twice} | "
                     f"{f.no_resume} | {f.undecryptable} | {f.unknown} | {f.left_to_sweep} | {f.resumes} | "
                     f"{f.seconds:.0f} |")
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 conversations and 5 kills per run")
    parser.add_argument("--mode", default="webhook,polling")
    parser.add_argument("--database-url", default=f"sqlite,{DEFAULT_PG}",
                        help='comma-separated: "sqlite" (a temporary file) and/or a PostgreSQL URL (recreated)')
    parser.add_argument("--conversations", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    args.conversations = args.conversations or (10 if args.quick else 100)
    args.kills = args.kills if args.kills is not None else (5 if args.quick else 50)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    print(f"crash test: seed {seed}; {args.conversations} conversations and {args.kills} kills per run", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tinbao-crash-"))
    rows: list[Figures] = []
    started = time.monotonic()
    try:
        for mode in args.mode.split(","):
            for url in args.database_url.split(","):
                rng = random.Random(f"{seed}-{mode}-{url}")
                figures = await one_run(mode, url, args, rng, work)
                rows.append(figures)
                print(f"{figures.mode}, {figures.database}: {figures.kills} kills, {figures.updates} updates, "
                      f"{figures.seconds:.0f} s", flush=True)
                for finding in figures.findings:
                    print("  " + finding, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    missed = [f"{f.mode}/{f.database}" for f in rows if f.missed()]
    print(f"seed {seed}; {time.monotonic() - started:.0f} s in all; " +
          (f"TARGETS MISSED in {', '.join(missed)}" if missed else "every target met (0)"), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
