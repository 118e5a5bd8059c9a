"""Resident memory of `tinbao run --webhook` beside aiogram's bare form bot (bench/aiogram_form.py,
MemoryStorage), both idle after start and holding many open drafts, started side by side and interleaved.
Not a test: run it by hand.

    .venv/bin/python bench/memory.py [--rounds 3] [--drafts 10000] [--concurrency 50]
                                     [--postgres postgresql://postgres@127.0.0.1:5432/tinbao_bench]

A round starts both bots (each a process of its own serving a webhook on 127.0.0.1, the driver being the
fake Bot API of both, as in bench/conversation.py), waits until each one's RSS has settled and reads it
(idle). With --drafts N it then drives N citizens through the webhook, each until it holds an open draft:
tinbao's citizens send /report, tap a category and write what happened (the draft then holds its
category and text, sealed, and the chat's data key is kept for the rest of the tip-off); the bare bot's
citizens send /start and their name (MemoryStorage then holds each chat's state and its name). Nobody
finishes. RSS is read again once all N have their draft. The order of the bots alternates by round;
figures are medians over the rounds. RSS is VmRSS of /proc/PID/status, in MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.conversation import WEBHOOK_SECRET, BotProcess, CountingTelegram, free_port  # noqa: E402
from tests.support.deployment import config_toml  # noqa: E402

# What leaves a citizen in the middle of its form / tip-off, with its answers held by the bot.
FORM_OPEN = [("text", "/start"), ("text", "Lan")]
DRAFT_OPEN = [("text", "/report"), ("tap", "Drugs"), ("text", "Có người bán ma túy ở quán cà phê đầu hẻm.")]


def bare_bot(work: Path, fake: CountingTelegram) -> BotProcess:
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "aiogram_form.py"), "--listen", f"127.0.0.1:{port}",
               "--api-base", fake.base_url, "--token", fake.token]
    return BotProcess("bare", command, ready="serving", port=port, fake=fake, script=FORM_OPEN, cwd=work)


def tinbao_bot(work: Path, fake: CountingTelegram, url: str | None, round_: int) -> BotProcess:
    port = free_port()
    site = work / f"tinbao-{round_}"
    site.mkdir()
    db_url = url or f"sqlite+aiosqlite:///{site}/data/tinbao.db"
    (site / "config.toml").write_text(config_toml(db_url, extra=(
        f'[telegram]\ntoken = "{fake.token}"\napi_base = "{fake.base_url}"\nmode = "webhook"\n'
        f'webhook_url = "https://bench.invalid"\nwebhook_listen = "127.0.0.1:{port}"\n'
        f'webhook_secret = "{WEBHOOK_SECRET}"\n\n'
        '[limits]\ntips_per_day = 1000000\nmessages_per_minute = 1000000\nstatus_checks_per_hour = 1000000\n\n'
        '[reminders]\nenabled = false\n')), encoding="utf-8")
    tinbao = [sys.executable, "-m", "bot.cli", "--config", str(site / "config.toml")]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")}, "PYTHONPATH": str(ROOT)}
    subprocess.run([*tinbao, "init"], cwd=site, check=True, capture_output=True, env=env)
    # The schema made beforehand, as at every start but the first after an update: a start that migrates
    # loads Alembic (and Mako, Pygments) for the process's life, which is not what a worker idles at.
    subprocess.run([*tinbao, "db", "upgrade"], cwd=site, check=True, capture_output=True, env=env)
    return BotProcess("tinbao", [*tinbao, "run", "--webhook"], ready="serving Telegram by webhook", port=port,
                      fake=fake, script=DRAFT_OPEN, cwd=site)


async def settled_rss(bot: BotProcess, *, quiet: float = 2.0, limit: float = 20.0) -> float:
    """RSS once it has not moved by more than 0.1 MiB for ``quiet`` seconds (background work at start)."""
    deadline, last, since = time.monotonic() + limit, bot.rss_mb(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = bot.rss_mb()
        if abs(now - last) > 0.1:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return bot.rss_mb()


async def open_draft(bot: BotProcess, http: aiohttp.ClientSession, chat: int) -> None:
    url = f"http://127.0.0.1:{bot.port}/telegram/webhook"
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    for action, value in bot.script:
        update = bot.fake.next_update(chat, action, value)
        expected = bot.fake.count[chat] + 1
        async with http.post(url, json=update, headers=headers) as response:
            if response.status != 200:
                raise SystemExit(f"{bot.name}: webhook answered {response.status}")
        await bot.fake.until_count(chat, expected, timeout=300)


async def open_drafts(bot: BotProcess, drafts: int, concurrency: int, first_chat: int) -> float:
    """``drafts`` citizens, ``concurrency`` at a time, each left with an open draft; the seconds it took."""
    chats = iter(range(first_chat, first_chat + drafts))
    started = time.perf_counter()

    async def worker(http: aiohttp.ClientSession) -> None:
        for chat in chats:
            await open_draft(bot, http, chat)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return time.perf_counter() - started


def forget_fake_chats(fake: CountingTelegram) -> None:
    """The driver's own per-chat records are not the bots' memory; dropping them keeps the driver small."""
    fake.count.clear(), fake.keyboard.clear(), fake.arrived.clear()
    for name in ("_message_ids", "_messages", "_chats"):
        if isinstance(getattr(fake, name, None), dict):
            getattr(fake, name).clear()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drafts", type=int, default=0, help="open drafts to hold after the idle reading")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--postgres", help="a PostgreSQL database for tinbao, emptied by each round")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tinbao-memory-"))
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; "
          f"{args.rounds} rounds, interleaved, {args.drafts:,} drafts; RSS MiB", flush=True)
    figures: dict[str, dict[str, list[float]]] = {"bare": {}, "tinbao": {}}
    chat = 1_000_000
    try:
        for round_ in range(args.rounds):
            if args.postgres:
                subprocess.run(["psql", args.postgres, "-qc", "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
                               check=True, capture_output=True)
            fakes = [CountingTelegram("100:BENCH-bare"), CountingTelegram("200:BENCH-tinbao")]
            for fake in fakes:
                await fake.start()
            bots = [bare_bot(work, fakes[0]), tinbao_bot(work, fakes[1], args.postgres, round_)]
            order = bots if round_ % 2 == 0 else bots[::-1]
            try:
                for bot in order:
                    await bot.start()
                idle = {bot.name: await settled_rss(bot) for bot in order}
                line = f"  round {round_ + 1}: idle " + ", ".join(f"{n} {idle[n]:.1f}" for n in ("bare", "tinbao"))
                for name, value in idle.items():
                    figures[name].setdefault("idle", []).append(value)
                if args.drafts:
                    held = {}
                    for bot in order:
                        chat += args.drafts
                        seconds = await open_drafts(bot, args.drafts, args.concurrency, chat)
                        forget_fake_chats(bot.fake)
                        held[bot.name] = await settled_rss(bot)
                        figures[bot.name].setdefault("drafts", []).append(held[bot.name])
                        line += f"; {bot.name} {args.drafts:,} drafts in {seconds:.0f} s"
                    line += "; with drafts " + ", ".join(f"{n} {held[n]:.1f}" for n in ("bare", "tinbao"))
                print(line + f"; load {os.getloadavg()[0]:.2f}", flush=True)
            finally:
                for bot in bots:
                    bot.stop()
                for fake in fakes:
                    await fake.close()
        print("| reading | bare aiogram | tinbao | tinbao − bare |\n|---|---|---|---|")
        for reading in figures["bare"]:
            bare, tinbao = (statistics.median(figures[n][reading]) for n in ("bare", "tinbao"))
            label = "idle after start" if reading == "idle" else f"{args.drafts:,} open drafts"
            print(f"| {label} | {bare:.1f} | {tinbao:.1f} | {tinbao - bare:+.1f} |")
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
