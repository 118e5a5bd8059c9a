"""Festival reminders through the channel-neutral tip line: /remind for citizens; /event, /announce and
/broadcasts for officers; and the calendar arithmetic (year boundary, quiet hours) underneath."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest
from sqlmodel import select

from handlers.context import VIETNAM
from handlers.reminders.festival_calendar import (Offset, ReminderSettings, due_reminders, load_calendar,
                                                  next_occurrences, quiet_until, sendable_from)
from handlers.messages import Inbound
from handlers.reminders.subscriptions import OFF_BUTTON
from storage.models import (AuditEntry, DataKeyRecord, ReminderBroadcast, ReminderEvent, ReminderOutbox,
                            ReminderSubscriber, ReminderSubscriberArea)
from tests.handlers.officer.test_triage import enrol
from tests.support.chat import ChatClient
from tests.support.reminders import Clock

CANARY_CHAT = "987650004321"


def vn(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VIETNAM).astimezone(timezone.utc)


async def subscriber(services, client: ChatClient) -> ReminderSubscriber | None:
    chat_key = client.tipline.chat_key(Inbound(channel=client.channel, chat_id=client.chat_id))
    async with services.db.transaction() as session:
        return (await session.exec(select(ReminderSubscriber).where(ReminderSubscriber.chat_key == chat_key))).first()


# --- citizens --------------------------------------------------------------------------------------

async def test_remind_on_choose_an_area_and_off(services, tipline):
    citizen = ChatClient(tipline, chat_id=CANARY_CHAT, language="en")
    await citizen.send("/remind")
    assert "Festival reminders are off" in citizen.text and "never sent between 21:00 and 07:00" in citizen.text
    await citizen.click("Turn on reminders")
    assert "Festival reminders are on" in citizen.text and "/remind ben thanh" in citizen.text
    await citizen.send("/remind ben thanh")
    assert "Phường Bến Thành, Thành phố Hồ Chí Minh" in citizen.labels
    await citizen.click("Phường Bến Thành, Thành phố Hồ Chí Minh")
    assert "Reminders are on for Phường Bến Thành" in citizen.text
    await citizen.send("/remind")
    assert "Your areas: Phường Bến Thành, Thành phố Hồ Chí Minh" in citizen.text
    assert "Turn off reminders" in " ".join(citizen.labels)

    found = await subscriber(services, citizen)
    assert found.active and found.route and found.channel == "console"
    async with services.db.transaction() as session:
        assert await session.get(DataKeyRecord, found.route_key_id) is not None

    await citizen.send("/remind off")
    assert "Festival reminders are off: you will get no more" in citizen.text
    gone = await subscriber(services, citizen)
    assert not gone.active and gone.route is None and gone.route_key_id is None and gone.opt_out_reason == "citizen"
    async with services.db.transaction() as session:
        # The route's data key is shredded and the chosen areas forgotten.
        assert await session.get(DataKeyRecord, found.route_key_id) is None
        assert (await session.exec(select(ReminderSubscriberArea))).all() == []


async def test_the_chat_id_is_only_ever_sealed(services, tipline):
    """After /remind on, the chat id is in no table in clear, nor in the SQLite file or its WAL; it is there,
    sealed, in the subscriber's route (which is how the dispatcher reaches the citizen)."""
    import json
    from pathlib import Path

    from sqlalchemy import text
    from sqlmodel import SQLModel

    from storage.keys import load_data_key
    citizen = ChatClient(tipline, chat_id=CANARY_CHAT, language="en")
    await citizen.send("/remind on")
    async with services.db.transaction() as session:
        [row] = (await session.exec(select(ReminderSubscriber))).all()
        key = await load_data_key(session=session, keyring=services.keyring, owner_id=row.route_key_id)
        assert json.loads(key.open_text("route", row.route))["chat_id"] == CANARY_CHAT
        places = {table.name: repr((await session.exec(text(f"SELECT * FROM {table.name}"))).all()).encode()
                  for table in SQLModel.metadata.sorted_tables}
    if services.db.is_sqlite:
        for suffix in ("", "-wal"):
            path = Path(services.db.engine.url.database + suffix)
            if path.exists():
                places[path.name] = path.read_bytes()
    for place, content in places.items():
        assert CANARY_CHAT.encode() not in content, f"the chat id stands in clear in {place}"


async def test_tapping_an_area_is_the_opt_in(services, tipline):
    citizen = ChatClient(tipline, chat_id="700", language="en")
    await citizen.send("/remind sai gon")
    await citizen.click("Phường Sài Gòn")
    found = await subscriber(services, citizen)
    assert found is not None and found.active


async def test_unknown_area_and_the_area_limit(services, tipline):
    citizen = ChatClient(tipline, chat_id="701", language="en")
    await citizen.send("/remind atlantis")
    assert "No ward or commune matches «atlantis»" in citizen.text
    for code in ("79.26734", "79.26737", "79.26740", "79.27154", "79.27580"):
        await citizen.deliver(choice=f"remind:add={code}")
    await citizen.deliver(choice="remind:add=79.26800")
    assert "You can choose up to 5 areas" in citizen.text
    await citizen.deliver(choice="remind:add=79.26734")
    assert "You already get the reminders of Phường Bến Thành" in citizen.text
    await citizen.deliver(choice="remind:del=79.26734")
    assert "no longer hear of the local events of Phường Bến Thành" in citizen.text
    await citizen.deliver(choice="remind:add=nowhere")  # a forged code: just the status
    assert "Festival reminders are on" in citizen.text


async def test_the_stop_button_under_a_reminder_unsubscribes_in_one_tap(services, tipline):
    citizen = ChatClient(tipline, chat_id="702", language="en")
    await citizen.send("/remind on")
    await citizen.deliver(choice=OFF_BUTTON)
    assert "Festival reminders are off: you will get no more" in citizen.text
    await citizen.deliver(choice=OFF_BUTTON)  # a second tap on an older reminder
    assert "Festival reminders are off. Send /remind on" in citizen.text
    await citizen.send("/remind bật")
    assert "Festival reminders are on" in citizen.text
    await citizen.send("/remind Tắt")
    assert "Festival reminders are off: you will get no more" in citizen.text


async def test_remind_in_the_middle_of_a_tip_keeps_the_tip(services, tipline):
    citizen = ChatClient(tipline, chat_id="703", language="en")
    await citizen.send("/report")
    question = citizen.last[-1].text
    replies = await citizen.send("/remind on")
    assert "Festival reminders are on" in replies[0].text and question.endswith(replies[-1].text)


async def test_help_mentions_reminders(services, tipline):
    citizen = ChatClient(tipline, chat_id="704", language="en")
    await citizen.send("/help")
    assert "/remind" in citizen.text


# --- officers: events ------------------------------------------------------------------------------

async def test_an_officer_adds_a_local_event_for_their_ward(services, tipline):
    services.clock = Clock(vn(2026, 8, 1, 10))
    officer = await enrol(services, tipline, "900")
    await officer.send("/event add 15/08 19:30 | Nhà văn hóa khu phố 3 | Ngày hội phường Bến Thành\n"
                       "Văn nghệ, trao thưởng cho người có thành tích")
    text = officer.text
    assert "Event #" in text and "added for Phường Bến Thành" in text
    assert "15/08/2026 at 19:30" in text and "Nhà văn hóa khu phố 3" in text
    assert "Reminders: 08/08/2026 08:00, 14/08/2026 08:00, 15/08/2026 07:00" in text
    async with services.db.transaction() as session:
        event = (await session.exec(select(ReminderEvent))).one()
        audit = (await session.exec(select(AuditEntry).where(AuditEntry.action == "event_add"))).one()
    assert (event.area_code, event.dates, event.start_time) == ("79.26734", "2026-08-15", "19:30")
    assert event.source == "local"
    assert event.title == "Ngày hội phường Bến Thành" and event.description.startswith("Văn nghệ")
    assert f"event={event.id}" in audit.detail

    await officer.send("/event")
    assert "Ngày hội phường Bến Thành" in officer.text
    await officer.send(f"/event delete {event.id}")
    assert f"Event #{event.id} was removed" in officer.text


async def test_events_stay_within_the_officers_areas(services, tipline):
    services.clock = Clock(vn(2026, 8, 1, 10))
    officer = await enrol(services, tipline, "900")
    await officer.send("/event add 15/08 19:30 79.26737 | Sân vận động | Ngày hội phường Sài Gòn")
    assert "Area 79.26737 is not one of your units' areas" in officer.text
    await officer.send("/event add 15/08/2025 | x | Đã qua")
    assert "That date has passed" in officer.text
    await officer.send("/event add hôm nay | x")
    assert officer.text.startswith("Use: /event add")
    boss = await enrol(services, tipline, "902", unit="ca-hcm", role="supervisor", name="Thiếu tá Minh")
    await boss.send("/event add 15/08 19:30 79.26737 | Sân vận động | Ngày hội phường Sài Gòn")
    assert "added for Phường Sài Gòn" in boss.text
    async with services.db.transaction() as session:
        assert len((await session.exec(select(ReminderEvent))).all()) == 1


@pytest.mark.parametrize("command", ["/event", "/event add 15/08 19:30 | x | y", "/announce all | hi", "/broadcasts",
                                     "/announce send 1", "/announce cancel 1"])
async def test_non_officers_get_the_neutral_answer(tipline, command):
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("blah blah")
    neutral = stranger.text
    await stranger.send(command)
    assert stranger.text == neutral


@pytest.mark.parametrize("data", ["b:send:1", "b:cancel:1", "b:bogus:1"])
async def test_a_forged_broadcast_button_changes_nothing(services, tipline, data):
    stranger = ChatClient(tipline, chat_id="333", language="en")
    await stranger.send("hello")
    neutral = stranger.text
    await stranger.deliver(choice=data)
    assert stranger.text == neutral


# --- admins: announcements -------------------------------------------------------------------------

async def test_an_admin_previews_sends_and_cancels_an_announcement(services, tipline):
    services.clock = Clock(vn(2026, 8, 10, 9))
    for chat in ("801", "802"):
        citizen = ChatClient(tipline, chat_id=chat, language="en")
        await citizen.deliver(choice="remind:add=79.26734")
    admin = await enrol(services, tipline, "910", unit="ca-hcm", role="admin", name="Trung tá Hà")
    await admin.send("/announce 79.26734 15/08/2026 08:00 | Mời bà con dự Ngày hội toàn dân bảo vệ an ninh Tổ quốc.")
    preview = admin.text
    assert "Preview of announcement #" in preview and "to 2 subscriber(s) of Phường Bến Thành" in preview
    assert "going out 15/08/2026 08:00" in preview and "Mời bà con" in preview and "/remind off" in preview
    assert admin.labels == ["✅ Send", "✖ Cancel"]
    async with services.db.transaction() as session:
        draft = (await session.exec(select(ReminderBroadcast))).one()
    assert draft.status == "draft" and draft.send_at == vn(2026, 8, 15, 8)

    await admin.click("✅ Send")
    assert f"Announcement #{draft.id} is scheduled for 15/08/2026 08:00" in admin.text
    await admin.send(f"/announce cancel {draft.id}")
    assert f"Announcement #{draft.id} is cancelled; nobody got it." in admin.text
    async with services.db.transaction() as session:
        assert (await session.exec(select(ReminderBroadcast.status))).one() == "cancelled"
        actions = [e.action for e in (await session.exec(select(AuditEntry).order_by(AuditEntry.id))).all()]
    assert actions[-3:] == ["announce_draft", "announce_send", "announce_cancel"]


async def test_an_announcement_in_the_quiet_hours_says_when_it_really_goes(services, tipline):
    services.clock = Clock(vn(2026, 8, 10, 22, 30))
    admin = await enrol(services, tipline, "910", unit="ca-hcm", role="admin", name="Trung tá Hà")
    await admin.send("/announce all | Thông báo khẩn về lừa đảo qua mạng.")
    assert "going out 11/08/2026 07:00" in admin.text and "every subscriber" in admin.text


async def test_only_admins_announce_and_only_to_their_areas(services, tipline):
    officer = await enrol(services, tipline, "900", role="supervisor")
    await officer.send("/announce 79.26734 | Xin chào")
    assert officer.text == "Only an admin can send announcements."
    ward_admin = await enrol(services, tipline, "911", unit="ca-benthanh", role="admin", name="Đại úy Nam")
    await ward_admin.send("/announce 79.26737 | Xin chào")
    assert "Area 79.26737 is not one of your units' areas" in ward_admin.text
    await ward_admin.send("/announce all | Xin chào")
    assert "Only an admin of the top unit" in ward_admin.text
    await ward_admin.send("/announce 79.26734 | " + "x" * 1501)
    assert "too long (1501 characters)" in ward_admin.text
    await ward_admin.send("/announce 79.26734 01/01/2020 08:00 | Xin chào")
    assert "That time has passed" in ward_admin.text
    top = await enrol(services, tipline, "912", unit="ca-hcm", role="admin", name="Trung tá Hà")
    await top.send("/announce 79.26734 | Xin chào")
    preview_id = top.last[0].choices[0].id.split(":")[-1]
    await ward_admin.send(f"/announce send {preview_id}")  # the ward admin may act on an announcement of their ward
    assert "is scheduled" in ward_admin.text
    hanoi = await enrol(services, tipline, "913", unit="ca-hn", role="admin", name="Trung tá Bình")
    await hanoi.send(f"/announce cancel {preview_id}")
    assert f"There is no announcement #{preview_id} in your areas" in hanoi.text


async def test_broadcasts_shows_sent_failed_pending_unknown_and_skipped_by_reason(services, tipline):
    services.clock = Clock(vn(2026, 8, 19, 9))
    from tests.support.reminders import add_subscribers
    await add_subscribers(services, range(1, 8), areas=("79.26734",))
    now = services.clock()
    async with services.db.transaction() as session:
        broadcast = ReminderBroadcast(key="announce:t", kind="announcement", area_code="79.26734", text="Hi",
                                      status="queued", send_at=now, queued_at=now)
        session.add(broadcast)
        await session.flush()
        ids = (await session.exec(select(ReminderSubscriber.id).order_by(ReminderSubscriber.id))).all()
        states = [("sent", None), ("sent", None), ("failed", "blocked"), ("pending", None), ("unknown", "worker_lost"),
                  ("skipped", "outside_window"), ("skipped", "unsubscribed")]
        for subscriber_id, (status, reason) in zip(ids, states):
            session.add(ReminderOutbox(broadcast_id=broadcast.id, subscriber_id=subscriber_id, status=status,
                                       reason=reason, not_before=now))
    admin = await enrol(services, tipline, "910", unit="ca-hcm", role="admin", name="Trung tá Hà")
    await admin.send("/broadcasts")
    text = admin.text
    assert f"#{broadcast.id} · 📢 announcement · Phường Bến Thành" in text
    assert "sent 2 · failed 1 · pending 1 · unknown 1" in text
    assert "blocked the bot 1" in text and "outside the channel's window 1" in text and "unsubscribed 1" in text
    assert f"✖ Cancel #{broadcast.id}" in admin.labels  # one row is still pending
    officer = await enrol(services, tipline, "914", unit="ca-saigon", name="Đại úy Tâm")
    await officer.send("/broadcasts")
    assert "No reminders or announcements" in officer.text  # another ward's announcement


# --- the calendar ----------------------------------------------------------------------------------

def test_the_next_occurrence_crosses_the_year_boundary():
    [early_january] = next_occurrences("01-05", start_time=None, now=vn(2026, 12, 30, 12))
    assert early_january.day == date(2027, 1, 5)
    [today] = next_occurrences("12-31", start_time=None, now=vn(2026, 12, 31, 23, 59))
    assert today.day == date(2026, 12, 31)  # not over until midnight, Vietnam time
    [next_year] = next_occurrences("12-31", start_time=None, now=vn(2027, 1, 1, 0, 0))
    assert next_year.day == date(2027, 12, 31)
    [begun] = next_occurrences("08-19", start_time="07:30", now=vn(2026, 8, 19, 8))
    assert begun.day == date(2027, 8, 19)  # an event with a start time is over once it has begun
    assert next_occurrences("2026-07-15", start_time=None, now=vn(2026, 7, 16)) == []
    [leap] = next_occurrences("02-29", start_time=None, now=vn(2026, 3, 1))
    assert leap.day == date(2028, 2, 29)


def test_a_reminder_due_in_december_for_an_event_in_january():
    offsets = (Offset(7), Offset(1), Offset(0, time(7, 0)))
    assert due_reminders(dates="01-03", start_time=None, offsets=offsets, now=vn(2026, 12, 27, 7, 59)) == []
    [due] = due_reminders(dates="01-03", start_time=None, offsets=offsets, now=vn(2026, 12, 27, 8, 0))
    assert (due.occurrence.day, due.offset, due.send_at) == (date(2027, 1, 3), Offset(7), vn(2026, 12, 27, 8))
    # After a stop only the latest reminder that came due is made, not all the missed ones.
    [late] = due_reminders(dates="01-03", start_time=None, offsets=offsets, now=vn(2027, 1, 3, 9))
    assert late.offset == Offset(0, time(7, 0))
    assert due_reminders(dates="01-03", start_time="06:00", offsets=offsets, now=vn(2027, 1, 3, 7, 30)) == []


def test_quiet_hours_are_vietnam_time_and_wrap_midnight():
    settings = ReminderSettings()
    assert quiet_until(vn(2026, 8, 10, 20, 59), settings) is None
    assert quiet_until(vn(2026, 8, 10, 21, 0), settings) == vn(2026, 8, 11, 7)
    assert quiet_until(vn(2026, 12, 31, 23, 0), settings) == vn(2027, 1, 1, 7)
    assert quiet_until(vn(2026, 8, 11, 6, 59), settings) == vn(2026, 8, 11, 7)
    assert quiet_until(vn(2026, 8, 11, 7, 0), settings) is None
    assert sendable_from(vn(2026, 8, 10, 22), settings) == vn(2026, 8, 11, 7)
    daytime = ReminderSettings(quiet_start=time(12, 0), quiet_end=time(13, 30))
    assert quiet_until(vn(2026, 8, 10, 12, 15), daytime) == vn(2026, 8, 10, 13, 30)
    assert quiet_until(vn(2026, 8, 10, 21, 15), ReminderSettings(quiet_start=time(0), quiet_end=time(0))) is None


def test_the_shipped_calendar_has_the_national_days():
    events = {e.id: e for e in load_calendar()}
    assert events["an-ninh-to-quoc"].dates == ("08-19",)
    assert events["dai-doan-ket"].dates == ("11-18",)
    assert events["mua-ngay-hoi"].dates == ("07-01",)
    assert all(e.titles["vi"] and e.titles["en"] for e in events.values())


def test_a_wrong_calendar_file_names_the_event_and_key(tmp_path):
    from handlers.reminders.festival_calendar import CalendarError
    path = tmp_path / "events.toml"
    path.write_text('[[events]]\nid = "x"\ndates = ["02-30"]\ntitle = { vi = "X" }\n', encoding="utf-8")
    with pytest.raises(CalendarError, match=r"events\[0\] \(x\): '02-30' is not a day of the year"):
        load_calendar(path)
    path.write_text('[[events]]\nid = "x"\ndates = ["08-19"]\noffsets = ["7 days"]\ntitle = { vi = "X" }\n',
                    encoding="utf-8")
    with pytest.raises(CalendarError, match="7 days"):
        load_calendar(path)
