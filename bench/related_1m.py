"""How long the related-tips lookups take with 1,000,000 tips and 3,000,000 blind-index rows (goal: p99 ≤ 20 ms
on PostgreSQL). Not a test: run it by hand.

    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE tinbao_bench_related'
    .venv/bin/python bench/related_1m.py --url postgresql://postgres@127.0.0.1:5432/tinbao_bench_related [--write]
    .venv/bin/python bench/related_1m.py --url sqlite:///bench-related.db [--write]

It migrates the database and fills it (skipped when the same data is already there; --reload forces it):
1,000,000 tips over 2026 in 100 wards, each naming 3 identifiers (3,000,000 index rows, real HMACs under a
bench keyring). 80 % of identifiers are named by that one tip only; 20 % come from a pool of 100,000 shared
ones, skewed so the busiest is named by about 2,000 tips (a scam ring's number) and most by a handful.
Kinds: half phones, a quarter bank accounts, the rest plates and social handles.

Then, interleaved and after a warm-up, it times through the storage API, each call in its own transaction
as the bot would make it: "related to this tip" (related_tips, for a tip drawn at random, so some hold a
busy number) and "search a value" (find_tips_by_value with what interpret_search reads from a typed phone
number: five kinds, so five digests). --write replaces the "## Related tips over 1,000,000 tips" section
of bench/RESULTS.md; the other sections are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import secrets
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from handlers.related.extract import extract_identifiers, interpret_search  # noqa: E402
from storage import related  # noqa: E402
from storage.crypto import DataKey, Keyring  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

SECTION = "## Related tips over 1,000,000 tips"
PER_TIP, POOL, SHARED_SHARE = 3, 100_000, 0.2
BENCH_KEY = bytes(32)  # every sampled tip's masks are sealed under this; nothing here is secret
START = datetime(2025, 12, 31, 17, tzinfo=timezone.utc)
KINDS = ["phone"] * 10 + ["bank_account"] * 5 + ["plate"] * 2 + ["facebook", "zalo", "telegram"]


def tip_id(i: int) -> str:
    return f"{i:032x}"


def value_of(kind: str, n: int) -> str:
    """A canonical value of each kind for number n (phones +849…, accounts of 13 digits, plates, handles)."""
    if kind == "phone":
        return f"+849{n % 100_000_000:08d}"
    if kind == "bank_account":
        return f"{n % 10**13:013d}"
    if kind == "plate":
        return f"{11 + n % 89}A{n % 100_000:05d}"
    return f"user.{n}"


def identifiers_of(i: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for j in range(PER_TIP):
        kind = KINDS[(i * 7 + j * 3) % len(KINDS)]
        if rng.random() < SHARED_SHARE:
            n = int(POOL * rng.random() ** 2)  # skewed: low numbers are named by many tips
        else:
            n = POOL + i * PER_TIP + j  # named by this tip only
        out.append((kind, value_of(kind, n)))
    return out


def rows(keyring: Keyring, n: int, sample: set[int]):
    """(digest, tip_id, key_id, kind, masked, created_at) for every tip; masks sealed only for sampled tips."""
    rng = random.Random(17)
    filler = secrets.token_bytes(45)  # the size of a sealed mask: the pages hold what they would
    for i in range(1, n + 1):
        created = START + timedelta(seconds=(i - 1) / n * 365 * 86400)
        key = DataKey(tip_id(i), BENCH_KEY) if i in sample else None
        seen = set()
        for kind, value in identifiers_of(i, rng):
            digest = related.digests(keyring=keyring, kind=kind, value=value)["r1"]
            if digest in seen:
                continue
            seen.add(digest)
            masked = key.seal(f"related:{digest}", value[-3:]) if key else filler
            yield digest, tip_id(i), "r1", kind, masked, created


def tip_rows(n: int):
    for i in range(1, n + 1):
        created = START + timedelta(seconds=(i - 1) / n * 365 * 86400)
        yield (tip_id(i), f"R{i}", "telegram", "fraud", f"79.{10000 + i % 100}", False, "new",
               f"ca-w{i % 100:02d}", 0, f"r{i:063x}", created, created, 0)


TIP_COLUMNS = ("id", "ref", "channel", "category", "area_code", "urgent", "status", "unit_id", "attachment_count",
               "receipt_hash", "created_at", "updated_at", "subject_count")
INDEX_COLUMNS = ("digest", "tip_id", "key_id", "kind", "masked", "created_at")


async def fill_postgresql(url: str, keyring: Keyring, n: int, sample: set[int]) -> None:
    import asyncpg
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("TRUNCATE related_link, related_identifier, tip_field, tip CASCADE")
        await conn.copy_records_to_table("tip", records=tip_rows(n), columns=TIP_COLUMNS)
        batch = []
        for row in rows(keyring, n, sample):
            batch.append(row)
            if len(batch) == 200_000:
                await conn.copy_records_to_table("related_identifier", records=batch, columns=INDEX_COLUMNS)
                batch = []
        await conn.copy_records_to_table("related_identifier", records=batch, columns=INDEX_COLUMNS)
        await conn.execute("VACUUM ANALYZE tip")
        await conn.execute("VACUUM ANALYZE related_identifier")
    finally:
        await conn.close()


def fill_sqlite(path: str, keyring: Keyring, n: int, sample: set[int]) -> None:
    import sqlite3
    conn = sqlite3.connect(path)
    try:
        conn.execute("DELETE FROM related_identifier")
        conn.execute("DELETE FROM tip")
        iso = lambda r: tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in r)
        conn.executemany(f"INSERT INTO tip ({','.join(TIP_COLUMNS)}) VALUES ({','.join('?' * len(TIP_COLUMNS))})",
                         (iso(r) for r in tip_rows(n)))
        conn.executemany(f"INSERT INTO related_identifier ({','.join(INDEX_COLUMNS)}) "
                         f"VALUES ({','.join('?' * len(INDEX_COLUMNS))})", (iso(r) for r in rows(keyring, n, sample)))
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (f"p50 {statistics.median(ms):.2f} ms · p99 {percentile(ms, 0.99):.2f} ms · "
            f"max {max(ms):.2f} ms ({len(ms)} calls)")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--tips", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--write", action="store_true", help="write the result into bench/RESULTS.md")
    args = parser.parse_args()

    keyring = Keyring(Path("bench-keyring"), active="k1", keys={"k1": bytes(32)}, pseudonym_pepper=bytes(32),
                      receipt_pepper=bytes(32), related_keys={"r1": b"bench-related-index-key".ljust(32, b".")},
                      related_active="r1")
    await upgrade(args.url)
    db = Database(args.url)
    rng = random.Random(5)
    sample = set(rng.sample(range(1, args.tips + 1), args.lookups))
    async with db.engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM related_identifier"))).scalar_one()
        tips = (await conn.execute(text("SELECT count(*) FROM tip"))).scalar_one()
    fill_seconds = None
    if args.reload or tips != args.tips or have < args.tips * PER_TIP * 0.99:
        print(f"filling {args.tips:,} tips and about {args.tips * PER_TIP:,} index rows …", file=sys.stderr)
        started = time.perf_counter()
        if db.is_sqlite:
            await asyncio.to_thread(fill_sqlite, make_url(db.url).database, keyring, args.tips, sample)
        else:
            await fill_postgresql(db.url, keyring, args.tips, sample)
        fill_seconds = time.perf_counter() - started
    async with db.engine.connect() as conn:
        index_rows = (await conn.execute(text("SELECT count(*) FROM related_identifier"))).scalar_one()
        busiest = (await conn.execute(text("SELECT count(*) FROM related_identifier GROUP BY digest "
                                           "ORDER BY count(*) DESC LIMIT 1"))).scalar_one()

    # Search values: a phone typed the way people type it, half of them from the shared pool.
    searches = [f"0{value_of('phone', int(POOL * rng.random() ** 2) if k % 2 else POOL + rng.randrange(3 * args.tips))[3:]}"
                for k in range(args.lookups)]
    searches = [f"{s[:4]} {s[4:7]} {s[7:]}" for s in searches]
    related_times, search_times, related_sizes, search_sizes = [], [], [], []
    order = sorted(sample)
    rng.shuffle(order)

    async def one_related(i: int) -> int:
        async with db.transaction() as session:
            groups = await related.related_tips(session=session, data_key=DataKey(tip_id(i), BENCH_KEY))
        return sum(len(g.tips) for g in groups)

    async def one_search(value: str) -> int:
        async with db.transaction() as session:
            hits = await related.find_tips_by_value(session=session, keyring=keyring,
                                                    identifiers=interpret_search(value))
        return len(hits)

    for i, value in zip(order[:50], searches[:50]):  # warm-up: caches, the pool, the planner
        await one_related(i)
        await one_search(value)
    for i, value in zip(order, searches):
        started = time.perf_counter()
        related_sizes.append(await one_related(i))
        related_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        search_sizes.append(await one_search(value))
        search_times.append(time.perf_counter() - started)
    server_ms = None
    if not db.is_sqlite:
        # The database's own time for the heaviest case, the busiest number's join, without the client and the
        # event loop: what is left of a slow call beyond it is this machine's contention.
        async with db.engine.connect() as conn:
            digest = (await conn.execute(text("SELECT digest FROM related_identifier GROUP BY digest "
                                              "ORDER BY count(*) DESC LIMIT 1"))).scalar_one()
            plans = []
            for _ in range(21):
                plan = (await conn.execute(text(
                    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT r.digest, t.id, t.ref, t.unit_id, t.status, t.created_at "
                    "FROM related_identifier r JOIN tip t ON t.id = r.tip_id WHERE r.digest IN (:d) "
                    "AND r.tip_id <> '' ORDER BY t.created_at DESC LIMIT 200"), {"d": digest})).scalar_one()
                plans.append(plan[0]["Execution Time"])
            server_ms = statistics.median(plans)
    await db.dispose()

    text_sample = ("Nó gọi từ số 0987 654 321, bảo chuyển khoản STK 0071000123456 Vietcombank, kết bạn zalo "
                   "0912.345.678, xe 51F-123.45. " * 8)[:1000]
    started = time.perf_counter()
    for _ in range(200):
        extract_identifiers(text_sample)
    extract_ms = (time.perf_counter() - started) / 200 * 1000

    backend = "SQLite" if db.is_sqlite else "PostgreSQL"
    load = os.getloadavg()
    lines = [
        f"{backend}: {args.tips:,} tips, {index_rows:,} index rows (busiest identifier: {busiest:,} tips)"
        + (f"; filled in {fill_seconds:.0f} s" if fill_seconds else ""),
        f"related to this tip: {summary(related_times)}; tips found per call: median "
        f"{statistics.median(related_sizes):.0f}, max {max(related_sizes)}",
        f"search a value:      {summary(search_times)}; tips found per call: median "
        f"{statistics.median(search_sizes):.0f}, max {max(search_sizes)}",
        "of which the calls that found at most 10 tips (most of them; what is left of p99 there is the "
        "machine's noise, not a busy number's join):",
        f"  related: {summary([t for t, n in zip(related_times, related_sizes) if n <= 10])}",
        f"  search:  {summary([t for t, n in zip(search_times, search_sizes) if n <= 10])}",
        *([f"PostgreSQL's own execution time of the busiest number's join ({busiest} tips): median "
             f"{server_ms:.2f} ms of 21"] if server_ms is not None else []),
        f"extraction of a 1,000-character answer: {extract_ms:.2f} ms",
        f"load average at the end (1, 5, 15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs",
    ]
    print("\n".join(lines))
    if args.write:
        write_results(backend, lines, args)
    return 0


def write_results(backend: str, lines: list[str], args) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    content = path.read_text() if path.exists() else "# Benchmarks\n"
    machine = (f"{os.cpu_count()} CPU ({platform.processor() or platform.machine()}), Python "
               f"{platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d}")
    url = "sqlite:///bench-related.db" if backend == "SQLite" else "postgresql://postgres@127.0.0.1:5432/tinbao_bench_related"
    block = (f"### {backend}\n\n```sh\n.venv/bin/python bench/related_1m.py --url {url} --write\n```\n\n"
             f"{machine}. A shared machine: other jobs ran beside it, so read p99 as an upper bound.\n\n```\n"
             + "\n".join(lines) + "\n```\n")
    match = re.search(re.escape(SECTION) + r"\n(.*?)(?=\n## |\Z)", content, re.S)
    body = match.group(1) if match else ("\nWhat it measures is in the docstring of `bench/related_1m.py`. Goal: "
                                         "p99 ≤ 20 ms on PostgreSQL for both lookups.\n\n")
    body = re.sub(r"### " + backend + r"\n.*?(?=\n### |\Z)", "", body, flags=re.S).rstrip() + "\n\n" + block
    new_section = SECTION + "\n" + body
    content = content.replace(match.group(0), new_section) if match else content.rstrip() + "\n\n" + new_section
    path.write_text(content)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
