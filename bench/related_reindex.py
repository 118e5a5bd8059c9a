"""How fast `tinbao related reindex` re-indexes tips (tips per second), with its progress bar. Not a test: run it
by hand.

    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE tinbao_bench_reindex'
    .venv/bin/python bench/related_reindex.py --url postgresql://postgres@127.0.0.1:5432/tinbao_bench_reindex
    .venv/bin/python bench/related_reindex.py --url sqlite:///bench-reindex.db

It migrates the database, empties the tip tables and files --tips real tips through the storage API, as submit
does (a data key each, every answer sealed, indexed), each a fraud tip whose description, scammer and people
answers name phone numbers, an account, a plate and a handle (about 5 identifiers a tip, a third of them shared).
Then it runs the re-index exactly as the CLI does (a new key, every tip opened, read, extracted and indexed
again, the old key retired), printing the same progress bar, and reports tips/s and rows/s. Nothing of the
tips is secret: a bench keyring is made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from handlers.areas import AreaIndex  # noqa: E402
from handlers.context import Services, TipLineSettings  # noqa: E402
from handlers.related.indexing import index_submitted_tip  # noqa: E402
from handlers.related.reindex import reindex  # noqa: E402
from storage import keys as key_store  # noqa: E402
from storage import tips as tip_store  # noqa: E402
from storage.blobs import BlobStore  # noqa: E402
from storage.crypto import Keyring  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

MOBILE = ["90", "91", "93", "96", "97", "98", "86", "88", "32", "35", "70", "77", "81", "85", "56"]
BANKS = ["Vietcombank", "VCB", "Techcombank", "MB", "BIDV", "ACB", "Agribank", "VietinBank"]


def phone(rng: random.Random, shared: bool) -> str:
    n = rng.randrange(2000) if shared else rng.randrange(10_000_000)
    number = f"0{MOBILE[n % len(MOBILE)]}{n % 10**7:07d}"
    return f"{number[:4]} {number[4:7]} {number[7:]}"


def answers_of(i: int, rng: random.Random) -> dict[str, dict]:
    """A fraud tip as citizens write one: the story, the scammer's numbers and account, who and what was seen."""
    shared = rng.random() < 0.33
    account = f"{(rng.randrange(500) if shared else rng.randrange(10**12)):013d}"
    return {
        "category": {"choice": "fraud"},
        "description": {"text": f"Ngày {1 + i % 28}/11/2026 có người gọi điện xưng là công an, nói tôi liên quan "
                                f"đường dây rửa tiền, bắt chuyển {1 + i % 90}.000.000 đ để xác minh. Họ gọi từ số "
                                f"{phone(rng, shared)} rồi kết bạn zalo {phone(rng, False)}."},
        "scammer": {"text": f"STK {account} {BANKS[i % len(BANKS)]}, tên NGUYEN VAN A; facebook.com/shop.uytin.{i % 997}"},
        "when": {"choice": "earlier"},
        "area": {"code": "79.26734"},
        "place": {"address": f"số {i % 300} Lê Lợi"},
        "people": {"text": f"Một người đàn ông đi xe máy biển 59-X{1 + i % 9} {i % 1000:03d}.{i % 100:02d}"},
        "identity": {"mode": "anonymous"},
    }


async def fill(services: Services, n: int) -> int:
    """n tips through the storage API as submit makes them; returns the index rows written."""
    rng, rows = random.Random(17), 0
    questionnaire = services.settings.questionnaire
    for start in range(0, n, 200):
        async with services.db.transaction() as session:
            for i in range(start, min(n, start + 200)):
                tip_id = os.urandom(16).hex()
                data_key = await key_store.create_data_key(session=session, keyring=services.keyring, owner_id=tip_id)
                answers = answers_of(i, rng)
                fields = {k: json.dumps(v, ensure_ascii=False) for k, v in answers.items() if k != "identity"}
                await tip_store.create_tip(session=session, data_key=data_key, channel="telegram", category="fraud",
                                           area_code="79.26734", urgent=False, receipt_hash=os.urandom(32).hex(),
                                           fields=fields, unit_id="ca-benthanh")
                rows += await index_submitted_tip(session=session, keyring=services.keyring, data_key=data_key,
                                                  answers=answers, questionnaire=questionnaire)
    return rows


class Progress:
    """The same one-line bar as `tinbao related reindex` (bot/cli.py), on stderr."""

    def __init__(self) -> None:
        self.total = self.done = 0

    def start(self, total: int) -> None:
        self.total = total
        self.advance(0)

    def advance(self, n: int) -> None:
        self.done += n
        filled = int(30 * self.done / self.total) if self.total else 30
        sys.stderr.write(f"\rre-indexing tips [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
        sys.stderr.flush()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--tips", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    await upgrade(args.url)
    db = Database(args.url)
    folder = Path(tempfile.mkdtemp(prefix="tinbao-bench-"))
    keyring = Keyring.create(folder / "keyring.json")
    services = Services(db=db, keyring=keyring, blobs=BlobStore(folder / "blobs"),
                        settings=TipLineSettings(areas=AreaIndex([])))
    try:
        async with db.engine.begin() as conn:
            for table in ("related_link", "related_identifier", "tip_field", "attachment", "tip", "data_key"):
                await conn.execute(text(f"DELETE FROM {table}"))
        began = time.perf_counter()
        rows = await fill(services, args.tips)
        filled = time.perf_counter() - began
        bar = Progress()
        began = time.perf_counter()
        result = await reindex(services, batch=args.batch, on_total=bar.start, progress=bar.advance)
        took = time.perf_counter() - began
        sys.stderr.write("\n")
    finally:
        await db.dispose()
    backend = "SQLite" if db.is_sqlite else "PostgreSQL"
    print(f"{backend}: {args.tips:,} tips filled through the storage API in {filled:.1f} s ({rows:,} index rows)")
    print(f"re-index to key {result.key_id} (retired {', '.join(result.retired)}): {result.tips:,} tips, "
          f"{result.rows:,} rows in {took:.1f} s = {result.tips / took:,.0f} tips/s, {result.rows / took:,.0f} rows/s "
          f"(batch {args.batch})")
    print(f"load average at the end (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs; {platform.machine()}, Python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
