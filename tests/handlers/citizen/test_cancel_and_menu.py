"""Cancelling asks first («Xóa tin đang soạn?»), whether by /cancel, a typed «hủy» or the review's button; the
menu's words are understood without accents, and «Hướng dẫn» leaves the menu's numbers meaning what they did."""

from __future__ import annotations

import pytest

from tests.support.chat import ChatClient
from tests.support.state import stored


async def start_tip(citizen) -> None:
    await citizen.send("/report")
    await citizen.click("category:drugs")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    assert "Sự việc xảy ra khi nào?" in citizen.text or "When did it happen?" in citizen.text


@pytest.mark.parametrize("typed", ["hủy", "huy", "Hủy bỏ", "/cancel"])
async def test_cancel_asks_and_keep_changes_nothing(citizen, services, typed):
    await start_tip(citizen)
    before = await stored(services, citizen)
    await citizen.send(typed)
    assert citizen.text == "Xóa tin đang soạn?"
    assert citizen.labels == ["Có, xóa tin", "Không, tiếp tục soạn"]
    await citizen.click("Không, tiếp tục soạn")
    assert citizen.text.startswith("Tin báo của bạn vẫn được giữ lại.") and "Sự việc xảy ra khi nào?" in citizen.text
    assert await stored(services, citizen) == before
    await citizen.send(typed)
    await citizen.click("Có, xóa tin")
    assert citizen.text == "Tin báo đã được hủy và xóa. Gửi /report để bắt đầu lại."
    after = await stored(services, citizen)
    assert (after["flow"], after["draft"], after["counts"]["DataKeyRecord"]) == (None, None, 0)


@pytest.mark.parametrize("typed", ["có", "co", "1"])
async def test_on_zalo_a_typed_yes_deletes(tipline, services, typed):
    citizen = ChatClient(tipline, chat_id=f"zl-cancel-{typed}", channel="zalo")
    await start_tip(citizen)
    await citizen.send("huy")
    assert citizen.text == "Xóa tin đang soạn?"
    await citizen.send(typed)
    assert (await stored(services, citizen))["flow"] is None


async def test_an_answer_instead_of_yes_or_no_keeps_the_tip_and_is_taken(citizen, services):
    citizen.language = "en"
    await start_tip(citizen)
    await citizen.send("/cancel")
    await citizen.deliver(choice="when:today")  # the question's own button, still on screen above
    assert "In which ward or commune" in citizen.text
    state = await stored(services, citizen)
    assert state["flow"] == "tipoff" and state["draft"]["answers"]["when"] == {"choice": "today"}
    await citizen.send("1")  # now the first choice of the ward question, not «Yes, delete it»
    assert (await stored(services, citizen))["flow"] == "tipoff"


async def test_the_reviews_cancel_asks_too(citizen, services):
    from tests.handlers.citizen.test_tipoff import walk_to_review
    citizen.language = "en"
    await walk_to_review(citizen)
    await citizen.click("review:cancel")
    assert citizen.text == "Delete the tip you are writing?"
    assert (await stored(services, citizen))["counts"]["Attachment"] == 1
    await citizen.click("Yes, delete it")
    assert "cancelled and deleted" in citizen.text
    assert (await stored(services, citizen))["counts"]["Attachment"] == 0


async def test_cancel_with_nothing_to_cancel(citizen):
    citizen.language = "en"
    await citizen.send("/cancel")
    assert citizen.text == "There is nothing to cancel."


@pytest.mark.parametrize("typed", ["to giac", "Tố giác", "TO GIAC TOI PHAM", "tố giác tội phạm"])
async def test_menu_words_without_accents_at_the_main_menu(citizen, typed):
    await citizen.send("/start")
    await citizen.send(typed)
    assert "Bạn muốn báo tin về loại vụ việc nào?" in citizen.text


async def test_menu_words_work_where_the_menu_was_not_just_shown(citizen):
    await citizen.send("huong dan")  # a first message, no menu shown yet
    assert "/report" in citizen.text and "/status" in citizen.text


async def test_after_help_the_menu_numbers_still_work(tipline):
    citizen = ChatClient(tipline, chat_id="zl-help", channel="zalo")
    await citizen.send("/start")
    await citizen.send("3")  # «Hướng dẫn»
    assert "/report" in citizen.text
    assert citizen.labels == ["Tố giác tội phạm", "Tra cứu tin báo", "Hướng dẫn"]
    await citizen.send("2")
    assert "/status" in citizen.text and "TB-7K3MP-9QXFA" in citizen.text
