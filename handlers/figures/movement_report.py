"""/report FROM TO: the movement's report of a period, as a paragraph, a table, CSV and XLSX.

The same figures serve /stats, /report and `tinbao report`: this module turns the counts from
storage/stats.py into what people read, with small counts hidden.

How small counts are hidden (K is `[stats] min_cell`, 3 by default, for figures that may be published;
`[stats] min_cell_supervisors`, as strict unless set, for a supervisor's own /stats and /report):

- any count from 1 to K-1 (tips, cases or subjects) is shown as "<K"; zero is shown as 0, since a
  zero singles out nobody;
- totals are computed from the exact counts, so a province's total stays right when some of its
  communes are hidden, and a total is itself hidden only when it is below K;
- a hidden count could otherwise be worked out by subtraction (received = valuable + not valuable +
  pending; the rows of a table add up to its total). So no row or column is left with exactly one
  hidden cell: the smallest other non-zero cell of that line is hidden too, shown as "≥K" (it is
  not below K, or it would be hidden already); this repeats until every line is safe;
- the valuable share is shown only where both of its counts are shown; the median only when at
  least K tips were judged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from babel.numbers import format_decimal

from handlers.areas import fold
from handlers.context import VIETNAM, Services, TipLineSettings
from handlers.i18n import N_, number, translator
from handlers.messages import OutgoingFile, Reply
from handlers.officer.accounts import actor, scope
from handlers.officer.triage import Refusal
from handlers.chat_turn import Turn
from handlers.related.figures import repeated_section
from storage import stats as stats_store
from storage.audit import append_audit
from storage.models import Officer
from storage.stats import PeriodFigures, Tally

TIP_KINDS = ("received", "valuable", "not_valuable", "pending")
COUNT_KINDS = TIP_KINDS + ("cases", "subjects")
COLUMNS = ("received", "valuable", "share", "not_valuable", "pending", "cases", "subjects")
COLUMN_NAMES = {
    "received": N_("Received"), "valuable": N_("Valuable"), "share": N_("Valuable share (%)"),
    "not_valuable": N_("Not valuable"), "pending": N_("Pending"), "cases": N_("Cases clarified"),
    "subjects": N_("Subjects"),
}
GROUP_NAMES = {"total": N_("Total"), "category": N_("Category"), "area": N_("Area")}
CSV_MIME = "text/csv"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATE_FORMAT = "%d/%m/%Y"
# Who the figures are for: "published" may leave the force (the safe default); "supervisors" stay within it.
PUBLISHED, SUPERVISORS = "published", "supervisors"
PUBLISH_WORDS = {"congbo", "public", "published"}  # "/baocao 01/01/2026 30/06/2026 công bố" asks for published


# --- periods -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Whole Vietnam calendar days, both ends included."""

    first: date
    last: date

    def bounds(self) -> tuple[datetime, datetime]:
        """[first 00:00, day after last 00:00) in Vietnam time, as UTC instants (00:00 there is 17:00 UTC)."""
        start = datetime.combine(self.first, time(), VIETNAM).astimezone(timezone.utc)
        end = datetime.combine(self.last + timedelta(days=1), time(), VIETNAM).astimezone(timezone.utc)
        return start, end

    def label(self) -> str:
        return f"{self.first.strftime(DATE_FORMAT)}–{self.last.strftime(DATE_FORMAT)}"


def parse_date(text: str) -> date | None:
    """dd/mm/yyyy (also d/m/yyyy, or with dots) → a date; anything else → None."""
    parts = text.replace(".", "/").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
        return None
    try:
        return date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None


def parse_range(words: list[str]) -> tuple[Period | None, list[str]]:
    """The leading "dd/mm/yyyy-dd/mm/yyyy", "… - …" or "dd/mm/yyyy dd/mm/yyyy" of ``words``, and what follows."""
    words = [w.replace("–", "-").replace("—", "-") for w in words]
    if words and words[0].count("-") == 1:
        ends, rest = words[0].split("-"), words[1:]
    elif len(words) >= 3 and words[1] == "-":
        ends, rest = [words[0], words[2]], words[3:]
    else:
        ends, rest = words[:2], words[2:]
    dates = [parse_date(end) for end in ends]
    if len(dates) != 2 or None in dates or dates[0] > dates[1]:
        return None, words
    return Period(dates[0], dates[1]), rest


# --- hiding small counts -------------------------------------------------------------------------

# Among equal candidates for a complementary hiding, the first of these is hidden first.
_KEEP = ("pending", "not_valuable", "subjects", "cases", "valuable", "received")
Key = tuple[str, str, str]  # (table, row, kind): ("area", "79.26734", "valuable"); the total row is ("total", "", …)


def hidden_cells(figures: PeriodFigures, k: int) -> dict[Key, str]:
    """Which cells to hide and how they read: "<K" for small counts, "≥K" for their complements."""
    values: dict[Key, int] = {}
    lines: list[list[Key]] = []
    total_keys = {kind: ("total", "", kind) for kind in COUNT_KINDS}
    for kind in COUNT_KINDS:
        values[total_keys[kind]] = getattr(figures.total, kind)
    lines.append([total_keys[kind] for kind in TIP_KINDS])
    row_kinds = COUNT_KINDS if figures.case_rows else TIP_KINDS
    for table, rows in (("category", figures.by_category), ("area", figures.by_area)):
        for row, tally in rows.items():
            for kind in row_kinds:
                values[(table, row, kind)] = getattr(tally, kind)
            lines.append([(table, row, kind) for kind in TIP_KINDS])  # received = valuable + not + pending
        for kind in row_kinds:  # the rows add up to the total (cases nearly: a case may span rows)
            lines.append([(table, row, kind) for row in rows] + [total_keys[kind]])
    # The chart writes each week's total above its bar, so a week is a line like any row.
    weeks = {week.isoformat(): tally for week, tally in figures.by_week.items()}
    for row, tally in weeks.items():
        for kind in TIP_KINDS:
            values[("week", row, kind)] = getattr(tally, kind)
        lines.append([("week", row, kind) for kind in TIP_KINDS])
    for kind in TIP_KINDS:
        lines.append([("week", row, kind) for row in weeks] + [total_keys[kind]])

    hidden = {key: f"<{k}" for key, value in values.items() if 0 < value < k}
    changed = bool(hidden)
    while changed:
        changed = False
        for line in lines:
            if sum(key in hidden for key in line) != 1:
                continue
            others = [key for key in line if key not in hidden and values[key] > 0]
            if others:
                # The smallest (least is lost); on a tie a row before a total, and pending before the
                # headline figures, so that "received" and "valuable" stay visible wherever they can.
                pick = min(others, key=lambda key: (values[key], key[0] == "total", _KEEP.index(key[2])))
                hidden[pick] = f"≥{k}"
                changed = True
    return hidden


# --- what people read ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    value: int | float | None  # the exact figure, or None when it is hidden or does not apply
    text: str  # what a person reads: "53.679", "<3", "≥3", "29,1%", "—"


@dataclass(frozen=True)
class Row:
    group: str  # total, category, area
    key: str  # the category id or area code ("" for the total)
    label: str
    cells: dict[str, Cell]


def percent(value: float, lang: str) -> str:
    return format_decimal(value, format="#,##0.0", locale="vi_VN" if lang == "vi" else "en_US") + "%"


def duration(value: timedelta, lang: str) -> str:
    """2 days 5 h / 2 days / 3 h 20 min / 3 h / 12 min, in the reader's language.

    Rounded up to the minute (days: to the hour), since it is read as "within": a median of 40 seconds
    is "within 1 min", never "within 0 min"."""
    _ = translator(lang)
    minutes = max(1, -(-int(value.total_seconds()) // 60))
    if minutes >= 1440:
        hours = -(-minutes // 60)
        days, hours = hours // 24, hours % 24
        if not hours:
            return _("{days} days").format(days=number(days, lang))
        return _("{days} days {hours} h").format(days=number(days, lang), hours=hours)
    hours, mins = minutes // 60, minutes % 60
    if hours and not mins:
        return _("{hours} h").format(hours=hours)
    if hours:
        return _("{hours} h {minutes} min").format(hours=hours, minutes=mins)
    return _("{minutes} min").format(minutes=mins)


@dataclass
class Figures:
    """The counts of one scope and period, ready to read: labels, hidden cells, rows."""

    figures: PeriodFigures
    settings: TipLineSettings
    unit_id: str
    period: Period
    lang: str
    audience: str = PUBLISHED
    hidden: dict[Key, str] = field(init=False)

    def __post_init__(self) -> None:
        self.hidden = hidden_cells(self.figures, self.k)

    @property
    def k(self) -> int:
        return self.settings.stats.threshold(self.audience)

    @property
    def less_hidden_than_published(self) -> bool:
        """These figures show counts that published ones would hide: they must not leave the force."""
        return self.k < self.settings.stats.threshold(PUBLISHED)

    @property
    def _(self) -> Callable[[str], str]:
        return translator(self.lang)

    @property
    def unit_name(self) -> str:
        return self.settings.unit_tree.name(self.unit_id)

    def cell(self, table: str, row: str, kind: str, tally: Tally) -> Cell:
        if kind == "share":
            shown = all((table, row, k) not in self.hidden for k in ("received", "valuable"))
            if not shown or not tally.received:
                return Cell(None, "—")
            share = round(100 * tally.valuable / tally.received, 1)
            return Cell(share, percent(share, self.lang))
        mark = self.hidden.get((table, row, kind))
        value = getattr(tally, kind)
        return Cell(None, mark) if mark else Cell(value, number(value, self.lang))

    def week_cell(self, week: date, kind: str) -> Cell:
        return self.cell("week", week.isoformat(), kind, self.figures.by_week.get(week, Tally()))

    def category_label(self, category: str) -> str:
        option = self.settings.questionnaire.category_step.option(category)
        return option.label(self.lang) if option else category

    def area_label(self, code: str) -> str:
        area = self.settings.areas.get(code)
        return area.name if area else code

    def _row(self, table: str, key: str, label: str, tally: Tally) -> Row:
        return Row(table, key, label, {kind: self.cell(table, key, kind, tally) for kind in COLUMNS})

    def total_row(self) -> Row:
        return self._row("total", "", self.unit_name, self.figures.total)

    def category_rows(self) -> list[Row]:
        """In the questionnaire's order, so every report lists the categories alike."""
        order = {o.id: i for i, o in enumerate(self.settings.questionnaire.category_step.choices)}
        keys = sorted(self.figures.by_category, key=lambda c: (order.get(c, len(order)), c))
        return [self._row("category", c, self.category_label(c), self.figures.by_category[c]) for c in keys]

    def area_rows(self) -> list[Row]:
        """Most tips first; hidden rows last and by name, since an order by their size would tell it."""
        rows = [self._row("area", code, self.area_label(code), tally) for code, tally in self.figures.by_area.items()]
        return sorted(rows, key=lambda r: (r.cells["received"].value is None, -(r.cells["received"].value or 0),
                                           r.label))

    def rows(self) -> list[Row]:
        return [self.total_row()] + self.category_rows() + self.area_rows()

    def median_text(self) -> str | None:
        median = self.figures.median_to_verdict
        if median is None or self.figures.judged < self.k:
            return None
        return duration(median, self.lang)

    def has_hidden(self) -> bool:
        return bool(self.hidden)

    def hidden_note(self) -> str:
        return self._("<{k}: fewer than {k}, hidden so that no tipster can be singled out; ≥{k}: hidden as well, "
                      "so that the first cannot be worked out from the totals.").format(k=self.k)

    def notes(self) -> list[str]:
        """What the marks mean, and whether these figures may be published."""
        notes = [self.hidden_note()] if self.has_hidden() else []
        if self.less_hidden_than_published:
            notes.append(self._("For use within the police force only: counts below {k}, which published "
                                "figures hide, are shown here.").format(k=self.settings.stats.threshold(PUBLISHED)))
        return notes

    def prose(self, cell: Cell) -> str:
        """A count as a sentence reads it: "<3" is "fewer than 3" ("dưới 3"), "≥3" is "at least 3"."""
        if cell.value is not None:
            return cell.text
        if cell.text.startswith("<"):
            return self._("fewer than {k}").format(k=cell.text[1:])
        return self._("at least {k}").format(k=cell.text[1:])


# --- the movement report -------------------------------------------------------------------------

def _sentence(text: str) -> str:
    # A sentence may open with a count in words ("fewer than 3 tips were…"): it still starts with a capital.
    return text[:1].upper() + text[1:]


def paragraph(f: Figures) -> str:
    """The report's summary, in the words of a "báo cáo sơ kết", so that it pastes into one unchanged."""
    _ = f._
    total = f.total_row().cells
    words = {kind: f.prose(total[kind]) for kind in COUNT_KINDS}
    when = {"start": f.period.first.strftime(DATE_FORMAT), "end": f.period.last.strftime(DATE_FORMAT),
            "unit": f.unit_name}
    if total["received"].value == 0:
        return _("From {start} to {end}, {unit} received no crime tips.").format(**when)
    if total["valuable"].value == 0 and total["cases"].value == 0:
        text = _("From {start} to {end}, {unit} received {received} crime tips, none of them valuable so "
                 "far.").format(**when, **words)
    elif total["cases"].value == 0:
        text = _("From {start} to {end}, {unit} received {received} crime tips, of which {valuable} were "
                 "valuable.").format(**when, **words)
    else:
        text = _("From {start} to {end}, {unit} received {received} crime tips, of which {valuable} were valuable, "
                 "helping to clarify {cases} cases involving {subjects} subjects.").format(**when, **words)
    not_valuable, pending = total["not_valuable"].value != 0, total["pending"].value != 0
    if not_valuable and pending:
        text += " " + _sentence(_("{not_valuable} tips were not valuable and {pending} are still being "
                                  "handled.").format(**words))
    elif not_valuable:
        text += " " + _sentence(_("{not_valuable} tips were not valuable.").format(**words))
    elif pending:
        text += " " + _sentence(_("{pending} tips are still being handled.").format(**words))
    if (median := f.median_text()) is not None:
        text += " " + _("Half of the verdicts were given within {median} of receipt.").format(median=median)
    return text


def row_line(f: Figures, row: Row) -> str:
    """One row for a chat, where columns cannot line up: every figure named."""
    c = {kind: cell.text for kind, cell in row.cells.items()}
    if not f.figures.case_rows:
        return f._("{label}: {received} received · {valuable} valuable ({share}) · {not_valuable} not valuable · "
                   "{pending} pending").format(label=row.label, **c)
    return f._("{label}: {received} received · {valuable} valuable ({share}) · {not_valuable} not valuable · "
               "{pending} pending · {cases} cases · {subjects} subjects").format(label=row.label, **c)


def chat_table(f: Figures, *, area_limit: int | None = None) -> str:
    """The table for a chat: by category, then by area (the first ``area_limit`` areas)."""
    _ = f._
    lines = [_("By category:")] + ["• " + row_line(f, r) for r in f.category_rows()]
    areas = f.area_rows()
    lines += ["", _("By area:")] + ["• " + row_line(f, r) for r in areas[:area_limit]]
    if area_limit is not None and len(areas) > area_limit:
        lines.append(_("… and {n} more areas: /report gives them all.").format(n=number(len(areas) - area_limit, f.lang)))
    if not f.figures.by_category:
        lines = [_("No tips were received in this period.")]
    if notes := f.notes():
        lines += [""] + notes
    if f.less_hidden_than_published:
        lines.append(_("For figures to publish, add the word congbo, e.g. /baocao 01/01/2026 30/06/2026 congbo."))
    return "\n".join(lines)


def table_records(f: Figures) -> list[list[str | int | float]]:
    """Header and rows as written to CSV and XLSX: exact figures as numbers, hidden ones as their mark."""
    _ = f._
    header: list[str | int | float] = [_("Group"), _("Item")] + [_(COLUMN_NAMES[c]) for c in COLUMNS]
    records = [header]
    for row in f.rows():
        records.append([_(GROUP_NAMES[row.group]), row.label] +
                       [cell.value if cell.value is not None else cell.text for cell in row.cells.values()])
    return records


def aligned_table(f: Figures) -> str:
    """The table with columns lined up, for a terminal (`tinbao report --format text`)."""
    records = [table_records(f)[0]]
    for row in f.rows():
        records.append([f._(GROUP_NAMES[row.group]), row.label] + [cell.text for cell in row.cells.values()])
    widths = [max(len(str(r[i])) for r in records) for i in range(len(records[0]))]
    lines = []
    for index, record in enumerate(records):
        cells = [str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(record, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv(f: Figures) -> bytes:
    """UTF-8 with a BOM, so that Excel shows the Vietnamese names right; decimals with a dot."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for record in table_records(f):
        writer.writerow(record)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(f: Figures) -> bytes:
    """A workbook: the figures as a table of numbers, and a summary sheet with the paragraph."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    _ = f._
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _("Figures")[:31]
    for record in table_records(f):
        sheet.append(record)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "C2"
    sheet.column_dimensions["A"].width = 12
    sheet.column_dimensions["B"].width = 36
    for letter in "CDEFGHI":
        sheet.column_dimensions[letter].width = 14
    summary = workbook.create_sheet(_("Summary")[:31])
    summary.column_dimensions["A"].width = 100
    for line in [paragraph(f), "", _("Unit: {unit}").format(unit=f.unit_name),
                 _("Period: {period}").format(period=f.period.label())] + f.notes():
        summary.append([line])
        summary.cell(row=summary.max_row, column=1).alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def file_name(f: Figures, extension: str) -> str:
    return f"tinbao-{f.unit_id}-{f.period.first:%Y%m%d}-{f.period.last:%Y%m%d}.{extension}"


def report_files(f: Figures) -> list[OutgoingFile]:
    return [OutgoingFile("document", to_csv(f), filename=file_name(f, "csv"), mime=CSV_MIME),
            OutgoingFile("document", to_xlsx(f), filename=file_name(f, "xlsx"), mime=XLSX_MIME)]


# --- who may see which figures -------------------------------------------------------------------

def figures_unit(turn: Turn, officer: Officer, unit_id: str | None) -> str:
    """The unit asked for (default: the supervisor's own), if it is within their scope."""
    _ = turn._
    if officer.role == "officer":
        raise Refusal(_("Figures are for supervisors and admins. Your unit's supervisor can send them to you."))
    wanted = unit_id or officer.unit_id
    if wanted not in scope(turn, officer):
        # The same answer for a unit that does not exist: nothing is learnt about units outside the scope.
        raise Refusal(_("There is no unit {unit} in your units.").format(unit=wanted))
    return wanted


def audience_of(args: str) -> tuple[str, str]:
    """(audience, the other words): a supervisor's own figures, unless "congbo" / "công bố" / "public" asks
    for figures to publish."""
    words = args.split()
    kept = [w for w in words if fold(w) not in PUBLISH_WORDS]
    if len(kept) >= 2 and (fold(kept[-2]), fold(kept[-1])) == ("cong", "bo"):
        return PUBLISHED, " ".join(kept[:-2])
    return (PUBLISHED if len(kept) < len(words) else SUPERVISORS), " ".join(kept)


async def load_figures(turn: Turn, officer: Officer, unit_id: str, period: Period, action: str, *,
                       case_rows: bool = True, audience: str = SUPERVISORS) -> Figures:
    """Counts of the unit and every unit below it; who asked for which figures goes into the audit log."""
    start, end = period.bounds()
    units = turn.services.settings.unit_tree.subtree(unit_id)
    counted = await stats_store.period_figures(session=turn.session, unit_ids=units, start=start, end=end,
                                               case_rows=case_rows)
    await append_audit(session=turn.session, keyring=turn.services.keyring, actor=actor(officer), action=action,
                       detail=f"unit={unit_id} from={period.first.isoformat()} to={period.last.isoformat()} "
                              f"for={audience}")
    return Figures(counted, turn.services.settings, unit_id, period, turn.lang, audience)


def typed_command(turn: Turn, default: str) -> str:
    """The command as the person typed it ("/baocao", not "/baocao@tinbao_bot"), to answer in their words."""
    words = (turn.inbound.text or "").split()
    word = words[0].split("@")[0] if words else ""
    return word if word.startswith("/") and len(word) <= 32 else default


async def send_report(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/report FROM TO [UNIT] [congbo] (or /baocao): the paragraph and the table, then the same as CSV and XLSX."""
    _ = turn._
    audience, args = audience_of(args)
    period, rest = parse_range(args.split())
    if period is None or len(rest) > 1:
        return [Reply(_("Use: {command} FROM TO [UNIT], for example {command} 01/01/2026 30/06/2026").format(
            command=typed_command(turn, "/report")))]
    unit_id = figures_unit(turn, officer, rest[0] if rest else None)
    f = await load_figures(turn, officer, unit_id, period, "report", audience=audience)
    text = paragraph(f) + "\n\n" + chat_table(f) + await repeated_section(turn, f)
    return [Reply(text), Reply(_("The same figures as CSV and Excel files:"), files=report_files(f))]


# --- the same from the command line --------------------------------------------------------------

class ReportError(ValueError):
    """A `tinbao report` that cannot be made (unknown unit, bad dates); one line for the operator."""


# From this many tips a report takes long enough (seconds on SQLite) for `tinbao report` to show progress.
PROGRESS_FROM = 100_000


async def cli_report(services: Services, *, unit_id: str, period: Period, lang: str = "vi",
                     audience: str = PUBLISHED, progress: Callable[[int, int], None] | None = None,
                     on_large: Callable[[int], None] | None = None) -> Figures:
    """`tinbao report`: the same figures as /report, for any unit; audited as the CLI's."""
    units = services.settings.unit_tree
    if units.get(unit_id) is None:
        raise ReportError(f"unknown unit {unit_id!r}; configured units: {', '.join(sorted(units.units)) or 'none'}")
    start, end = period.bounds()
    scope_ids = units.subtree(unit_id)
    async with services.db.transaction() as session:
        tips = await stats_store.count_tips(session=session, unit_ids=scope_ids, start=start, end=end)
        long_job = tips >= PROGRESS_FROM
        if long_job and on_large is not None:
            on_large(tips)  # the CLI shows a progress bar only when the job is long enough to need one
        counted = await stats_store.period_figures(session=session, unit_ids=scope_ids, start=start, end=end,
                                                   progress=progress if long_job else None)
        await append_audit(session=session, keyring=services.keyring, actor="cli", action="report",
                           detail=f"unit={unit_id} from={period.first.isoformat()} to={period.last.isoformat()} "
                                  f"for={audience}")
    return Figures(counted, services.settings, unit_id, period, lang, audience)


def report_text(f: Figures) -> str:
    """`--format text`: the paragraph, the aligned table and, if any cell is hidden, what the marks mean."""
    parts = [paragraph(f), "", aligned_table(f)]
    if notes := f.notes():
        parts += [""] + notes
    return "\n".join(parts) + "\n"


def rendered(f: Figures, fmt: str) -> bytes:
    return {"text": lambda: report_text(f).encode("utf-8"), "csv": lambda: to_csv(f), "xlsx": lambda: to_xlsx(f)}[fmt]()
