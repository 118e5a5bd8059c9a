"""Reminder throughput: N messages through the real dispatcher, the real aiogram client and the fake
Bot API server, with the global rate limiter set to R messages/s. Passes when the sustained rate is at
least 95% of R.

    .venv/bin/python bench/reminders_throughput.py                      # 50,000 messages at 1,000/s
    .venv/bin/python bench/reminders_throughput.py --messages 5000 --rate 200 --workers 1
    .venv/bin/python bench/reminders_throughput.py --database postgresql://postgres@127.0.0.1:5432/DB

The fake server runs in its own process, as Telegram is another machine: in one process its request
handling would eat the CPU the client needs. The dispatchers run in --workers processes (2 by default:
the aiogram client needs about 1 ms of CPU per message, so one process cannot reach 1,000/s), sharing
the one limiter through the database, as `tinbao run` workers do. The database is a fresh SQLite file
in a temporary folder unless --database names an empty PostgreSQL database. Quiet hours are switched
off, so the result does not depend on the time of day it runs. "Sustained" is measured from the first message the server
received to the last; setting up 50,000 subscribers and queueing the broadcast is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import sys
import tempfile
import time
from datetime import time as clock_time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serve_fake_telegram(ready, stop, results) -> None:
    """The child process: the fake Bot API server, counting what arrives and when."""
    from tests.fakes.telegram_api import FakeTelegram

    class Counting(FakeTelegram):
        def __init__(self) -> None:
            super().__init__()
            self.first = self.last = None
            self.per_second: dict[int, int] = {}

        async def _send_message(self, method, p):
            now = time.monotonic()
            self.first = self.first or now
            self.last = now
            self.per_second[int(now - self.first)] = self.per_second.get(int(now - self.first), 0) + 1
            return await super()._send_message(method, p)

    async def main() -> None:
        fake = Counting()
        await fake.start()
        ready.send((fake.token, fake.base_url))
        while not stop.poll():
            await asyncio.sleep(0.1)
        stop.recv()
        print(f"server cpu {time.process_time():.2f} s", file=sys.stderr)
        chats = {m["chat_id"] for m in fake.sent}
        results.send({"messages": len(fake.sent), "chats": len(chats),
                      "seconds": (fake.last - fake.first) if fake.first else 0.0,
                      "per_second": [fake.per_second.get(i, 0) for i in range(max(fake.per_second, default=-1) + 1)]})
        await fake.close()

    asyncio.run(main())


def _services(url: str, folder: Path, keyring):
    from handlers.areas import Area, AreaIndex
    from handlers.context import Services, TipLineSettings
    from storage.blobs import BlobStore
    from storage.db import Database
    return Services(db=Database(url), keyring=keyring, blobs=BlobStore(folder / "blobs"),
                    settings=TipLineSettings(areas=AreaIndex([Area("79", "Thành phố Hồ Chí Minh")])))


def _settings(rate: int):
    from handlers.reminders.festival_calendar import ReminderSettings
    return ReminderSettings(rate_per_second=rate, quiet_start=clock_time(0), quiet_end=clock_time(0))


async def prepare(args, url: str, folder: Path) -> int:
    """What 50,000 citizens' /remind on and one admin's announcement leave in the outbox."""
    from bot.reminder_dispatcher import tick
    from storage import reminders as store
    from storage.crypto import Keyring
    from storage.migrate import upgrade
    from tests.support.reminders import add_subscribers

    await upgrade(url)
    services = _services(url, folder, Keyring.create(folder / "keyring.json"))
    try:
        await add_subscribers(services, range(10_000_000, 10_000_000 + args.messages))
        now = services.clock()
        async with services.db.transaction() as session:
            await store.create_broadcast(session=session, key="announce:bench", kind="announcement", send_at=now,
                                         now=now, text="Mời bà con dự Ngày hội toàn dân bảo vệ an ninh Tổ quốc.")
        return (await tick(services, _settings(args.rate))).queued
    finally:
        await services.db.dispose()


def run_worker(url: str, folder: str, rate: int, token: str, base_url: str, go, results) -> None:
    """A worker process: one dispatcher with its own database pool and bot session, until the outbox is empty."""
    async def work() -> int:
        from bot.channels.telegram import ReminderSender, make_bot
        from bot.reminder_dispatcher import Dispatcher
        from storage.crypto import Keyring
        services = _services(url, Path(folder), Keyring.load(Path(folder) / "keyring.json"))
        bot = make_bot(token, base_url)
        try:
            await bot.get_me()
            go.recv()  # every worker starts at once
            dispatcher = Dispatcher(services, _settings(rate), {"telegram": ReminderSender(bot)}, idle_seconds=0.2)
            cpu = time.process_time()
            await dispatcher.run(until_idle=True)
            print(f"worker cpu {time.process_time() - cpu:.2f} s", file=sys.stderr)
            return dispatcher.sent
        finally:
            await bot.session.close()
            await services.db.dispose()
    results.send(asyncio.run(work()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1_000, help="the limiter, messages per second")
    parser.add_argument("--workers", type=int, default=2, help="dispatcher processes sharing the one limiter")
    parser.add_argument("--database", help="an empty PostgreSQL database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tinbao-bench-"))
    url = args.database or f"sqlite+aiosqlite:///{folder}/bench.db"
    started = time.monotonic()
    queued = asyncio.run(prepare(args, url, folder))
    print(f"{queued} messages queued in {time.monotonic() - started:.1f} s; sending at {args.rate}/s "
          f"with {args.workers} worker(s) …", file=sys.stderr)

    context = multiprocessing.get_context("spawn")
    ready_child, ready = context.Pipe()
    stop, stop_child = context.Pipe()
    server_results_child, server_results = context.Pipe()
    server = context.Process(target=serve_fake_telegram, args=(ready_child, stop_child, server_results_child),
                             daemon=True)
    server.start()
    token, base_url = ready.recv()
    workers, gos, sents = [], [], []
    for _ in range(args.workers):
        go_child, go = context.Pipe()
        sent_child, sent = context.Pipe()
        worker = context.Process(target=run_worker, args=(url, str(folder), args.rate, token, base_url, go_child,
                                                          sent_child), daemon=True)
        worker.start()
        workers.append(worker)
        gos.append(go)
        sents.append(sent)
    try:
        for go in gos:
            go.send(True)
        counted = [sent.recv() for sent in sents]
    finally:
        stop.send(True)
    theirs = server_results.recv()
    for process in (*workers, server):
        process.join(10)
    shutil.rmtree(folder, ignore_errors=True)  # the keyring and 50,000 sealed routes of made-up chats

    rate = (theirs["messages"] - 1) / theirs["seconds"] if theirs["seconds"] else 0.0
    ok = theirs["messages"] == theirs["chats"] == args.messages and rate >= 0.95 * args.rate
    print(f"database: {'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}; limiter: {args.rate} messages/s; "
          f"{args.workers} dispatcher process(es) sent {' + '.join(map(str, counted))}")
    print(f"server received {theirs['messages']} messages for {theirs['chats']} chats ({queued} queued)")
    print(f"first to last message: {theirs['seconds']:.2f} s → sustained {rate:.1f} messages/s "
          f"= {100 * rate / args.rate:.1f}% of the limit")
    print(f"messages per second, second by second: {theirs['per_second']}")
    print("PASS" if ok else "FAIL: need every chat exactly once and at least 95% of the limit")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
