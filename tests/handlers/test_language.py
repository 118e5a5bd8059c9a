"""Vietnamese first, English for an English-speaking client or on request, and /language sticks.

The Vietnamese texts are checked by what they are not (the English text), so that the catalog can
be reworded freely; the questionnaire's own texts come from its data file.
"""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from handlers.messages import CHANNEL_PREFIXES
from handlers.citizen.drafts import DRAFT_FIELD, Draft
from storage.keys import load_data_key
from storage.models import Conversation
from tests.support.chat import ChatClient

WELCOME_EN = "Welcome to the police crime tip line (tin báo tố giác tội phạm)."
NOT_UNDERSTOOD_EN = "Sorry, I did not understand that."
SET_EN = "Language set to English."
SET_VI_IN_EN = "Language set to Vietnamese."
CHOOSE_EN = "Choose your language:"


def client(tipline, language: str | None, chat_id: str = "700100200") -> ChatClient:
    chat = ChatClient(tipline, chat_id=chat_id)
    chat.language = language
    return chat


async def conversation(services, chat: ChatClient) -> tuple[str | None, dict | None]:
    """The chat's chosen language and its opened draft state."""
    chat_key = services.keyring.pseudonym(CHANNEL_PREFIXES[chat.channel], chat.chat_id)
    async with services.db.transaction() as session:
        conv = (await session.exec(select(Conversation).where(Conversation.chat_key == chat_key))).one()
        draft = None
        if conv.draft is not None:
            key = await load_data_key(session=session, keyring=services.keyring, owner_id=conv.draft_id)
            opened = Draft(key, json.loads(key.open_text(DRAFT_FIELD, conv.draft)))
            draft = {"step": opened.step, "answers": opened.answers, "pending": opened.pending}
    return conv.language, draft


def prompt(services, step_id: str, lang: str) -> str:
    return services.settings.questionnaire.step(step_id).prompt(lang)


def option_labels(services, step_id: str, lang: str) -> list[str]:
    return [o.label(lang) for o in services.settings.questionnaire.step(step_id).choices]


@pytest.mark.parametrize("hint", [None, "vi", "vi-VN", "fr", ""])
async def test_the_default_is_vietnamese(tipline, services, hint):
    english = client(tipline, "en", chat_id="700100999")
    await english.send("/start")
    assert english.text.startswith(WELCOME_EN)

    chat = client(tipline, hint)
    welcome = await chat.send("/start")
    assert len(welcome) == 1 and len(welcome[0].choices) == 3
    assert welcome[0].text != english.text and WELCOME_EN not in welcome[0].text
    assert "113" in welcome[0].text
    assert [c.label for c in welcome[0].choices] != english.labels
    assert [c.id for c in welcome[0].choices] == [c.id for c in english.last[0].choices]

    await chat.send("xin chào")
    assert chat.text != NOT_UNDERSTOOD_EN
    await chat.send("/report")
    assert prompt(services, "category", "vi") in chat.text
    assert chat.labels == option_labels(services, "category", "vi")
    assert await conversation(services, chat) == (None, {"step": "category", "answers": {}, "pending": {}})


@pytest.mark.parametrize("hint", ["en", "en-US", "EN-gb"])
async def test_an_english_speaking_client_gets_english(tipline, services, hint):
    chat = client(tipline, hint)
    await chat.send("/start")
    assert chat.text.startswith(WELCOME_EN)
    assert chat.labels == ["Report a crime", "Check a tip", "Help"]
    await chat.click("Report a crime")
    assert prompt(services, "category", "en") in chat.text
    assert chat.labels == option_labels(services, "category", "en")
    assert (await conversation(services, chat))[0] is None  # a hint is not a choice


@pytest.mark.parametrize("typed", ["/language en", "/language EN", "/language English", "/language@tinbao_bot en"])
async def test_language_en_switches_and_persists(tipline, services, typed):
    chat = client(tipline, "vi")
    replies = await chat.send(typed)
    assert [r.text for r in replies] == [SET_EN]
    assert (await conversation(services, chat))[0] == "en"
    # The platform still says "vi": the chat's own choice wins, message after message.
    for _ in range(2):
        await chat.send("/start")
        assert chat.text.startswith(WELCOME_EN)
    await chat.send("hello")
    assert chat.text == NOT_UNDERSTOOD_EN
    chat.language = None
    await chat.send("/report")
    assert prompt(services, "category", "en") in chat.text


async def test_language_alone_offers_two_buttons_and_vi_switches_back(tipline, services):
    chat = client(tipline, "en")
    await chat.send("/language en")
    replies = await chat.send("/language")
    assert len(replies) == 1 and replies[0].text == CHOOSE_EN
    assert [c.id for c in replies[0].choices] == ["lang=vi", "lang=en"]
    assert replies[0].choices[0].label == "Tiếng Việt" and replies[0].choices[1].label == "English"

    replies = await chat.click("lang=vi")
    assert len(replies) == 1 and replies[0].text not in (SET_VI_IN_EN, SET_EN)
    assert (await conversation(services, chat))[0] == "vi"
    # Back in Vietnamese although the client is English.
    await chat.send("/start")
    assert WELCOME_EN not in chat.text
    replies = await chat.send("/language")
    assert replies[0].text != CHOOSE_EN and [c.id for c in replies[0].choices] == ["lang=vi", "lang=en"]
    await chat.click("lang=en")
    assert chat.text == SET_EN
    assert (await conversation(services, chat))[0] == "en"


@pytest.mark.parametrize("typed", ["/language fr", "/language xx", "/language 1"])
async def test_an_unknown_language_offers_the_choice_and_changes_nothing(tipline, services, typed):
    chat = client(tipline, "en")
    await chat.send("/language vi")
    replies = await chat.send(typed)
    assert len(replies) == 1 and [c.id for c in replies[0].choices] == ["lang=vi", "lang=en"]
    assert (await conversation(services, chat))[0] == "vi"
    forged = await chat.deliver(choice="lang=de")
    assert [c.id for c in forged[0].choices] == ["lang=vi", "lang=en"]
    assert (await conversation(services, chat))[0] == "vi"


async def test_switching_mid_flow_asks_the_current_question_again_in_the_new_language(tipline, services):
    chat = client(tipline, "vi")
    await chat.send("/report")
    assert chat.labels == option_labels(services, "category", "vi")
    _, draft = await conversation(services, chat)

    # At a question with buttons: the same question, its buttons now in English.
    replies = await chat.send("/language en")
    assert len(replies) == 1
    assert replies[0].text.startswith(SET_EN) and replies[0].text.endswith(prompt(services, "category", "en"))
    assert chat.labels == option_labels(services, "category", "en")
    assert await conversation(services, chat) == ("en", draft)  # only the language changed

    await chat.click("Drugs")
    assert prompt(services, "description", "en") in chat.text
    _, draft = await conversation(services, chat)

    # At a text question, by the button: the same question in Vietnamese.
    await chat.send("/language")
    replies = await chat.click("lang=vi")
    assert len(replies) == 1
    assert replies[0].text.endswith(prompt(services, "description", "vi"))
    assert not replies[0].text.startswith(SET_VI_IN_EN) and not replies[0].text.startswith(SET_EN)
    assert await conversation(services, chat) == ("vi", draft)

    # The answer is taken as usual afterwards, and the next question is in Vietnamese.
    await chat.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    assert prompt(services, "when", "vi") in chat.text
    assert chat.labels == option_labels(services, "when", "vi")


async def test_switching_at_the_review_shows_the_review_in_the_new_language(tipline, services):
    chat = client(tipline, "en")
    await chat.send("/report")
    await chat.click("category:drugs")
    await chat.send("Người đàn ông áo đỏ bán ma túy ở đầu hẻm mỗi tối.")
    await chat.click("when:earlier")
    await chat.send("hoan kiem")
    await chat.click("area:yes")  # «Is it Phường Hoàn Kiếm, TP. Hà Nội?»
    await chat.click("place:skip")
    await chat.click("people:skip")
    await chat.click("evidence:done")
    await chat.click("identity:anonymous")
    assert "Please check your tip" in chat.text and "Edit: Category" in chat.labels
    english_review = chat.last[0]
    _, draft = await conversation(services, chat)

    replies = await chat.send("/language vi")
    assert len(replies) == 1
    review = replies[0]
    assert prompt(services, "review", "vi") in review.text and "Please check your tip" not in review.text
    assert [c.id for c in review.choices] == [c.id for c in english_review.choices]
    assert "Edit: Category" not in [c.label for c in review.choices]
    assert await conversation(services, chat) == ("vi", draft)
    await chat.click("review:submit")
    assert "TB-" in chat.text and "Receipt code" not in chat.text


@pytest.mark.parametrize(("hint", "english"), [("en-US", True), ("en", True), ("vi", False), (None, False)])
async def test_the_apology_for_a_failure_follows_the_clients_language(tipline, monkeypatch, hint, english):
    from handlers import router as tipline_module

    async def broken(turn):
        raise RuntimeError("storage went away")
    monkeypatch.setattr(tipline_module, "route", broken)
    chat = client(tipline, hint)
    replies = await chat.send("hello")
    apology = "Sorry, something went wrong on our side and your last message was not saved. Please send it again."
    assert len(replies) == 1
    assert (replies[0].text == apology) is english
