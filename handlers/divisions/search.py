"""Finding a commune or ward by what a citizen typed: without accents, with typos, as part of a name."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

from rapidfuzz import fuzz, process

from handlers.areas import fold
from handlers.divisions.catalog import Catalog, Province, Ward

# A leading word that only says what kind of unit is meant ("p. Bến Thành", "xa Can Gio").
WARD_KINDS = {"phuong": "phường", "p": "phường", "xa": "xã", "x": "xã", "dac khu": "đặc khu", "dk": "đặc khu"}
_KIND_WORD = re.compile(r"^(dac khu|phuong|xa|dk|p|x)\s+(?=\D)")
# Below this ratio a name is too far from what was typed to be offered ("ben tahnh" → Bến Thành scores 89,
# "ha noi" → "Trường Hà" 62). Word order does not count ("thanh ben").
MIN_SCORE = 80.0
PREFIX_SCORE, PART_SCORE = 95.0, 90.0  # what was typed begins a name ("ben th"), or is a whole part of it
# Province names as people write them; only the unofficial ones need listing.
PROVINCE_ALIASES = {"hcm": "ho chi minh", "tphcm": "ho chi minh", "tp hcm": "ho chi minh", "sai gon": "ho chi minh",
                    "sg": "ho chi minh", "hn": "ha noi", "tp hn": "ha noi", "hue": "hue", "tt hue": "hue"}


@dataclass(frozen=True, slots=True)
class Suggestion:
    ward: Ward
    score: float  # 100 = the name exactly as typed (accents and kind word aside)


@dataclass(frozen=True, slots=True)
class _Choices:
    positions: list[int]  # in the catalog's order of wards
    names: list[str]  # folded, without their kind word
    sorted_words: list[str]  # the same with their words in order, for token_sort_ratio
    text: str  # "\n name" for each, joined
    starts: list[int]  # where each name's "\n" is in ``text``


@dataclass(frozen=True, slots=True)
class NameSearch:
    """What a typed name found, best first."""

    query: str
    suggestions: tuple[Suggestion, ...]

    @property
    def exact(self) -> Ward | None:
        """The one ward whose name is exactly what was typed; None when there are none or several."""
        exact = [s.ward for s in self.suggestions if s.score >= 100]
        return exact[0] if len(exact) == 1 else None

    @property
    def wards(self) -> list[Ward]:
        return [s.ward for s in self.suggestions]


def split_kind(folded: str) -> tuple[str | None, str]:
    """"phuong ben thanh" → ("phường", "ben thanh"); "ben thanh" → (None, "ben thanh")."""
    match = _KIND_WORD.match(folded)
    if not match:
        return None, folded
    return WARD_KINDS[match.group(1)], folded[match.end():]


class NameIndex:
    """The folded names of every ward, searched in a few milliseconds (rapidfuzz's C scorers)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._wards = list(catalog.wards.values())
        self._bare = [split_kind(fold(w.name))[1] for w in self._wards]

    @lru_cache(maxsize=32)
    def _choices(self, allowed: frozenset[str] | None) -> _Choices:
        """The names of the wards a deployment serves, ready to search (cached: a deployment asks with one set)."""
        positions = [i for i, w in enumerate(self._wards) if allowed is None or w.code in allowed]
        names = [self._bare[i] for i in positions]
        # Each name as "\n name", one after the other: a part of a name is then found by one str.find per hit
        # in C, not by a Python test of each of 3,321 names (that loop was half of a lookup).
        starts = list(accumulate((len(name) + 2 for name in names[:-1]), initial=0))
        return _Choices(positions, names, [" ".join(sorted(name.split())) for name in names],
                        "".join(f"\n {name}" for name in names), starts)

    def search(self, query: str, *, within: Iterable[str] | None = None, limit: int = 8) -> NameSearch:
        """Wards named like the query, exact names first, then the closest spellings."""
        allowed = self.catalog.allowed(within)
        text, _, place = query.partition(",")  # "ben thanh, ho chi minh": the part after a comma narrows
        kind, wanted = split_kind(fold(text))
        province = province_named(self.catalog, place) if place.strip() else None
        if not wanted:
            return NameSearch(query, ())
        choices = self._choices(allowed)
        positions, names = choices.positions, choices.names
        scored: dict[int, float] = {}
        # token_sort_ratio, with the names' words sorted once here rather than on every lookup.
        for _, score, at in process.extract(" ".join(sorted(wanted.split())), choices.sorted_words,
                                            scorer=fuzz.ratio, limit=max(limit * 4, 40), score_cutoff=MIN_SCORE):
            scored[positions[at]] = 100.0 if names[at] == wanted else min(score, 99.0)
        if len(wanted) >= 3:  # part of a name, as the configured-areas search has always allowed
            padded, text = f" {wanted}", choices.text
            hit = text.find(padded)
            while hit >= 0:
                at = bisect_right(choices.starts, hit) - 1
                if names[at] != wanted:
                    part = PREFIX_SCORE if hit == choices.starts[at] + 1 else PART_SCORE
                    scored[positions[at]] = max(scored.get(positions[at], 0.0), part)
                hit = text.find(padded, choices.starts[at + 1] if at + 1 < len(names) else len(text))
        found = []
        for position, score in scored.items():
            ward = self._wards[position]
            if province is not None and ward.province.code != province.code:
                continue
            if kind is not None and ward.kind != kind:
                score -= 5  # "xa Ben Thanh" still finds Phường Bến Thành, after any commune of that name
            found.append(Suggestion(ward, score))
        found.sort(key=lambda s: (-s.score, len(s.ward.name), s.ward.code))
        return NameSearch(query, tuple(found[:limit]))


def province_named(catalog: Catalog, text: str) -> Province | None:
    """A province by name, with or without accents or its kind ("tinh Lao Cai", "TP HCM", "ha noi")."""
    folded = fold(text)
    folded = PROVINCE_ALIASES.get(folded, folded)
    folded = re.sub(r"^(tinh|thanh pho|tp)\s+", "", folded)
    folded = PROVINCE_ALIASES.get(folded, folded)
    names = {fold(p.short_name): p for p in catalog.provinces.values()}
    if folded in names:
        return names[folded]
    best = process.extractOne(folded, list(names), scorer=fuzz.ratio, score_cutoff=85)
    return names[best[0]] if best else None
