"""Steps per second, step latency and bot CPU per step of a scripted conversation, through the real
webhook path, for three bots side by side: aiogram's FSM form example with MemoryStorage (bare), the same
form made durable (update id recorded once, state sealed with AES-256-GCM and committed to SQLite WAL
synchronous=FULL before the reply; bench/aiogram_form.py), and `tinbao run --webhook` (SQLite and
PostgreSQL). Not a test: run it by hand, on an otherwise quiet machine if there is one.

    .venv/bin/python bench/conversation.py [--seconds 5] [--rounds 2] [--citizens 1,50,200]
                                           [--postgres postgresql://postgres@127.0.0.1:5432/tinbao_bench]
                                           [--profile DIR] [--against DIR [--against-postgres URL]]

Each bot is a process of its own serving a webhook on 127.0.0.1; the driver (this process) is the fake
Bot API (tests/fakes/telegram_api.py) of all three and posts each citizen's next update as Telegram would,
once the bot's answer to the previous one has reached the fake API; a Bot API call that a bot carries in
its webhook's 200 (tinbao answers a tap that way) is made as Telegram makes it. A step's latency runs from the POST
to that answer. Each bot first walks its script once, unmeasured (what a process loads once, such as the national
ward catalogue at the first ward search, is not a step's cost). Runs are interleaved (bare, durable, tinbao,
then the other way round, …) so that the
machine's noise falls on all of them alike; figures are medians over the rounds. Bot CPU per step is the
process's user+system time over the run divided by its steps; the Bot API requests per step count the
bot's own requests to the fake API, and after "+" the calls its 200s carried. The bare form has 4 steps (/start, name,
"Yes", language), tinbao's tip-off 10 (/report, category, text, when, ward search, ward, location, people,
files done, anonymous; then /cancel and «Yes, delete it», not counted); each citizen repeats its script until the run's time is up.

--profile DIR: tinbao runs through bench/counted_bot.py (every SQL statement counted by an SQLAlchemy event
listener) and py-spy samples it during each of its runs (DIR/<bot>-<citizens>-<round>.txt, collapsed
stacks of the thread holding the GIL only, so that waiting is left out); a line per run gives the statements
per step by kind. Its own CPU figures are then not comparable with a run without --profile.

--against DIR: a fourth bot, tinbao as another checkout's code has it (DIR, e.g. a worktree of the commit
before a change), interleaved with the others in the same runs: two versions compared side by side. With
--postgres it needs a second empty database, --against-postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from tests.support.deployment import config_toml  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
WEBHOOK_SECRET = "bench-secret-" + secrets.token_hex(8)
FORM = [("text", "/start"), ("text", "Lan"), ("text", "Yes"), ("text", "Python")]
TIPOFF = [("text", "/report"), ("tap", "Drugs"), ("text", "Có người bán ma túy ở quán cà phê đầu hẻm."),
          ("tap", "Happening now"), ("text", "ben thanh"), ("tap", "Phường Bến Thành"), ("location", None),
          ("text", "Hai thanh niên đi xe Exciter"), ("tap", "No evidence"), ("tap", "Anonymous")]


class CountingTelegram(FakeTelegram):
    """The fake Bot API, counting each chat's messages so a thousand waiting citizens cost nothing."""

    def __init__(self, token: str) -> None:
        super().__init__(token=token)
        self.count: dict[int, int] = defaultdict(int)
        self.keyboard: dict[int, dict] = {}  # each chat's latest message with buttons
        self.arrived: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    async def _send_message(self, method: str, p: dict) -> dict:
        message = await super()._send_message(method, p)
        self.note_reply(int(p["chat_id"]), message)
        self.sent.clear()  # the base class keeps every record; a long run does not need them
        return message

    def note_reply(self, chat: int, message: dict) -> None:
        """Counts a message the bot sent to chat, keeping it if it has buttons (the citizen's next tap)."""
        if self.buttons(message):
            self.keyboard[chat] = message
        self.count[chat] += 1
        self.arrived[chat].set()

    async def until_count(self, chat: int, count: int, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count[chat] < count:
                self.arrived[chat].clear()
                await self.arrived[chat].wait()

    def next_update(self, chat: int, action: str, value) -> dict:
        if action == "text":
            update_id = self.send_text(chat, value, language_code="en")
        elif action == "location":
            update_id = self.send_location(chat, 10.7726, 106.6980, language_code="en")
        else:
            message = self.keyboard[chat]
            found = [d for label, d in self.buttons(message) if value in label]
            if not found:
                raise SystemExit(f"no button {value!r} in {message.get('text', '')[:200]!r}: "
                                 f"{[label for label, _ in self.buttons(message)]}")
            data = found[0]
            update_id = self.click(chat, data, message_id=message["message_id"], language_code="en")
        self._pending.clear()  # served by webhook: nobody polls
        return self._history.pop(update_id)


def cpu_seconds(pid: int) -> float:
    """User+system time a process (all its threads) has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def child_env(code: Path = ROOT) -> dict[str, str]:
    """The environment of a process the benchmark starts: this checkout (or ``code``) importable, no TINBAO_*
    of ours."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")}, "PYTHONPATH": str(code)}


def tinbao_config(database_url: str, *, token: str, api_base: str, port: int) -> str:
    """config.toml of a tinbao webhook worker on 127.0.0.1:port, its limits out of a benchmark's way."""
    return config_toml(database_url, extra=(
        f'[telegram]\ntoken = "{token}"\napi_base = "{api_base}"\nmode = "webhook"\n'
        f'webhook_url = "https://bench.invalid"\nwebhook_listen = "127.0.0.1:{port}"\n'
        f'webhook_secret = "{WEBHOOK_SECRET}"\n\n'
        '[limits]\ntips_per_day = 1000000\nmessages_per_minute = 1000000\nstatus_checks_per_hour = 1000000\n\n'
        '[reminders]\nenabled = false\n'))


class BotProcess:
    def __init__(self, name: str, command: list[str], *, ready: str, port: int, fake: CountingTelegram,
                 script: list, cwd: Path, counts: Path | None = None, code: Path = ROOT) -> None:
        self.name, self.command, self.ready, self.port, self.fake, self.script = name, command, ready, port, fake, script
        self.cwd, self.counts, self.code = cwd, counts, code
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        self.log = open(self.cwd / f"{self.name}.log", "w+")
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=child_env(self.code), stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.log.seek(0)
            if self.ready in self.log.read():
                return
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        self.log.seek(0)
        raise SystemExit(f"{self.name} did not start:\n{self.log.read()[-3000:]}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def post_update(bot: BotProcess, http: aiohttp.ClientSession, update: dict) -> None:
    """Post one update to the bot's webhook as Telegram does, then make the Bot API call its 200 carries, if
    any, as Telegram makes it (tinbao answers a tap that way; the aiogram forms answer "{}", no call)."""
    async with http.post(f"http://127.0.0.1:{bot.port}/telegram/webhook", json=update,
                         headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as response:
        if response.status != 200:
            raise SystemExit(f"{bot.name}: webhook answered {response.status}")
        content_type, body = response.headers.get("Content-Type", ""), await response.read()
    await bot.fake.take_webhook_answer(content_type, body)


async def citizen(bot: BotProcess, http: aiohttp.ClientSession, chat: int, until: float, latencies: list[float],
                  once: bool = False) -> int:
    steps = 0
    if once:
        until = float("inf")
    while time.perf_counter() < until:
        for action, value in bot.script:
            update = bot.fake.next_update(chat, action, value)
            expected = bot.fake.count[chat] + 1
            started = time.perf_counter()
            await post_update(bot, http, update)
            await bot.fake.until_count(chat, expected)
            latencies.append(time.perf_counter() - started)
            steps += 1
            if time.perf_counter() >= until:
                break
        # A tip-off ends on the review screen: cancelled (/cancel, then «Yes, delete it»), so the next round
        # starts from a fresh /report.
        for action, value in (("text", "/cancel"), ("tap", "Yes, delete it")) if bot.script is TIPOFF else ():
            if time.perf_counter() >= until:
                break
            update = bot.fake.next_update(chat, action, value)
            expected = bot.fake.count[chat] + 1
            await post_update(bot, http, update)
            await bot.fake.until_count(chat, expected)
        if once:
            break
    return steps


async def warm_up(bot: BotProcess, chat: int) -> None:
    async with aiohttp.ClientSession() as http:
        await citizen(bot, http, chat, time.perf_counter() + 1e-3, [], once=True)


async def statement_counts(bot: BotProcess) -> dict[str, int]:
    import json
    bot.counts.unlink(missing_ok=True)
    bot.process.send_signal(__import__("signal").SIGUSR1)
    for _ in range(100):
        if bot.counts.exists() and bot.counts.stat().st_size:
            return json.loads(bot.counts.read_text())
        await asyncio.sleep(0.05)
    return {}


async def measure(bot: BotProcess, citizens: int, seconds: float, first_chat: int,
                  profile: Path | None = None, label: str = "") -> dict:
    latencies: list[float] = []
    spy, counted = None, bot.counts is not None
    if counted:
        before = await statement_counts(bot)
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(bot.process.pid),
                                "--format", "raw", "--rate", "200", "--nonblocking", "--gil", "-o", str(profile / f"{label}.txt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(1.0)  # py-spy attaches
    connector = aiohttp.TCPConnector(limit=0)
    calls0, in_200s0 = len(bot.fake.calls), len(bot.fake.webhook_calls)
    async with aiohttp.ClientSession(connector=connector) as http:
        cpu0, wall0, own0 = bot.cpu_seconds(), time.perf_counter(), time.process_time()
        until = wall0 + seconds
        steps = await asyncio.gather(*(citizen(bot, http, first_chat + i, until, latencies) for i in range(citizens)))
        wall, cpu, own = time.perf_counter() - wall0, bot.cpu_seconds() - cpu0, time.process_time() - own0
    total = sum(steps)
    if counted:
        spy.send_signal(__import__("signal").SIGINT)
        spy.wait(30)
        after = await statement_counts(bot)
        texts, before_texts = after.pop("texts", {}), before.pop("texts", {})
        per_step = {k: (after.get(k, 0) - before.get(k, 0)) / total for k in after}
        print(f"  {label}: statements per step " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_step.items()) if v)
              + f"; all SQL {sum(v for k, v in per_step.items() if not k.startswith('(')):.2f}", flush=True)
        with open(profile / f"{label}.statements.txt", "w") as listing:
            for text, n in sorted(texts.items(), key=lambda item: before_texts.get(item[0], 0) - item[1]):
                listing.write(f"{(n - before_texts.get(text, 0)) / total:6.2f} {text}\n")
    latencies.sort()
    return {"steps": total, "steps_s": total / wall, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "cpu_ms": cpu / total * 1000 if total else float("nan"), "driver_ms": own / total * 1000 if total else 0,
            # Bot API requests the bot made, and calls it had carried in its webhook 200s, per counted step.
            "requests": (len(bot.fake.calls) - calls0) / total if total else 0,
            "in_200s": (len(bot.fake.webhook_calls) - in_200s0) / total if total else 0}


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bots_for(database: str, url: str | None, work: Path, profile: Path | None = None,
                   against: Path | None = None, against_url: str | None = None) -> list[BotProcess]:
    bots = []
    for name, durable in (("bare", False), ("durable", True)):
        fake = CountingTelegram(f"{100 + durable}:BENCH-{name}")
        await fake.start()
        port = free_port()
        command = [sys.executable, str(ROOT / "bench" / "aiogram_form.py"), "--listen", f"127.0.0.1:{port}",
                   "--api-base", fake.base_url, "--token", fake.token]
        if durable:
            command += ["--durable", str(work / f"durable-{database}.db")]
        bots.append(BotProcess(name, command, ready="serving", port=port, fake=fake, script=FORM, cwd=work))
    bots.append(await tinbao_bot(f"tinbao-{database}", url, work, profile=profile))
    if against is not None:
        bots.append(await tinbao_bot(f"tinbao-{database}-against", against_url, work, code=against))
    return bots


async def tinbao_bot(name: str, url: str | None, work: Path, *, profile: Path | None = None,
                     code: Path = ROOT) -> BotProcess:
    """`tinbao run --webhook` on a database of its own (SQLite in its folder, or the PostgreSQL URL), from the
    checkout ``code``."""
    fake = CountingTelegram("200:BENCH-tinbao")
    await fake.start()
    port = free_port()
    site = work / name
    site.mkdir()
    db_url = url or f"sqlite+aiosqlite:///{site}/data/tinbao.db"
    (site / "config.toml").write_text(tinbao_config(db_url, token=fake.token, api_base=fake.base_url, port=port),
                                      encoding="utf-8")
    tinbao = [sys.executable, "-m", "bot.cli", "--config", str(site / "config.toml")]
    subprocess.run([*tinbao, "init"], cwd=site, check=True, capture_output=True, env=child_env(code))
    counts = site / "statements.json" if profile else None
    run = ([sys.executable, str(ROOT / "bench" / "counted_bot.py"), str(counts), *tinbao[3:], "run"] if profile
           else [*tinbao, "run"])
    return BotProcess(name, run, ready="serving Telegram by webhook", port=port, fake=fake, script=TIPOFF,
                      cwd=site, counts=counts, code=code)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--citizens", default="1,50,200")
    parser.add_argument("--postgres", help="an empty PostgreSQL database for tinbao (its schema is created)")
    parser.add_argument("--profile", type=Path, help="a folder for py-spy's samples of tinbao, and count its SQL")
    parser.add_argument("--against", type=Path, help="another checkout whose tinbao runs beside this one's")
    parser.add_argument("--against-postgres", help="with --against and --postgres: a second empty database")
    args = parser.parse_args()
    if args.against and args.postgres and not args.against_postgres:
        parser.error("--against with --postgres needs --against-postgres (a second empty database)")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tinbao-bench-"))
    databases = [("sqlite", None, None)] + ([("postgresql", args.postgres, args.against_postgres)]
                                            if args.postgres else [])
    print(f"{os.cpu_count()} CPUs, {args.seconds:g} s per run, {args.rounds} rounds, interleaved; medians")
    print("| database | citizens | bot | steps/s | p50 ms | p99 ms | bot CPU ms/step | of bare steps/s | RSS MB "
          "| Bot API requests/step (+ in 200s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    chat = 1_000_000
    try:
        for database, url, against_url in databases:
            bots = await bots_for(database, url, work, args.profile, args.against and args.against.resolve(),
                                  against_url)
            try:
                for bot in bots:
                    await bot.start()
                await asyncio.sleep(2)
                print(f"  {database}: idle RSS after start, before any update: "
                      + ", ".join(f"{bot.name} {bot.rss_mb():.0f} MB" for bot in bots), flush=True)
                for bot in bots:  # one whole script each, not measured: what a process loads once is not a step
                    chat += 10_000
                    await warm_up(bot, chat)
                for citizens in [int(n) for n in args.citizens.split(",")]:
                    runs: dict[str, list[dict]] = defaultdict(list)
                    for round_ in range(args.rounds):
                        order = bots if round_ % 2 == 0 else bots[::-1]
                        for bot in order:
                            chat += 10_000
                            runs[bot.name].append(await measure(bot, citizens, args.seconds, chat, args.profile,
                                                                f"{bot.name}-{citizens}-{round_}"))
                    bare = statistics.median(r["steps_s"] for r in runs["bare"])
                    for bot in bots:
                        median = {k: statistics.median(r[k] for r in runs[bot.name]) for k in runs[bot.name][0]}
                        print(f"| {database} | {citizens} | {bot.name} | {median['steps_s']:,.0f} | {median['p50']:.1f} | "
                              f"{median['p99']:.1f} | {median['cpu_ms']:.2f} | {median['steps_s'] / bare:.2f}× | "
                              f"{bot.rss_mb():.0f} | {median['requests']:.2f} (+{median['in_200s']:.2f}) |", flush=True)
            finally:
                for bot in bots:
                    bot.stop()
                    await bot.fake.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
