"""Texts people read, from gettext catalogs: Vietnamese first, English second.

Message ids are the English texts; ``locales/vi/LC_MESSAGES/tinbao.po`` holds the Vietnamese, compiled to the
``tinbao.mo`` beside it (handlers/locales/README.md).
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from pathlib import Path

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"


@cache
def _translations(lang: str) -> gettext.NullTranslations:
    # The compiled catalog, read by the standard library's gettext: the .po and Babel, which compiles it, stay
    # out of every worker (Babel's reader alone is ~1 MB of idle memory, bench/RESULTS.md).
    path = LOCALES / lang / "LC_MESSAGES" / "tinbao.mo"
    if not path.exists():
        return gettext.NullTranslations()  # English: the msgids are the English texts
    with path.open("rb") as fh:
        return gettext.GNUTranslations(fh)


def translator(lang: str) -> Callable[[str], str]:
    """gettext for one language; an untranslated text falls back to English."""
    found = _translations(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).gettext
    return lambda text: found(text) if text else text  # gettext's "" is the catalog's header, never a text


def contextual(lang: str, context: str, text: str) -> str:
    """pgettext: the translation of ``text`` where it is used in ``context``; English falls back to the id."""
    return _translations(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).pgettext(context, text)


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
