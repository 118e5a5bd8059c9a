"""Festival reminders for citizens: /remind on|off, the areas they want to hear of, and the reminder itself.

```mermaid
flowchart LR
    off([reminders off]) -- /remind on, or tapping an area --> on([reminders on])
    on -- /remind ward name --> pick{{matching areas}} -- tap --> on
    on -- /remind off, or 🔕 under any reminder --> off
    on -- the bot is blocked (403) --> off
```
Nobody gets a reminder without having turned them on. The chat id is kept only sealed, and is
shredded with the chosen areas on opt-out.
"""

from __future__ import annotations

from datetime import date

from handlers.areas import AreaIndex, fold, with_all_below
from handlers.buttons import REMINDER
from handlers.context import VIETNAM, Services
from handlers.reminders.festival_calendar import ReminderSettings, next_occurrences
from handlers.i18n import translator
from handlers.messages import Choice, Reply
from handlers.chat_turn import Turn
from storage import reminders as store
from storage.models import ReminderBroadcast, ReminderEvent

OFF_BUTTON = REMINDER.pack("off")  # under every reminder: one tap, no question asked
AREA_RESULTS = 6


def settings_of(services: Services) -> ReminderSettings:
    """The configured [reminders] settings (quiet hours, offsets), else the shipped defaults."""
    return services.settings.reminders or ReminderSettings()


def areas_within(areas: AreaIndex, code: str) -> list[str]:
    """The area and every area below it: an event of a province reaches the subscribers of its wards."""
    return with_all_below(code, ((a.code, a.parent) for a in areas.areas.values()))


def day_text(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def when_text(moment) -> str:
    """A UTC moment as people in Vietnam read it: 19/08/2026 08:00."""
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


# --- the message itself ----------------------------------------------------------------------------

def reminder_reply(*, broadcast: ReminderBroadcast, event: ReminderEvent | None, lang: str,
                   areas: AreaIndex) -> Reply:
    """What a subscriber receives: the event (or announcement), then how to stop, with a one-tap button."""
    _ = translator(lang)
    if broadcast.kind == "announcement" or event is None:
        area = areas.display(broadcast.area_code) if broadcast.area_code else None
        head = _("📢 Announcement for {area}").format(area=area) if area else _("📢 Announcement")
        body = f"{head}\n\n{broadcast.text or ''}".rstrip()
    else:
        title = event.title_en if lang == "en" and event.title_en else event.title
        description = event.description_en if lang == "en" and event.description_en else event.description
        when = day_text(broadcast.occurs_on) if broadcast.occurs_on else ""
        if event.start_time:
            when = _("{day} at {time}").format(day=when, time=event.start_time)
        lines = [f"🔔 {title}", f"📅 {when}"]
        if event.place:
            lines.append(f"📍 {event.place}")
        if event.area_code:
            lines.append(f"🏘 {areas.display(event.area_code)}")
        if description:
            lines += ["", description]
        body = "\n".join(lines)
    # The words too, not only the button: a channel without buttons (Zalo) sends the text alone.
    stop = _("You get this because you turned on festival reminders. To stop them: /remind off")
    return Reply(f"{body}\n\n{stop}", choices=[Choice(OFF_BUTTON, _("🔕 Stop reminders"))])


# --- /remind ---------------------------------------------------------------------------------------

async def remind(turn: Turn, args: str) -> list[Reply]:
    """/remind shows where the citizen stands; on / off switch; anything else looks for an area."""
    word = fold(args)  # "Tắt", "tat" and "OFF" alike
    if word in ("", "status"):
        return await show(turn)
    if word in ("on", "bat"):
        return await turn_on(turn)
    if word in ("off", "tat", "stop"):
        return await turn_off(turn)
    return await find_area(turn, args.strip())


async def on_button(turn: Turn, action: str) -> list[Reply]:
    """A tap on a reminder button: on, off (under every reminder), add or remove an area."""
    if action == "on":
        return await turn_on(turn)
    if action == "off":
        return await turn_off(turn)
    if action.startswith("add="):
        return await add_area(turn, action[4:])
    if action.startswith("del="):
        return await remove_area(turn, action[4:])
    return await show(turn)


async def _subscriber(turn: Turn):
    return await store.subscriber_by_key(session=turn.session, chat_key=turn.conversation.chat_key, lock=True)


async def _subscribe(turn: Turn):
    return await store.subscribe(
        session=turn.session, keyring=turn.services.keyring, chat_key=turn.conversation.chat_key,
        channel=turn.inbound.channel, route={"channel": turn.inbound.channel, "chat_id": turn.inbound.chat_id},
        language=turn.lang, now=turn.now)


def _how_to_add(turn: Turn) -> str:
    return turn._("To hear of the local festival of your ward or commune too, send /remind followed by its name, "
                  "for example: /remind ben thanh")


def _quiet_note(turn: Turn) -> str:
    settings = settings_of(turn.services)
    if settings.quiet_start == settings.quiet_end:
        return ""
    return turn._("Reminders are never sent between {start} and {end}.").format(
        start=f"{settings.quiet_start:%H:%M}", end=f"{settings.quiet_end:%H:%M}")


async def show(turn: Turn) -> list[Reply]:
    """/remind: on or off, the chosen areas, the next festival day, and the buttons to change them."""
    _ = turn._
    subscriber = await _subscriber(turn)
    if subscriber is None or not subscriber.active:
        text = _("Festival reminders are off.\n\nTurn them on to be reminded of the movement's festival days "
                 "and of your area's local events. Nothing else is sent.")
        upcoming = await _next_event(turn, [])
        text = f"{text} {_quiet_note(turn)}".strip() + (f"\n{upcoming}" if upcoming else "")
        return [Reply(text, choices=[Choice(REMINDER.pack("on"), _("🔔 Turn on reminders"))])]
    chosen = await store.areas_of(session=turn.session, subscriber_id=subscriber.id)
    areas = turn.services.settings.areas
    lines = [_("Festival reminders are on.")]
    if chosen:
        lines.append(_("Your areas: {areas}").format(areas="; ".join(areas.display(c) for c in chosen)))
    else:
        lines.append(_("No area chosen yet: you get the national festival days only."))
    upcoming = await _next_event(turn, chosen)
    if upcoming:
        lines.append(upcoming)
    lines += ["", _how_to_add(turn)]
    choices = [Choice(REMINDER.pack(f"del={c}"), _("✖ {area}").format(area=areas.display(c))) for c in chosen]
    choices.append(Choice(OFF_BUTTON, _("🔕 Turn off reminders")))
    return [Reply("\n".join(lines), choices=choices)]


async def _next_event(turn: Turn, chosen: list[str]) -> str | None:
    """The nearest event this citizen will hear of, in their language."""
    areas = turn.services.settings.areas
    reachable = {c for code in chosen for c in _ancestors(areas, code)}
    best: tuple[date, ReminderEvent] | None = None
    for event in await store.active_events(session=turn.session):
        if event.area_code is not None and event.area_code not in reachable:
            continue
        for occurrence in next_occurrences(event.dates, start_time=event.start_time, now=turn.now)[:1]:
            if best is None or occurrence.day < best[0]:
                best = (occurrence.day, event)
    if best is None:
        return None
    day, event = best
    title = event.title_en if turn.lang == "en" and event.title_en else event.title
    return turn._("Next: {title}, {day}").format(title=title, day=day_text(day))


def _ancestors(areas: AreaIndex, code: str) -> list[str]:
    found, current = [], areas.get(code)
    while current is not None:
        found.append(current.code)
        current = areas.get(current.parent) if current.parent else None
    return found


async def turn_on(turn: Turn) -> list[Reply]:
    """/remind on: opted in at once; asked which ward or commune, by name."""
    _ = turn._
    subscriber = await _subscriber(turn)
    already = subscriber is not None and subscriber.active
    await _subscribe(turn)
    lead = _("Festival reminders are already on.") if already else _(
        "Festival reminders are on. You will be reminded of the movement's festival days; every reminder says "
        "how to stop them.")
    return [Reply(f"{lead} {_quiet_note(turn)}\n\n{_how_to_add(turn)}".replace(" \n", "\n"))]


async def turn_off(turn: Turn) -> list[Reply]:
    """/remind off or 🔕: no more reminders; the sealed chat route and the chosen areas are deleted."""
    _ = turn._
    subscriber = await _subscriber(turn)
    if subscriber is None or not subscriber.active:
        return [Reply(_("Festival reminders are off. Send /remind on to turn them on."))]
    await store.unsubscribe(session=turn.session, subscriber_ids=[subscriber.id], reason="citizen", now=turn.now)
    return [Reply(_("Festival reminders are off: you will get no more. Send /remind on to turn them back on."))]


async def find_area(turn: Turn, query: str) -> list[Reply]:
    """/remind ben thanh: the matching wards and communes, one tap each to choose."""
    _ = turn._
    found = turn.services.settings.areas.search(query, limit=AREA_RESULTS)
    if not found:
        return [Reply(_("No ward or commune matches «{query}». Try part of its name, for example: "
                        "/remind ben thanh").format(query=query[:60]))]
    areas = turn.services.settings.areas
    return [Reply(_("Which area's local events do you want to hear of?"),
                  choices=[Choice(REMINDER.pack(f"add={a.code}"), areas.display(a.code)) for a in found])]


async def add_area(turn: Turn, code: str) -> list[Reply]:
    """Tapping an area turns reminders on (the tap is the consent) and adds the area's events."""
    _ = turn._
    areas = turn.services.settings.areas
    if areas.get(code) is None:
        return await show(turn)
    subscriber = await _subscribe(turn)
    if not await store.add_area(session=turn.session, subscriber_id=subscriber.id, area_code=code):
        chosen = await store.areas_of(session=turn.session, subscriber_id=subscriber.id)
        if code in chosen:
            return [Reply(_("You already get the reminders of {area}.").format(area=areas.display(code)))]
        return [Reply(_("You can choose up to {n} areas. Remove one first: send /remind.").format(n=store.MAX_AREAS))]
    return [Reply(_("Reminders are on for {area} too. Send /remind to see or change your areas.").format(
        area=areas.display(code)))]


async def remove_area(turn: Turn, code: str) -> list[Reply]:
    _ = turn._
    subscriber = await _subscriber(turn)
    if subscriber is None or not await store.remove_area(session=turn.session, subscriber_id=subscriber.id,
                                                         area_code=code):
        return await show(turn)
    return [Reply(_("You will no longer hear of the local events of {area}.").format(
        area=turn.services.settings.areas.display(code)))]


def citizen_help(turn: Turn) -> str:
    return turn._("/remind: reminders of the festival days (/remind on, /remind off)")
