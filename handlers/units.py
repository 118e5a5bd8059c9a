"""Police units as a tree over the areas: a tip goes to the unit of its area, else up the tree."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.areas import AreaIndex, with_all_below


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    parent: str | None = None
    areas: tuple[str, ...] = ()


class UnitTree:
    def __init__(self, units: list[Unit], areas: AreaIndex) -> None:
        self.units = {u.id: u for u in units}
        self._areas = areas
        self._by_area = {code: u.id for u in units for code in u.areas}
        self._root = next((u.id for u in units if u.parent is None), None)
        self._subtrees: dict[str, tuple[str, ...]] = {}

    def get(self, unit_id: str | None) -> Unit | None:
        return self.units.get(unit_id or "")

    def name(self, unit_id: str | None) -> str:
        unit = self.get(unit_id)
        return unit.name if unit else "—"

    def route(self, area_code: str) -> str | None:
        """The unit of the area; else of its parent area (a province); else the top unit."""
        code: str | None = area_code
        while code:
            if code in self._by_area:
                return self._by_area[code]
            area = self._areas.get(code)
            code = area.parent if area else None
        return self._root

    def province_of(self, unit_id: str) -> str:
        """The top of the unit's tree: its province police (units form one tree per province)."""
        seen: set[str] = set()
        while (unit := self.units.get(unit_id)) is not None and unit.parent and unit.parent not in seen:
            seen.add(unit_id)
            unit_id = unit.parent
        return unit_id

    def subtree(self, unit_id: str) -> list[str]:
        """The unit and every unit below it."""
        below = self._subtrees.get(unit_id)
        if below is None:  # the tree never changes once built, and every supervisor's command asks this again
            below = self._subtrees[unit_id] = tuple(with_all_below(unit_id, ((u.id, u.parent)
                                                                             for u in self.units.values())))
        return list(below)  # the caller's own list: changing it changes no one else's scope
