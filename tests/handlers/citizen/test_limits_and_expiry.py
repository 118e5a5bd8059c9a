"""Limits hold (flood, tips a Vietnamese day, /status attempts), drafts expire with their files and
keys, a redelivered update changes nothing, and receipt codes are found however they are typed."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete
from sqlmodel import select

from handlers.citizen import submission
from handlers.context import Limits
from handlers.messages import IncomingFile
from handlers.citizen.drafts import wipe_stale_drafts
from tests.support.chat import ChatClient
from tests.support.images import jpeg_with_gps
from storage.models import Conversation
from tests.support.state import stored

TTL = timedelta(hours=24)


@pytest.fixture
def limits() -> Limits:
    return Limits(messages_per_minute=5, tips_per_day=2, status_checks_per_hour=3, draft_ttl=TTL)


class FakeClock:
    """The tip line's clock: set it, or let it tick a little at every update."""

    def __init__(self, now: datetime, *, tick: timedelta = timedelta(0)) -> None:
        self.now, self.tick = now, tick

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.tick
        return now

    def set(self, now: datetime, *, tick: timedelta | None = None) -> None:
        self.now = now
        if tick is not None:
            self.tick = tick


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def clock(services) -> FakeClock:
    # 15 s per update: a walk through the questionnaire stays under the flood limit of 5 a minute.
    fake = FakeClock(utc(2025, 6, 1, 9, 0, 0), tick=timedelta(seconds=15))
    services.clock = fake
    return fake


@pytest.fixture
def citizen(citizen, clock):
    citizen.language = "en"
    return citizen


def other_citizen(tipline, chat_id: str) -> ChatClient:
    client = ChatClient(tipline, chat_id=chat_id)
    client.language = "en"
    return client


# --- helpers -------------------------------------------------------------------------------------

async def reach_evidence_with_a_photo(citizen) -> None:
    await citizen.send("/report")
    await citizen.click("category:theft")
    await citizen.send("Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    await citizen.click("when:today")
    await citizen.send("hoan kiem")
    await citizen.click("area:yes")
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    await citizen.send_file(jpeg_with_gps(), kind="photo")
    assert "Files received so far: 1" in citizen.text


async def send_a_tip(citizen) -> str:
    """A whole tip with one photo; returns its receipt code."""
    await reach_evidence_with_a_photo(citizen)
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    await citizen.click("review:submit")
    assert "Receipt code: TB-" in citizen.text, citizen.text
    return citizen.text.split("Receipt code: ")[1].split()[0]


# --- flood ---------------------------------------------------------------------------------------

async def test_flood_limit_warns_once_then_stays_quiet_until_the_next_minute(citizen, services, clock):
    clock.set(utc(2025, 6, 1, 9, 30, 5), tick=timedelta(0))
    await citizen.send("/report")
    for _ in range(4):  # messages 2..5 are answered
        replies = await citizen.send("?")
        assert len(replies) == 1 and "Please pick one of the options." in replies[0].text
    before = await stored(services, citizen)
    assert before["draft"]["step"] == "category"

    sixth = await citizen.click("category:drugs")
    assert [r.text for r in sixth] == ["You are sending messages too quickly. Please wait a minute, then continue."]
    assert await stored(services, citizen) == before  # the answer was not taken
    assert await citizen.deliver(choice="category:drugs") == []  # the 7th: no reply at all
    assert await citizen.send("/help") == []
    assert await stored(services, citizen) == before

    clock.set(utc(2025, 6, 1, 9, 30, 59))  # still the same minute
    assert await citizen.send("hello") == []
    clock.set(utc(2025, 6, 1, 9, 31, 0))  # a new minute: normal again
    await citizen.deliver(choice="category:drugs")
    assert "Describe what happened" in citizen.text
    assert (await stored(services, citizen))["draft"]["step"] == "description"


async def test_flood_limit_is_per_chat(citizen, tipline, clock):
    clock.set(utc(2025, 6, 1, 9, 30, 5), tick=timedelta(0))
    for _ in range(7):
        await citizen.send("hello")
    assert citizen.last == []
    neighbour = other_citizen(tipline, "700100299")
    assert (await neighbour.send("hello"))[0].text == "Sorry, I did not understand that."


# --- tips a day ----------------------------------------------------------------------------------

TOO_MANY_TIPS = ("You have sent 2 tips today, the most we accept in one day. Please try again tomorrow. "
                 "In an emergency, call 113.")


async def test_tips_per_day_count_the_vietnamese_day(citizen, services, clock):
    clock.set(utc(2025, 6, 1, 16, 0, 0))  # 23:00 in Vietnam on 1 June
    await send_a_tip(citizen)
    await send_a_tip(citizen)
    before = await stored(services, citizen)
    assert before["counts"]["Tip"] == 2 and before["flow"] is None

    replies = await citizen.send("/report")
    assert [r.text for r in replies] == [TOO_MANY_TIPS]
    assert await stored(services, citizen) == before  # no draft, no data key
    clock.set(utc(2025, 6, 1, 16, 59, 59))  # 23:59:59 in Vietnam
    replies = await citizen.deliver(choice="menu:report")
    assert [r.text for r in replies] == [TOO_MANY_TIPS]
    assert await stored(services, citizen) == before

    clock.set(utc(2025, 6, 1, 17, 0, 0))  # midnight in Vietnam: 2 June
    await send_a_tip(citizen)
    await send_a_tip(citizen)
    clock.set(utc(2025, 6, 2, 0, 30, 0))  # a new UTC day, but still 2 June (07:30) in Vietnam
    before = await stored(services, citizen)
    replies = await citizen.send("/report")
    assert [r.text for r in replies] == [TOO_MANY_TIPS]
    assert await stored(services, citizen) == before
    assert before["counts"]["Tip"] == 4


async def test_a_draft_started_before_the_limit_is_kept_when_submitting_is_refused(citizen, services, clock):
    """The same chat on the same day, limit reached while a draft waited (e.g. the limit was lowered)."""
    clock.set(utc(2025, 6, 1, 3, 0, 0))
    await send_a_tip(citizen)
    await reach_evidence_with_a_photo(citizen)
    await citizen.click("evidence:done")
    await citizen.click("identity:anonymous")
    services.settings = dataclasses.replace(services.settings,
                                            limits=dataclasses.replace(services.settings.limits, tips_per_day=1))
    before = await stored(services, citizen)
    replies = await citizen.click("review:submit")
    assert len(replies) == 1
    assert replies[0].text.startswith("You have already sent 1 tips today, the most we accept in one day. "
                                      "Your draft is kept: you can send it tomorrow.")
    assert await stored(services, citizen) == before
    clock.set(utc(2025, 6, 1, 17, 0, 0))  # the next Vietnamese day
    await citizen.click("review:submit")
    assert "Receipt code: TB-" in citizen.text
    assert (await stored(services, citizen))["counts"]["Tip"] == 2


# --- /status attempts ----------------------------------------------------------------------------

async def test_status_attempts_are_limited_per_hour(citizen, services, clock, tipline):
    clock.set(utc(2025, 6, 1, 9, 0, 0))
    code = await send_a_tip(other_citizen(tipline, "700100201"))
    clock.set(utc(2025, 6, 1, 10, 0, 0), tick=timedelta(seconds=20))
    for guess in ("/status TB-AAAAA-AAAAA", "TB-BBBBB-BBBBB", "/status TB-CCCCC-CCCCC"):
        replies = await citizen.send(guess)
        assert [r.text for r in replies] == ["No tip has this code. Please check it and try again."]
    for attempt in (f"/status {code}", code):  # even the right code, once the hour's attempts are used
        replies = await citizen.send(attempt)
        assert [r.text for r in replies] == ["Too many code checks in a short time. Please try again in an hour."]
    assert await citizen.send("/status") != []  # the bare command only explains; it is no attempt
    assert "followed by your receipt code" in citizen.text
    clock.set(utc(2025, 6, 1, 10, 59, 59))
    await citizen.send(f"/status {code}")
    assert "Too many code checks" in citizen.text
    clock.set(utc(2025, 6, 1, 11, 0, 0))
    await citizen.send(f"/status {code}")
    assert "Status: Received, waiting for review." in citizen.text


# --- receipt codes -------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", [
    "/status TB-70K3M-1QXF0",
    "/status tb-70k3m-1qxf0",
    "/status TB 70K3M 1QXF0",
    "/status  tb 70k3m 1qxf0  ",
    "/status TB-7OK3M-1QXFO",  # O for 0
    "/status tb7ok3mlqxfo",  # o for 0, l for 1
    "/status TB-70K3M-IQXF0",  # I for 1
    "/status 70K3M-1QXF0",  # without TB
    "/status TB–70K3M–1QXF0.",  # en dashes, a full stop
    "/status@tinbao_bot TB-70K3M-1QXF0",
    "TB-70K3M-1QXF0",  # typed alone
    "  tb 7ok3m 1qxfo ",
])
async def test_a_receipt_code_is_found_however_it_is_typed(citizen, services, clock, tipline, monkeypatch, typed):
    monkeypatch.setattr(submission, "new_receipt_code", lambda: "TB-70K3M-1QXF0")
    code = await send_a_tip(other_citizen(tipline, "700100201"))
    assert code == "TB-70K3M-1QXF0"
    before = await stored(services, citizen)
    replies = await citizen.send(typed)
    assert len(replies) == 1
    assert re.fullmatch(r"Tip received on \d\d/\d\d/\d{4} \d\d:\d\d\.\nStatus: Received, waiting for review\.",
                        replies[0].text), replies[0].text
    assert await stored(services, citizen) == before


@pytest.mark.parametrize("typed", ["/status TB-AAAAA-AAAAA", "/status hello", "/status TB-70K3M-1QXF", "TB-ZZZZZ-ZZZZZ",
                                   "/status TB-70K3M-1QXF0-1", "/status TB-UUUUU-UUUUU", "/status " + "9" * 5000])
async def test_an_unknown_code_is_refused_politely(citizen, services, clock, tipline, monkeypatch, typed):
    monkeypatch.setattr(submission, "new_receipt_code", lambda: "TB-70K3M-1QXF0")
    await send_a_tip(other_citizen(tipline, "700100201"))
    before = await stored(services, citizen)
    replies = await citizen.send(typed)
    assert [r.text for r in replies] == ["No tip has this code. Please check it and try again."]
    assert await stored(services, citizen) == before


# --- drafts expire -------------------------------------------------------------------------------

async def test_stale_drafts_are_wiped_with_their_files_and_keys(citizen, services, clock, tipline):
    sender = other_citizen(tipline, "700100201")
    await send_a_tip(sender)  # a submitted tip is not a draft: it must survive the sweep
    tip_state = await stored(services, sender)
    await reach_evidence_with_a_photo(citizen)
    last_touch = clock.now - clock.tick
    state = await stored(services, citizen)
    assert state["counts"] == {"Tip": 1, "TipField": tip_state["counts"]["TipField"], "Attachment": 2,
                               "DataKeyRecord": 2}
    assert len(state["blobs"]) == 2

    assert await wipe_stale_drafts(services, now=last_touch + TTL - timedelta(seconds=1)) == 0
    assert await stored(services, citizen) == state
    assert await wipe_stale_drafts(services, now=last_touch + TTL + timedelta(seconds=1)) == 1
    after = await stored(services, citizen)
    assert (after["flow"], after["draft_id"], after["draft"]) == (None, None, None)
    assert after["counts"] == tip_state["counts"]  # only the tip's attachment and key are left
    assert after["blobs"] == tip_state["blobs"]
    assert await wipe_stale_drafts(services, now=last_touch + TTL + timedelta(days=30)) == 0

    # The citizen comes back: nothing of the draft is left to continue; an old button does nothing.
    clock.set(last_touch + TTL + timedelta(minutes=5))
    replies = await citizen.deliver(choice="evidence:done")
    assert [r.text for r in replies] == ["Sorry, I did not understand that."]
    assert (await stored(services, citizen))["counts"] == tip_state["counts"]


async def test_an_expired_draft_is_wiped_on_the_next_message_and_the_citizen_is_told(citizen, services, clock):
    await reach_evidence_with_a_photo(citizen)
    last_touch = clock.now - clock.tick
    state = await stored(services, citizen)
    assert state["counts"]["Attachment"] == 1 and state["counts"]["DataKeyRecord"] == 1 and len(state["blobs"]) == 1

    clock.set(last_touch + TTL - timedelta(seconds=1), tick=timedelta(0))  # not yet: the draft goes on
    await citizen.send("/help")
    assert "Files received so far: 1" in citizen.text
    last_touch = clock.now

    clock.set(last_touch + TTL + timedelta(seconds=1))
    replies = await citizen.deliver(choice="evidence:done")
    assert replies[0].text == "Your unfinished tip was deleted after 24 hours without activity."
    assert [r.text for r in replies[1:]] == ["Sorry, I did not understand that."]
    after = await stored(services, citizen)
    assert (after["flow"], after["draft_id"], after["draft"]) == (None, None, None)
    assert after["counts"] == {"Tip": 0, "TipField": 0, "Attachment": 0, "DataKeyRecord": 0}
    assert after["blobs"] == []

    replies = await citizen.send("hello")  # told once only
    assert [r.text for r in replies] == ["Sorry, I did not understand that."]


async def test_report_after_expiry_starts_a_fresh_draft(citizen, services, clock):
    await reach_evidence_with_a_photo(citizen)
    old = await stored(services, citizen)
    clock.set(clock.now + TTL + timedelta(minutes=1))
    replies = await citizen.send("/report")
    assert replies[0].text == "Your unfinished tip was deleted after 24 hours without activity."
    assert "What kind of crime" in replies[1].text
    new = await stored(services, citizen)
    assert new["draft"] == {"step": "category", "answers": {}, "pending": {}}
    assert new["draft_id"] != old["draft_id"]
    assert new["counts"] == {"Tip": 0, "TipField": 0, "Attachment": 0, "DataKeyRecord": 1} and new["blobs"] == []


# --- redelivery ----------------------------------------------------------------------------------

async def test_a_redelivered_update_changes_nothing(citizen, services, clock):
    first = await citizen.deliver(update_id="X", text="/report")
    assert "What kind of crime" in first[0].text
    before = await stored(services, citizen)
    assert await citizen.deliver(update_id="X", text="/report") == []
    assert await citizen.deliver(update_id="X", choice="category:drugs") == []  # whatever it claims to carry
    assert await stored(services, citizen) == before

    await reach_from_category(citizen)
    fetched = []

    async def fetch() -> bytes:
        fetched.append(True)
        return jpeg_with_gps()
    photo = IncomingFile(kind="photo", size=None, fetch=fetch)
    await citizen.deliver(update_id="F1", files=[photo])
    assert "Files received so far: 1" in citizen.text
    before = await stored(services, citizen)
    assert await citizen.deliver(update_id="F1", files=[photo]) == []
    assert fetched == [True]  # not even downloaded again
    assert await stored(services, citizen) == before
    assert before["counts"]["Attachment"] == 1

    # The same id from another channel is another update.
    elsewhere = ChatClient(citizen.tipline, chat_id=citizen.chat_id, channel="telegram")
    assert await elsewhere.deliver(update_id="X", text="hello") != []


async def test_a_redelivery_brings_back_no_row_of_its_chat(citizen, services):
    """A chat's row that is gone stays gone when an update it sent before comes again (the turn is opened in one
    statement or trip: the row is written only for an update id not seen before)."""
    await citizen.deliver(update_id="R1", text="/help")
    async with services.db.transaction() as session:
        assert (await session.exec(delete(Conversation))).rowcount == 1
    assert await citizen.deliver(update_id="R1", text="/help") == []
    async with services.db.transaction() as session:
        assert (await session.exec(select(Conversation))).all() == []
    assert await citizen.deliver(update_id="R2", text="/help") != []  # a new update is a new turn
    async with services.db.transaction() as session:
        assert len((await session.exec(select(Conversation))).all()) == 1


async def test_a_redelivery_does_not_count_toward_the_flood_limit(citizen, clock):
    clock.set(utc(2025, 6, 1, 9, 30, 5), tick=timedelta(0))
    await citizen.deliver(update_id="R", text="hello")
    for _ in range(10):
        assert await citizen.deliver(update_id="R", text="hello") == []
    for _ in range(4):
        assert (await citizen.send("hello"))[0].text == "Sorry, I did not understand that."


async def test_messages_without_an_update_id_count_toward_the_flood_limit(citizen, clock):
    """A channel that gives no update id (the console) is deduplicated by nothing, but still counted."""
    clock.set(utc(2025, 6, 1, 9, 30, 5), tick=timedelta(0))
    for _ in range(5):
        assert (await citizen.deliver(update_id=None, text="hello"))[0].text == "Sorry, I did not understand that."
    sixth = await citizen.deliver(update_id=None, text="hello")
    assert [r.text for r in sixth] == ["You are sending messages too quickly. Please wait a minute, then continue."]
    assert await citizen.send("hello") == []  # and the messages with one count in the same minute


async def reach_from_category(citizen) -> None:
    await citizen.deliver(choice="category:theft")
    await citizen.send("Hai thanh niên giật túi xách của một phụ nữ trước chợ.")
    await citizen.click("when:today")
    await citizen.send("hoan kiem")
    await citizen.click("area:yes")
    await citizen.click("place:skip")
    await citizen.click("people:skip")
    assert "Send photos" in citizen.text
