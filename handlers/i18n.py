"""Texts people read, from gettext catalogs (Babel): Vietnamese first, English second.

Message ids are the English texts; ``locales/vi/LC_MESSAGES/tinbao.po`` holds the Vietnamese.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"


@cache
def _catalog(lang: str) -> dict[str, str]:
    path = LOCALES / lang / "LC_MESSAGES" / "tinbao.po"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    # A message with a context (msgctxt) is keyed as gettext keys it: context, EOT, id.
    return {f"{m.context}\x04{m.id}" if m.context else m.id: m.string
            for m in catalog if m.id and m.string and not m.fuzzy}


def translator(lang: str) -> Callable[[str], str]:
    """gettext for one language; an untranslated text falls back to English."""
    table = _catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    return lambda text: table.get(text, text)


def contextual(lang: str, context: str, text: str) -> str:
    """pgettext: the translation of ``text`` where it is used in ``context``; English falls back to the id."""
    table = _catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    return table.get(f"{context}\x04{text}", text)


# Parsed once: given a locale's name, Babel parses it again at every call, half of what a number cost.
_NUMBER_LOCALES = {"vi": Locale.parse("vi_VN"), "en": Locale.parse("en_US")}


def number(value: int, lang: str) -> str:
    """10000 → "10.000" in Vietnamese, "10,000" in English."""
    return format_decimal(value, locale=_NUMBER_LOCALES["vi" if lang == "vi" else "en"])


def pick_language(chosen: str | None, platform_hint: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The chat's own choice, else the client's language when we speak it, else the tip line's default."""
    if chosen in LANGUAGES:
        return chosen
    hint = (platform_hint or "").lower()[:2]
    return hint if hint in LANGUAGES else default


def N_(text: str) -> str:
    """Marks a text for extraction where it is translated later."""
    return text
