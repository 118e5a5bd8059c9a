"""The configured areas (province → commune/ward), found by typing part of a name without accents."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# A leading word that only says what kind of unit a place is: "phuong ben thanh" finds "ben thanh".
_PREFIXES = ("thanh pho ", "thi tran ", "dac khu ", "phuong ", "tinh ", "xa ", "tp ", "p ", "x ")


def _strip_prefix(folded: str) -> str:
    return next((folded[len(p):] for p in _PREFIXES if folded.startswith(p)), folded)


def fold(text: str) -> str:
    """Lower-case, without diacritics ("Bến Thành" → "ben thanh"); đ is not a combining mark."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", " ", bare.lower()).strip()


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    parent: str | None = None


class AreaIndex:
    """Search over the configured areas; a province's name is shown beside its wards."""

    def __init__(self, areas: list[Area]) -> None:
        self.areas = {a.code: a for a in areas}
        self._folded = {a.code: fold(a.name) for a in areas}

    def get(self, code: str) -> Area | None:
        return self.areas.get(code)

    def display(self, code: str) -> str:
        area = self.areas.get(code)
        if area is None:
            return code
        parent = self.areas.get(area.parent) if area.parent else None
        return f"{area.name}, {parent.name}" if parent else area.name

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
