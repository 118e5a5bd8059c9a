"""How long /next and /queue take with 1,000,000 tips (goal: p99 ≤ 20 ms on PostgreSQL). Not a test: run it by hand.

    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE tinbao_queue1m'
    .venv/bin/python bench/queue_1m.py --url postgresql://postgres@127.0.0.1:5432/tinbao_queue1m [--write]
    .venv/bin/python bench/queue_1m.py --url sqlite:///bench-queue.db --tips 100000 [--write]
    .venv/bin/python bench/queue_1m.py --only "(handler)" --side-by-side 0 --profile next.prof  # /next alone

It migrates the database and fills it (skipped when the same data is already there; --reload forces it),
on PostgreSQL with one INSERT … SELECT FROM generate_series: a province of 100 wards, each its own unit
under the province's unit, 4 officers per ward and a supervisor over the province; tips spread over 2026,
wards unevenly (the busiest ward has a tenth of them, the quietest half a percent), categories unevenly,
1 in 40 urgent; 30 % valuable, 50 % not valuable, 20 % still open (a backlog of 200,000: new, transferred,
in review and waiting for the tipster, a quarter each), the claimed and judged ones held by one of their
ward's officers. The tips at the head of every queue the benchmark claims from get a data key and sealed
answers under the (fixed, bench-only) keyring, as a submitted tip has: /next decrypts what it claims.

Then, each call in its own transaction as the bot makes it, after a warm-up, every case interleaved with
the others: /next through the handler (handlers.officer.triage.claim_next: claim, audit, decrypt, the
tipster's notice) and its claim alone (storage.tip_states.claim_next), for an officer of the busiest ward,
of a quiet one and for the supervisor; /queue through handlers.officer.queue.show_queue, plain and with
each filter (category, area, state, mine, a later page), /judged, and the supervisor's queue. Two officers
of one ward then press /next side by side; no tip may be claimed twice. The claimed tips are put back at
the end, so every run starts from the same queues. --write appends the result to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import bindparam, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from handlers.areas import Area, AreaIndex  # noqa: E402
from handlers.chat_turn import Turn  # noqa: E402
from handlers.citizen.drafts import REPLY_ROUTE_FIELD  # noqa: E402
from handlers.context import Limits, Services, TipLineSettings  # noqa: E402
from handlers.messages import Inbound  # noqa: E402
from handlers.officer import queue as queue_handler  # noqa: E402
from handlers.officer import triage as triage_handler  # noqa: E402
from handlers.units import Unit, UnitTree  # noqa: E402
from storage import tip_states  # noqa: E402
from storage.blobs import BlobStore  # noqa: E402
from storage.crypto import Keyring  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.keys import create_data_key  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Conversation, Officer, TipField, utcnow  # noqa: E402
from storage.officers import active_officer  # noqa: E402
from storage.tip_states import PENDING  # noqa: E402

SECTION = "## /next and /queue over 1,000,000 tips"
WARDS, OFFICERS_PER_WARD = 100, 4
SUPERVISOR_ID = WARDS * OFFICERS_PER_WARD + 1
BUSY, QUIET = 0, 57  # ward 0 has 10 % of the tips, ward 57 about 0.6 %
START = datetime(2025, 12, 31, 17, tzinfo=timezone.utc)
CATEGORIES = ["drugs", "drugs", "drugs", "theft", "theft", "fraud", "fraud", "gambling", "violence", "smuggling",
              "environment", "trafficking", "other"]
STATUSES = ["new", "transferred", "in_review", "needs_info"]

OFFICERS = f"""
INSERT INTO officer (id, chat_key, channel, unit_id, role, name, route_key_id, route, enrolled_at)
SELECT o, 'bench-officer-' || o, 'telegram',
       CASE WHEN o = {SUPERVISOR_ID} THEN 'ca-tinh' ELSE 'ca-w' || lpad(((o - 1) / {OFFICERS_PER_WARD})::text, 2, '0') END,
       CASE WHEN o = {SUPERVISOR_ID} THEN 'supervisor' ELSE 'officer' END, 'Cán bộ ' || o, 'route-' || o,
       '\\x00'::bytea, timestamptz '2025-12-01 00:00:00+00'
FROM generate_series(1, {SUPERVISOR_ID}) AS o
"""
# The same formulas as fill_sqlite below: the two backends hold the same province.
FILL = f"""
INSERT INTO tip (id, ref, channel, category, area_code, urgent, status, unit_id, attachment_count, receipt_hash,
                 created_at, updated_at, claimed_by, claimed_at, verdict_at, verdict_reason, subject_count)
SELECT lpad(to_hex(i), 32, '0'), 'Q' || upper(to_hex(i)), 'telegram',
       (ARRAY{CATEGORIES!r})[1 + (i * 7) % 13],
       '79.' || (10000 + w.ward), (i % 40 = 0), s.status, 'ca-w' || lpad(w.ward::text, 2, '0'), (i % 3),
       'r' || lpad(to_hex(i), 63, '0'), c.at, c.at,
       CASE WHEN s.status NOT IN ('new', 'transferred') THEN 1 + w.ward * {OFFICERS_PER_WARD} + i % {OFFICERS_PER_WARD} END,
       CASE WHEN s.status NOT IN ('new', 'transferred') THEN c.at + interval '2 hours' END,
       CASE WHEN s.status IN ('valuable', 'not_valuable') THEN c.at + (1 + (i * 37) % 336) * interval '1 hour' END,
       CASE WHEN s.status = 'not_valuable' THEN 'unverifiable' END, 0
FROM generate_series(1, :n) AS i,
     LATERAL (SELECT timestamptz '2025-12-31 17:00:00+00'
                     + ((i - 1)::float8 / :n * 336 * 86400) * interval '1 second' AS at) c,
     LATERAL (SELECT floor(100 * power((i * 0.6180339887) - floor(i * 0.6180339887), 2))::int AS ward) w,
     LATERAL (SELECT CASE WHEN i % 10 < 3 THEN 'valuable' WHEN i % 10 < 8 THEN 'not_valuable'
                          ELSE (ARRAY{STATUSES!r})[1 + (i / 10) % 4] END AS status) s
"""


def province() -> TipLineSettings:
    areas = AreaIndex([Area("79", "Tỉnh thử nghiệm")] +
                      [Area(f"79.{10000 + w}", f"Phường {w:02d}", "79") for w in range(WARDS)])
    units = [Unit("ca-tinh", "Công an tỉnh thử nghiệm", None, ("79",))] + [
        Unit(f"ca-w{w:02d}", f"Công an phường {w:02d}", "ca-tinh", (f"79.{10000 + w}",)) for w in range(WARDS)]
    # Officers type far more than 20 commands a minute here; the flood guard is not what is measured.
    return TipLineSettings(areas=areas, units=UnitTree(units, areas), limits=Limits(messages_per_minute=10**6))


def bench_keyring() -> Keyring:
    """Fixed keys: the sealed rows stay readable from one run to the next; nothing here is secret."""
    return Keyring(Path("bench-keyring"), active="k1", keys={"k1": bytes(32)}, pseudonym_pepper=bytes(32),
                   receipt_pepper=bytes(32))


def fill_sqlite(path: str, n: int) -> None:
    import math
    import sqlite3
    conn = sqlite3.connect(path)
    iso = "%Y-%m-%d %H:%M:%S.%f"
    try:
        for table in ("tip_field", "data_key", "audit_entry", "tip", "officer"):
            conn.execute(f"DELETE FROM {table}")
        conn.executemany(
            "INSERT INTO officer (id, chat_key, channel, unit_id, role, name, route_key_id, route, enrolled_at) "
            "VALUES (?, ?, 'telegram', ?, ?, ?, ?, x'00', '2025-12-01 00:00:00.000000')",
            [(o, f"bench-officer-{o}", "ca-tinh" if o == SUPERVISOR_ID else f"ca-w{(o - 1) // OFFICERS_PER_WARD:02d}",
              "supervisor" if o == SUPERVISOR_ID else "officer", f"Cán bộ {o}", f"route-{o}")
             for o in range(1, SUPERVISOR_ID + 1)])

        def rows():
            for i in range(1, n + 1):
                at = START + timedelta(seconds=(i - 1) / n * 336 * 86400)
                frac = i * 0.6180339887 - math.floor(i * 0.6180339887)
                ward = math.floor(100 * frac ** 2)
                status = ("valuable" if i % 10 < 3 else "not_valuable" if i % 10 < 8 else STATUSES[(i // 10) % 4])
                held = status not in ("new", "transferred")
                judged = status in ("valuable", "not_valuable")
                yield (f"{i:032x}", f"Q{i:X}", "telegram", CATEGORIES[(i * 7) % 13], f"79.{10000 + ward}",
                       i % 40 == 0, status, f"ca-w{ward:02d}", i % 3, f"r{i:063x}", at.strftime(iso), at.strftime(iso),
                       1 + ward * OFFICERS_PER_WARD + i % OFFICERS_PER_WARD if held else None,
                       (at + timedelta(hours=2)).strftime(iso) if held else None,
                       (at + timedelta(hours=1 + (i * 37) % 336)).strftime(iso) if judged else None,
                       "unverifiable" if status == "not_valuable" else None, 0)
        conn.executemany("INSERT INTO tip (id, ref, channel, category, area_code, urgent, status, unit_id, "
                         "attachment_count, receipt_hash, created_at, updated_at, claimed_by, claimed_at, verdict_at, "
                         "verdict_reason, subject_count) VALUES (" + ",".join("?" * 17) + ")", rows())
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def fill(db: Database, n: int, reload: bool) -> float | None:
    async with db.engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM tip"))).scalar_one()
    if have == n and not reload:
        return None
    print(f"filling {n:,} tips …", file=sys.stderr)
    started = time.perf_counter()
    if db.is_sqlite:
        await asyncio.to_thread(fill_sqlite, make_url(db.url).database, n)
    else:
        async with db.transaction() as session:
            await session.exec(text("TRUNCATE tip, tip_field, data_key, audit_entry, officer, invite CASCADE"))
            await session.exec(text(OFFICERS))
            await session.exec(text(f"SELECT setval('officer_id_seq', {SUPERVISOR_ID})"))
            await session.exec(text(FILL), params={"n": n})
        async with db.engine.connect() as conn:  # VACUUM cannot run inside a transaction
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("tip", "officer"):
                await auto.execute(text(f"VACUUM ANALYZE {table}"))
    return time.perf_counter() - started


ANSWERS = {  # what a submitted tip seals, in the shapes the tip-off stores (handlers/citizen/submission.py)
    "category": {"choice": "drugs"},
    "description": {"text": "Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối, khoảng 8 giờ, có hai người canh."},
    "when": {"choice": "now"},
    "area": {"code": "79.10000"},
    "place": {"latitude": 10.7725, "longitude": 106.698},
    "people": {"text": "Xe máy Wave biển số 59X1-123.45, đội mũ bảo hiểm xanh."},
    "evidence": {"count": 0},
}


async def seal_heads(db: Database, keyring: Keyring, scopes: list[list[str]], depth: int) -> dict[str, str]:
    """Give the first ``depth`` waiting tips of each queue a data key and sealed answers (once); {id: status}."""
    heads: dict[str, str] = {}
    async with db.transaction() as session:
        for units in scopes:
            query = (select(tip_states.Tip.id, tip_states.Tip.status)
                     .where(tip_states.Tip.unit_id.in_(units), tip_states.Tip.status.in_(PENDING))
                     .order_by(*tip_states.queue_order()).limit(depth))
            heads.update(dict((await session.exec(query)).all()))
        have = set((await session.exec(text("SELECT id FROM data_key WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)), params={"ids": list(heads)})).scalars())
        for tip_id in heads.keys() - have:
            key = await create_data_key(session=session, keyring=keyring, owner_id=tip_id)
            fields = {name: json.dumps(value, ensure_ascii=False) for name, value in ANSWERS.items()}
            fields[REPLY_ROUTE_FIELD] = json.dumps({"channel": "telegram", "chat_id": "700100200", "language": "vi"})
            for name, value in fields.items():
                session.add(TipField(tip_id=tip_id, name=name, sealed=key.seal(name, value)))
        await session.flush()
    return heads


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{statistics.median(ms):.2f} | {percentile(ms, 0.99):.2f} | {max(ms):.2f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/tinbao_queue1m")
    parser.add_argument("--tips", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300, help="calls of each case")
    parser.add_argument("--side-by-side", type=int, default=200, help="/next presses of each of the two officers")
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--plans", action="store_true", help="also print the plans (not written to RESULTS.md)")
    parser.add_argument("--write", action="store_true", help="append the result to bench/RESULTS.md")
    parser.add_argument("--only", default="", help="run only the cases whose label contains this (e.g. handler)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the timed calls to FILE (pstats)")
    args = parser.parse_args()

    await upgrade(args.url)
    db = Database(args.url)
    settings = province()
    keyring = bench_keyring()
    services = Services(db=db, keyring=keyring, blobs=BlobStore(Path("/tmp/tinbao-queue1m-blobs")), settings=settings)
    fill_seconds = await fill(db, args.tips, args.reload)
    busy, quiet = f"ca-w{BUSY:02d}", f"ca-w{QUIET:02d}"
    claims = {"busy": 1 + BUSY * OFFICERS_PER_WARD, "quiet": 1 + QUIET * OFFICERS_PER_WARD, "supervisor": SUPERVISOR_ID}
    second = 2 + BUSY * OFFICERS_PER_WARD  # the busy ward's second officer, for the side-by-side claims
    # Every claim of every phase may come from the same queue: seal that deep.
    depth = 2 * (args.runs + 10) + 2 * args.side_by_side + 10
    heads = await seal_heads(db, keyring, [[busy], [quiet], settings.unit_tree.subtree("ca-tinh")], depth)
    async with db.transaction() as session:
        await session.exec(text("DELETE FROM audit_entry"))

    async def as_officer(officer_id: int, job: Callable[[Turn, Officer], Awaitable[object]]) -> object:
        """One officer's command in its own transaction, the officer found by chat as the router finds them."""
        async with db.transaction() as session:
            officer = await active_officer(session=session, chat_key=f"bench-officer-{officer_id}")
            turn = Turn(services=services, session=session,
                        conversation=Conversation(chat_key=officer.chat_key, channel="telegram", language="en"),
                        inbound=Inbound(channel="telegram", chat_id="bench"), now=utcnow())
            return await job(turn, officer)

    def queue(officer_id: int, words: str, judged: bool = False):
        show = queue_handler.show_judged if judged else queue_handler.show_queue
        return lambda: as_officer(officer_id, lambda turn, officer: show(turn, officer, words))

    def next_handler(officer_id: int):
        return lambda: as_officer(officer_id, lambda turn, officer: triage_handler.claim_next(turn, officer, ""))

    def next_claim(officer_id: int):
        async def job(turn, officer):
            return await tip_states.claim_next(session=turn.session, unit_ids=queue_handler.scope(turn, officer),
                                               officer_id=officer.id, now=turn.now)
        return lambda: as_officer(officer_id, job)

    b, q, s = claims["busy"], claims["quiet"], claims["supervisor"]
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "/next (handler), busiest ward": next_handler(b),
        "/next (handler), quiet ward": next_handler(q),
        "/next (handler), supervisor": next_handler(s),
        "/next claim alone, busiest ward": next_claim(b),
        "/next claim alone, supervisor": next_claim(s),
        "/queue, busiest ward": queue(b, ""),
        "/queue, quiet ward": queue(q, ""),
        "/queue lua-dao (category)": queue(b, "lua-dao"),
        "/queue 79.10000 (area)": queue(b, "79.10000"),
        "/queue moi (state)": queue(b, "moi"),
        "/queue mine": queue(b, "mine"),
        "/queue ma-tuy mine": queue(b, "ma-tuy mine"),
        "/queue 50 (page 50)": queue(b, "50"),
        "/judged, busiest ward": queue(b, "", judged=True),
        "/judged lua-dao": queue(b, "lua-dao", judged=True),
        "/queue, supervisor (101 units)": queue(s, ""),
        "/queue ma-tuy, supervisor": queue(s, "ma-tuy"),
        "/queue 79.10057 moi, supervisor": queue(s, "79.10057 moi"),
        "/judged, supervisor": queue(s, "", judged=True),
    }
    cases = {label: job for label, job in cases.items() if args.only in label}
    times: dict[str, list[float]] = {label: [] for label in cases}
    cpu: dict[str, list[float]] = {label: [] for label in cases}  # this process's CPU: the load does not add to it
    claimed_ids: list[str] = []
    try:
        for job in cases.values():  # warm-up: the pool, caches, the planner
            for _ in range(5):
                await job()
        profiler = cProfile.Profile() if args.profile else None
        for _ in range(args.runs):
            for label, job in cases.items():  # interleaved: a slow moment of the machine hits every case alike
                if profiler:
                    profiler.enable()
                started, cpu_started = time.perf_counter(), time.process_time()
                await job()
                times[label].append(time.perf_counter() - started)
                cpu[label].append(time.process_time() - cpu_started)
                if profiler:
                    profiler.disable()
        if profiler:
            profiler.dump_stats(args.profile)

        # Two officers of the busiest ward pressing /next at the same moments, each press its own transaction.
        side: dict[int, list[float]] = {b: [], second: []}
        refs: dict[int, list[str]] = {b: [], second: []}

        async def presses(officer_id: int) -> None:
            for _ in range(args.side_by_side):
                started = time.perf_counter()
                replies = await next_handler(officer_id)()
                side[officer_id].append(time.perf_counter() - started)
                refs[officer_id].append(replies[0].text.split(" · ")[0].removeprefix("🔴 "))
        side_started = time.perf_counter()
        await asyncio.gather(presses(b), presses(second))
        side_seconds = time.perf_counter() - side_started
        both = refs[b] + refs[second]
        twice = [ref for ref, n in Counter(both).items() if n > 1]
        held = {}
        async with db.transaction() as session:
            if both:  # none with --side-by-side 0
                held = dict((await session.exec(text(
                    "SELECT ref, claimed_by FROM tip WHERE ref IN :refs AND status = 'in_review'").bindparams(
                    bindparam("refs", expanding=True)), params={"refs": both})).all())
        wrong_holder = [ref for o in (b, second) for ref in refs[o] if held.get(ref) != o]
        async with db.transaction() as session:
            claimed_ids = list((await session.exec(text(
                "SELECT id FROM tip WHERE id IN :ids AND status = 'in_review'").bindparams(
                bindparam("ids", expanding=True)), params={"ids": list(heads)})).scalars())
        server, explain = await plans(db, settings) if not db.is_sqlite else ({}, {})
    finally:
        # Put the claimed tips back where they were: every run starts from the same queues.
        async with db.transaction() as session:
            for tip_id in claimed_ids:
                await session.exec(text("UPDATE tip SET status = :status, claimed_by = NULL, claimed_at = NULL, "
                                        "updated_at = created_at WHERE id = :id"),
                                   params={"status": heads[tip_id], "id": tip_id})
            await session.exec(text("DELETE FROM audit_entry"))
        await db.dispose()

    backend = "SQLite" if db.is_sqlite else "PostgreSQL"
    load = os.getloadavg()
    lines = [f"| {label} | {summary(t)} | {statistics.median(cpu[label]) * 1000:.2f} |" for label, t in times.items()]
    lines += [f"| /next (handler), two officers of the busiest ward side by side, officer {o} | {summary(t)} | |"
              for o, t in side.items() if t]
    worst = max(percentile(t, 0.99) for t in list(times.values()) + list(side.values()) if t) * 1000
    report = [
        f"{backend}, {args.tips:,} tips" + (f" (filled in {fill_seconds:.0f} s)" if fill_seconds else ""),
        f"{args.runs} calls of each case, interleaved, after 5 of warm-up; load average at the end (1, 5, 15 min): "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "", "| case | p50 ms | p99 ms | max ms | bench CPU p50 ms |", "|---|---:|---:|---:|---:|", *lines, "",
        f"Side by side: {len(both)} presses in {side_seconds:.2f} s, {len(set(both))} different tips, "
        f"{len(twice)} claimed twice, {len(wrong_holder)} held by someone other than who got it.",
        f"Worst p99: {worst:.2f} ms (goal ≤ 20 ms on PostgreSQL: {'met' if worst <= 20 else 'NOT met'}).",
    ]
    if server:
        report += ["", "PostgreSQL's own execution time of each statement (median of 11 EXPLAIN ANALYZE, ms):", "",
                   "| statement | ms |", "|---|---:|", *[f"| {label} | {ms:.2f} |" for label, ms in server.items()]]
    print("\n".join(report))
    if args.plans:
        for label, plan in explain.items():
            print(f"\nEXPLAIN ANALYZE, {label}:\n{plan}")
    if args.write:
        write_results(args, backend, report)
    return 1 if twice or wrong_holder else 0


async def plans(db: Database, settings: TipLineSettings) -> tuple[dict[str, float], dict[str, str]]:
    """PostgreSQL's own time (median of 11 EXPLAIN ANALYZE) for the SQL behind /next, /queue and /judged, the
    statements written as storage.tip_states.claim_next and storage.triage.queue write them; and their plans."""
    from sqlalchemy import func, update
    from sqlalchemy.dialects import postgresql
    from storage.models import Tip
    Q = tip_states
    times, shown = {}, {}
    for label, units in (("busiest ward", ["ca-w00"]), ("supervisor", settings.unit_tree.subtree("ca-tinh"))):
        scope = Tip.unit_id.in_(units)
        open_ = [scope, Tip.status.in_(Q.OPEN)]
        judged = [scope, Tip.status.in_(Q.JUDGED)]
        def count(*where):  # as storage.triage.queue counts when the handler gives count_up_to; else all
            matching = select(Tip.id).where(*where)
            counted = getattr(queue_handler, "COUNTED", None)
            return select(func.count()).select_from((matching.limit(counted + 1) if counted else matching).subquery())
        statements = {
            # The claim as claim_next makes it: one UPDATE of the queue's head, locked and skipped if taken (the
            # transaction is rolled back below, so the tips stay waiting).
            "/next": update(Tip).where(Tip.id == select(Tip.id).where(scope, Tip.status.in_(Q.PENDING))
                                       .order_by(*Q.queue_order()).limit(1).with_for_update(skip_locked=True)
                                       .scalar_subquery(), Tip.status.in_(Q.PENDING))
            .values(status=Q.TipStatus.IN_REVIEW.value, claimed_by=1, claimed_at=func.now(), updated_at=func.now())
            .returning(Tip.id),
            "/queue count": count(*open_),
            "/queue page": select(Tip).where(*open_).order_by(*Q.queue_order()).limit(10),
            "/queue ma-tuy count": count(*open_, Tip.category == "drugs"),
            "/queue mine page": select(Tip).where(*open_, Tip.claimed_by == 1).order_by(*Q.queue_order()).limit(10),
            "/judged count": count(*judged),
            "/judged page": select(Tip).where(*judged).order_by(Tip.verdict_at.desc(), Tip.created_at.desc()).limit(10),
        }
        for what, statement in statements.items():
            sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            runs = []
            async with db.engine.connect() as conn:
                for _ in range(11):
                    plan = (await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))).scalar_one()
                    runs.append(plan[0]["Execution Time"])
                rows = (await conn.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"))).scalars().all()
                await conn.rollback()
            times[f"{what}, {label}"] = statistics.median(runs)
            # 101 unit ids make a plan unreadable: name how many there are instead.
            shown[f"{what}, {label}"] = "\n".join(re.sub(r"'\{ca-tinh,[^}]*\}'", "'{101 units}'", row) for row in rows)
    return times, shown


def write_results(args, backend: str, report: list[str]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    content = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    command = " ".join([".venv/bin/python", "bench/queue_1m.py", *sys.argv[1:]])
    block = [f"### {backend}", "", "```sh", command, "```", "", *report, ""]
    if SECTION not in content:
        block = [SECTION, "", "What it measures is in the docstring of `bench/queue_1m.py`. Goal: p99 ≤ 20 ms on "
                 "PostgreSQL for /next and /queue with 1,000,000 tips.", "", *block]
    path.write_text(content.rstrip("\n") + "\n\n" + "\n".join(block), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
