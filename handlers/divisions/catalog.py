"""The shipped list of Vietnam's 34 provinces and 3,321 communes, wards and special zones (since 1 July 2025)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

DATA = resources.files("handlers.divisions") / "data"


def read_tsv(name: str) -> list[list[str]]:
    """The rows of a shipped table, without its header line."""
    text = (DATA / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()[1:] if line]


@dataclass(frozen=True, slots=True)
class Province:
    code: str  # the statistics office's code, two digits: "79"
    name: str  # "Thành phố Hồ Chí Minh"
    kind: str  # "tỉnh" or "thành phố"

    @property
    def short_name(self) -> str:
        """The name without its kind: "Hồ Chí Minh"."""
        return self.name[len(self.kind) + 1:] if self.name.lower().startswith(self.kind) else self.name


@dataclass(frozen=True, slots=True)
class Ward:
    """A commune-level unit: a ward (phường), a commune (xã) or a special zone (đặc khu)."""

    code: str  # the statistics office's code, five digits: "26743"
    name: str  # "Phường Bến Thành"
    kind: str  # "phường", "xã" or "đặc khu"
    province: Province
    lat: float  # inside the ward (its centroid where that lies inside)
    lon: float
    area_km2: float | None

    @property
    def short_name(self) -> str:
        """The name without its kind: "Bến Thành"."""
        return self.name[len(self.kind) + 1:] if self.name.lower().startswith(self.kind) else self.name

    @property
    def display(self) -> str:
        """How a citizen is asked to confirm it: "Phường Bến Thành, Thành phố Hồ Chí Minh"."""
        return f"{self.name}, {self.province.name}"


class Catalog:
    """Every province and commune-level unit by official code; read once, on first use."""

    def __init__(self, provinces: Iterable[Province], wards: Iterable[Ward]) -> None:
        self.provinces = {p.code: p for p in provinces}
        self.wards = {w.code: w for w in wards}

    @classmethod
    def load(cls) -> Catalog:
        provinces = {code: Province(code=code, name=_nfc(name), kind=kind)
                     for code, kind, name in read_tsv("provinces.tsv")}
        wards = [Ward(code=code, name=_nfc(name), kind=kind, province=provinces[province], lat=float(lat),
                      lon=float(lon), area_km2=float(area) if area else None)
                 for code, province, kind, name, lat, lon, area in read_tsv("wards.tsv")]
        return cls(provinces.values(), wards)

    def ward(self, code: str) -> Ward | None:
        return self.wards.get(code)

    def province(self, code_or_name: str) -> Province | None:
        """A province by its code ("79", "1") or its name with or without accents ("ho chi minh", "TP HCM")."""
        from handlers.divisions.search import province_named
        key = code_or_name.strip()
        if key.isdigit():
            return self.provinces.get(key.zfill(2))
        return province_named(self, key)

    def wards_of(self, province_code: str) -> list[Ward]:
        return self._by_province.get(province_code, [])

    @cached_property
    def _by_province(self) -> dict[str, list[Ward]]:
        grouped: dict[str, list[Ward]] = {}
        for ward in self.wards.values():
            grouped.setdefault(ward.province.code, []).append(ward)
        return grouped

    def allowed(self, within: Iterable[str] | None) -> frozenset[str] | None:
        """The ward codes a deployment serves: its ward codes, and every ward of a province code it lists."""
        if within is None:
            return None
        codes = set()
        for code in within:
            if code in self.wards:
                codes.add(code)
            elif code in self.provinces:
                codes.update(w.code for w in self.wards_of(code))
        return frozenset(codes)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


_catalog: Catalog | None = None


def national() -> Catalog:
    """The whole country, loaded on the first call (about 10 ms) and kept."""
    global _catalog
    if _catalog is None:
        _catalog = Catalog.load()
    return _catalog
