"""Imports go bot → handlers → storage, never back, as the README and DESIGN say; handlers and storage
import no messenger library and no HTTP client. Read from the source of every module with `ast` (also
imports inside functions and under TYPE_CHECKING, and importlib calls); then at run time, for what no
reading of the source sees (a module name built by the code): a fresh interpreter that has imported every
module of storage, then of handlers, holds nothing above them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "storage")
ALLOWED = {("bot", "handlers"), ("bot", "storage"), ("handlers", "storage")}
# What talks to a platform or the network: only bot/ may.
PLATFORM_LIBRARIES = {"aiogram", "aiohttp", "telegram", "httpx", "requests", "urllib3", "websockets"}
FORBIDDEN_LIBRARIES = {"handlers": PLATFORM_LIBRARIES, "storage": PLATFORM_LIBRARIES}


def imported_modules(source: str, module: str) -> set[str]:
    """Every module a source file names in an import, relative ones resolved, importlib calls included."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0] if "." in module else module
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module")))):
            found.add(node.args[0].value)
    return found


def layer_problems(modules: dict[str, str]) -> list[str]:
    """What breaks the layering among these modules (name → source); [] when nothing does."""
    problems, edges = [], set()
    for module, source in sorted(modules.items()):
        own = module.split(".")[0]
        for name in sorted(imported_modules(source, module)):
            top = name.split(".")[0]
            if top in PACKAGES and top != own:
                edges.add((own, top))
                if (own, top) not in ALLOWED:
                    problems.append(f"{module} imports {name}: {own} must not import {top}")
            if top in FORBIDDEN_LIBRARIES.get(own, ()):
                problems.append(f"{module} imports {name}: {own} talks to no platform or network")
    # And no circle among the packages, whatever edges the rules above allow.
    for start in PACKAGES:
        frontier, seen = [start], set()
        while frontier:
            for source_package, target in edges:
                if source_package == frontier[-1] and target not in seen:
                    if target == start:
                        problems.append(f"an import circle runs through {start}")
                    seen.add(target)
                    frontier.append(target)
                    break
            else:
                frontier.pop()
    return problems


def project_modules() -> dict[str, str]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path.read_text(encoding="utf-8")
    return modules


def test_every_package_has_modules_to_check():
    modules = project_modules()
    for package in PACKAGES:
        assert sum(name.startswith(package + ".") for name in modules) >= 5, package
    assert "handlers.router" in modules and "storage.db" in modules and "bot.cli" in modules


def test_imports_go_bot_handlers_storage_and_never_back():
    assert layer_problems(project_modules()) == []


@pytest.mark.parametrize(("module", "source", "problem"), [
    ("handlers.x", "from bot.config import Config", "handlers.x imports bot.config: handlers must not import bot"),
    ("handlers.x", "def f():\n    import aiogram.types\n", "handlers.x imports aiogram.types: handlers talks to"),
    ("handlers.x", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aiohttp import web\n",
     "handlers.x imports aiohttp: handlers talks to"),
    ("storage.x", "from ..handlers import tipoff", "storage.x imports handlers: storage must not import handlers"),
    ("storage.x", "from handlers.areas import fold", "storage must not import handlers"),
    ("storage.x", "import importlib\nimportlib.import_module('bot.runtime')", "storage must not import bot"),
    ("storage.x", "import httpx", "storage.x imports httpx: storage talks to no platform"),
])
def test_the_check_catches_an_import_that_goes_back(module, source, problem):
    problems = layer_problems({module: source, "bot.y": "import handlers.router\nimport storage.db\n"})
    assert any(problem in p for p in problems), problems


def test_the_check_finds_a_circle():
    problems = layer_problems({"storage.x": "import bot.cli", "bot.y": "import storage.db"})
    assert "an import circle runs through storage" in problems


# --- and at run time: what importing a layer really loads -------------------------------------------

LOADER = """
import importlib, pkgutil, sys
for name in sys.argv[1:]:  # in order: after each package, the top-level modules loaded so far
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(info.name)
    print(" ".join(sorted({module.split(".")[0] for module in sys.modules})))
"""


def loaded_by(*packages: str, cwd: Path = ROOT) -> list[set[str]]:
    """The top-level modules a fresh interpreter holds once it has imported every module of the first
    package, then of the next too, and so on: what the reading above cannot see, such as an import whose
    name is built at run time, shows up here."""
    done = subprocess.run([sys.executable, "-c", LOADER, *packages], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [set(line.split()) for line in done.stdout.splitlines()]


def test_importing_all_of_storage_then_handlers_loads_nothing_above_them_and_no_platform_library():
    storage, handlers = loaded_by("storage", "handlers")
    assert "storage" in storage and storage & ({"bot", "handlers"} | PLATFORM_LIBRARIES) == set()
    assert "handlers" in handlers and handlers & ({"bot"} | PLATFORM_LIBRARIES) == set()


def test_the_run_time_check_sees_an_import_the_source_reading_cannot(tmp_path):
    (tmp_path / "planted").mkdir()
    (tmp_path / "planted" / "__init__.py").write_text('import importlib\nimportlib.import_module("bo" + "t")\n')
    assert layer_problems({"storage.planted": (tmp_path / "planted" / "__init__.py").read_text()}) == []
    [loaded] = loaded_by("planted", cwd=tmp_path)
    assert "bot" in loaded
