"""The /stats chart: tips per week stacked by verdict, and the valuable share by category (PNG).

Drawn with matplotlib's object API on the Agg canvas: no display, no pyplot global state, so a
chart can be drawn in a worker thread while the bot serves other chats. Labels use DejaVu Sans,
which matplotlib ships and which has every Vietnamese letter (ă â đ ê ô ơ ư and the five tones).

Hidden cells (see movement_report) are never drawn to scale: a bar's height would give the number
away. They are drawn as hatched boxes of a fixed height, labelled with their mark ("<3", "≥3"). So a
bar's height is not its total: the week's true total is written above it (its mark, if hidden).
"""

from __future__ import annotations

import io
import unicodedata
from datetime import date, timedelta

from handlers.i18n import N_
from handlers.figures.movement_report import Figures, percent

WIDTH, HEIGHT, DPI = 1200, 1000, 100  # pixels: wide enough for a year of weeks, readable on a phone
FONT = "DejaVu Sans"
VERDICTS = (("valuable", N_("Valuable"), "#2e7d32"), ("not_valuable", N_("Not valuable"), "#9e9e9e"),
            ("pending", N_("Pending"), "#f9a825"))
HIDDEN_COLOUR = "#e0e0e0"


def _text(value: str) -> str:
    # Composed (NFC) letters: DejaVu has "ế" as one glyph; decomposed marks would be placed badly.
    return unicodedata.normalize("NFC", value)


def _weeks(f: Figures) -> list[date]:
    """Every week of the period, empty ones included, each by its Monday (Vietnam calendar)."""
    first = f.period.first - timedelta(days=f.period.first.weekday())
    weeks = []
    while first <= f.period.last:
        weeks.append(first)
        first += timedelta(days=7)
    return weeks


def render_chart(f: Figures) -> bytes:
    """The PNG, WIDTH × HEIGHT pixels; slow-ish (a few hundred ms), so callers run it in a thread."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    matplotlib.rcParams["font.family"] = [FONT]
    _ = f._
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    weekly, shares = figure.subplots(2, 1, height_ratios=[3, 2])
    figure.suptitle(_text(_("Crime tips received at {unit}, {period}").format(unit=f.unit_name,
                                                                               period=f.period.label())),
                    fontsize=15, fontweight="bold")

    # Top: tips per week, exact segments from the axis up, hidden ones on top at a fixed height.
    weeks = _weeks(f)
    positions = range(len(weeks))
    bottoms = [0.0] * len(weeks)
    hidden: list[list[tuple[str, str]]] = [[] for _ in weeks]
    for kind, label, colour in VERDICTS:
        heights = []
        for i, week in enumerate(weeks):
            cell = f.week_cell(week, kind)
            heights.append(cell.value or 0)
            if cell.value is None:
                hidden[i].append((kind, cell.text))
        weekly.bar(positions, heights, bottom=bottoms, color=colour, label=_text(_(label)), width=0.8)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    box = max(f.k, max(bottoms, default=0) * 0.04)
    colours = {kind: colour for kind, _label, colour in VERDICTS}
    for i, cells in enumerate(hidden):
        for kind, mark in cells:
            weekly.bar(i, box, bottom=bottoms[i], color=HIDDEN_COLOUR, edgecolor=colours[kind], hatch="//", width=0.8)
            weekly.text(i, bottoms[i] + box / 2, mark, ha="center", va="center", fontsize=7, gid="hidden")
            bottoms[i] += box
    many = len(weeks) > 26
    for i, week in enumerate(weeks):
        total = f.week_cell(week, "received")
        if total.value != 0:
            weekly.text(i, bottoms[i], " " + total.text if many else total.text, ha="center", va="bottom",
                        fontsize=7 if many else 9, rotation=90 if many else 0, gid="total")
    weekly.set_ylim(0, max(max(bottoms, default=0) * 1.15, 1))  # room for the totals above the highest bar
    weekly.yaxis.set_major_locator(MaxNLocator(integer=True))  # tips are counted, never 2.5
    step = max(1, len(weeks) // 26)
    weekly.set_xticks(list(positions)[::step], [w.strftime("%d/%m") for w in weeks][::step], rotation=60, fontsize=8)
    weekly.set_xlim(-0.6, len(weeks) - 0.4)
    weekly.set_ylabel(_text(_("Tips")))
    weekly.set_title(_text(_("Tips received per week (week starting on Monday), by verdict")), fontsize=12)
    handles, labels = weekly.get_legend_handles_labels()
    if any(hidden):
        handles.append(Patch(facecolor=HIDDEN_COLOUR, hatch="//", edgecolor="#616161"))
        labels.append(_text(_("Hidden ({note})").format(note=f"<{f.k}, ≥{f.k}")))
    weekly.legend(handles, labels, loc="upper left", fontsize=9)
    weekly.grid(axis="y", alpha=0.3)

    # Bottom: valuable share per category, only where both counts behind it are shown.
    rows = f.category_rows()
    names = [_text(r.label) for r in rows]
    values = [r.cells["share"].value or 0 for r in rows]
    shares.barh(range(len(rows)), values, color=colours["valuable"], height=0.6)
    for i, row in enumerate(rows):
        share = row.cells["share"]
        if share.value is None:
            text = _("hidden ({received} tips)").format(received=row.cells["received"].text)
        else:
            text = f"{percent(share.value, f.lang)} ({row.cells['valuable'].text}/{row.cells['received'].text})"
        if (share.value or 0) > 70:  # the axis ends at 100 %: a long bar carries its label inside
            shares.text(share.value - 1, i, _text(text), va="center", ha="right", fontsize=9, color="white")
        else:
            shares.text((share.value or 0) + 1, i, _text(text), va="center", fontsize=9)
    shares.set_yticks(range(len(rows)), names, fontsize=10)
    shares.invert_yaxis()
    shares.set_xlim(0, 100)
    shares.set_xlabel(_text(_("Valuable share (%)")))
    shares.set_title(_text(_("Share of tips judged valuable, by category")), fontsize=12)
    shares.grid(axis="x", alpha=0.3)
    if not rows:
        shares.text(50, 0.5, _text(_("No tips were received in this period.")), ha="center", va="center")
        shares.set_ylim(0, 1)
        shares.set_yticks([])

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
