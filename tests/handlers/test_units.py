"""A unit's scope, the unit and every unit below it, is what a supervisor's /next, /queue and /tip may reach."""

from __future__ import annotations

from handlers.areas import Area, AreaIndex
from handlers.units import Unit, UnitTree


def test_a_units_scope_is_the_same_however_often_it_is_asked_and_whatever_a_caller_does_with_it():
    areas = AreaIndex([Area("79", "Tỉnh"), Area("79.1", "Phường 1", "79"), Area("79.2", "Phường 2", "79"),
                       Area("79.2.1", "Khu phố 1", "79.2")])
    tree = UnitTree([Unit("top", "Tỉnh", None, ("79",)), Unit("w1", "Phường 1", "top", ("79.1",)),
                     Unit("w2", "Phường 2", "top", ("79.2",)), Unit("kp1", "Khu phố 1", "w2", ("79.2.1",))], areas)
    first = tree.subtree("top")
    first.remove("w1")
    assert tree.subtree("top") == ["top", "w1", "w2", "kp1"]
    assert tree.subtree("w2") == ["w2", "kp1"]
    assert tree.subtree("kp1") == ["kp1"]
