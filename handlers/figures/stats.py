"""/stats [period] [unit]: a supervisor's figures for this week, month, quarter, year or any dates.

```mermaid
flowchart LR
    A["/stats quy"] --> B{supervisor or admin?}
    B -- plain officer --> R[polite refusal]
    B -- yes --> C{unit within their scope?}
    C -- no --> N[no such unit in your units]
    C -- yes --> D[counts in SQL, small ones hidden] --> E[text] --> F[PNG chart]
```
Anyone who is not an officer gets the tip line's neutral answer (see router._as_officer).
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from handlers.areas import fold
from handlers.figures.charts import render_chart
from handlers.context import VIETNAM
from handlers.i18n import N_
from handlers.messages import OutgoingFile, Reply
from handlers.figures.movement_report import (Figures, Period, audience_of, chat_table, figures_unit, load_figures,
                                              parse_range)
from handlers.chat_turn import Turn
from handlers.related.figures import repeated_section
from storage.models import Officer

# What may be typed, folded without accents: "/stats quý", "/stats quy", "/stats quarter".
PERIOD_WORDS = {"tuan": "week", "week": "week", "thang": "month", "month": "month", "quy": "quarter",
                "quarter": "quarter", "nam": "year", "year": "year"}
FILLER_WORDS = {"nay", "this"}  # "tuần này", "this week"
PERIOD_NAMES = {"week": N_("This week"), "month": N_("This month"), "quarter": N_("This quarter"),
                "year": N_("This year"), "range": N_("Period")}
AREAS_IN_CHAT = 15  # /report lists every area; a chat message stays short


def current_period(kind: str, today: date) -> Period:
    """From the first day of this week (Monday), month, quarter or year, to today; Vietnam calendar."""
    if kind == "week":
        first = today - timedelta(days=today.weekday())
    elif kind == "month":
        first = today.replace(day=1)
    elif kind == "quarter":
        first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    else:
        first = date(today.year, 1, 1)
    return Period(first, today)


def parse_stats_args(args: str, today: date) -> tuple[str, Period, str | None] | None:
    """(period kind, period, unit id or None) from "/stats" arguments; None if they make no sense."""
    words = [w for w in args.split() if fold(w) not in FILLER_WORDS]
    period, rest = parse_range(words)
    kind = "range"
    if period is None:
        kind = PERIOD_WORDS.get(fold(words[0]), "") if words else "month"
        rest = words[1:] if kind else words
        kind = kind or "month"  # "/stats ca-benthanh": this month, for that unit
        period = current_period(kind, today)
    if len(rest) > 1 or any("/" in word for word in rest):  # a unit id never has "/": a date went wrong
        return None
    return kind, period, rest[0] if rest else None


def stats_text(f: Figures, kind: str) -> str:
    """Headline figures, then the breakdowns; hidden cells read "<3" or "≥3"."""
    _ = f._
    total = f.total_row().cells
    lines = [_("📊 Figures of {unit}").format(unit=f.unit_name),
             _("{name}: {period}").format(name=_(PERIOD_NAMES[kind]), period=f.period.label()), ""]
    if not f.figures.total.received:
        return "\n".join(lines + [_("No tips were received in this period.")])
    share = f" ({total['share'].text})" if total["share"].value is not None else ""
    lines += [
        _("Received: {n} tips").format(n=total["received"].text),
        _("Valuable: {n}{share}").format(n=total["valuable"].text, share=share),
        _("Not valuable: {n}").format(n=total["not_valuable"].text),
        _("Pending: {n}").format(n=total["pending"].text),
        _("Cases clarified: {cases}, subjects involved: {subjects}").format(
            cases=total["cases"].text, subjects=total["subjects"].text),
    ]
    median = f.median_text()
    lines.append(_("Median time from receipt to verdict: {median}").format(median=median) if median else
                 _("Median time from receipt to verdict: too few verdicts to tell"))
    return "\n".join(lines + ["", chat_table(f, area_limit=AREAS_IN_CHAT)])


async def show_stats(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/stats [week|month|quarter|year|dd/mm/yyyy-dd/mm/yyyy] [UNIT] [congbo]: figures as text, then a chart."""
    _ = turn._
    today = turn.now.astimezone(VIETNAM).date()
    audience, args = audience_of(args)
    parsed = parse_stats_args(args, today)
    if parsed is None:
        return [Reply(_("Use: /stats [week|month|quarter|year|dd/mm/yyyy-dd/mm/yyyy] [UNIT], "
                        "for example /stats quarter or /stats 01/01/2026-31/03/2026"))]
    kind, period, unit_arg = parsed
    unit_id = figures_unit(turn, officer, unit_arg)
    # The cases of each category and area cost a third of the time and only /report shows them.
    f = await load_figures(turn, officer, unit_id, period, "stats", case_rows=False, audience=audience)
    replies = [Reply(stats_text(f, kind) + await repeated_section(turn, f))]
    if f.figures.total.received:
        # Drawing takes a few hundred milliseconds: off the event loop, so other chats are not kept waiting.
        png = await asyncio.to_thread(render_chart, f)
        name = f"tinbao-{unit_id}-{period.first:%Y%m%d}-{period.last:%Y%m%d}.png"
        replies.append(Reply("", files=[OutgoingFile("photo", png, filename=name, mime="image/png")]))
    return replies
