"""Texts people read, from gettext catalogs: Vietnamese first, English second.

Message ids are the English texts; ``locales/vi/LC_MESSAGES/tinbao.po`` holds the Vietnamese.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"


@cache
def _catalog(lang: str) -> dict[str, str]:
    path = LOCALES / lang / "LC_MESSAGES" / "tinbao.po"
    if not path.exists():
        return {}
    return _read_po(path.read_text(encoding="utf-8"))


_ESCAPE = re.compile(r'\\([\\abfnrtv"])')
_ESCAPED = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unquoted(line: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPED.get(m[1], m[1]), line[1:-1])


def _read_po(text: str) -> dict[str, str]:
    """The translated, not fuzzy messages of a .po file, read as Babel's ``read_po`` reads them; a message with
    a context (msgctxt) is keyed as gettext keys it: context, EOT, id. Babel's reader is not used: it brings
    Babel's catalogues and dates with it, ~1 MB in every worker for one read at start (bench/RESULTS.md)."""
    messages: dict[str, tuple[str, bool]] = {}  # key → (text, fuzzy)
    parts: dict[str, list[str]] = {}  # "msgctxt", "msgid", "msgid_plural", "msgstr", "msgstr[N]" → quoted lines
    flags: list[str] = []
    lines: list[str] = []  # the quoted lines of the keyword being read
    obsolete = False

    def finish() -> None:
        if "msgid" not in parts:
            return
        msgid = "".join(map(_unquoted, parts["msgid"]))
        # Plurals are left out (tinbao has no ngettext), and so are obsolete (#~) messages and the header.
        if msgid and not obsolete and "msgid_plural" not in parts:
            key = f"{''.join(map(_unquoted, parts['msgctxt']))}\x04{msgid}" if "msgctxt" in parts else msgid
            text, fuzzy = "".join(map(_unquoted, parts.get("msgstr", ()))), "fuzzy" in flags
            if key in messages:  # as Babel: a repeated message keeps its first text and gains the other's flags
                text, fuzzy = messages[key][0], messages[key][1] or fuzzy
            messages[key] = (text, fuzzy)
        parts.clear(), flags.clear()

    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#") and not line.startswith("#~"):
            finish()
            if line.startswith("#,"):
                flags.extend(flag.strip() for flag in line[2:].lstrip().split(","))
            continue
        is_obsolete = line.startswith("#~")
        if is_obsolete:
            line = line[2:].lstrip()
            if not line:
                continue
        if line.startswith('"'):
            lines.append(line)
            continue
        keyword, _, argument = line.partition(" ")
        if keyword in ("msgid", "msgctxt"):
            finish()
        obsolete = is_obsolete
        lines = parts.setdefault(keyword, [])
        lines.append(argument.strip())
    finish()
    return {key: text for key, (text, fuzzy) in messages.items() if text and not fuzzy}


def translator(lang: str) -> Callable[[str], str]:
    """gettext for one language; an untranslated text falls back to English."""
    table = _catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    return lambda text: table.get(text, text)


def contextual(lang: str, context: str, text: str) -> str:
    """pgettext: the translation of ``text`` where it is used in ``context``; English falls back to the id."""
    table = _catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    return table.get(f"{context}\x04{text}", text)


@cache
def _number_locale(lang: str):
    # Parsed once: given a locale's name, Babel parses it again at every call, half of what a number cost.
    from babel import Locale
    return Locale.parse("vi_VN" if lang == "vi" else "en_US")


def number(value: int, lang: str) -> str:
    """10000 → "10.000" in Vietnamese, "10,000" in English."""
    # Babel and its locale data (~4 MB) load at the first number a worker shows, not in every idle worker.
    from babel.numbers import format_decimal
    return format_decimal(value, locale=_number_locale("vi" if lang == "vi" else "en"))


def pick_language(chosen: str | None, platform_hint: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The chat's own choice, else the client's language when we speak it, else the tip line's default."""
    if chosen in LANGUAGES:
        return chosen
    hint = (platform_hint or "").lower()[:2]
    return hint if hint in LANGUAGES else default


def N_(text: str) -> str:
    """Marks a text for extraction where it is translated later."""
    return text
