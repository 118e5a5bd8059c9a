"""Button payloads: packed and unpacked in one place, reserved prefixes no questionnaire step can take,
and forged or garbled payloads of every kind answered politely without changing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers import buttons
from handlers.citizen.questionnaire_file import SHIPPED, QuestionnaireError, load_questionnaire
from tests.support.state import stored


def test_payloads_keep_the_formats_buttons_already_shown_in_chats_carry():
    assert buttons.OFFICER.pack("nv", "K7QM2X", "duplicate") == "t:nv:K7QM2X:duplicate"
    assert buttons.OFFICER.unpack("t:nv:K7QM2X:duplicate") == ("nv", "K7QM2X", "duplicate")
    assert buttons.ANNOUNCEMENT.pack("send", 12) == "b:send:12"
    assert buttons.REMINDER.pack("add=79.26734") == "remind:add=79.26734"
    assert buttons.LANGUAGE.pack("vi") == "lang=vi" and buttons.LANGUAGE.unpack("lang=vi", parts=1) == ("vi",)
    assert buttons.step_button("review", "edit=area") == "review:edit=area"
    assert buttons.step_value("review", "review:edit=area") == "edit=area"
    assert buttons.step_value("review", "category:drugs") is None
    assert buttons.reserved_kind("remind:off") is buttons.REMINDER
    assert buttons.reserved_kind("reminder:off") is None and buttons.reserved_kind(None) is None


@pytest.mark.parametrize("parts", [(), ("",), ("a:b", "c")])
def test_a_payload_that_would_read_back_differently_is_refused(parts):
    with pytest.raises(ValueError):
        buttons.OFFICER.pack(*parts)


@pytest.mark.parametrize("step_id", sorted(buttons.RESERVED_PREFIXES))
def test_a_step_cannot_take_a_reserved_prefix_as_its_id(tmp_path: Path, step_id: str):
    """A step called "remind" would have its buttons taken for the reminders': the loader says so in one line."""
    text = SHIPPED.read_text(encoding="utf-8").replace('id = "people"', f'id = "{step_id}"', 1)
    path = tmp_path / "questionnaire.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QuestionnaireError) as refused:
        load_questionnaire(path)
    message = str(refused.value)
    assert "\n" not in message and f"{step_id!r} is reserved" in message and "steps[" in message


FORGED = ["t:bogus", "t:", "t:nv", "b:", "b:1:send", "b:x", "menu:bogus", "menu:", "lang=de", "lang=",
          "remind:zzz", "remind:add=nosuch", "remind:del=79", "category:nonexistent", "review:edit=nosuch"]


async def test_forged_buttons_during_a_tip_off_change_nothing_and_ask_the_question_again(citizen, services):
    citizen.language = "en"
    await citizen.send("/report")
    await citizen.click("category:drugs")
    question = citizen.text
    before = await stored(services, citizen)
    for payload in FORGED:
        replies = await citizen.deliver(choice=payload)
        assert replies and all(r.text for r in replies), payload
        if not payload.startswith(("lang=", "remind:")):  # those answer on the side, then ask again
            assert replies[-1].text.endswith(question.split("\n")[-1]), payload
    assert await stored(services, citizen) == before


async def test_forged_officer_and_menu_buttons_outside_a_tip_get_the_neutral_answer(citizen, services):
    citizen.language = "en"
    neutral = await citizen.send("xin chào")
    before = await stored(services, citizen)
    for payload in ["t:bogus", "t:", "t:nv", "b:", "b:1:send", "b:x", "menu:bogus", "menu:"]:
        assert await citizen.deliver(choice=payload) == neutral, payload
    assert await stored(services, citizen) == before
