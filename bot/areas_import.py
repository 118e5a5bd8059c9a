"""`tinbao areas import`: the official [[areas]] of whole provinces, and a starting [[units]] tree, for config.toml."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.config import ConfigError, load_config
from handlers.areas import fold
from handlers.divisions import Province, Ward, national

UNIT_ID_LIMIT = 32  # bot.config.UnitEntry.id
_TABLE = re.compile(r"^\s*\[")
_OURS = re.compile(r"^\s*\[\[(areas|units)\]\]\s*(#.*)?$")


def provinces_for(wanted: Sequence[str], *, everything: bool) -> list[Province]:
    """The provinces named on the command line by code ("79") or name ("ho chi minh"), or all 34."""
    catalog = national()
    if everything:
        return sorted(catalog.provinces.values(), key=lambda p: p.code)
    found = []
    for key in wanted:
        province = catalog.province(key)
        if province is None:
            raise ConfigError(f'--province {key}: no such province (give its code, e.g. 79, or its name, '
                              f'e.g. "Hồ Chí Minh"; 34 since 1 July 2025)')
        if province not in found:
            found.append(province)
    return found


def _slug(text: str) -> str:
    return fold(text).replace(" ", "-")


def unit_name(place: Province | Ward) -> str:
    """"Công an phường Bến Thành", "Công an tỉnh Lào Cai", "Công an Thành phố Hồ Chí Minh"."""
    if isinstance(place, Province):
        return f"Công an {place.name}" if place.kind == "thành phố" else f"Công an tỉnh {place.short_name}"
    return f"Công an {place.kind} {place.short_name}"


def _unit_ids(provinces: list[Province]) -> dict[str, str]:
    """Area code → unit id: "ca-ben-thanh"; with the kind ("ca-xa-tan-phu"), then the code, where a name repeats."""
    from collections import Counter
    catalog, ids = national(), {}
    wards = [w for p in provinces for w in catalog.wards_of(p.code)]
    short = Counter(_slug(w.short_name) for w in wards)
    full = Counter(_slug(w.name) for w in wards)
    for province in provinces:
        ids[province.code] = f"ca-{_slug(province.short_name)}"
    for ward in wards:
        if short[_slug(ward.short_name)] == 1:
            ids[ward.code] = f"ca-{_slug(ward.short_name)}"
        elif full[_slug(ward.name)] == 1:
            ids[ward.code] = f"ca-{_slug(ward.name)}"
        else:
            ids[ward.code] = f"ca-{_slug(ward.short_name)}-{ward.code}"
    seen: set[str] = set()
    for code, unit_id in ids.items():  # an id cut to the limit may meet another: the code keeps it unique
        if len(unit_id) > UNIT_ID_LIMIT or unit_id in seen:
            unit_id = f"ca-{code}"
        ids[code] = unit_id
        seen.add(unit_id)
    return ids


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string is a JSON string


def areas_toml(provinces: list[Province], *, progress: Callable[[int], None] = lambda n: None) -> str:
    """[[areas]] with official codes (province, then its communes and wards) and one police unit for each."""
    catalog = national()
    ids = _unit_ids(provinces)
    areas = ["# Areas and units written by `tinbao areas import` from the official list (1 July 2025).",
             "# The codes are the statistics office's: never change one once tips refer to it.", ""]
    units = ["# One police unit per commune or ward under its province's police: rename, merge or drop them",
             "# to match how your force is organised (a tip from an area without a unit goes to the province).", ""]
    for province in provinces:
        areas += ["[[areas]]", f"code = {_quote(province.code)}", f"name = {_quote(province.name)}", ""]
        units += ["[[units]]", f"id = {_quote(ids[province.code])}", f"name = {_quote(unit_name(province))}",
                  f"areas = [{_quote(province.code)}]", ""]
        for ward in sorted(catalog.wards_of(province.code), key=lambda w: w.code):
            areas += ["[[areas]]", f"code = {_quote(ward.code)}", f"name = {_quote(ward.name)}",
                      f"parent = {_quote(province.code)}", ""]
            units += ["[[units]]", f"id = {_quote(ids[ward.code])}", f"name = {_quote(unit_name(ward))}",
                      f"parent = {_quote(ids[province.code])}", f"areas = [{_quote(ward.code)}]", ""]
        progress(1)
    return "\n".join(areas + units)


def without_areas(text: str) -> tuple[str, int, int]:
    """The config text with its [[areas]] and [[units]] tables cut out, where they began, and how many areas."""
    lines = text.splitlines(keepends=True)
    kept, cutting, first, count = [], False, None, 0
    for line in lines:
        if _OURS.match(line):
            cutting = True
            count += line.strip().startswith("[[areas]]")
            first = len(kept) if first is None else first
            continue
        if cutting and _TABLE.match(line):
            cutting = False
        if cutting and not line.lstrip().startswith("#") and line.strip():
            continue  # a key of the table being cut
        kept.append(line)  # comment lines stay: the example's own explanations of the two lists
    return "".join(kept), (len(kept) if first is None else first), count


def write_into(path: Path, generated: str, *, replace: bool) -> int:
    """Put the generated tables into config.toml, refusing to drop an existing [[areas]] list unless asked."""
    text = path.read_text(encoding="utf-8")
    rest, at, count = without_areas(text)
    if count and not replace:
        raise ConfigError(f"{path} already has {count} [[areas]] entries; keeping them and their codes "
                          f"(add --replace to write the official list and its units instead)")
    lines = rest.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    new_text = "".join(lines[:at]) + generated + "\n" + "".join(lines[at:])
    # Written beside it and checked before it replaces the file: a broken config never stops the bot.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(new_text)
        try:
            load_config(temporary, environ={})
        except ConfigError as exc:  # name the operator's file, not the scratch copy
            raise ConfigError(str(exc).replace(temporary, str(path))) from None
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return count
