"""The figures' SQL against a dataset built by hand: every number below was counted on paper.

The dataset is January 2026 (Vietnam time) for Công an TP HCM and its two ward units, with tips placed
exactly on the midnight edges (17:00 UTC) of the period and of a week.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import date, datetime, timedelta, timezone

import pytest

from storage import stats
from storage.models import Tip
from storage.stats import PeriodFigures, Tally, count_tips, period_figures

BEN_THANH, SAI_GON, HOAN_KIEM = "79.26734", "79.26737", "01.00070"
UNIT_OF = {BEN_THANH: "ca-benthanh", SAI_GON: "ca-saigon", HOAN_KIEM: "ca-hn"}
HCM_SCOPE = ["ca-hcm", "ca-benthanh", "ca-saigon"]
# 01/01/2026 00:00 and 01/02/2026 00:00, Vietnam time (UTC+7).
JANUARY = (datetime(2025, 12, 31, 17, tzinfo=timezone.utc), datetime(2026, 1, 31, 17, tzinfo=timezone.utc))
_ids = itertools.count(1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def make_tip(created: datetime, status: str, category: str, area: str, *, verdict_after: timedelta | None = None,
             case: str | None = None, subjects: int = 0, purged: bool = False) -> Tip:
    """A tip row as triage leaves it: only clear columns matter for the figures."""
    n = next(_ids)
    return Tip(id=f"tip{n:029d}", ref=f"R{n:07d}", channel="telegram", category=category, area_code=area,
               status=status, unit_id=UNIT_OF[area], receipt_hash=f"{n:064d}", created_at=created,
               updated_at=created, verdict_at=created + verdict_after if verdict_after else None,
               case_ref=case, subject_count=subjects, purged_at=created + timedelta(days=400) if purged else None)


def january_tips() -> list[Tip]:
    hours = lambda n: timedelta(hours=n)  # noqa: E731
    return [
        # The first instant of 01/01/2026 in Vietnam: inside the period.
        make_tip(utc(2025, 12, 31, 17), "valuable", "drugs", BEN_THANH, verdict_after=hours(2), case="HS-1", subjects=3),
        # Sunday 04/01 23:59 Vietnam time: still the week of Monday 29/12/2025.
        make_tip(utc(2026, 1, 4, 16, 59), "valuable", "drugs", BEN_THANH, verdict_after=hours(4), case="HS-1",
                 subjects=3),
        make_tip(utc(2026, 1, 5, 10), "valuable", "drugs", BEN_THANH, verdict_after=hours(10), case="HS-2", subjects=2),
        # Monday 05/01 00:00 Vietnam time: the first instant of the next week.
        make_tip(utc(2026, 1, 4, 17), "not_valuable", "theft", BEN_THANH, verdict_after=hours(1)),
        make_tip(utc(2026, 1, 7, 2), "not_valuable", "theft", SAI_GON, verdict_after=hours(30)),
        make_tip(utc(2026, 1, 12, 2), "new", "fraud", SAI_GON),
        make_tip(utc(2026, 1, 13, 2), "in_review", "fraud", SAI_GON),
        make_tip(utc(2026, 1, 15, 2), "transferred", "theft", BEN_THANH),
        make_tip(utc(2026, 1, 20, 2), "needs_info", "fraud", SAI_GON),
        # The last microsecond of 31/01/2026 in Vietnam; purged long since, it still counts.
        make_tip(datetime(2026, 1, 31, 16, 59, 59, 999999, tzinfo=timezone.utc), "valuable", "gambling", SAI_GON,
                 verdict_after=hours(6), case="HS-3", subjects=5, purged=True),
        # Outside: 31/12/2025 23:59:59 and 01/02/2026 00:00 Vietnam time, and another province.
        make_tip(utc(2025, 12, 31, 16, 59, 59), "valuable", "drugs", BEN_THANH, verdict_after=hours(1), case="HS-9",
                 subjects=9),
        make_tip(utc(2026, 1, 31, 17), "valuable", "drugs", BEN_THANH, verdict_after=hours(1), case="HS-9", subjects=9),
        make_tip(utc(2026, 1, 10, 2), "valuable", "drugs", HOAN_KIEM, verdict_after=hours(1), case="HS-8", subjects=8),
    ]


async def load(db, tips: list[Tip]) -> None:
    async with db.transaction() as session:
        session.add_all(tips)


async def figures_of(db, scope: list[str], start: datetime, end: datetime) -> PeriodFigures:
    async with db.transaction() as session:
        return await period_figures(session=session, unit_ids=scope, start=start, end=end)


async def test_figures_match_the_hand_count(db):
    await load(db, january_tips())
    figures = await figures_of(db, HCM_SCOPE, *JANUARY)
    assert figures.total == Tally(received=10, valuable=4, not_valuable=2, pending=4, cases=3, subjects=10)
    assert figures.by_category == {
        "drugs": Tally(received=3, valuable=3, cases=2, subjects=5),
        "theft": Tally(received=3, not_valuable=2, pending=1),
        "fraud": Tally(received=3, pending=3),
        "gambling": Tally(received=1, valuable=1, cases=1, subjects=5),
    }
    assert figures.by_area == {
        BEN_THANH: Tally(received=5, valuable=3, not_valuable=1, pending=1, cases=2, subjects=5),
        SAI_GON: Tally(received=5, valuable=1, not_valuable=1, pending=3, cases=1, subjects=5),
    }
    assert {week: tally.received for week, tally in figures.by_week.items()} == {
        date(2025, 12, 29): 2, date(2026, 1, 5): 3, date(2026, 1, 12): 3, date(2026, 1, 19): 1, date(2026, 1, 26): 1}
    assert figures.by_week[date(2026, 1, 5)] == Tally(received=3, valuable=1, not_valuable=2)
    # Judged: 2 h, 4 h, 10 h, 1 h, 30 h, 6 h → the middle two are 4 h and 6 h.
    assert figures.judged == 6
    assert figures.median_to_verdict == timedelta(hours=5)


async def test_midnight_edges_are_exact(db):
    await load(db, january_tips())
    # One day, 31/01/2026 Vietnam time: only the tip at its last microsecond.
    last_day = await figures_of(db, HCM_SCOPE, utc(2026, 1, 30, 17), utc(2026, 1, 31, 17))
    assert last_day.total.received == 1 and last_day.total.valuable == 1
    # 01/02/2026: only the tip at 17:00:00 UTC on 31/01.
    february_first = await figures_of(db, ["ca-benthanh"], utc(2026, 1, 31, 17), utc(2026, 2, 1, 17))
    assert february_first.total.received == 1
    # 31/12/2025: the tip one second before the period, not the one at its first instant.
    new_years_eve = await figures_of(db, ["ca-benthanh"], utc(2025, 12, 30, 17), utc(2025, 12, 31, 17))
    assert new_years_eve.total.received == 1 and new_years_eve.total.cases == 1


async def test_scope_is_the_units_given(db):
    await load(db, january_tips())
    ward = await figures_of(db, ["ca-benthanh"], *JANUARY)
    assert ward.total == Tally(received=5, valuable=3, not_valuable=1, pending=1, cases=2, subjects=5)
    assert set(ward.by_area) == {BEN_THANH}
    hanoi = await figures_of(db, ["ca-hn"], *JANUARY)
    assert hanoi.total == Tally(received=1, valuable=1, cases=1, subjects=8)
    async with db.transaction() as session:
        assert await count_tips(session=session, unit_ids=HCM_SCOPE, start=JANUARY[0], end=JANUARY[1]) == 10


async def test_an_empty_period_has_zeros_and_no_median(db):
    await load(db, january_tips())
    figures = await figures_of(db, HCM_SCOPE, utc(2027, 1, 1), utc(2027, 2, 1))
    assert figures.total == Tally()
    assert figures.by_category == figures.by_area == figures.by_week == {}
    assert figures.judged == 0 and figures.median_to_verdict is None


async def test_a_case_shared_by_two_areas_counts_once_in_the_total(db):
    # One case (HS-7, 4 subjects) clarified thanks to tips from two wards and two categories.
    await load(db, [
        make_tip(utc(2026, 1, 2), "valuable", "drugs", BEN_THANH, verdict_after=timedelta(hours=1), case="HS-7",
                 subjects=4),
        make_tip(utc(2026, 1, 3), "valuable", "theft", SAI_GON, verdict_after=timedelta(hours=3), case="HS-7",
                 subjects=4),
    ])
    figures = await figures_of(db, HCM_SCOPE, *JANUARY)
    assert (figures.total.cases, figures.total.subjects) == (1, 4)
    assert {a: (t.cases, t.subjects) for a, t in figures.by_area.items()} == {BEN_THANH: (1, 4), SAI_GON: (1, 4)}
    assert figures.median_to_verdict == timedelta(hours=2)


async def test_on_postgresql_the_three_passes_read_one_snapshot(db, monkeypatch):
    """The passes run side by side on connections of their own; tips filed meanwhile must not make them
    disagree. Here the cases pass runs first, then two valuable tips with a case are committed from
    another connection, then the status and the median passes run: all three still see the moment the
    figures were asked for."""
    if db.is_sqlite:
        pytest.skip("SQLite runs the passes one after another in the caller's transaction: one snapshot by design")
    await load(db, january_tips())
    before = await figures_of(db, HCM_SCOPE, *JANUARY)
    assert (before.total.received, before.total.cases, before.judged) == (10, 3, 6)
    cases_counted, tips_filed = asyncio.Event(), asyncio.Event()
    filed_meanwhile = [make_tip(utc(2026, 1, 20, 3), "valuable", "drugs", BEN_THANH, verdict_after=timedelta(hours=1),
                                case=f"HS-NEW-{n}", subjects=4) for n in range(2)]
    originals = {name: getattr(stats, name) for name in ("add_cases", "add_status_counts", "add_median_to_verdict")}

    async def cases_first(**kwargs):
        await originals["add_cases"](**kwargs)
        cases_counted.set()

    async def status_after_new_tips(**kwargs):
        await cases_counted.wait()
        await load(db, filed_meanwhile)  # committed on another connection of the pool
        tips_filed.set()
        await originals["add_status_counts"](**kwargs)

    async def median_after_new_tips(**kwargs):
        await tips_filed.wait()
        await originals["add_median_to_verdict"](**kwargs)
    monkeypatch.setattr(stats, "add_cases", cases_first)
    monkeypatch.setattr(stats, "add_status_counts", status_after_new_tips)
    monkeypatch.setattr(stats, "add_median_to_verdict", median_after_new_tips)
    during = await asyncio.wait_for(figures_of(db, HCM_SCOPE, *JANUARY), 30)
    assert tips_filed.is_set()
    assert during == before  # every pass: 10 received, 4 valuable, 3 cases, 6 judged
    monkeypatch.undo()
    after = await figures_of(db, HCM_SCOPE, *JANUARY)  # the next request sees the new tips, in every pass
    assert (after.total.received, after.total.valuable, after.total.cases, after.judged) == (12, 6, 5, 8)
