"""`tinbao reminders calendar`: the coming events and when their reminders go out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from handlers.context import Services
from handlers.reminders.festival_calendar import next_occurrences, parse_offsets, upcoming_reminders
from storage import reminders as store
from storage.models import ReminderEvent


@dataclass(frozen=True)
class ComingEvent:
    day: date
    event: ReminderEvent
    reminders: list[datetime]


async def coming_events(services: Services) -> list[ComingEvent]:
    """Every active event that still comes, soonest first, with its next five reminder times."""
    async with services.db.transaction() as session:
        events, now = await store.active_events(session=session), services.clock()
    rows = []
    for event in events:
        occurrences = next_occurrences(event.dates, start_time=event.start_time, now=now)
        if occurrences:
            times = upcoming_reminders(dates=event.dates, start_time=event.start_time,
                                       offsets=parse_offsets(event.offsets), now=now, limit=5)
            rows.append(ComingEvent(occurrences[0].day, event, times))
    return sorted(rows, key=lambda r: (r.day, r.event.id))
