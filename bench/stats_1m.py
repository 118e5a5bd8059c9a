"""How long /stats takes over 1,000,000 tips on PostgreSQL (goal: under 1 s). Not a test: run it by hand.

    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE tinbao_bench'
    .venv/bin/python bench/stats_1m.py --url postgresql://postgres@127.0.0.1:5432/tinbao_bench [--runs N] [--write]

It migrates the database, fills the tip table with a synthetic province in one INSERT … SELECT
FROM generate_series (about a minute; skipped when the same data is already there, --reload forces
it), then times the SQL behind /stats, the chart, and /report's extra per-row cases, each several
times after one warm-up, and the year's three passes one after the other for comparison. --write
replaces the "## Stats over 1,000,000 tips" section of bench/RESULTS.md with the result; other
sections of that file are kept.

The province: 100 wards, each its own unit under the province's unit; tips spread evenly over
2026 in Vietnam time, wards and categories unevenly (a few busy wards, drugs and theft most
common); 30 % valuable, half of those linked to a case shared with a neighbouring tip, 50 % not
valuable, 20 % still pending; verdicts 1–336 hours after receipt. No sealed field exists: the
figures never read one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from handlers.areas import Area, AreaIndex  # noqa: E402
from handlers.figures.charts import render_chart  # noqa: E402
from handlers.context import TipLineSettings  # noqa: E402
from handlers.figures.movement_report import Figures, Period  # noqa: E402
from handlers.units import Unit, UnitTree  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.stats import (PeriodFigures, add_cases, add_median_to_verdict, add_status_counts,  # noqa: E402
                           period_figures, tune_for_aggregates)

WARDS = 100
SECTION = "## Stats over 1,000,000 tips"
CATEGORIES = ["drugs", "theft", "fraud", "gambling", "violence", "smuggling", "environment", "trafficking", "other"]

FILL = """
INSERT INTO tip (id, ref, channel, category, area_code, urgent, status, unit_id, attachment_count, receipt_hash,
                 created_at, updated_at, verdict_at, case_ref, subject_count)
SELECT lpad(to_hex(i), 32, '0'), 'B' || i, 'telegram',
       (ARRAY['drugs','drugs','drugs','theft','theft','fraud','fraud','gambling','violence','smuggling',
              'environment','trafficking','other'])[1 + (i * 7) % 13],
       '79.' || (10000 + w.ward), (i % 40 = 0), s.status, 'ca-w' || lpad(w.ward::text, 2, '0'), 0,
       'r' || lpad(to_hex(i), 63, '0'), c.at, c.at,
       CASE WHEN s.status IN ('valuable', 'not_valuable') THEN c.at + (1 + (i * 37) % 336) * interval '1 hour' END,
       CASE WHEN s.status = 'valuable' AND i % 2 = 0 THEN 'HS-' || (i / 4) END,
       CASE WHEN s.status = 'valuable' AND i % 2 = 0 THEN 1 + (i / 4) % 5 ELSE 0 END
FROM generate_series(1, :n) AS i,
     LATERAL (SELECT timestamptz '2025-12-31 17:00:00+00'
                     + ((i - 1)::float8 / :n * 365 * 86400) * interval '1 second' AS at) c,
     -- (i * 0.618…) mod 1 squared: busy wards first, quiet communes last
     LATERAL (SELECT floor(100 * power((i * 0.6180339887) - floor(i * 0.6180339887), 2))::int AS ward) w,
     LATERAL (SELECT CASE WHEN i % 10 < 3 THEN 'valuable' WHEN i % 10 < 8 THEN 'not_valuable'
                          ELSE (ARRAY['new', 'in_review', 'needs_info', 'transferred'])[1 + (i / 10) % 4]
                     END AS status) s
"""


def province() -> TipLineSettings:
    areas = AreaIndex([Area("79", "Tỉnh thử nghiệm")] +
                      [Area(f"79.{10000 + w}", f"Phường {w:02d}", "79") for w in range(WARDS)])
    units = [Unit("ca-tinh", "Công an tỉnh thử nghiệm", None, ("79",))] + [
        Unit(f"ca-w{w:02d}", f"Công an phường {w:02d}", "ca-tinh", (f"79.{10000 + w}",)) for w in range(WARDS)]
    return TipLineSettings(areas=areas, units=UnitTree(units, areas))


async def fill(db: Database, n: int, reload: bool) -> tuple[int, float | None]:
    async with db.transaction() as session:
        have = (await session.exec(text("SELECT count(*) FROM tip"))).one()[0]
    if have == n and not reload:
        return have, None
    started = time.perf_counter()
    async with db.transaction() as session:
        await session.exec(text("TRUNCATE tip CASCADE"))
        await session.exec(text(FILL), params={"n": n})
    async with db.engine.connect() as conn:  # VACUUM cannot run inside a transaction
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("VACUUM ANALYZE tip"))
    return n, time.perf_counter() - started


async def timed(runs: int, job: Callable[[], Awaitable[object]]) -> tuple[list[float], object]:
    result = await job()  # warm-up: caches, the first plan
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await job()
        times.append(time.perf_counter() - started)
    return times, result


def ms(times: list[float]) -> str:
    return f"{min(times) * 1000:.0f} / {statistics.median(times) * 1000:.0f} / {max(times) * 1000:.0f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("TINBAO_BENCH_DATABASE_URL",
                                                        "postgresql://postgres@127.0.0.1:5432/tinbao_bench"))
    parser.add_argument("--tips", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reload", action="store_true", help="refill the table even if it holds --tips rows")
    parser.add_argument("--write", action="store_true", help="write the result into bench/RESULTS.md")
    args = parser.parse_args()
    if not args.url.startswith("postgresql"):
        parser.error("the benchmark is for PostgreSQL")
    await upgrade(args.url)
    db = Database(args.url)
    settings = province()
    units = settings.unit_tree
    try:
        rows, fill_seconds = await fill(db, args.tips, args.reload)
        cases = {
            "/stats year, whole province (every tip)": ("ca-tinh", Period(date(2026, 1, 1), date(2026, 12, 31)), False),
            "/stats quarter, whole province": ("ca-tinh", Period(date(2026, 4, 1), date(2026, 6, 30)), False),
            "/stats month, the busiest ward": ("ca-w00", Period(date(2026, 11, 1), date(2026, 11, 30)), False),
            "/report year, whole province (+ cases per row)": ("ca-tinh", Period(date(2026, 1, 1),
                                                                                   date(2026, 12, 31)), True),
        }
        lines, measured = [], []
        year = None
        for label, (unit_id, period, case_rows) in cases.items():
            start, end = period.bounds()

            async def job(unit_id=unit_id, start=start, end=end, case_rows=case_rows):
                async with db.transaction() as session:
                    return await period_figures(session=session, unit_ids=units.subtree(unit_id), start=start,
                                                end=end, case_rows=case_rows)
            times, figures = await timed(args.runs, job)
            measured.append(times)
            lines.append(f"| {label} | {figures.total.received:,} | {ms(times)} |")
            if year is None:
                year = Figures(figures, settings, unit_id, period, "vi")
        # The same three passes of the first request one after the other, in one transaction: what
        # running them side by side saves.
        start, end = cases["/stats year, whole province (every tip)"][1].bounds()
        unit_ids = units.subtree("ca-tinh")

        async def serial():
            async with db.transaction() as session:
                await tune_for_aggregates(session)
                figures = PeriodFigures(case_rows=False)
                scope = {"session": session, "figures": figures, "unit_ids": unit_ids, "start": start, "end": end}
                await add_status_counts(**scope)
                await add_cases(**scope, rows=False)
                await add_median_to_verdict(**scope)
                return figures
        times, _figures = await timed(args.runs, serial)
        lines.append(f"| the first, its three passes one after the other | {_figures.total.received:,} | {ms(times)} |")
        chart_times, png = await timed(args.runs, lambda: asyncio.to_thread(render_chart, year))
    finally:
        await db.dispose()

    async with Database(args.url).transaction() as session:
        server = (await session.exec(text("SHOW server_version"))).one()[0]
    load = os.getloadavg()
    report = "\n".join([
        SECTION, "",
        "Command (the database is the benchmark's own; see the docstring of bench/stats_1m.py):", "",
        "```sh",
        "psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE tinbao_bench'",
        " ".join([".venv/bin/python", "bench/stats_1m.py", *sys.argv[1:]]),
        "```", "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU(s) ({platform.machine()}), "
        f"PostgreSQL {server} with its default settings, Python {platform.python_version()}; load average "
        f"{load[0]:.2f} when it ended. {rows:,} tips in the table" +
        (f", loaded in {fill_seconds:.0f} s by one INSERT … SELECT FROM generate_series." if fill_seconds else
         " (already loaded)."), "",
        f"The SQL of each request (min / median / max of {args.runs} runs after a warm-up, in ms), measured as the "
        "handlers run it: `period_figures` in one transaction, its three passes (counts by category, area and "
        "week; cases; the median) side by side on connections of their own reading the caller's snapshot, rows "
        "turned into Python objects. The last line runs the first request's passes one after the other:", "",
        "| request | tips counted | ms |", "|---|---:|---:|", *lines, "",
        f"Goal: /stats over 1,000,000 tips in under 1 s. The year's request: median "
        f"{statistics.median(measured[0]) * 1000:.0f} ms, {'PASS' if statistics.median(measured[0]) < 1 else 'FAIL'} "
        f"on this machine; {sum(t >= 1 for t in measured[0])} of its {args.runs} runs took 1 s or more.", "",
        f"The chart of the year (matplotlib, Agg, {len(png):,} bytes of PNG): {ms(chart_times)} ms, drawn in a "
        "worker thread after the SQL.", "",
    ])
    print(report)
    if args.write:
        path = ROOT / "bench" / "RESULTS.md"
        old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
        # Replace only our own section: other benchmarks (e.g. reminder throughput) share the file.
        pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
        new = pattern.sub(lambda _: report + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + report
        path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
