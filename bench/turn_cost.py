"""What one turn costs tinbao's own code, with no HTTP and no aiogram: the tip-off of bench/conversation.py
walked in-process through the tip line (deduplication, the chat's row, the flood counter, the sealed draft,
the reply outbox and its in-flight marks), on SQLite and, given a URL, PostgreSQL.

    .venv/bin/python bench/turn_cost.py --turns 600 [--postgres postgresql://…/an_empty_database] [--no-sqlite]
        [--trips]

Prints the CPU of this process per turn (all its threads: aiosqlite's included), median of the rounds; with
--trips, also the round trips per turn: calls onto aiosqlite's thread (its Connection._execute, which every
statement, BEGIN and COMMIT goes through) and, on PostgreSQL, writes to the server's socket.
Run it from two checkouts one after the other to compare code (it runs the code of the checkout it is in).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handlers.areas import AreaIndex  # noqa: E402
from handlers.context import Limits, Services, TipLineSettings  # noqa: E402
from handlers.messages import Location  # noqa: E402
from handlers.router import TipLine  # noqa: E402
from handlers.units import UnitTree  # noqa: E402
from storage.blobs import BlobStore  # noqa: E402
from storage.crypto import Keyring  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from tests.support.chat import ChatClient  # noqa: E402
from tests.support.deployment import TEST_AREAS, TEST_UNITS  # noqa: E402

TIPOFF = [("text", "/report"), ("tap", "Drugs"), ("text", "Có người bán ma túy ở quán cà phê đầu hẻm."),
          ("tap", "Happening now"), ("text", "ben thanh"), ("tap", "Phường Bến Thành"), ("location", None),
          ("text", "Hai thanh niên đi xe Exciter"), ("tap", "No evidence"), ("tap", "Anonymous")]


async def step(chat: ChatClient, kind: str, value) -> None:
    if kind == "text":
        await chat.send(value)
    elif kind == "tap":
        await chat.click(value)
    else:
        await chat.send_location(10.7725, 106.6980)


async def walk(chat: ChatClient, turns: int) -> int:
    """Tip-offs up to the review screen, each ended by /cancel; returns the turns taken."""
    done = 0
    while done < turns:
        for kind, value in TIPOFF:
            await step(chat, kind, value)
        await chat.send("/cancel")
        await chat.click("Yes")
        done += len(TIPOFF) + 2
    return done


class Trips:
    """Counts round trips to the database: onto aiosqlite's thread, and writes to a PostgreSQL socket."""

    def __init__(self) -> None:
        import asyncio.selector_events as selector_events
        import aiosqlite
        self.count, self.per_turn = 0, 0.0
        on_thread, write = aiosqlite.Connection._execute, selector_events._SelectorSocketTransport.write

        async def counted_on_thread(connection, function, *args, **kwargs):
            self.count += 1
            return await on_thread(connection, function, *args, **kwargs)

        def counted_write(transport, data):
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple) and peer[1] == 5432:
                self.count += 1
            return write(transport, data)
        aiosqlite.Connection._execute = counted_on_thread
        selector_events._SelectorSocketTransport.write = counted_write


async def measure(url: str, work: Path, turns: int, rounds: int, trips: Trips | None = None) -> list[float]:
    await upgrade(url)
    db = Database(url)
    areas = AreaIndex(TEST_AREAS)
    settings = TipLineSettings(areas=areas, limits=Limits(messages_per_minute=1_000_000, tips_per_day=1_000_000),
                               units=UnitTree(TEST_UNITS, areas))
    services = Services(db=db, keyring=Keyring.create(work / "keyring.json"), blobs=BlobStore(work / "blobs"),
                        settings=settings)
    tipline = TipLine(services)
    results = []
    try:
        await walk(ChatClient(tipline, chat_id="800000001", language="en"), len(TIPOFF) + 2)  # warm up
        trips_before = 0 if trips is None else trips.count
        taken_in_all = 0
        for round_ in range(rounds):
            chat = ChatClient(tipline, chat_id=f"8000001{round_:02d}", language="en")
            cpu0 = time.process_time()
            taken = await walk(chat, turns)
            results.append((time.process_time() - cpu0) / taken * 1000)
            taken_in_all += taken
        if trips is not None:
            trips.per_turn = (trips.count - trips_before) / taken_in_all
    finally:
        await db.dispose()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="an empty PostgreSQL database (its schema is created)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL alone")
    parser.add_argument("--trips", action="store_true", help="count the round trips to the database per turn")
    args = parser.parse_args()
    trips = Trips() if args.trips else None
    with tempfile.TemporaryDirectory(prefix="tinbao-turn-") as folder:
        work = Path(folder)
        urls = [] if args.no_sqlite else [("sqlite", f"sqlite+aiosqlite:///{work}/tinbao.db")]
        if args.postgres:
            urls.append(("postgresql", args.postgres))
        for name, url in urls:
            costs = await measure(url, work / name, args.turns, args.rounds, trips)
            print(f"{name}: CPU per turn {statistics.median(costs):.2f} ms (rounds: "
                  + ", ".join(f"{c:.2f}" for c in costs) + ")"
                  + ("" if trips is None else f"; round trips per turn {trips.per_turn:.2f}"), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
