"""The configured areas (province → commune/ward), found by typing part of a name without accents."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

# A leading word that only says what kind of unit a place is: "phuong ben thanh" finds "ben thanh".
_PREFIXES = ("thanh pho ", "thi tran ", "dac khu ", "phuong ", "tinh ", "xa ", "tp ", "p ", "x ")


def _strip_prefix(folded: str) -> str:
    return next((folded[len(p):] for p in _PREFIXES if folded.startswith(p)), folded)


def fold(text: str) -> str:
    """Lower-case, without diacritics ("Bến Thành" → "ben thanh"); đ is not a combining mark."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", " ", bare.lower()).strip()


def typed_label(text: str, labels: Sequence[str]) -> int | None:
    """Which of the labels the typed words mean, accents or not: a whole label, or the first words of only one
    of them ("to giac" for «Tố giác tội phạm»)."""
    wanted = fold(text)
    if not wanted:
        return None
    folded = [fold(label) for label in labels]
    if wanted in folded:
        return folded.index(wanted)
    if len(wanted) < 3:  # "co" or "k" would start too many labels to mean one
        return None
    starting = [i for i, label in enumerate(folded) if f"{label} ".startswith(f"{wanted} ")]
    return starting[0] if len(starting) == 1 else None


# Typed answers to a yes/no question, without accents ("có", "co", "đúng", "không", "ko").
YES_WORDS = frozenset({"co", "dung", "phai", "dung roi", "co dung", "dong y", "ok", "yes", "y", "u", "uh", "vang"})
NO_WORDS = frozenset({"khong", "ko", "k", "khong phai", "sai", "no", "n"})


def yes_or_no(text: str | None) -> bool | None:
    """True for a typed yes, False for a typed no, None for anything else."""
    folded = fold(text or "")
    return True if folded in YES_WORDS else False if folded in NO_WORDS else None


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    parent: str | None = None


@dataclass(frozen=True)
class PlaceMatch:
    """What a typed place can mean among the configured areas (``AreaIndex.find_place``)."""

    query: str
    choices: tuple[str, ...]  # area codes to offer, best first; never a whole province or city
    exact: tuple[str, ...]  # those named exactly as typed
    former: tuple[tuple[str, tuple[str, ...]], ...]  # old units named as typed ("Quận 1 (…)"), with their successors
    province: str | None  # a whole province or city the text named ("ha noi"), to be asked about, not taken


@dataclass(frozen=True)
class PinMatch:
    """Which configured wards a map pin can mean (``AreaIndex.near_pin``), to be confirmed by the citizen."""

    inside: str | None  # the configured ward the pin falls in
    nearby: tuple[str, ...]  # other configured wards close enough that the pin may mean them, nearest first
    outside: str | None  # where the pin is when it is in no configured ward: "Phường X, Tỉnh Y", or None at sea


# A pin near a ward's edge may mean the ward next door: the phone's fix is often 10–100 m off and the shipped
# outlines are simplified by about 55 m. Further than this, a neighbour is not worth a button.
PIN_NEIGHBOUR_METRES = 300.0
# A pin in no configured ward (on the shore, across a border) still means the wards this close to it.
PIN_OUTSIDE_METRES = 500.0


class PlaceNamesError(ValueError):
    """The deployment's own place-names file is missing, malformed, or names an area that is not configured."""


def load_place_names(path: Path, known: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """A deployment's own old names ("Ấp Bình Thạnh", "Khu phố Chợ Cũ") and the areas that took each over, read
    from the file that config key questionnaire.place_names names, each area checked against [[areas]]."""
    from handlers.toml_files import read_toml
    data = read_toml(path, what="place names", error=PlaceNamesError)
    codes, found = set(known), []
    for i, entry in enumerate(data.get("names", [])):
        where = f"{path}: names[{i}]"
        entry = entry if isinstance(entry, dict) else {}
        name, areas = entry.get("name"), entry.get("areas")
        if not isinstance(name, str) or not fold(name):
            raise PlaceNamesError(f"{where}.name must be the place's name, as people type it")
        if not isinstance(areas, list) or not areas or not all(isinstance(a, str) for a in areas):
            raise PlaceNamesError(f'{where}.areas must list the codes of the areas it is now part of, '
                                  f'e.g. ["79.26734"]')
        unknown = [a for a in areas if a not in codes]
        if unknown:
            raise PlaceNamesError(f'{where}.areas: "{unknown[0]}" is not the code of any [[areas]] entry')
        found.append((unicodedata.normalize("NFC", name.strip()), tuple(dict.fromkeys(areas))))
    return found


class AreaIndex:
    """Search over the configured areas; a province's name is shown beside its wards."""

    def __init__(self, areas: list[Area], *, other_names: Iterable[tuple[str, tuple[str, ...]]] = ()) -> None:
        self.areas = {a.code: a for a in areas}
        self._folded = {a.code: fold(a.name) for a in areas}
        # The deployment's own old names (load_place_names), read like the shipped pre-2025 ones.
        self._other_names = [(name, _strip_prefix(fold(name)), codes) for name, codes in other_names]

    def get(self, code: str) -> Area | None:
        return self.areas.get(code)

    def display(self, code: str, *, short: bool = False) -> str:
        """"Phường Bến Thành, Thành phố Hồ Chí Minh"; short: "Phường Bến Thành, TP. Hồ Chí Minh"."""
        area = self.areas.get(code)
        if area is None:
            return code
        parent = self.areas.get(area.parent) if area.parent else None
        if parent is None:
            return area.name
        parent_name = re.sub(r"^Thành phố ", "TP. ", parent.name) if short else parent.name
        return f"{area.name}, {parent_name}"

    @cached_property
    def provinces(self) -> list[str]:
        """The areas with areas below them (provinces and cities), in the order they were configured."""
        parents = {a.parent for a in self.areas.values()}
        return [code for code in self.areas if code in parents]

    def province_of(self, code: str) -> str | None:
        """The top of an area's tree (its province or city), if it has areas below it."""
        seen: set[str] = set()
        while (area := self.areas.get(code)) is not None and area.parent and area.parent not in seen:
            seen.add(code)
            code = area.parent
        return code if code in self.provinces else None

    @cached_property
    def _national(self) -> tuple[dict[str, str], dict[str, str]]:
        """National ward codes → area codes, and national province codes → area codes, for the areas that are
        official units: by their official code (`tinbao areas import`), else by their name within their province."""
        from handlers.divisions import national  # here, not at the top: handlers.divisions imports fold from us
        catalog = national()
        wards: dict[str, str] = {}
        provinces: dict[str, str] = {}
        for area in self.areas.values():
            if area.parent is None:
                province = catalog.provinces.get(area.code) or catalog.province(area.name)
                if province is not None:
                    provinces.setdefault(province.code, area.code)
        for area in self.areas.values():
            if area.code in catalog.wards:
                wards.setdefault(area.code, area.code)
                continue
            top = self.province_of(area.code)
            province = next((p for p, a in provinces.items() if a == top), None)
            if province is None or area.code == top:
                continue
            name = fold(area.name)
            ward = next((w for w in catalog.wards_of(province) if fold(w.name) == name), None)
            if ward is not None:
                wards.setdefault(ward.code, area.code)
        return wards, provinces

    def find_place(self, query: str) -> PlaceMatch:
        """A typed ward or commune read every way a citizen may mean it: a configured name or part of one, a
        misspelling, an old district or commune from before July 2025, or a whole province."""
        from handlers.divisions import find_ward, national
        wanted = _strip_prefix(fold(query))
        if not wanted:
            return PlaceMatch(query, (), (), (), None)
        tops = set(self.provinces)
        configured = [a.code for a in self.search(query) if a.code not in tops]
        exact = [c for c in configured if _strip_prefix(self._folded[c]) == wanted]
        to_area, province_area = self._national
        suggestions: list[str] = []
        former: list[tuple[str, tuple[str, ...]]] = []
        close_former: list[str] = []
        province = None
        if to_area:
            lookup = find_ward(query, within=sorted(to_area))
            if lookup.exact is not None and lookup.exact.code in to_area:
                exact.append(to_area[lookup.exact.code])
            suggestions = [to_area[w.code] for w in lookup.suggestions if w.code in to_area]
            for unit in lookup.former:
                successors = tuple(dict.fromkeys(to_area[w.code] for w in unit.wards if w.code in to_area))
                if unit.level == "province":
                    province = province or next((province_area[p.code] for p in unit.provinces
                                                 if p.code in province_area), None)
                elif successors and unit.score >= 100:
                    former.append((unit.display, successors))
                elif successors:
                    close_former += successors
        own = [(name, codes) for name, folded, codes in self._other_names if folded == wanted]
        former = own + former
        if province is None:
            named = national().province(query) if len(wanted) >= 2 else None
            province = province_area.get(named.code) if named is not None else None
        if province is None:  # a configured province that is not an official one
            province = next((c for c in tops if _strip_prefix(self._folded[c]) == wanted), None)
        exact = list(dict.fromkeys(exact))
        ordered = exact + [c for _, codes in former for c in codes] + configured + suggestions + close_former
        choices = tuple(dict.fromkeys(c for c in ordered if c in self.areas and c not in tops))[:8]
        return PlaceMatch(query, choices, tuple(exact), tuple(former), None if exact else province)

    @property
    def places_pins(self) -> bool:
        """Whether a map pin can be placed in any configured area: some of them are official wards."""
        return bool(self._national[0])

    def near_pin(self, latitude: float, longitude: float) -> PinMatch:
        """The configured wards a map pin falls in or lies beside, by the official outlines."""
        from handlers.divisions import wards_near
        to_area = self._national[0]
        if not to_area:  # no configured area is an official ward: a pin cannot be placed in any of them
            return PinMatch(None, (), None)
        found = wards_near(latitude, longitude, within=sorted(to_area), limit=3, max_metres=PIN_OUTSIDE_METRES)
        inside = next((to_area[n.ward.code] for n in found if n.inside), None)
        reach = PIN_NEIGHBOUR_METRES if inside else PIN_OUTSIDE_METRES
        # A pin on a shared edge can fall in two simplified outlines at once: the second is a neighbour too.
        nearby = tuple(dict.fromkeys(to_area[n.ward.code] for n in found if n.metres <= reach))
        outside = None
        if inside is None:
            real = wards_near(latitude, longitude, limit=1, max_metres=0)
            outside = real[0].ward.display if real else None
        return PinMatch(inside, tuple(c for c in nearby if c != inside), outside)

    def search(self, query: str, *, limit: int = 8) -> list[Area]:
        """Areas whose name contains what was typed, an exact name first."""
        wanted = _strip_prefix(fold(query))
        if not wanted:
            return []
        hits = [code for code, name in self._folded.items() if wanted in name]
        if not hits:  # the same words in another order
            words = wanted.split()
            hits = [code for code, name in self._folded.items() if all(w in name.split() for w in words)]
        hits.sort(key=lambda c: (_strip_prefix(self._folded[c]) != wanted, self._folded[c]))
        return [self.areas[c] for c in hits[:limit]]


def with_all_below(root: str, parents: Iterable[tuple[str, str | None]]) -> list[str]:
    """``root`` and everything below it in a tree given as (id, parent) pairs, level by level."""
    pairs = list(parents)
    found, frontier = [root], [root]
    while frontier:
        children = [child for child, parent in pairs if parent in frontier]
        found += children
        frontier = children
    return found
