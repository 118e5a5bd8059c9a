"""/stats and /report through the channel-neutral tip line, on the hand-counted dataset of
tests/storage/test_stats.py: who may ask, which period is meant, what is hidden, what the files hold."""

from __future__ import annotations

import csv
import dataclasses
import io
import random
import warnings
from datetime import date, datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook
from PIL import Image
from sqlmodel import select

from handlers.areas import Area, AreaIndex
from handlers.figures.charts import HEIGHT, HIDDEN_COLOUR, VERDICTS, WIDTH, render_chart
from handlers.context import Stats, TipLineSettings
from handlers.figures.movement_report import (
    COUNT_KINDS,
    TIP_KINDS,
    Figures,
    Period,
    hidden_cells,
    parse_range,
    to_csv,
    to_xlsx,
)
from handlers.officer.accounts import create_invite_code
from handlers.figures.stats import parse_stats_args
from handlers.units import Unit, UnitTree
from storage.models import AuditEntry
from storage.stats import PeriodFigures, Tally
from tests.handlers.officer.test_triage import enrol
from tests.storage.test_stats import BEN_THANH, SAI_GON, january_tips, load
from tests.support.chat import ChatClient

NOW = datetime(2026, 2, 10, 3, tzinfo=timezone.utc)  # Tuesday 10/02/2026, 10:00 in Vietnam


def exact(services, k: int = 1) -> None:
    """K = 1 hides nothing: the hand count shows through unchanged."""
    services.settings = dataclasses.replace(services.settings, stats=Stats(min_cell=k))


@pytest.fixture
async def boss(services, tipline):
    services.clock = lambda: NOW
    await load(services.db, january_tips())
    return await enrol(services, tipline, "800", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")


# --- who may ask ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["/stats", "/stats month", "/baocao 01/01/2026 31/01/2026"])
async def test_citizens_get_the_neutral_answer(tipline, command):
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("blah blah")
    neutral = stranger.text
    await stranger.send(command)
    assert stranger.text == neutral


@pytest.mark.parametrize("role", [None, "officer"])
async def test_report_with_dates_from_anyone_but_a_supervisor_is_a_tip_off(services, tipline, role):
    chat = await enrol(services, tipline, "801", role=role) if role else ChatClient(tipline, chat_id="801",
                                                                                     language="en")
    await chat.send("/report 01/01/2026 31/01/2026")
    assert "What kind of crime" in chat.text


async def test_plain_officers_are_refused_politely(services, tipline):
    officer = await enrol(services, tipline, "802")
    await officer.send("/stats")
    assert "Figures are for supervisors and admins" in officer.text
    await officer.send("/baocao 01/01/2026 31/01/2026")
    assert "Figures are for supervisors and admins" in officer.text


async def test_a_supervisor_outside_the_scope_is_refused(services, tipline, boss):
    ward_boss = await enrol(services, tipline, "803", unit="ca-saigon", role="supervisor", name="Đại úy Hà")
    for command in ["/stats month ca-benthanh", "/stats 01/01/2026-31/01/2026 ca-hcm", "/report 01/01/2026 "
                    "31/01/2026 ca-benthanh", "/stats month ca-nowhere"]:
        await ward_boss.send(command)
        unit = command.split()[-1]
        assert ward_boss.text == f"There is no unit {unit} in your units.", command
    hanoi_admin = await enrol(services, tipline, "804", unit="ca-hn", role="admin", name="Trung tá Sơn")
    await hanoi_admin.send("/stats year ca-hcm")
    assert "There is no unit ca-hcm" in hanoi_admin.text
    # Their own ward is fine, and a province supervisor may look at a ward below it.
    await ward_boss.send("/stats 01/01/2026-31/01/2026")
    assert "Received: 5 tips" in ward_boss.text and "Công an phường Sài Gòn" in ward_boss.text
    await boss.send("/stats 01/01/2026-31/01/2026 ca-saigon")
    assert "Received: 5 tips" in boss.text


# --- the figures ---------------------------------------------------------------------------------

async def test_stats_text_matches_the_hand_count(services, boss):
    exact(services)
    replies = await boss.send("/stats 01/01/2026-31/01/2026")
    text = replies[0].text
    for line in ["Figures of Công an Thành phố Hồ Chí Minh", "Period: 01/01/2026–31/01/2026", "Received: 10 tips",
                 "Valuable: 4 (40.0%)", "Not valuable: 2", "Pending: 4", "Cases clarified: 3, subjects involved: 10",
                 "Median time from receipt to verdict: 5 h",
                 "Drugs: 3 received · 3 valuable (100.0%) · 0 not valuable · 0 pending",
                 "Fraud (incl. online fraud): 3 received · 0 valuable (0.0%) · 0 not valuable · 3 pending",
                 "Phường Bến Thành: 5 received · 3 valuable (60.0%) · 1 not valuable · 1 pending",
                 "Phường Sài Gòn: 5 received · 1 valuable (20.0%) · 1 not valuable · 3 pending"]:
        assert line in text, line
    assert "<" not in text and "≥" not in text
    [chart] = replies[1].files
    assert chart.kind == "photo" and chart.mime == "image/png"
    async with services.db.transaction() as session:
        entry = (await session.exec(select(AuditEntry).where(AuditEntry.action == "stats"))).one()
    assert entry.actor.startswith("officer:") and entry.detail == "unit=ca-hcm from=2026-01-01 to=2026-01-31 for=supervisors"


async def test_both_ends_are_whole_vietnam_days(services, boss):
    exact(services)
    await boss.send("/stats 31/01/2026-31/01/2026")
    assert "Received: 1 tips" in boss.text  # the tip at 23:59:59.999999 on the last day
    await boss.send("/stats 01/01/2026 - 01/01/2026")
    assert "Received: 1 tips" in boss.text  # the tip at 00:00:00 on the first day, not the one before it
    await boss.send("/stats 01/02/2026-01/02/2026 ca-benthanh")
    assert "Received: 1 tips" in boss.text  # 17:00 UTC on 31/01 is already 01/02 in Vietnam


async def test_an_empty_period(services, boss):
    replies = await boss.send("/stats 01/03/2026-31/03/2026")
    assert "No tips were received in this period." in boss.text
    assert [r for r in replies if r.files] == []
    replies = await boss.send("/report 01/03/2026 31/03/2026")
    assert replies[0].text.startswith("From 01/03/2026 to 31/03/2026, Công an Thành phố Hồ Chí Minh received no "
                                      "crime tips.\n\n")
    rows = list(csv.reader(io.StringIO(replies[1].files[0].data.decode("utf-8-sig"))))
    assert rows[1][2:] == ["0", "0", "—", "0", "0", "0", "0"]


@pytest.mark.parametrize("args, first, last", [
    ("", date(2026, 2, 1), date(2026, 2, 10)),
    ("tuần", date(2026, 2, 9), date(2026, 2, 10)),
    ("tuần này", date(2026, 2, 9), date(2026, 2, 10)),
    ("week", date(2026, 2, 9), date(2026, 2, 10)),
    ("thang", date(2026, 2, 1), date(2026, 2, 10)),
    ("quý", date(2026, 1, 1), date(2026, 2, 10)),
    ("quarter ca-benthanh", date(2026, 1, 1), date(2026, 2, 10)),
    ("năm", date(2026, 1, 1), date(2026, 2, 10)),
    ("01/01/2026-31/01/2026", date(2026, 1, 1), date(2026, 1, 31)),
    ("1/1/2026 – 31/1/2026", date(2026, 1, 1), date(2026, 1, 31)),
])
def test_periods_in_vietnam_time(args, first, last):
    kind, period, unit = parse_stats_args(args, date(2026, 2, 10))
    assert (period.first, period.last) == (first, last)
    assert unit == ("ca-benthanh" if "ca-benthanh" in args else None)


@pytest.mark.parametrize("args", ["31/01/2026-01/01/2026", "30/02/2026-01/03/2026", "month a b", "01/01/26-02/01/26 x y"])
def test_nonsense_periods_are_refused(args):
    assert parse_stats_args(args, date(2026, 2, 10)) is None


async def test_bad_arguments_get_the_usage(boss):
    await boss.send("/stats 31/01/2026-01/01/2026")
    assert boss.text.startswith("Use: /stats")
    await boss.send("/report 01/01/2026")
    assert boss.text.startswith("Use: /report FROM TO")


def test_period_bounds_are_vietnam_midnights():
    start, end = Period(date(2026, 1, 1), date(2026, 6, 30)).bounds()
    assert start == datetime(2025, 12, 31, 17, tzinfo=timezone.utc)
    assert end == datetime(2026, 6, 30, 17, tzinfo=timezone.utc)
    assert parse_range(["01/01/2026", "30/06/2026", "ca-hcm"]) == (Period(date(2026, 1, 1), date(2026, 6, 30)),
                                                                   ["ca-hcm"])


# --- hiding small counts -------------------------------------------------------------------------

async def test_small_counts_are_hidden_in_text_table_and_files(services, boss):
    replies = await boss.send("/report 01/01/2026 31/01/2026")
    text = replies[0].text
    # 2 not valuable is below K = 3; pending (4) goes with it, or received − valuable would give it away.
    assert "received 10 crime tips, of which 4 were valuable" in text
    # In prose the marks are words, and a sentence that opens with one still opens with a capital.
    assert "Fewer than 3 tips were not valuable and at least 3 are still being handled." in text
    assert "Gambling: <3 received · <3 valuable (—)" in text
    assert "<3: fewer than 3, hidden so that no tipster can be singled out" in text
    csv_file, xlsx_file = replies[1].files
    rows = list(csv.reader(io.StringIO(csv_file.data.decode("utf-8-sig"))))
    gambling = next(r for r in rows if r[1] == "Gambling")
    assert gambling[2:5] == ["<3", "<3", "—"]
    sheet = load_workbook(io.BytesIO(xlsx_file.data)).worksheets[0]
    assert next(r for r in sheet.iter_rows(values_only=True) if r[1] == "Gambling")[2:5] == ("<3", "<3", "—")


def random_figures(rng: random.Random) -> PeriodFigures:
    """A small commune's month: a few tips over a few categories and areas, some linked to cases."""
    figures = PeriodFigures()
    cases: dict[str, tuple[str, str, int]] = {}
    for n in range(rng.randint(1, 25)):
        category, area = rng.choice("abcd"), rng.choice("xyz")
        week = date(2026, 1, 5) + timedelta(weeks=rng.randint(0, 3))
        status = rng.choice(["valuable", "not_valuable", "new", "not_valuable"])
        for row in (figures.total, figures.by_category.setdefault(category, Tally()),
                    figures.by_area.setdefault(area, Tally()), figures.by_week.setdefault(week, Tally())):
            row.add_status(status, 1)
        if status == "valuable" and rng.random() < 0.6:
            cases[f"HS-{n}"] = (category, area, rng.randint(1, 6))
    for category, area, subjects in cases.values():
        for row in (figures.total, figures.by_category[category], figures.by_area[area]):
            row.cases += 1
            row.subjects += subjects
    return figures


@pytest.mark.parametrize("seed", range(100))
def test_no_row_or_column_keeps_a_single_hidden_cell(seed):
    """Otherwise subtracting the shown cells of that line from its total would give the hidden one back."""
    figures = random_figures(random.Random(seed))
    hidden = hidden_cells(figures, 3)
    values = {("total", "", k): getattr(figures.total, k) for k in COUNT_KINDS}
    for table in ("category", "area"):
        rows = getattr(figures, f"by_{table}")
        values |= {(table, r, k): getattr(t, k) for r, t in rows.items() for k in COUNT_KINDS}
        lines = [[(table, r, k) for k in TIP_KINDS] for r in rows]
        lines += [[(table, r, k) for r in rows] + [("total", "", k)] for k in COUNT_KINDS]
        lines.append([("total", "", k) for k in TIP_KINDS])
        for line in lines:
            assert sum(key in hidden for key in line) != 1, line
    # The chart's weeks too: each week's total is written above its bar.
    weeks = {w.isoformat(): t for w, t in figures.by_week.items()}
    values |= {("week", w, k): getattr(t, k) for w, t in weeks.items() for k in TIP_KINDS}
    lines = [[("week", w, k) for k in TIP_KINDS] for w in weeks]
    lines += [[("week", w, k) for w in weeks] + [("total", "", k)] for k in TIP_KINDS]
    for line in lines:
        assert sum(key in hidden for key in line) != 1, line
    for key, value in values.items():
        if 0 < value < 3:
            assert hidden[key] == "<3"
        elif key in hidden:
            assert hidden[key] == "≥3" and value >= 3  # complements are never shown as a lie


def test_zero_is_shown_and_large_counts_are_left_alone():
    figures = PeriodFigures(total=Tally(received=40, valuable=10, not_valuable=30), by_category={
        "drugs": Tally(received=40, valuable=10, not_valuable=30)})
    assert hidden_cells(figures, 3) == {}


# --- files and chart -----------------------------------------------------------------------------

async def test_csv_and_xlsx_parse_back_to_the_same_numbers(services, boss):
    exact(services)
    replies = await boss.send("/report 01/01/2026 31/01/2026")
    assert replies[0].text.startswith("From 01/01/2026 to 31/01/2026, Công an Thành phố Hồ Chí Minh received 10 "
                                      "crime tips, of which 4 were valuable, helping to clarify 3 cases involving "
                                      "10 subjects.")
    csv_file, xlsx_file = replies[1].files
    assert (csv_file.filename, csv_file.mime) == ("tinbao-ca-hcm-20260101-20260131.csv", "text/csv")
    assert xlsx_file.filename.endswith(".xlsx") and xlsx_file.data[:2] == b"PK"
    from_csv = list(csv.reader(io.StringIO(csv_file.data.decode("utf-8-sig"))))
    workbook = load_workbook(io.BytesIO(xlsx_file.data))
    from_xlsx = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
    assert from_csv[0] == from_xlsx[0] == ["Group", "Item", "Received", "Valuable", "Valuable share (%)",
                                           "Not valuable", "Pending", "Cases clarified", "Subjects"]
    numbers = {tuple(r[:2]): [float(v) for v in r[2:]] for r in from_csv[1:]}
    assert numbers == {tuple(r[:2]): r[2:] for r in from_xlsx[1:]}
    assert numbers[("Total", "Công an Thành phố Hồ Chí Minh")] == [10, 4, 40.0, 2, 4, 3, 10]
    assert numbers[("Category", "Drugs")] == [3, 3, 100.0, 0, 0, 2, 5]
    assert numbers[("Category", "Gambling")] == [1, 1, 100.0, 0, 0, 1, 5]
    assert numbers[("Area", "Phường Bến Thành")] == [5, 3, 60.0, 1, 1, 2, 5]
    assert numbers[("Area", "Phường Sài Gòn")] == [5, 1, 20.0, 1, 3, 1, 5]
    assert [r[0] for r in from_csv[1:]] == ["Total"] + ["Category"] * 4 + ["Area"] * 2
    assert all(isinstance(v, (int, float)) for r in from_xlsx[1:] for v in r[2:])
    summary = workbook.worksheets[1]
    assert summary["A1"].value == replies[0].text.split("\n\n")[0]


async def test_the_chart_is_a_png_of_the_expected_size(services, boss):
    replies = await boss.send("/stats quý")
    [chart] = replies[1].files
    image = Image.open(io.BytesIO(chart.data))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)


def test_vietnamese_labels_render_without_missing_glyphs():
    areas = AreaIndex([Area("48", "Thành phố Đà Nẵng"), Area("79.26734", "Phường Bến Thành")])
    settings = TipLineSettings(areas=areas, units=UnitTree([Unit("ca-dn", "Tháng 11, Đà Nẵng, Bến Thành")], areas))
    weeks = {date(2026, 11, 2) + timedelta(weeks=i): Tally(received=9, valuable=i % 4, not_valuable=5, pending=4 - i % 4)
             for i in range(4)}
    figures = PeriodFigures(total=Tally(received=36, valuable=6, not_valuable=20, pending=10), by_week=weeks,
                            by_category={"fraud": Tally(received=36, valuable=6, not_valuable=20, pending=10)})
    f = Figures(figures, settings, "ca-dn", Period(date(2026, 11, 1), date(2026, 11, 30)), "vi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)" for any letter it lacks
        png = render_chart(f)
    assert Image.open(io.BytesIO(png)).size == (WIDTH, HEIGHT)


def _drawn(weeks: dict[date, Tally], monkeypatch, *, k: int = 3, lang: str = "en", categories=None):
    """The chart of January 2026 with these weekly counts: the PNG and the matplotlib figure it was saved from."""
    from matplotlib.figure import Figure as MatplotlibFigure
    saved = []
    original = MatplotlibFigure.savefig

    def keep(figure, *args, **kwargs):
        saved.append(figure)
        return original(figure, *args, **kwargs)
    monkeypatch.setattr(MatplotlibFigure, "savefig", keep)
    areas = AreaIndex([Area("79", "Thành phố Hồ Chí Minh")])
    settings = TipLineSettings(areas=areas, units=UnitTree([Unit("ca-hcm", "Công an Thành phố Hồ Chí Minh")], areas),
                               stats=Stats(min_cell=k))
    total = Tally()
    for tally in weeks.values():
        for kind in TIP_KINDS:
            setattr(total, kind, getattr(total, kind) + getattr(tally, kind))
    figures = PeriodFigures(total=total, by_week=weeks, by_category=categories or {})
    png = render_chart(Figures(figures, settings, "ca-hcm", Period(date(2026, 1, 1), date(2026, 1, 31)), lang))
    [figure] = saved
    return png, figure


def _two_weeks(valuable: int, not_valuable: int, pending: int) -> dict[date, Tally]:
    """K = 3: the week of 05/01 has 1 or 2 pending tips, hidden "<3"; its not-valuable count goes with it
    ("≥3"), or the week's total written above the bar would give it away, and so do both counts of the
    week of 12/01, or the columns' totals would."""
    return {date(2026, 1, 5): Tally(received=valuable + not_valuable + pending, valuable=valuable,
                                    not_valuable=not_valuable, pending=pending),
            date(2026, 1, 12): Tally(received=26 - not_valuable - pending, valuable=8, not_valuable=10 - not_valuable,
                                     pending=8 - pending)}  # the month: 10 not valuable, 8 pending


def _pixels_inside(image, patch) -> list[tuple[int, int, int]]:
    """The PNG's pixels within a bar, a few pixels in from its edges (the PNG's rows run top down)."""
    box = patch.get_window_extent()
    left, right = int(box.x0) + 3, int(box.x1) - 3
    top, bottom = HEIGHT - int(box.y1) + 3, HEIGHT - int(box.y0) - 3
    return [image.getpixel((x, y))[:3] for x in range(left, right) for y in range(top, bottom)]


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _week(patch_or_text) -> int:
    x = patch_or_text.get_x() + patch_or_text.get_width() / 2 if hasattr(patch_or_text, "get_width") else \
        patch_or_text.get_position()[0]
    return round(x)


def test_hidden_cells_are_drawn_as_hatched_boxes_of_one_height_whatever_they_hide(monkeypatch):
    png, figure = _drawn(_two_weeks(10, 6, 1), monkeypatch)
    weekly = figure.axes[0]
    bars = [p for p in weekly.patches if p.get_height() > 0]
    hidden = [p for p in bars if p.get_hatch()]
    colours = {kind: colour for kind, _label, colour in VERDICTS}
    # Week index 1 is 05/01 and 2 is 12/01 (the first week of the chart starts on Monday 29/12/2025).
    assert [(_week(p), p.get_hatch()) for p in hidden] == [(1, "//"), (1, "//"), (2, "//"), (2, "//")]
    assert len({round(p.get_height(), 6) for p in hidden}) == 1  # one fixed height: it is not the count
    assert [p.get_y() for p in hidden[::2]] == [10, 8]  # on top of the shown valuable count
    assert all(p.get_facecolor()[:3] == pytest.approx(tuple(c / 255 for c in _rgb(HIDDEN_COLOUR))) for p in hidden)
    edges = [p.get_edgecolor()[:3] for p in hidden]
    assert edges[:2] == [pytest.approx(tuple(c / 255 for c in _rgb(colours[kind]))) for kind in ("not_valuable",
                                                                                                   "pending")]
    shown = sorted((_week(p), p.get_height()) for p in bars if not p.get_hatch())
    assert shown == [(1, 10), (2, 8)]  # the exact counts, and no bar for the hidden ones
    marks = sorted((_week(t), t.get_text()) for t in weekly.texts if t.get_gid() == "hidden")
    assert marks == [(1, "<3"), (1, "≥3"), (2, "≥3"), (2, "≥3")]
    assert "Hidden (<3, ≥3)" in [t.get_text() for t in weekly.get_legend().get_texts()]

    # What a person sees: the box is hatched, grey with lines in the pending colour; a shown bar is one colour.
    image = Image.open(io.BytesIO(png)).convert("RGB")
    inside = _pixels_inside(image, hidden[1])
    assert inside.count(_rgb(HIDDEN_COLOUR)) > 0.2 * len(inside)
    lines = sum(1 for p in inside if sum(abs(a - b) for a, b in zip(p, _rgb(colours["pending"]))) < 60)
    assert lines > 0.03 * len(inside)  # the hatch's lines (antialiased, so only their cores count)
    valuable = next(p for p in bars if not p.get_hatch() and p.get_height() == 10)
    solid = _pixels_inside(image, valuable)
    assert solid.count(_rgb(colours["valuable"])) > 0.95 * len(solid)

    # And weeks that hide 5 not valuable and 2 pending (with the same totals) are the same picture, pixel for pixel.
    other, _figure = _drawn(_two_weeks(10, 5, 2), monkeypatch)
    assert Image.open(io.BytesIO(other)).convert("RGB").tobytes() == image.tobytes()


def test_each_bar_carries_its_true_total_on_whole_number_ticks(monkeypatch):
    _png, figure = _drawn(_two_weeks(10, 6, 1), monkeypatch)
    weekly = figure.axes[0]
    totals = sorted((_week(t), t.get_text(), t.get_position()[1]) for t in weekly.texts if t.get_gid() == "total")
    tops = {}
    for p in weekly.patches:
        if p.get_height() > 0:
            tops[_week(p)] = max(tops.get(_week(p), 0), p.get_y() + p.get_height())
    # 17 and 19 tips, though the bars (hidden boxes drawn at one height) are not that tall: the text says it.
    assert [(week, text) for week, text, _y in totals] == [(1, "17"), (2, "19")]
    assert all(y == pytest.approx(tops[week]) for week, _text, y in totals)  # just above each bar
    assert max(tops.values()) < weekly.get_ylim()[1]  # and inside the chart

    # Two tips at most: matplotlib would mark 0.25, 0.5 … ; a count of tips has whole-number ticks only.
    _png, small = _drawn({date(2026, 1, 5): Tally(received=2, valuable=1, pending=1),
                          date(2026, 1, 12): Tally(received=1, not_valuable=1)}, monkeypatch, k=1)
    ticks = [t for t in small.axes[0].get_yticks() if 0 <= t <= small.axes[0].get_ylim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    assert sorted(t.get_text() for t in small.axes[0].texts if t.get_gid() == "total") == ["1", "2"]


def test_a_small_weeks_total_is_hidden_like_its_cells(monkeypatch):
    """A week of one tip: its total above the bar reads "<3", not 1."""
    _png, figure = _drawn({date(2026, 1, 5): Tally(received=1, pending=1),
                           date(2026, 1, 12): Tally(received=20, valuable=12, not_valuable=4, pending=4)}, monkeypatch)
    totals = sorted((_week(t), t.get_text()) for t in figure.axes[0].texts if t.get_gid() == "total")
    assert totals == [(1, "<3"), (2, "≥3")]


def test_the_share_axis_ends_at_100_percent_and_the_title_names_the_unit(monkeypatch):
    categories = {"drugs": Tally(received=18, valuable=18), "theft": Tally(received=18, not_valuable=10, pending=8)}
    _png, figure = _drawn(_two_weeks(10, 6, 1), monkeypatch, categories=categories)
    shares = figure.axes[1]
    assert shares.get_xlim() == (0, 100)
    assert max(shares.get_xticks()) <= 100
    labels = {t.get_text(): t.get_position()[0] for t in shares.texts}
    assert set(labels) == {"100.0% (18/18)", "0.0% (0/18)"}
    assert all(0 <= x <= 100 for x in labels.values())  # a full bar's label is inside it, not past the end
    assert figure.get_suptitle() == "Crime tips received at Công an Thành phố Hồ Chí Minh, 01/01/2026–31/01/2026"
    _png, vietnamese = _drawn(_two_weeks(10, 6, 1), monkeypatch, lang="vi")
    assert vietnamese.get_suptitle() == ("Tin tố giác tội phạm tiếp nhận tại Công an Thành phố Hồ Chí Minh, "
                                         "01/01/2026–31/01/2026")


def test_report_files_stand_alone(services):
    """The CSV and XLSX of a tiny Figures, without a bot: the helpers the CLI uses too."""
    settings = dataclasses.replace(services.settings, stats=Stats(min_cell=1))
    figures = PeriodFigures(total=Tally(received=2, valuable=1, pending=1), by_category={
        "drugs": Tally(received=2, valuable=1, pending=1)}, by_area={BEN_THANH: Tally(received=1, valuable=1),
                                                                    SAI_GON: Tally(received=1, pending=1)})
    f = Figures(figures, settings, "ca-hcm", Period(date(2026, 1, 1), date(2026, 1, 31)), "en")
    rows = list(csv.reader(io.StringIO(to_csv(f).decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(to_xlsx(f))).worksheets[0]
    assert [[float(v) for v in r[2:]] for r in rows[1:]] == [list(r[2:]) for r in sheet.iter_rows(min_row=2,
                                                                                                  values_only=True)]




async def test_on_zalo_the_figures_come_as_text_and_name_the_files_left_behind(services, tipline):
    """The Zalo Bot API cannot take our files: the chart and the CSV/XLSX are named, not promised."""
    services.clock = lambda: NOW
    await load(services.db, january_tips())
    code = await create_invite_code(services, unit_id="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    boss = ChatClient(tipline, chat_id="5550703", channel="zalo", language="en")
    await boss.send(f"/enroll {code}")
    replies = await boss.send("/stats 01/01/2026-31/01/2026")
    assert "Received: 10 tips" in replies[0].text and all(not r.files for r in replies)
    assert replies[-1].text == ("This chat cannot receive files, so these were not sent: "
                                "tinbao-ca-hcm-20260101-20260131.png. The bot on Telegram sends them.")
    replies = await boss.send("/report 01/01/2026 31/01/2026")
    assert "received 10 crime tips" in replies[0].text and all(not r.files for r in replies)
    assert replies[-1].text.startswith("The same figures as CSV and Excel files:\n\nThis chat cannot receive files")
    assert "tinbao-ca-hcm-20260101-20260131.csv, tinbao-ca-hcm-20260101-20260131.xlsx" in replies[-1].text
