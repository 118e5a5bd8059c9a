"""No two modules of bot/ import each other, directly or round a longer loop (tests/test_layers.py checks the
packages; a circle inside bot/, such as the one telegram.py and the reminder dispatcher once made, it cannot see)."""

from __future__ import annotations

from tests.test_layers import imported_modules, project_modules


def circles(modules: dict[str, str], within: str) -> list[list[str]]:
    """Every loop of imports among the modules under ``within`` (each found once, from its smallest name)."""
    names = {name for name in modules if name == within or name.startswith(within + ".")}
    edges = {name: sorted({target for target in imported_modules(modules[name], name) if target in names} - {name})
             for name in names}
    found = []

    def walk(path: list[str]) -> None:
        for target in edges[path[-1]]:
            if target == path[0]:
                found.append(path[:])
            elif target not in path and target > path[0]:
                walk(path + [target])
    for start in sorted(names):
        walk([start])
    return found


def test_no_module_of_bot_imports_one_that_imports_it_back():
    assert circles(project_modules(), "bot") == []


def test_the_check_finds_a_circle_of_two_and_of_three():
    two = {"bot.a": "from bot.b import X", "bot.b": "def f():\n    from bot.a import Y\n"}
    three = {"bot.a": "import bot.b", "bot.b": "import bot.c", "bot.c": "import bot.a", "bot.d": "import bot.a"}
    assert circles(two, "bot") == [["bot.a", "bot.b"]]
    assert circles(three, "bot") == [["bot.a", "bot.b", "bot.c"]]
