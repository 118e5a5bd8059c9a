"""Officers and admins: local events (/event), one-off announcements (/announce) and their progress (/broadcasts).

```mermaid
stateDiagram-v2
    [*] --> draft: /announce AREA [DATE TIME] | TEXT (preview shown)
    draft --> scheduled: ✅ Send
    draft --> cancelled: ✖ Cancel
    scheduled --> queued: its time came (one outbox row per subscriber)
    scheduled --> cancelled: /announce cancel ID
    queued --> queued: /announce cancel ID withdraws what is still unsent
```
An officer adds events for the areas of their units; only an admin announces. Every change is audited.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta

from handlers.buttons import ANNOUNCEMENT
from handlers.context import VIETNAM
from handlers.reminders.festival_calendar import (CalendarError, format_offsets, local_dt, next_occurrences,
                                                  parse_clock, parse_offsets, sendable_from, upcoming_reminders)
from handlers.i18n import N_, number
from handlers.messages import Choice, Reply
from handlers.officer.accounts import actor, scope
from handlers.reminders.subscriptions import areas_within, day_text, reminder_reply, settings_of, when_text
from handlers.officer.triage import Refusal
from handlers.chat_turn import Turn
from storage import reminders as store
from storage.audit import append_audit
from storage.models import Officer, ReminderBroadcast, ReminderEvent
from storage.tips import new_id

MAX_ANNOUNCEMENT = 1500  # with the header and the stop line it stays one message on every channel (Zalo: 2,000)
MAX_TITLE, MAX_DESCRIPTION, MAX_PLACE = 200, 1000, 200
ANNOUNCEMENT_LIFETIME = timedelta(days=2)  # after a long outage, old news is dropped, not delivered late
BROADCASTS_SHOWN = 10
_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})(?:/(\d{4}))?$")
STATUS_NAMES = {"draft": N_("draft"), "scheduled": N_("scheduled"), "queued": N_("sending"),
                "cancelled": N_("cancelled")}
REASON_NAMES = {
    "unsubscribed": N_("unsubscribed"), "blocked": N_("blocked the bot"), "expired": N_("too late"),
    "cancelled": N_("cancelled"), "outside_window": N_("outside the channel's window"), "no_route": N_("no route"),
    "rejected": N_("refused by the channel"), "transient": N_("channel errors"),
}


# --- shared ----------------------------------------------------------------------------------------

def officer_areas(turn: Turn, officer: Officer) -> set[str]:
    """The areas of the officer's units and every area within them."""
    areas, tree = turn.services.settings.areas, turn.services.settings.unit_tree
    codes: set[str] = set()
    for unit_id in scope(turn, officer):
        unit = tree.get(unit_id)
        for code in unit.areas if unit else ():
            codes.update(areas_within(areas, code))
    return codes


def _is_top_admin(turn: Turn, officer: Officer) -> bool:
    unit = turn.services.settings.unit_tree.get(officer.unit_id)
    return officer.role == "admin" and unit is not None and unit.parent is None


def _area_or_refuse(turn: Turn, officer: Officer, code: str) -> str:
    _ = turn._
    if code not in officer_areas(turn, officer):
        raise Refusal(_("Area {area} is not one of your units' areas.").format(area=code[:32]))
    return code


def _parse_day(text: str, now: datetime) -> date:
    """ "19/08/2026", or "19/08" meaning its next coming date."""
    match = _DAY.match(text)
    if not match:
        raise ValueError(text)
    day, month = int(match.group(1)), int(match.group(2))
    if match.group(3):
        return date(int(match.group(3)), month, day)
    today = now.astimezone(VIETNAM).date()
    candidate = date(today.year, month, day)
    return candidate if candidate >= today else date(today.year + 1, month, day)


def _normal(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


async def _audit(turn: Turn, officer: Officer, action: str, detail: str) -> None:
    await append_audit(session=turn.session, keyring=turn.services.keyring, actor=actor(officer), action=action,
                       detail=detail)


def _reach(turn: Turn, area_code: str | None) -> list[str] | None:
    return None if area_code is None else areas_within(turn.services.settings.areas, area_code)


# --- /event ----------------------------------------------------------------------------------------

async def event_command(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/event [list] | /event add … | /event delete ID."""
    verb, _sep, rest = args.strip().partition(" ")
    verb = verb.lower()
    if verb == "add":
        return await add_event(turn, officer, rest)
    if verb in ("delete", "cancel", "remove"):
        return await delete_event(turn, officer, rest)
    return await list_events(turn, officer)


def _event_usage(turn: Turn) -> str:
    return turn._("Use: /event add DD/MM/YYYY HH:MM [AREA] | PLACE | DESCRIPTION\nThe first line of the "
                  "description is its title. Example:\n/event add 15/08/2026 19:30 | Nhà văn hóa khu phố 3 | "
                  "Ngày hội toàn dân bảo vệ an ninh Tổ quốc phường Bến Thành")


async def add_event(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/event add DATE [TIME] [AREA] | PLACE | DESCRIPTION: a local event, reminded to the area's subscribers."""
    _ = turn._
    parts = [_normal(p) for p in args.split("|")]
    if len(parts) not in (2, 3) or not parts[-1]:
        return [Reply(_event_usage(turn))]
    head = parts[0].split()
    place = parts[1] if len(parts) == 3 else ""
    lines = parts[-1].splitlines()
    title, description = lines[0].strip()[:MAX_TITLE], "\n".join(lines[1:]).strip()[:MAX_DESCRIPTION]
    try:
        day = _parse_day(head[0], turn.now) if head else None
        start = parse_clock(head[1]) if len(head) > 1 and ":" in head[1] else None
    except (ValueError, CalendarError):
        day = None
    if day is None or not title:
        return [Reply(_event_usage(turn))]
    area_words = [w for w in head[1:] if ":" not in w]
    unit = turn.services.settings.unit_tree.get(officer.unit_id)
    area = area_words[0] if area_words else (unit.areas[0] if unit and unit.areas else "")
    area = _area_or_refuse(turn, officer, area)
    ends = local_dt(day, start) if start else local_dt(day + timedelta(days=1), time(0, 0))
    if ends <= turn.now:
        return [Reply(_("That date has passed. Give a coming date, for example 15/08/{year}.").format(
            year=turn.now.astimezone(VIETNAM).year + 1))]
    offsets = settings_of(turn.services).default_offsets
    event = await store.add_local_event(session=turn.session, now=turn.now, values=dict(
        title=title, description=description, place=place[:MAX_PLACE], dates=day.isoformat(),
        start_time=f"{start:%H:%M}" if start else None, offsets=format_offsets(offsets), area_code=area,
        unit_id=officer.unit_id, created_by=officer.id))
    await _audit(turn, officer, "event_add", f"event={event.id} area={area} day={day.isoformat()}")
    subscribers = await store.count_reaching(session=turn.session, area_codes=_reach(turn, area))
    where = turn.services.settings.areas.display(area)
    return [Reply(_("Event #{id} added for {area}.").format(id=event.id, area=where)
                  + "\n\n" + _event_summary(turn, event) + "\n\n"
                  + _("Subscribers reached today: {n}. Remove it with /event delete {id}.").format(
                      n=number(subscribers, turn.lang), id=event.id))]


def _event_summary(turn: Turn, event: ReminderEvent) -> str:
    _ = turn._
    title = event.title_en if turn.lang == "en" and event.title_en else event.title
    occurrences = next_occurrences(event.dates, start_time=event.start_time, now=turn.now)
    when = day_text(occurrences[0].day) if occurrences else "—"
    if event.start_time:
        when = _("{day} at {time}").format(day=when, time=event.start_time)
    where = turn.services.settings.areas.display(event.area_code) if event.area_code else _("everyone")
    lines = [f"#{event.id} · {title}", f"📅 {when} · 🏘 {where}"]
    if event.place:
        lines.append(f"📍 {event.place}")
    offsets = parse_offsets(event.offsets)
    times = upcoming_reminders(dates=event.dates, start_time=event.start_time, offsets=offsets, now=turn.now)
    if times:
        lines.append(_("Reminders: {times}").format(times=", ".join(when_text(t) for t in times)))
    return "\n".join(lines)


async def list_events(turn: Turn, officer: Officer) -> list[Reply]:
    """/event: coming events that reach the officer's areas, national days included, soonest first."""
    _ = turn._
    mine = officer_areas(turn, officer)
    shown = []
    for event in await store.active_events(session=turn.session):
        if event.area_code is not None and event.area_code not in mine:
            continue
        occurrences = next_occurrences(event.dates, start_time=event.start_time, now=turn.now)
        if occurrences:
            shown.append((occurrences[0].day, event))
    if not shown:
        return [Reply(_("No coming events. Add one with /event add.") + "\n\n" + _event_usage(turn))]
    shown.sort(key=lambda pair: (pair[0], pair[1].id))
    text = _("Coming events:") + "\n\n" + "\n\n".join(_event_summary(turn, e) for _d, e in shown[:15])
    return [Reply(text + "\n\n" + _("Add one with /event add; remove a local one with /event delete ID."))]


async def delete_event(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/event delete ID: a local event of the officer's areas stops; its unsent reminders are withdrawn."""
    _ = turn._
    event_id = args.strip().lstrip("#")
    event = None
    if event_id.isdigit():
        event = next((e for e in await store.active_events(session=turn.session) if e.id == int(event_id)), None)
    if event is None or (event.area_code is not None and event.area_code not in officer_areas(turn, officer)):
        raise Refusal(_("There is no event #{id} in your areas.").format(id=event_id[:12] or "?"))
    if event.source != "local":
        raise Refusal(_("Event #{id} comes from the calendar file; the operator changes it there.").format(id=event.id))
    withdrawn = await store.cancel_event(session=turn.session, event=event, now=turn.now)
    await _audit(turn, officer, "event_cancel", f"event={event.id}")
    return [Reply(_("Event #{id} was removed; {n} unsent reminder(s) withdrawn.").format(
        id=event.id, n=number(withdrawn, turn.lang)))]


# --- /announce -------------------------------------------------------------------------------------

def _announce_usage(turn: Turn) -> str:
    return turn._("Use: /announce AREA [DD/MM/YYYY HH:MM] | TEXT\nAREA is an area code of your units, or «all». "
                  "Without a date it goes out at once (after the quiet hours). Example:\n"
                  "/announce 79.26734 15/08/2026 08:00 | Mời bà con dự Ngày hội toàn dân bảo vệ an ninh Tổ quốc…")


async def announce(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/announce AREA [DATE TIME] | TEXT → a preview with ✅ Send / ✖ Cancel; /announce send|cancel ID."""
    _ = turn._
    if officer.role != "admin":
        raise Refusal(_("Only an admin can send announcements."))
    verb, _sep, rest = args.strip().partition(" ")
    if verb.lower() in ("send", "confirm"):
        return await confirm_announcement(turn, officer, rest)
    if verb.lower() == "cancel":
        return await cancel_broadcast(turn, officer, rest)
    head, sep, text = args.partition("|")
    text = _normal(text)
    words = head.split()
    if not sep or not text or not words:
        return [Reply(_announce_usage(turn))]
    if len(text) > MAX_ANNOUNCEMENT:
        return [Reply(_("The announcement is too long ({length} characters): keep it under {n}.").format(
            length=len(text), n=MAX_ANNOUNCEMENT))]
    if words[0].lower() in ("all", "tất", "tat"):
        if not _is_top_admin(turn, officer):
            raise Refusal(_("Only an admin of the top unit can announce to every subscriber."))
        area = None
    else:
        area = _area_or_refuse(turn, officer, words[0])
    try:
        send_at = _parse_send_at(words[1:], turn.now)
    except (ValueError, CalendarError):
        return [Reply(_announce_usage(turn))]
    if send_at < turn.now - timedelta(minutes=5):
        return [Reply(_("That time has passed. Give a coming date and time, or none to send it now."))]
    key = f"announce:{new_id()}"
    await store.create_broadcast(session=turn.session, key=key, kind="announcement", send_at=max(send_at, turn.now),
                                 now=turn.now, area_code=area, text=text, status="draft",
                                 expires_at=max(send_at, turn.now) + ANNOUNCEMENT_LIFETIME, created_by=officer.id)
    broadcast = await store.broadcast_by_key(session=turn.session, key=key)
    await _audit(turn, officer, "announce_draft", f"broadcast={broadcast.id} area={area or 'all'}")
    return [_preview(turn, broadcast, await store.count_reaching(session=turn.session, area_codes=_reach(turn, area)))]


def _parse_send_at(words: list[str], now: datetime) -> datetime:
    if not words:
        return now
    day = _parse_day(words[0], now)
    at = parse_clock(words[1]) if len(words) > 1 else time(8, 0)
    return local_dt(day, at)


def _preview(turn: Turn, broadcast: ReminderBroadcast, reach: int) -> Reply:
    _ = turn._
    areas = turn.services.settings.areas
    where = areas.display(broadcast.area_code) if broadcast.area_code else _("every subscriber")
    goes = sendable_from(broadcast.send_at, settings_of(turn.services))
    message = reminder_reply(broadcast=broadcast, event=None, lang=turn.lang, areas=areas)
    text = (_("Preview of announcement #{id} to {n} subscriber(s) of {area}, going out {when}:").format(
        id=broadcast.id, n=number(reach, turn.lang), area=where, when=when_text(goes))
        + f"\n\n────────\n{message.text}\n[{message.choices[0].label}]\n────────\n\n"
        + _("Send it? Until it goes out you can still cancel it with /announce cancel {id}.").format(id=broadcast.id))
    return Reply(text, choices=[Choice(ANNOUNCEMENT.pack("send", broadcast.id), _("✅ Send")),
                                Choice(ANNOUNCEMENT.pack("cancel", broadcast.id), _("✖ Cancel"))], columns=2)


async def _own_broadcast(turn: Turn, officer: Officer, args: str) -> ReminderBroadcast:
    """A broadcast this officer may act on: an announcement of their areas (or everyone's, for a top admin)."""
    _ = turn._
    raw = args.strip().lstrip("#")
    broadcast = await store.broadcast_by_id(session=turn.session, broadcast_id=int(raw), lock=True) \
        if raw.isdigit() and len(raw) <= 9 else None  # beyond that, no such id, and PostgreSQL would refuse it
    visible = broadcast is not None and (
        broadcast.area_code in officer_areas(turn, officer) if broadcast.area_code else _is_top_admin(turn, officer))
    if not visible or broadcast.kind != "announcement":
        raise Refusal(_("There is no announcement #{id} in your areas.").format(id=raw[:12] or "?"))
    return broadcast


async def confirm_announcement(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """✅ Send: the previewed announcement is scheduled; it can still be cancelled until it goes out."""
    _ = turn._
    if officer.role != "admin":
        raise Refusal(_("Only an admin can send announcements."))
    broadcast = await _own_broadcast(turn, officer, args)
    if broadcast.status != "draft":
        return [Reply(_("Announcement #{id} is already {status}.").format(
            id=broadcast.id, status=_(STATUS_NAMES.get(broadcast.status, broadcast.status))))]
    broadcast.status = "scheduled"
    broadcast.send_at = max(broadcast.send_at, turn.now)
    broadcast.expires_at = broadcast.send_at + ANNOUNCEMENT_LIFETIME
    turn.session.add(broadcast)
    await _audit(turn, officer, "announce_send", f"broadcast={broadcast.id}")
    goes = sendable_from(broadcast.send_at, settings_of(turn.services))
    return [Reply(_("Announcement #{id} is scheduled for {when}. Follow it with /broadcasts; cancel it with "
                    "/announce cancel {id}.").format(id=broadcast.id, when=when_text(goes)))]


async def cancel_broadcast(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """✖ Cancel or /announce cancel ID: nothing more of it goes out; what was sent stays sent."""
    _ = turn._
    if officer.role != "admin":
        raise Refusal(_("Only an admin can send announcements."))
    broadcast = await _own_broadcast(turn, officer, args)
    if broadcast.status == "cancelled":
        return [Reply(_("Announcement #{id} is already cancelled.").format(id=broadcast.id))]
    withdrawn = await store.cancel_broadcast(session=turn.session, broadcast=broadcast, now=turn.now)
    await _audit(turn, officer, "announce_cancel", f"broadcast={broadcast.id} withdrawn={withdrawn}")
    if broadcast.queued_at is None:
        return [Reply(_("Announcement #{id} is cancelled; nobody got it.").format(id=broadcast.id))]
    return [Reply(_("Announcement #{id} is cancelled: {n} message(s) not yet sent were withdrawn.").format(
        id=broadcast.id, n=number(withdrawn, turn.lang)))]


async def on_button(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """✅ Send / ✖ Cancel under a preview ("b:send:12" arrives as "send 12")."""
    verb, _sep, rest = args.partition(" ")
    if verb == "send":
        return await confirm_announcement(turn, officer, rest)
    if verb == "cancel":
        return await cancel_broadcast(turn, officer, rest)
    raise Refusal(turn._("Sorry, I did not understand that."))


# --- /broadcasts -----------------------------------------------------------------------------------

async def show_broadcasts(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/broadcasts: recent and coming reminders and announcements of the officer's areas, with their counts."""
    _ = turn._
    mine = officer_areas(turn, officer)
    items = await store.recent_broadcasts(session=turn.session, area_codes=sorted(mine), include_everyone=True,
                                          since=turn.now - timedelta(days=30), limit=BROADCASTS_SHOWN)
    if not items:
        return [Reply(_("No reminders or announcements in the last 30 days."))]
    counts = await store.broadcast_counts(session=turn.session, broadcast_ids=[b.id for b in items])
    events = {e.id: e for e in await store.active_events(session=turn.session)}
    blocks, choices = [], []
    for broadcast in items:
        blocks.append(_broadcast_block(turn, broadcast, events.get(broadcast.event_id), counts[broadcast.id]))
        cancellable = broadcast.kind == "announcement" and officer.role == "admin" and (
            broadcast.status == "scheduled" or (broadcast.status == "queued" and counts[broadcast.id].get("pending")))
        if cancellable:
            choices.append(Choice(ANNOUNCEMENT.pack("cancel", broadcast.id), _("✖ Cancel #{id}").format(id=broadcast.id)))
    return [Reply(_("Reminders and announcements:") + "\n\n" + "\n\n".join(blocks), choices=choices, columns=2)]


def _broadcast_block(turn: Turn, broadcast: ReminderBroadcast, event: ReminderEvent | None, counts: dict) -> str:
    _ = turn._
    areas = turn.services.settings.areas
    where = areas.display(broadcast.area_code) if broadcast.area_code else _("everyone")
    if broadcast.kind == "announcement":
        what = _("📢 announcement")
    else:
        title = (event.title_en if turn.lang == "en" and event and event.title_en else event.title) if event else "—"
        day = day_text(broadcast.occurs_on) if broadcast.occurs_on else ""
        what = _("🔔 {title}, {day}").format(title=title, day=day)
    n = lambda key: number(counts.get(key, 0), turn.lang)  # noqa: E731
    lines = [f"#{broadcast.id} · {what} · {where}",
             _("{when} · {status}").format(when=when_text(broadcast.send_at),
                                           status=_(STATUS_NAMES.get(broadcast.status, broadcast.status)))]
    if broadcast.queued_at is not None:
        lines.append(_("sent {sent} · failed {failed} · pending {pending} · unknown {unknown}").format(
            sent=n("sent"), failed=n("failed"), pending=number(counts.get("pending", 0) + counts.get("sending", 0),
                                                               turn.lang), unknown=n("unknown")))
        reasons = [f"{_(REASON_NAMES.get(key.split(':', 1)[1], key.split(':', 1)[1]))} {n(key)}"
                   for key in sorted(counts) if key.startswith(("skipped:", "failed:"))]
        if reasons:
            lines.append(_("skipped or failed because: {reasons}").format(reasons=", ".join(reasons)))
    return "\n".join(lines)


def officer_help(turn: Turn) -> str:
    return turn._("/event: coming festival events; /event add DD/MM/YYYY HH:MM | PLACE | DESCRIPTION\n"
                  "/broadcasts: reminders and announcements sent, failed, pending\n"
                  "/announce AREA [DD/MM/YYYY HH:MM] | TEXT (admins): an announcement, previewed first")
