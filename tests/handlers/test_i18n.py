"""The Vietnamese catalog keeps up with the code: every text marked with _() or N_() in the sources
named by babel.cfg has a Vietnamese translation with the same {placeholders}.

When a test here fails after a new text was added, update the catalog as handlers/locales/README.md says.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

try:  # Babel >= 2.15
    from babel.messages.frontend import parse_mapping_cfg
except ImportError:  # pragma: no cover
    from babel.messages.frontend import parse_mapping as parse_mapping_cfg

from handlers.i18n import contextual, number, translator

ROOT = Path(__file__).resolve().parents[2]
BABEL_CFG = ROOT / "babel.cfg"
VI_PO = ROOT / "handlers" / "locales" / "vi" / "LC_MESSAGES" / "tinbao.po"
# The same keywords as the extract command (pybabel extract --no-default-keywords -k _ -k N_ -k NC_:1c,2).
KEYWORDS = {"_": None, "N_": None, "NC_": ((1, "c"), 2)}


@cache
def extracted() -> dict[tuple[str | None, str], list[str]]:
    """(msgctxt, msgid) → where it is used ("handlers/citizen/tipoff.py:168"), extracted as pybabel extract does."""
    with BABEL_CFG.open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, str(BABEL_CFG))
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        assert isinstance(message, str), f"{filename}:{lineno}: plural messages are not supported: {message!r}"
        found.setdefault((context, message), []).append(f"{filename}:{lineno}")
    return found


@cache
def vi_catalog():
    with VI_PO.open("rb") as fh:
        return read_po(fh, locale="vi")


def placeholders(text: str) -> set[str]:
    """The replacement fields of a str.format template, as written: "{lat:.5f}", "{code}"."""
    fields = set()
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            fields.add("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    return fields


def test_sources_have_messages():
    messages = extracted()
    assert (None, "Done") in messages and ("command menu", "Help") in messages, "babel.cfg no longer maps handlers/**.py, or the keywords changed"
    assert len(messages) >= 50


def test_every_message_has_a_vietnamese_translation():
    catalog = vi_catalog()
    missing = []
    for (context, msgid), where in sorted(extracted().items(), key=lambda item: (item[0][0] or "", item[0][1])):
        message = catalog.get(msgid, context=context)
        if message is None:
            missing.append(f"{msgid!r} ({', '.join(where)}): not in the .po")
        elif message.fuzzy:
            missing.append(f"{msgid!r} ({', '.join(where)}): fuzzy, review it and drop the fuzzy flag")
        elif not (message.string or "").strip():
            missing.append(f"{msgid!r} ({', '.join(where)}): no Vietnamese text")
    assert not missing, (f"{len(missing)} text(s) without a Vietnamese translation in {VI_PO.relative_to(ROOT)} "
                         "(see handlers/locales/README.md):\n" + "\n".join(missing))


def test_no_fuzzy_entries():
    fuzzy = [m.id for m in vi_catalog() if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy entries are ignored at runtime; review them and drop the flag: {fuzzy}"


def test_placeholders_match():
    wrong = []
    for message in vi_catalog():
        if not message.id or not message.string:
            continue
        try:
            expected, got = placeholders(message.id), placeholders(message.string)
        except ValueError as exc:  # an unbalanced { or } in the translation
            wrong.append(f"{message.id!r}: {exc}")
            continue
        if expected != got:
            wrong.append(f"{message.id!r}: missing {sorted(expected - got)}, unknown {sorted(got - expected)}")
    assert not wrong, "placeholders differ between msgid and msgstr:\n" + "\n".join(wrong)


def test_line_breaks_match():
    wrong = [message.id for message in vi_catalog()
             if message.id and message.string and message.id.count("\n") != message.string.count("\n")]
    assert not wrong, f"keep the line breaks of the English text: {wrong}"


def test_translator():
    vi, en = translator("vi"), translator("en")
    assert vi("Done") == "Xong"
    assert vi("Your tip was cancelled and deleted. Send /report to start again.") == (
        "Tin báo đã được hủy và xóa. Gửi /report để bắt đầu lại.")
    assert en("Done") == "Done"
    assert en("Report a crime") == "Report a crime"
    assert vi("A text nobody translated") == "A text nobody translated"
    # The runtime sees exactly what the .po says, for every message.
    for message in vi_catalog():
        if message.id and message.string and not message.fuzzy and message.context:
            assert contextual("vi", message.context, message.id) == message.string
            assert contextual("en", message.context, message.id) == message.id
        elif message.id and message.string and not message.fuzzy:
            assert vi(message.id) == message.string
            assert en(message.id) == message.id


def test_numbers_are_grouped_as_each_language_writes_them():
    assert [number(n, "vi") for n in (7, 10_000, 1_234_567)] == ["7", "10.000", "1.234.567"]
    assert [number(n, "en") for n in (7, 10_000, 1_234_567)] == ["7", "10,000", "1,234,567"]
    assert number(10_000, "fr") == "10,000"  # a language tinbao does not speak is written as English


def test_the_compiled_catalog_is_the_vietnamese_catalog_as_it_stands():
    """Workers read tinbao.mo (handlers/i18n.py): compiled from tinbao.po as it is now, byte for byte, so a
    translation changed without `pybabel compile` fails here instead of reaching no citizen."""
    import io

    from babel.messages.mofile import write_mo

    from handlers.i18n import LOCALES
    folder = LOCALES / "vi" / "LC_MESSAGES"
    compiled = io.BytesIO()
    write_mo(compiled, vi_catalog())  # what `pybabel compile` writes: fuzzy entries left out
    assert (folder / "tinbao.mo").read_bytes() == compiled.getvalue(), (
        "handlers/locales/vi/LC_MESSAGES/tinbao.mo is stale: run "
        "`.venv/bin/pybabel compile -d handlers/locales -D tinbao -l vi`")


def test_an_empty_text_stays_empty_and_a_menu_text_keeps_its_context():
    assert translator("vi")("") == ""  # not the catalog's header
    assert contextual("vi", "command menu", "Help") != "Help"
    assert contextual("en", "command menu", "Help") == "Help"
