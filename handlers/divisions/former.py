"""Names from before 1 July 2025 ("quận 1", "huyện Củ Chi", "phường Bến Nghé") and the wards that replaced them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from rapidfuzz import fuzz, process

from handlers.areas import fold
from handlers.divisions.catalog import Catalog, Province, Ward, read_tsv
from handlers.divisions.search import PROVINCE_ALIASES

# Kind words as typed, folded, longest first; abbreviations people use on envelopes and forms.
_KINDS = [("thanh pho", "thành phố"), ("thi tran", "thị trấn"), ("thi xa", "thị xã"), ("phuong", "phường"),
          ("huyen", "huyện"), ("quan", "quận"), ("tinh", "tỉnh"), ("xa", "xã"), ("tp", "thành phố"),
          ("tt", "thị trấn"), ("tx", "thị xã"), ("q", "quận"), ("h", "huyện"), ("p", "phường"), ("x", "xã")]
# A kind word is a whole word ("quan 1", "q1"), never the start of a name ("Quang Trung", "Xuân Hòa").
_KIND_WORDS = "|".join(k for k, _ in _KINDS)
_LEADING = re.compile(rf"^({_KIND_WORDS})(?:\s+|(?=\d))")
_INNER = re.compile(rf"\s({_KIND_WORDS})(?:\s+|(?=\d))")
_KIND_OF = dict(_KINDS)
# The kinds of each level before 2025 (a "thành phố" was a province-level city or a provincial city).
LEVEL_KINDS = {"province": {"tỉnh", "thành phố trung ương", "thành phố"},
               "district": {"quận", "huyện", "thị xã", "thành phố"},
               "commune": {"phường", "xã", "thị trấn"}}
LEVEL_ORDER = {"district": 0, "commune": 1, "province": 2}
# A misspelt name ("ben nge") still counts from this ratio, a little lower when its kind was typed ("huyen cu
# chj": only districts compete); names with numbers ("quan 1" is not "quan 11") must match exactly.
MIN_RATIO, MIN_RATIO_WITH_KIND = 85.0, 80.0


@dataclass(frozen=True, slots=True)
class FormerUnit:
    """An old province, district or commune, and what replaced it."""

    code: str  # its old official code
    name: str  # "Quận 1", "Phường Bến Nghé"
    kind: str  # "quận", "huyện", "thị xã", "thành phố", "phường", "xã", "thị trấn", "tỉnh"
    level: str  # "province", "district" or "commune"
    parents: str  # where it was: "Quận 1, Thành phố Hồ Chí Minh"
    wards: tuple[Ward, ...]  # the wards that took it over (only the deployment's, when restricted)
    provinces: tuple[Province, ...]  # for an old province: the province it is now part of
    split: bool  # it went to more than one new ward: the citizen has to choose
    score: float  # 100 = the name exactly as typed

    @property
    def display(self) -> str:
        """"Phường Bến Nghé (Quận 1, Thành phố Hồ Chí Minh)"."""
        return f"{self.name} ({self.parents})" if self.parents else self.name


@dataclass(frozen=True, slots=True)
class _Old:
    code: str
    name: str
    kind: str
    level: str
    parent: str | None  # the old district of a commune, the old province of a district
    targets: tuple[str, ...]  # new ward codes, or new province codes for a province
    partly: bool


def split_kind(folded: str) -> tuple[str | None, str]:
    """"quan 1" → ("quận", "1"); "q1" → ("quận", "1"); "ben nghe" → (None, "ben nghe")."""
    match = _LEADING.match(folded)
    return (_KIND_OF[match.group(1)], folded[match.end():].strip()) if match else (None, folded)


def readings(query: str) -> list[list[tuple[str | None, str]]]:
    """The ways to read a query, most likely first: the unit asked for, then its old parents.

    "P. Bến Nghé, Q1" → [[("phường", "ben nghe"), ("quận", "1")]]. Without commas, "ben nghe quan 1" is
    read whole first and then split before each kind word ("phường Quán Thánh" must stay whole).
    """
    parts = [folded for part in query.split(",") if (folded := fold(part))]
    if not parts:
        return []
    whole = [split_kind(p) for p in parts]
    found = [whole]
    if len(parts) == 1:
        for mark in _INNER.finditer(parts[0]):
            head, tail = parts[0][:mark.start()].strip(), parts[0][mark.start() + 1:]
            found.append([split_kind(head), split_kind(tail)])
    return [reading for reading in found if all(name for _, name in reading)]


def _bare(folded: str) -> str:
    """A folded old name without its kind word: "thi xa son tay" → "son tay"."""
    return split_kind(folded)[1]


def _names_parent(parent: _Old, kind: str | None, name: str) -> bool:
    """Whether "quan 1", "tp hcm" or "huyen cu chi" names this old district or province."""
    if kind is not None and parent.kind != kind and not (kind == "thành phố" and parent.level == "province"):
        return False
    own = _bare(fold(parent.name))
    return own == name or own == PROVINCE_ALIASES.get(name) or \
        (not re.search(r"\d", name) and fuzz.ratio(own, name) >= MIN_RATIO)


class FormerNames:
    """Every province, district and commune of the 63-province map, with the wards that took each over."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @cached_property
    def _units(self) -> list[_Old]:
        units = [_Old(code, name, kind, "province", None, tuple(new.split()), False)
                 for code, kind, name, new in read_tsv("old_provinces.tsv")]
        units += [_Old(code, name, kind, "district", province, tuple(new.split()), len(new.split()) > 1)
                  for code, province, kind, name, new in read_tsv("old_districts.tsv")]
        units += [_Old(code, name, kind, "commune", district, tuple(new.split()), partly == "1")
                  for code, district, kind, name, partly, new in read_tsv("old_wards.tsv")]
        return units

    @cached_property
    def _by_code(self) -> dict[tuple[str, str], _Old]:
        return {(u.level, u.code): u for u in self._units}

    @cached_property
    def _names(self) -> list[str]:
        return [_bare(fold(u.name)) for u in self._units]

    @cached_property
    def _exact(self) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for i, name in enumerate(self._names):
            index.setdefault(name, []).append(i)
        return index

    def _parent(self, unit: _Old) -> _Old | None:
        if unit.parent is None:
            return None
        return self._by_code.get(("district" if unit.level == "commune" else "province", unit.parent))

    def _parents(self, unit: _Old) -> list[_Old]:
        chain, current = [], self._parent(unit)
        while current is not None:
            chain.append(current)
            current = self._parent(current)
        return chain

    def _matches(self, kind: str | None, name: str) -> list[tuple[int, float]]:
        """Units whose name is ``name`` (or close to it, if it has no digits), of that kind if one was typed."""
        hits = [(i, 100.0) for i in self._exact.get(name, [])]
        if not hits and not re.search(r"\d", name) and len(name) >= 4:
            cutoff = MIN_RATIO if kind is None else MIN_RATIO_WITH_KIND
            hits = [(i, score) for _, score, i in process.extract(name, self._names, scorer=fuzz.ratio, limit=60,
                                                                  score_cutoff=cutoff)]
        if kind is not None:
            hits = [(i, s) for i, s in hits if self._units[i].kind == kind
                    or (kind == "thành phố" and self._units[i].kind == "thành phố trung ương")]
        return hits

    def lookup(self, query: str, *, within: Iterable[str] | None = None, limit: int = 10) -> list[FormerUnit]:
        """The old units the query names, best first, each with the wards that replaced it."""
        allowed = self.catalog.allowed(within)
        for reading in readings(query):
            found = self._read(reading, allowed)
            if found:
                return found[:limit]
        return []

    def _read(self, reading: list[tuple[str | None, str]], allowed: frozenset[str] | None) -> list[FormerUnit]:
        (kind, name), parents = reading[0], reading[1:]
        found = []
        for i, score in self._matches(kind, name):
            unit = self._units[i]
            chain = self._parents(unit)
            # "ben nghe, quan 1": every further part must name one of the unit's old parents.
            if not all(any(_names_parent(p, pkind, pname) for p in chain) for pkind, pname in parents):
                continue
            found.append(self._result(unit, chain, score, allowed))
        found = [f for f in found if f.wards or f.provinces]
        found.sort(key=lambda f: (-f.score, LEVEL_ORDER[f.level], f.name, f.code))
        return found

    def _result(self, unit: _Old, chain: list[_Old], score: float, allowed: frozenset[str] | None) -> FormerUnit:
        catalog = self.catalog
        if unit.level == "province":
            provinces = tuple(catalog.provinces[c] for c in unit.targets)
            if allowed is not None:
                provinces = tuple(p for p in provinces if any(w.code in allowed for w in catalog.wards_of(p.code)))
            wards: tuple[Ward, ...] = ()
        else:
            wards = tuple(catalog.wards[c] for c in unit.targets if allowed is None or c in allowed)
            provinces = ()
        return FormerUnit(code=unit.code, name=unit.name, kind=unit.kind, level=unit.level,
                          parents=", ".join(p.name for p in chain), wards=wards, provinces=provinces,
                          split=len(unit.targets) > 1 or unit.partly, score=score)

    def wards_for(self, query: str, *, within: Iterable[str] | None = None, limit: int = 12) -> list[Ward]:
        """The new wards to offer for an old name, in order, each once."""
        seen: dict[str, Ward] = {}
        for unit in self.lookup(query, within=within):
            for ward in unit.wards:
                seen.setdefault(ward.code, ward)
        return list(seen.values())[:limit]
