"""Step kinds: one class each in the registry the loader reads; a reply says its language and what to type
where a button cannot be shown; an officer still sees answers to steps the questionnaire no longer names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from handlers.messages import TypeInstead
from handlers.citizen.questionnaire_file import SHIPPED, QuestionnaireError, load_questionnaire
from handlers.citizen.step_kinds import KINDS
from handlers.router import TipLine
from tests.handlers.officer.test_triage import enrol, submit_tip


def test_the_loader_takes_exactly_the_registered_kinds(tmp_path: Path):
    assert {step.kind for step in load_questionnaire().steps} <= set(KINDS)
    path = tmp_path / "questionnaire.toml"
    path.write_text(SHIPPED.read_text(encoding="utf-8").replace('kind = "text"', 'kind = "essay"', 1), encoding="utf-8")
    with pytest.raises(QuestionnaireError, match=r"kind must be one of \['area', 'choice', .*got 'essay'"):
        load_questionnaire(path)


def test_a_choice_step_without_choices_is_refused_by_its_kind(tmp_path: Path):
    text = SHIPPED.read_text(encoding="utf-8")
    start = text.index("choices = [")
    path = tmp_path / "questionnaire.toml"
    path.write_text(text[:start] + text[text.index("]\n", start) + 2:], encoding="utf-8")
    with pytest.raises(QuestionnaireError, match=r"steps\[0\] \(category\) is a choice step without choices"):
        load_questionnaire(path)


async def test_replies_say_their_language_and_what_to_type_instead_of_a_button(citizen):
    citizen.language = "en"
    await citizen.send("/report")
    assert citizen.last[0].language == "en" and citizen.last[0].type_instead is None
    await citizen.click("Drugs")
    await citizen.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    await citizen.click("Happening now")
    await citizen.send("ben thanh")
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    place = citizen.last[-1]
    assert place.location_button and place.type_instead is TypeInstead.ADDRESS
    await citizen.send("/language vi")
    assert citizen.last[-1].language == "vi" and citizen.last[-1].type_instead is TypeInstead.ADDRESS


async def test_an_officer_still_sees_the_answer_to_a_step_renamed_since_the_tip_came(services, tipline):
    code = await submit_tip(tipline, "111")
    renamed = [dataclasses.replace(s, id="vehicles") if s.id == "people" else s
               for s in services.settings.questionnaire.steps]
    renamed_file = dataclasses.replace(services.settings.questionnaire, steps=tuple(renamed))
    later = dataclasses.replace(services, settings=dataclasses.replace(services.settings, questionnaire=renamed_file))
    officer = await enrol(later, TipLine(later), "900")
    await officer.send("/next")
    view = officer.last[0].text
    assert "• people: Xe máy Wave biển số 59X1-123.45" in view
    assert "Người đàn ông áo đỏ" in view and code not in view
    assert "reply_route" not in view and "• contact" not in view
