"""The /baocao paragraph as a supervisor pastes it into a "báo cáo sơ kết", and who the figures are for:
a supervisor's own (``[stats] min_cell_supervisors``) or figures that may be published (``min_cell``)."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import select

from handlers.context import Stats
from handlers.figures.movement_report import Figures, Period, duration, paragraph
from handlers.officer.accounts import create_invite_code
from storage.models import AuditEntry
from storage.stats import PeriodFigures, Tally
from tests.storage.test_stats import january_tips, load
from tests.support.chat import ChatClient

NOW = datetime(2026, 2, 10, 3, tzinfo=timezone.utc)
JANUARY = "01/01/2026 31/01/2026"


def thresholds(services, *, published: int = 3, supervisors: int | None = None) -> None:
    services.settings = dataclasses.replace(services.settings, stats=Stats(min_cell=published,
                                                                           min_cell_supervisors=supervisors))


async def supervisor(services, tipline, language: str) -> ChatClient:
    services.clock = lambda: NOW
    code = await create_invite_code(services, unit_id="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    chat = ChatClient(tipline, chat_id="810", language=language)
    await chat.send(f"/enroll {code}")
    assert chat.last[0].commands_menu == "supervisor"
    return chat


@pytest.fixture
async def vi_boss(services, tipline):
    await load(services.db, january_tips())
    return await supervisor(services, tipline, "vi")


def summary(replies) -> str:
    return replies[0].text.split("\n\n")[0]


# --- the paragraph -------------------------------------------------------------------------------

async def test_the_paragraph_is_the_reports_own_sentence(services, vi_boss):
    thresholds(services, published=1)
    assert summary(await vi_boss.send(f"/baocao {JANUARY}")) == (
        "Từ ngày 01/01/2026 đến ngày 31/01/2026, Công an Thành phố Hồ Chí Minh đã tiếp nhận 10 tin tố giác tội "
        "phạm, trong đó 4 tin có giá trị, giúp làm rõ 3 vụ, liên quan 10 đối tượng. Có 2 tin không có giá trị và "
        "4 tin đang tiếp tục xác minh, xử lý. Một nửa số tin đã có kết quả đánh giá trong vòng 5 giờ kể từ khi "
        "tiếp nhận.")


async def test_hidden_counts_read_as_words_in_the_paragraph(services, vi_boss):
    text = summary(await vi_boss.send(f"/baocao {JANUARY}"))
    # 2 not valuable is below 3 and the 4 pending are hidden with it; the sentence says so in words.
    assert "Có dưới 3 tin không có giá trị và ít nhất 3 tin đang tiếp tục xác minh, xử lý." in text
    assert "<" not in text and "≥" not in text
    await vi_boss.send(f"/baocao {JANUARY} ca-saigon")  # 5 tips, 1 valuable, 1 case
    text = summary(vi_boss.last)
    assert "đã tiếp nhận 5 tin tố giác tội phạm, trong đó dưới 3 tin có giá trị, giúp làm rõ dưới 3 vụ" in text
    assert "<" not in text and "≥" not in text


async def test_an_empty_period_says_no_tip_was_received(vi_boss):
    assert summary(await vi_boss.send("/baocao 01/03/2026 31/03/2026")) == (
        "Từ ngày 01/03/2026 đến ngày 31/03/2026, Công an Thành phố Hồ Chí Minh chưa tiếp nhận tin tố giác tội "
        "phạm nào.")


def figures_of(services, total: Tally, *, median: timedelta | None = None, judged: int = 0) -> Figures:
    counted = PeriodFigures(total=total, by_category={"drugs": dataclasses.replace(total)},
                            median_to_verdict=median, judged=judged)
    return Figures(counted, services.settings, "ca-hcm", Period(date(2026, 1, 1), date(2026, 6, 30)), "vi")


def test_a_province_half_year_reads_like_the_movements_report(services):
    f = figures_of(services, Tally(received=53679, valuable=15645, not_valuable=30000, pending=8034, cases=8574,
                                   subjects=12937))
    assert paragraph(f).startswith("Từ ngày 01/01/2026 đến ngày 30/06/2026, Công an Thành phố Hồ Chí Minh đã tiếp "
                                   "nhận 53.679 tin tố giác tội phạm, trong đó 15.645 tin có giá trị, giúp làm rõ "
                                   "8.574 vụ, liên quan 12.937 đối tượng. Có 30.000 tin không có giá trị và 8.034 tin")


def test_clauses_with_nothing_to_say_are_left_out(services):
    none_valuable = paragraph(figures_of(services, Tally(received=12, not_valuable=12)))
    assert none_valuable == ("Từ ngày 01/01/2026 đến ngày 30/06/2026, Công an Thành phố Hồ Chí Minh đã tiếp nhận "
                             "12 tin tố giác tội phạm, trong đó chưa có tin nào có giá trị. Có 12 tin không có giá "
                             "trị.")
    no_case = paragraph(figures_of(services, Tally(received=12, valuable=5, pending=7)))
    assert no_case.endswith("đã tiếp nhận 12 tin tố giác tội phạm, trong đó 5 tin có giá trị. Có 7 tin đang tiếp "
                            "tục xác minh, xử lý.")
    assert " 0 " not in none_valuable + no_case


def test_a_quick_median_is_never_within_0_minutes(services):
    text = paragraph(figures_of(services, Tally(received=12, valuable=12), median=timedelta(seconds=40), judged=12))
    assert text.endswith("Một nửa số tin đã có kết quả đánh giá trong vòng 1 phút kể từ khi tiếp nhận.")
    assert "0 phút" not in text


@pytest.mark.parametrize("value, words", [
    (timedelta(seconds=40), "1 phút"), (timedelta(minutes=12), "12 phút"), (timedelta(minutes=12, seconds=1), "13 phút"),
    (timedelta(hours=5), "5 giờ"), (timedelta(hours=3, minutes=20), "3 giờ 20 phút"), (timedelta(days=2), "2 ngày"),
    (timedelta(days=2, hours=5), "2 ngày 5 giờ"), (timedelta(days=2, minutes=1), "2 ngày 1 giờ"),
])
def test_durations_round_up_and_drop_zero_parts(value, words):
    assert duration(value, "vi") == words


@pytest.mark.parametrize("typed, echoed", [("/baocao", "/baocao"), ("/baocao@tinbao_bot", "/baocao"),
                                           ("/baocao 01/01/2026", "/baocao"), ("/report 01/01/2026", "/report")])
async def test_report_without_dates_answers_with_the_syntax_of_the_command_typed(vi_boss, typed, echoed):
    await vi_boss.send(typed)
    assert vi_boss.text == (f"Cú pháp: {echoed} TỪ_NGÀY ĐẾN_NGÀY [ĐƠN_VỊ], ví dụ {echoed} 01/01/2026 "
                            "30/06/2026")


# --- who the figures are for ---------------------------------------------------------------------

@pytest.fixture
async def boss(services, tipline):
    await load(services.db, january_tips())
    return await supervisor(services, tipline, "en")


async def test_by_default_a_supervisors_own_figures_hide_like_published_ones(services, boss):
    await boss.send(f"/baocao {JANUARY}")
    assert "Gambling: <3 received" in boss.text and "For use within the police force only" not in boss.text


async def test_a_supervisors_own_report_may_show_exact_counts_and_says_so(services, boss):
    thresholds(services, published=3, supervisors=1)
    replies = await boss.send(f"/baocao {JANUARY}")
    text = replies[0].text
    assert "Fewer than" not in text and "Gambling: 1 received · 1 valuable (100.0%)" in text
    assert "For use within the police force only: counts below 3, which published figures hide, are shown here." \
        in text
    assert "add the word congbo" in text
    rows = list(csv.reader(io.StringIO(replies[1].files[0].data.decode("utf-8-sig"))))
    assert next(r for r in rows if r[1] == "Gambling")[2:4] == ["1", "1"]
    # The same report to publish: small counts hidden again, and no "within the force" note.
    for publish in ("congbo", "công bố", "public"):
        replies = await boss.send(f"/baocao {JANUARY} {publish}")
        assert "Gambling: <3 received" in replies[0].text, publish
        assert "police force only" not in replies[0].text
    await boss.send(f"/baocao {JANUARY} ca-saigon congbo")  # with a unit too, in either order
    assert "Công an phường Sài Gòn received 5 crime tips, of which fewer than 3 were valuable" in boss.text
    await boss.send("/stats 01/01/2026-31/01/2026")
    assert "Not valuable: 2" in boss.text
    await boss.send("/stats 01/01/2026-31/01/2026 congbo")
    assert "Not valuable: <3" in boss.text
    async with services.db.transaction() as session:
        details = [e.detail for e in (await session.exec(select(AuditEntry).where(
            AuditEntry.action.in_(["report", "stats"])).order_by(AuditEntry.id))).all()]
    assert details[0].endswith("for=supervisors") and details[1].endswith("for=published")
