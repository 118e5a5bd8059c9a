"""/queue [FILTERS] [PAGE] and /judged: finding tips among dozens a day, from clear columns only.

Filters are words, with or without accents, Vietnamese or English, in any order: a category ("lua-dao",
"ma tuy", "drugs"), an area ("ben-thanh", or its code), a state ("moi", "dang-xem", "judged"…) and "mine"
(the tips I hold). A supervisor's queue, which spans several units, says which unit each tip is with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from handlers.areas import fold, with_all_below
from handlers.buttons import OFFICER
from handlers.chat_turn import Turn
from handlers.i18n import number
from handlers.messages import Choice, Reply
from handlers.officer.accounts import scope
from handlers.officer.triage import _summary
from storage import triage as triage_store
from storage.models import Officer
from storage.tip_states import JUDGED, OPEN, TipStatus

MINE = frozenset({"mine", "cua toi", "toi", "cua minh"})
# State words, accent-folded, and the states each stands for; the first word of each is the one buttons carry.
STATES: dict[str, tuple[tuple[str, ...], tuple[TipStatus, ...]]] = {
    "open": (("open", "mo", "dang mo", "chua xong"), OPEN),
    "new": (("new", "moi", "chua nhan"), (TipStatus.NEW,)),
    "review": (("review", "in review", "dang xac minh", "dang xem", "dang xu ly"), (TipStatus.IN_REVIEW,)),
    "waiting": (("waiting", "needs info", "cho nguoi bao tin", "cho", "cho bo sung"), (TipStatus.NEEDS_INFO,)),
    "transferred": (("transferred", "da chuyen", "chuyen"), (TipStatus.TRANSFERRED,)),
    "judged": (("judged", "da danh gia", "da ket luan", "ket luan"), JUDGED),
    "valuable": (("valuable", "co gia tri"), (TipStatus.VALUABLE,)),
    "notvaluable": (("notvaluable", "not valuable", "khong gia tri"), (TipStatus.NOT_VALUABLE,)),
}
_KINDS = {"", "phuong", "xa", "thanh pho", "tinh", "thi tran", "dac khu"}  # what an area's name may begin with
MAX_FILTERS = 4  # a page button carries them, and Telegram takes 64 bytes of button data
# Tips counted past a page's start: beyond that the title says "more than", as counting a province's
# whole backlog or every verdict of a year would cost more than the page itself (bench/queue_1m.py).
COUNTED = 1_000


@dataclass
class Filters:
    """What /queue was asked for, and the words a page button carries to ask it again."""

    statuses: list[TipStatus] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    area_codes: list[str] = field(default_factory=list)
    mine: bool = False
    words: list[str] = field(default_factory=list)  # canonical: a category id, an area code, a state, "mine"


class UnknownFilter(ValueError):
    """A word /queue does not know as a filter."""


def _slug(label: str) -> str:
    return "-".join(fold(label).split()[:2])


def _category(turn: Turn, wanted: str) -> str | None:
    """A category by its id or the first words of its name in either language ("lua dao" for «Lừa đảo (…)»)."""
    options = turn.services.settings.questionnaire.category_step.choices
    for option in options:
        if wanted in (fold(option.id), *(fold(label) for label in option.labels.values())):
            return option.id
    starting = {o.id for o in options for label in o.labels.values() if f"{fold(label)} ".startswith(f"{wanted} ")}
    return starting.pop() if len(starting) == 1 else None


def _area(turn: Turn, word: str, wanted: str) -> list[str] | None:
    """An area by its code or its name ("ben-thanh"), with every area below it (a province's wards)."""
    areas = turn.services.settings.areas
    code = word if areas.get(word) else None
    if code is None:
        hits = areas.search(wanted)
        # "ben thanh" is Phường Bến Thành, not also Phường Bến Thành Mới; a part that fits one area only is that one.
        exact = [a for a in hits if fold(a.name).endswith(wanted) and fold(a.name)[:-len(wanted)].strip() in _KINDS]
        code = exact[0].code if exact else hits[0].code if len(hits) == 1 else None
    if code is None:
        return None
    return with_all_below(code, ((a.code, a.parent) for a in areas.areas.values()))


def _one(turn: Turn, found: Filters, word: str) -> str | None:
    """Take one filter into ``found``; its canonical word, or None if it is none."""
    wanted = fold(word)
    state = next((key for key, (names, _s) in STATES.items() if wanted in names), None)
    if not wanted:
        return None
    if wanted in MINE:
        found.mine = True
        return "mine"
    if state is not None:
        found.statuses += [s for s in STATES[state][1] if s not in found.statuses]
        return state
    if (category := _category(turn, wanted)) is not None:
        found.categories.append(category)
        return category
    if (codes := _area(turn, word, wanted)) is not None:
        found.area_codes += codes
        return codes[0]
    return None


def parse_filters(turn: Turn, words: list[str]) -> Filters:
    """The filters in what was typed; a name may be several words ("lừa đảo", "bến thành"): the longest wins."""
    found, start = Filters(), 0
    while start < len(words):
        for end in range(len(words), start, -1):
            canonical = _one(turn, found, " ".join(words[start:end]))
            if canonical is not None:
                found.words.append(canonical)
                start = end
                break
        else:
            raise UnknownFilter(words[start])
    return found


def _filter_help(turn: Turn, word: str) -> str:
    _ = turn._
    options = turn.services.settings.questionnaire.category_step.choices[:3]
    return _("I do not know the filter «{word}». You can filter the queue by category (for example "
             "{categories}), by area (a ward's name, for example ben-thanh), by state (new, review, waiting, "
             "transferred, judged, valuable, notvaluable) and by mine (the tips you hold), with a page number "
             "at the end: for example /queue {example} mine 2").format(
        word=word, categories=", ".join(_slug(o.label(turn.lang)) for o in options),
        example=_slug(options[0].label(turn.lang)) if options else "drugs")


async def show_queue(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/queue [FILTERS] [PAGE]: the unit's open tips (or those asked for), urgent first then oldest."""
    _ = turn._
    words = args.split()
    # A last word that looks like a number is the page, even when it is not one ("²", "-1": the first page).
    wanted_page = words.pop() if words and words[-1].lstrip("-").isdigit() else ""
    # A short number only, so the offset fits the database's integer; isdecimal, as int() refuses "²".
    page = int(wanted_page) if wanted_page.isdecimal() and len(wanted_page) <= 6 and int(wanted_page) > 0 else 1
    too_many = Reply(_("At most {n} filters at a time, please.").format(n=MAX_FILTERS))
    if len(words) > 3 * MAX_FILTERS:  # names are a few words each; more is not a filter, and costs a search a word
        return [too_many]
    try:
        filters = parse_filters(turn, words)
    except UnknownFilter as unknown:
        return [Reply(_filter_help(turn, str(unknown)))]
    if len(filters.words) > MAX_FILTERS:
        return [too_many]
    return await _page(turn, officer, filters, page)


async def show_judged(turn: Turn, officer: Officer, args: str) -> list[Reply]:
    """/judged [FILTERS] [PAGE]: the unit's judged tips, the latest verdict first."""
    return await show_queue(turn, officer, f"judged {args}")


async def _page(turn: Turn, officer: Officer, filters: Filters, page: int) -> list[Reply]:
    _ = turn._
    size = turn.services.settings.triage.queue_page
    units = scope(turn, officer)

    async def fetch(page: int):
        return await triage_store.queue(session=turn.session, unit_ids=units, offset=(page - 1) * size, limit=size,
                                        statuses=filters.statuses or OPEN, categories=filters.categories,
                                        area_codes=filters.area_codes, claimed_by=officer.id if filters.mine else None,
                                        count_up_to=(page - 1) * size + COUNTED + 1)

    tips, total = await fetch(page)
    shown = " ".join(filters.words)
    plain = not filters.words
    if total == 0:
        return [Reply(_("No open tips in your units. 👍") if plain else
                      _("No tip in your units matches «{filters}».").format(filters=shown))]
    pages = (total + size - 1) // size
    if page > pages:  # past the end (a typo, or an old "next page" button): the last page, not an empty one
        page = pages
        tips, total = await fetch(page)
    more = total > (page - 1) * size + COUNTED  # counted no further: the last page is not known
    if more:
        counts = dict(total=number(total - 1, turn.lang), page=page)
        if plain:
            title = _("Open tips: more than {total} (page {page})").format(**counts)
        elif filters.words == ["judged"]:
            title = _("Judged tips: more than {total} (page {page})").format(**counts)
        else:
            title = _("Tips matching «{filters}»: more than {total} (page {page})").format(filters=shown, **counts)
    else:
        counts = dict(total=number(total, turn.lang), page=page, pages=pages)
        if plain:
            title = _("Open tips: {total} (page {page}/{pages})").format(**counts)
        elif filters.words == ["judged"]:
            title = _("Judged tips: {total} (page {page}/{pages})").format(**counts)
        else:
            title = _("Tips matching «{filters}»: {total} (page {page}/{pages})").format(filters=shown, **counts)
    several_units = len(units) > 1  # a supervisor's: say whose each tip is
    lines = [title, ""] + [_summary(turn, tip) + (f" · {turn.services.settings.unit_tree.name(tip.unit_id)}"
                                                  if several_units else "") for tip in tips]
    choices = [Choice(OFFICER.pack("open", tip.ref), tip.ref) for tip in tips]
    if more or page < pages:
        choices.append(Choice(OFFICER.pack("queue", *filters.words, page + 1), _("Next page ▶")))
    return [Reply("\n".join(lines), choices=choices, columns=3)]
