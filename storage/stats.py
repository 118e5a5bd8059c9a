"""Figures for supervisors' reports, counted in SQL from the tips' clear columns only.

Nothing here opens a sealed field or needs a key: category, area code, status, unit, timestamps,
case reference and subject count are in clear precisely so that these figures can be made without
them. Every figure is a GROUP BY in the database; Python only receives a few hundred summed rows.
On PostgreSQL the three passes run side by side on connections of their own that import the
caller's snapshot: they count what was committed when the figures were asked for (not what the
caller's own transaction has written and not yet committed).

A tip belongs to a period by the moment it was received (``created_at``); its verdict counts
whenever it was given. Purged tips keep these columns, so they still count.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import partial

from sqlalchemy import ARRAY, String, and_, any_, cast, func, literal, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Tip
from storage.tip_states import JUDGED, OPEN

# The Monday midnight, Vietnam time, that every week bucket counts from (2000-01-03 was a Monday).
_WEEK_ORIGIN = datetime(2000, 1, 2, 17, 0, tzinfo=timezone.utc)
# Vietnam has kept UTC+7 without daylight saving since 1975; SQLite has no time zones, so it adds this.
_VIETNAM_OFFSET = "+7 hours"
KINDS = ("received", "valuable", "not_valuable", "pending")


@dataclass
class Tally:
    """Counts for one row of a report: a unit's total, a category, an area or a week."""

    received: int = 0
    valuable: int = 0
    not_valuable: int = 0
    pending: int = 0  # not judged yet: new, transferred, in review or waiting for the tipster
    cases: int = 0  # distinct cases (vụ) that valuable tips helped clarify
    subjects: int = 0  # subjects (đối tượng) involved in those cases, each case counted once

    def add_status(self, status: str, n: int) -> None:
        self.received += n
        if status == "valuable":
            self.valuable += n
        elif status == "not_valuable":
            self.not_valuable += n
        elif status in OPEN:
            self.pending += n


@dataclass
class PeriodFigures:
    """Everything /stats, /report and `tinbao report` show for one scope and one period."""

    total: Tally = field(default_factory=Tally)
    by_category: dict[str, Tally] = field(default_factory=dict)
    by_area: dict[str, Tally] = field(default_factory=dict)
    by_week: dict[date, Tally] = field(default_factory=dict)  # keyed by the week's Monday, Vietnam time
    judged: int = 0  # tips with a verdict: what the median is taken over
    median_to_verdict: timedelta | None = None
    case_rows: bool = True  # False: cases and subjects were counted for the total only


def _in_scope(unit_ids: Sequence[str], start: datetime, end: datetime, dialect: str) -> ColumnElement[bool]:
    # Half-open [start, end): a tip received exactly at the next midnight belongs to the next day.
    if dialect == "postgresql":
        # One array parameter: PostgreSQL looks a province's hundred-odd units up in a hash per row,
        # where "IN ($1, …, $100)" would compare them one by one.
        units = Tip.unit_id == any_(cast(literal(list(unit_ids)), ARRAY(String)))
    else:
        units = Tip.unit_id.in_(list(unit_ids))
    return and_(units, Tip.created_at >= start, Tip.created_at < end)


def _week_of_created(dialect: str) -> ColumnElement:
    """The Vietnam-time Monday that starts the tip's week, in the cheapest form each database has."""
    if dialect == "postgresql":
        # date_bin is plain integer arithmetic on the timestamp: several times cheaper per row than
        # date_trunc over a time-zone conversion, which matters at a million rows.
        return func.date_bin(text("interval '7 days'"), Tip.created_at, literal(_WEEK_ORIGIN, Tip.created_at.type))
    # Stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; 'weekday 0' goes on to Sunday, then back six days.
    return func.date(Tip.created_at, _VIETNAM_OFFSET, "weekday 0", "-6 days")


def _week_key(dialect: str, bucket: ColumnElement) -> ColumnElement:
    """The bucket as 'YYYY-MM-DD' text (the Monday's Vietnam date), identical on both databases."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Ho_Chi_Minh", bucket), "YYYY-MM-DD")
    return cast(bucket, String)


async def tune_for_aggregates(session: AsyncSession) -> None:
    if session.bind.dialect.name == "postgresql":
        # JIT compilation costs more than it saves on these one-pass aggregates; room for the hash
        # tables keeps them in memory instead of spilling to disk. SET LOCAL ends with the transaction.
        await session.exec(text("SET LOCAL jit = off"))
        await session.exec(text("SET LOCAL work_mem = '64MB'"))
        await session.exec(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def count_tips(*, session: AsyncSession, unit_ids: Sequence[str], start: datetime, end: datetime) -> int:
    """How many tips the scope received in the period (cheap; tells the CLI whether to show progress)."""
    query = select(func.count()).select_from(Tip).where(_in_scope(unit_ids, start, end, session.bind.dialect.name))
    return int((await session.exec(query)).one()[0])


async def add_status_counts(*, session: AsyncSession, figures: PeriodFigures, unit_ids: Sequence[str],
                            start: datetime, end: datetime) -> None:
    """Tips by verdict, summed by category, by area and by week, in one pass over the table."""
    dialect = session.bind.dialect.name
    week = _week_of_created(dialect).label("week")
    # One scan groups by category, area and week, counting the verdicts in columns (a status key would
    # make four times the groups); the outer selects fold that small result three ways.
    grouped = (select(Tip.category, Tip.area_code, week,
                      func.count().filter(Tip.status == "valuable").label("valuable"),
                      func.count().filter(Tip.status == "not_valuable").label("not_valuable"),
                      func.count().label("received"))
               .where(_in_scope(unit_ids, start, end, dialect))
               .group_by(Tip.category, Tip.area_code, week)).cte("grouped")
    g = grouped.c
    sums = (func.sum(g.received), func.sum(g.valuable), func.sum(g.not_valuable))
    query = union_all(
        select(literal("category").label("dim"), g.category.label("key"), *sums).group_by(g.category),
        select(literal("area"), g.area_code, *sums).group_by(g.area_code),
        select(literal("week"), _week_key(dialect, g.week), *sums).group_by(g.week),
    )
    for dim, key, received, valuable, not_valuable in (await session.exec(query)).all():
        if dim == "week":
            rows = [figures.by_week.setdefault(date.fromisoformat(key), Tally())]
        elif dim == "area":
            rows = [figures.by_area.setdefault(key, Tally())]
        else:  # the categories partition the tips, so they also make the total
            rows = [figures.by_category.setdefault(key, Tally()), figures.total]
        for row in rows:
            row.received += int(received)
            row.valuable += int(valuable)
            row.not_valuable += int(not_valuable)
            # Every other status (new, transferred, in review, waiting for the tipster) is pending.
            row.pending += int(received) - int(valuable) - int(not_valuable)


async def add_cases(*, session: AsyncSession, figures: PeriodFigures, unit_ids: Sequence[str],
                    start: datetime, end: datetime, rows: bool = True) -> None:
    """Cases clarified and their subjects; a case several tips helped with is counted once.

    ``rows=False`` counts the total only: the per-category and per-area cases are what costs most
    here (a regrouping per table), and /stats does not show them.
    """
    # Each tip linked to a case carries that case's subject count; take the largest, once per case.
    in_scope = _in_scope(unit_ids, start, end, session.bind.dialect.name)
    linked = (Tip.status == "valuable", Tip.case_ref.is_not(None))
    if not rows:
        whole = (select(Tip.case_ref, func.max(Tip.subject_count).label("s")).where(in_scope, *linked)
                 .group_by(Tip.case_ref)).subquery()
        cases, subjects = (await session.exec(select(func.count(), func.sum(whole.c.s)))).one()
        figures.total.cases, figures.total.subjects = int(cases or 0), int(subjects or 0)
        return
    per_case = (select(Tip.case_ref, Tip.category, Tip.area_code, func.max(Tip.subject_count).label("subjects"))
                .where(in_scope, *linked).group_by(Tip.case_ref, Tip.category, Tip.area_code)).cte("per_case")
    c = per_case.c
    whole = select(c.case_ref, func.max(c.subjects).label("s")).group_by(c.case_ref).subquery()
    by_category = select(c.category.label("k"), c.case_ref, func.max(c.subjects).label("s")) \
        .group_by(c.category, c.case_ref).subquery()
    by_area = select(c.area_code.label("k"), c.case_ref, func.max(c.subjects).label("s")) \
        .group_by(c.area_code, c.case_ref).subquery()
    query = union_all(
        select(literal("total").label("dim"), literal("").label("key"), func.count(), func.sum(whole.c.s)),
        select(literal("category"), by_category.c.k, func.count(), func.sum(by_category.c.s))
        .group_by(by_category.c.k),
        select(literal("area"), by_area.c.k, func.count(), func.sum(by_area.c.s)).group_by(by_area.c.k),
    )
    for dim, key, cases, subjects in (await session.exec(query)).all():
        if dim == "total":
            row = figures.total
        else:
            row = (figures.by_category if dim == "category" else figures.by_area).setdefault(key, Tally())
        row.cases, row.subjects = int(cases or 0), int(subjects or 0)


async def add_median_to_verdict(*, session: AsyncSession, figures: PeriodFigures, unit_ids: Sequence[str],
                                start: datetime, end: datetime) -> None:
    """The median time from receipt to verdict of the period's judged tips (to the second)."""
    in_scope = _in_scope(unit_ids, start, end, session.bind.dialect.name)
    judged = and_(in_scope, Tip.status.in_(JUDGED), Tip.verdict_at.is_not(None))
    if session.bind.dialect.name == "postgresql":
        waited = Tip.verdict_at - Tip.created_at
        query = select(func.count(), func.percentile_cont(0.5).within_group(waited)).where(judged)
        n, median = (await session.exec(query)).one()
        figures.judged = int(n)
        figures.median_to_verdict = timedelta(seconds=round(median.total_seconds())) if median is not None else None
        return
    # SQLite has no percentile: count, then read the one or two middle values in order.
    seconds = (func.julianday(Tip.verdict_at) - func.julianday(Tip.created_at)) * 86400.0
    n = int((await session.exec(select(func.count()).select_from(Tip).where(judged))).one()[0])
    figures.judged = n
    if n == 0:
        return
    middle = (await session.exec(select(seconds).where(judged).order_by(seconds)
                                 .offset((n - 1) // 2).limit(2 - n % 2))).all()
    figures.median_to_verdict = timedelta(seconds=round(sum(row[0] for row in middle) / len(middle)))


STEPS = 3
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


async def _on_shared_snapshot(engine: AsyncEngine, snapshot: str,
                              step: Callable[[AsyncSession], Awaitable[None]]) -> None:
    """One pass on a connection of its own that sees exactly what the caller's transaction saw."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):  # SET TRANSACTION SNAPSHOT takes no parameters: checked before use
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            await conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))  # must come first
            async with AsyncSession(bind=conn) as session:
                await tune_for_aggregates(session)
                await step(session)


async def period_figures(*, session: AsyncSession, unit_ids: Sequence[str], start: datetime, end: datetime,
                         case_rows: bool = True, progress: Callable[[int, int], None] | None = None) -> PeriodFigures:
    """All the figures of one scope and period: three aggregate passes, no decryption.

    ``case_rows=False`` leaves the cases of each category and area out (the totals stay).
    """
    figures = PeriodFigures(case_rows=case_rows)
    scope = {"figures": figures, "unit_ids": unit_ids, "start": start, "end": end}
    steps = [partial(add_status_counts, **scope), partial(add_cases, **scope, rows=case_rows),
             partial(add_median_to_verdict, **scope)]
    done = 0

    async def run(step: Callable[..., Awaitable[None]], on: AsyncSession) -> None:
        nonlocal done
        await step(session=on)
        done += 1
        if progress is not None:
            progress(done, STEPS)

    if session.bind.dialect.name != "postgresql":
        # SQLite: one pass after the other in the caller's transaction (a second connection would wait
        # for its lock, and the passes would not run any faster side by side).
        await tune_for_aggregates(session)
        for step in steps:
            await run(step, session)
        return figures
    # PostgreSQL: each pass scans the whole period, and a pass uses one core. Over a province's year
    # (a million tips) three passes one after the other take well over a second; side by side on
    # their own connections they take about as long as the slowest. All three read the snapshot of
    # the caller's transaction, so the figures agree with each other as if read in one query.
    snapshot = (await session.exec(text("SELECT pg_export_snapshot()"))).one()[0]

    async def side(step: Callable[..., Awaitable[None]]) -> None:
        await _on_shared_snapshot(session.bind, snapshot, lambda on: run(step, on))
    passes = [asyncio.ensure_future(side(step)) for step in steps]
    try:
        await asyncio.gather(*passes)
    except BaseException:
        # One pass failed (or the request was cancelled): stop the others before their snapshot goes.
        for task in passes:
            task.cancel()
        await asyncio.gather(*passes, return_exceptions=True)
        raise
    return figures
