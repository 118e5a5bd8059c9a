"""One scan for canaries: each canary in every form the bot could store or show it, searched in every place
a leak could sit (the database's tables, its SQLite file with -wal and -shm, the blob folder, the logs).

A phone number is the case that taught us this: a citizen types ``0987650123``, Telegram sends
``+84987650123`` or ``84987650123``, the bot keeps it without spaces; a scan for the typed form alone
could never find the others.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")


@dataclass(frozen=True)
class Canary:
    """A string that must never be found, with every form of it that counts as found."""

    name: str
    forms: tuple[str, ...]


def text_canary(name: str, value: str) -> Canary:
    """A piece of text, as sent and in both Unicode normal forms (the bot normalises text to NFC)."""
    forms = dict.fromkeys([value, unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)])
    return Canary(name, tuple(forms))


def phone_canary(name: str, typed: str) -> Canary:
    """A Vietnamese phone number as typed, normalised (+84…, 84…), digits only, and spaced or dotted
    the ways people write it."""
    digits = re.sub(r"\D", "", typed)
    national = digits[1:] if digits.startswith("0") else digits[2:] if digits.startswith("84") else digits
    a, b, c = national[:3], national[3:6], national[6:]
    forms = [typed, "0" + national, "+84" + national, "84" + national, national,
             f"0{a} {b} {c}", f"0{a[:2]} {a[2:]}{b} {c}", f"+84 {a} {b} {c}", f"0{a}.{b}.{c}", f"0{a}-{b}-{c}",
             f"+84 {national}", f"(+84) {national}"]
    return Canary(name, tuple(dict.fromkeys(forms)))


def number_canary(name: str, value: int | str) -> Canary:
    """An id (a chat id, a user id): its digits, and with a minus sign for a group's id."""
    digits = str(value).lstrip("-")
    return Canary(name, tuple(dict.fromkeys([str(value), digits])))


def findings(canaries: list[Canary], places: dict[str, bytes]) -> list[str]:
    """Where each canary was found, one line per (canary, place): empty when nothing leaked."""
    found = []
    for canary in canaries:
        for place, content in places.items():
            hit = next(((form, encoding) for form in canary.forms for encoding in ENCODINGS
                        if form.encode(encoding) in content), None)
            if hit is not None:
                found.append(f"{canary.name} ({hit[0]!r}, {hit[1]}) found in {place}")
    return found


def assert_none_found(canaries: list[Canary], places: dict[str, bytes]) -> None:
    assert places, "nothing was searched"
    leaks = findings(canaries, places)
    assert not leaks, "\n".join(leaks)


def _as_bytes(value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)  # sealed columns: searched as stored, not as PostgreSQL's \x… text of them
    return str(value).encode("utf-8")


async def database_places(db) -> dict[str, bytes]:
    """Every table of the database as its values' bytes (all tables, not only those the models know),
    and on SQLite the database file with its -wal and -shm as they are on disk."""
    places: dict[str, bytes] = {}
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            names = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).scalars().all()
        else:
            names = (await conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))).scalars().all()
        for name in names:
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()
            places[f"table {name}"] = b"\x1f".join(_as_bytes(value) for row in rows for value in row)
    if db.is_sqlite:
        database = db.engine.url.database
        for suffix in ("", "-wal", "-shm"):
            path = Path(database + suffix)
            if path.exists():
                places[path.name] = path.read_bytes()
    return places


def folder_places(root: Path, label: str) -> dict[str, bytes]:
    """Every file under ``root``, named ``label/relative path``."""
    if not root.exists():
        return {}
    return {f"{label}/{path.relative_to(root)}": path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file()}


def text_places(**texts: str) -> dict[str, bytes]:
    """Captured text (logs, stderr) by name."""
    return {name: value.encode("utf-8", "surrogatepass") for name, value in texts.items()}
