"""The festival calendar: events as data, their next occurrences, when each reminder is due, quiet hours.

People read dates and times in Asia/Ho_Chi_Minh; everything computed here for the database is UTC.

```mermaid
flowchart LR
    calendar[events.toml / config] --> sync[(reminder_event)]
    local[/event add/] --> sync
    sync -- tick: the latest reminder due --> broadcast[(reminder_broadcast)]
    announce[/announce + confirm/] --> broadcast
    broadcast -- at its time --> outbox[(one outbox row per subscriber)]
    outbox -- claimed, rate-limited, not in quiet hours --> channel([Telegram / Zalo])
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from handlers.context import VIETNAM
from handlers.toml_files import read_toml

SHIPPED = Path(__file__).parents[1] / "data" / "events.toml"
LANGUAGES = ("vi", "en")
_OFFSET = re.compile(r"^\s*(\d{1,3})\s*d(?:\s+(\d{1,2}):(\d{2}))?\s*$")
_ANNUAL = re.compile(r"^(\d{2})-(\d{2})$")
_ONCE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
DEFAULT_REMINDER_TIME = time(8, 0)


class CalendarError(ValueError):
    """A calendar file or value is wrong; the message names the event and key."""


@dataclass(frozen=True, order=True)
class Offset:
    """A reminder's place before an occurrence: ``days`` before, at ``at`` Vietnam time."""

    days: int
    at: time = DEFAULT_REMINDER_TIME

    @classmethod
    def parse(cls, text: str) -> Offset:
        match = _OFFSET.match(text)
        if not match:
            raise CalendarError(f'reminder offset {text!r} must look like "7d 08:00" (days before, Vietnam time)')
        hour, minute = (int(match.group(2)), int(match.group(3))) if match.group(2) else (8, 0)
        if hour > 23 or minute > 59:
            raise CalendarError(f"reminder offset {text!r}: {hour:02d}:{minute:02d} is not a time of day")
        return cls(int(match.group(1)), time(hour, minute))

    def __str__(self) -> str:
        return f"{self.days}d {self.at:%H:%M}"


DEFAULT_OFFSETS = (Offset(7), Offset(1), Offset(0, time(7, 0)))


def parse_clock(text: str) -> time:
    match = _CLOCK.match(text.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise CalendarError(f'{text!r} is not a time of day such as "19:30"')
    return time(int(match.group(1)), int(match.group(2)))


def check_date_spec(spec: str) -> str:
    """ "08-19" (every year) or "2026-07-15" (once), checked to be a real day."""
    spec = spec.strip()
    if match := _ANNUAL.match(spec):
        try:
            date(2024, int(match.group(1)), int(match.group(2)))  # a leap year: 02-29 is allowed
        except ValueError:
            raise CalendarError(f"{spec!r} is not a day of the year") from None
        return spec
    if _ONCE.match(spec):
        try:
            date.fromisoformat(spec)
        except ValueError:
            raise CalendarError(f"{spec!r} is not a date") from None
        return spec
    raise CalendarError(f'date {spec!r} must be "MM-DD" (every year) or "YYYY-MM-DD" (once)')


@dataclass(frozen=True)
class CalendarEvent:
    """An event from the calendar file: national days shipped with the bot, or a deployment's own."""

    id: str
    dates: tuple[str, ...]
    titles: dict[str, str]
    descriptions: dict[str, str] = field(default_factory=dict)
    place: str = ""
    start_time: str | None = None
    offsets: tuple[Offset, ...] | None = None  # None: the configured default
    area: str | None = None


@dataclass(frozen=True)
class ReminderSettings:
    """What config.toml's [reminders] says; the defaults are the ones documented there."""

    enabled: bool = True
    rate_per_second: float = 25.0
    quiet_start: time = time(21, 0)
    quiet_end: time = time(7, 0)
    tick_seconds: float = 30.0
    max_attempts: int = 5
    retry_seconds: float = 30.0
    unknown_after: timedelta = timedelta(minutes=10)
    default_offsets: tuple[Offset, ...] = DEFAULT_OFFSETS
    calendar: tuple[CalendarEvent, ...] = ()


def _texts(raw: dict, key: str, where: str, *, required: bool) -> dict[str, str]:
    value = raw.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or not isinstance(value.get("vi"), str) or not value["vi"].strip():
        raise CalendarError(f'{where}.{key} needs a Vietnamese text: {key} = {{ vi = "…", en = "…" }}')
    return {lang: str(value[lang]).strip() for lang in LANGUAGES if isinstance(value.get(lang), str)}


def load_calendar(path: Path | None = None) -> tuple[CalendarEvent, ...]:
    """Read and check a calendar file; the shipped national days when ``path`` is None."""
    path = Path(path) if path else SHIPPED
    doc = read_toml(path, what="calendar", error=CalendarError)
    events: list[CalendarEvent] = []
    for index, raw in enumerate(doc.get("events", [])):
        where = f"events[{index}]"
        event_id = raw.get("id")
        if not isinstance(event_id, str) or not _ID.match(event_id) or any(e.id == event_id for e in events):
            raise CalendarError(f"{where}.id must be unique, lower-case letters, digits, - or _ (got {event_id!r})")
        where = f"events[{index}] ({event_id})"
        dates = raw.get("dates")
        if not isinstance(dates, list) or not dates or not all(isinstance(d, str) for d in dates):
            raise CalendarError(f'{where}.dates must be a list such as ["08-19"]')
        try:
            checked = tuple(check_date_spec(d) for d in dates)
            offsets = tuple(Offset.parse(str(o)) for o in raw["offsets"]) if "offsets" in raw else None
            start = raw.get("time")
            if start is not None:
                start = f"{parse_clock(str(start)):%H:%M}"
        except CalendarError as exc:
            raise CalendarError(f"{where}: {exc}") from None
        area = raw.get("area")
        events.append(CalendarEvent(
            id=event_id, dates=checked, titles=_texts(raw, "title", where, required=True),
            descriptions=_texts(raw, "description", where, required=False), place=str(raw.get("place", "")),
            start_time=start, offsets=offsets, area=str(area) if area else None))
    return tuple(events)


# --- time ------------------------------------------------------------------------------------------

def local_dt(day: date, at: time) -> datetime:
    """A Vietnam wall-clock moment, as the UTC instant the database stores."""
    return datetime.combine(day, at, tzinfo=VIETNAM).astimezone(timezone.utc)


def quiet_until(now: datetime, settings: ReminderSettings) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (UTC), or None when sending is allowed."""
    start, end = settings.quiet_start, settings.quiet_end
    if start == end:
        return None
    local = now.astimezone(VIETNAM)
    clock = local.time().replace(tzinfo=None)
    inside = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return local_dt(day, end)


def sendable_from(when: datetime, settings: ReminderSettings) -> datetime:
    """The first moment at or after ``when`` outside the quiet hours."""
    return quiet_until(when, settings) or when


def parse_offsets(text: str) -> tuple[Offset, ...]:
    return tuple(Offset.parse(part) for part in text.split(",") if part.strip())


def format_offsets(offsets: tuple[Offset, ...]) -> str:
    return ",".join(str(o) for o in offsets)


# --- occurrences -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Occurrence:
    day: date  # Vietnam calendar day
    ends: datetime  # UTC: its start time if it has one, else the end of that day

    def reminder_at(self, offset: Offset) -> datetime:
        return local_dt(self.day - timedelta(days=offset.days), offset.at)


def _occurrence(day: date, start_time: str | None) -> Occurrence:
    ends = local_dt(day, parse_clock(start_time)) if start_time else local_dt(day + timedelta(days=1), time(0, 0))
    return Occurrence(day, ends)


def _on(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:  # 29 February outside a leap year: that year has no occurrence
        return None


def next_occurrences(dates: str | tuple[str, ...], *, start_time: str | None, now: datetime) -> list[Occurrence]:
    """For each date, the first occurrence that has not ended by ``now``: "01-05" seen on 30 December
    is 5 January of the next year; a one-off date already past gives nothing."""
    specs = dates.split(",") if isinstance(dates, str) else dates
    today = now.astimezone(VIETNAM).date()
    found: list[Occurrence] = []
    for spec in (s.strip() for s in specs if s.strip()):
        if match := _ONCE.match(spec):
            occurrence = _occurrence(date.fromisoformat(spec), start_time)
            if occurrence.ends > now:
                found.append(occurrence)
            continue
        match = _ANNUAL.match(spec)
        if not match:
            continue
        month, day = int(match.group(1)), int(match.group(2))
        for year in range(today.year, today.year + 9):  # 29 February may be up to 8 years away
            candidate = _on(year, month, day)
            if candidate is None:
                continue
            occurrence = _occurrence(candidate, start_time)
            if occurrence.ends > now:
                found.append(occurrence)
                break
    return sorted(found, key=lambda o: o.day)


@dataclass(frozen=True)
class DueReminder:
    occurrence: Occurrence
    offset: Offset
    send_at: datetime


def due_reminders(*, dates: str, start_time: str | None, offsets: tuple[Offset, ...],
                  now: datetime) -> list[DueReminder]:
    """Per coming occurrence, the latest reminder whose time has come: after a stop, a citizen gets
    one message with the date, not a pile of the reminders that were missed."""
    due = []
    for occurrence in next_occurrences(dates, start_time=start_time, now=now):
        passed = [(occurrence.reminder_at(o), o) for o in offsets if occurrence.reminder_at(o) <= now]
        if passed:
            send_at, offset = max(passed)
            if send_at < occurrence.ends:
                due.append(DueReminder(occurrence, offset, send_at))
    return due


def upcoming_reminders(*, dates: str, start_time: str | None, offsets: tuple[Offset, ...], now: datetime,
                       limit: int = 3) -> list[datetime]:
    """The next reminder times (UTC), for officers checking an event they added."""
    times = sorted(t for occurrence in next_occurrences(dates, start_time=start_time, now=now)
                   for t in (occurrence.reminder_at(o) for o in offsets) if now < t < occurrence.ends)
    return times[:limit]


def broadcast_key(event_id: int, occurrence: Occurrence, offset: Offset) -> str:
    """Unique per event, occurrence and reminder: however many schedulers run, each is made once."""
    return f"event:{event_id}:{occurrence.day.isoformat()}:{offset.days}d{offset.at:%H%M}"
