"""The areas and units every test works with, and the config.toml an operator would write for them."""

from __future__ import annotations

from handlers.areas import Area
from handlers.units import Unit

TEST_AREAS = [
    Area("79", "Thành phố Hồ Chí Minh"),
    Area("79.26734", "Phường Bến Thành", "79"),
    Area("79.26737", "Phường Sài Gòn", "79"),
    Area("79.26740", "Phường Tân Định", "79"),
    Area("79.27154", "Phường Bàn Cờ", "79"),
    Area("79.27580", "Xã Cần Giờ", "79"),
    Area("79.26800", "Phường Bến Thành Mới", "79"),
    Area("01", "Thành phố Hà Nội"),
    Area("01.00070", "Phường Hoàn Kiếm", "01"),
]

TEST_UNITS = [
    Unit("ca-hcm", "Công an Thành phố Hồ Chí Minh", None, ("79",)),
    Unit("ca-benthanh", "Công an phường Bến Thành", "ca-hcm", ("79.26734",)),
    Unit("ca-saigon", "Công an phường Sài Gòn", "ca-hcm", ("79.26737",)),
    Unit("ca-hn", "Công an Thành phố Hà Nội", None, ("01",)),
]


def config_toml(database_url: str, *, extra: str = "") -> str:
    """config.toml with the test areas and units, data and keyring beside it, and ``extra`` sections."""
    lines = ['[bot]', 'data_dir = "./data"', 'keyring = "./keyring.json"', '', '[database]',
             f'url = "{database_url}"', '']
    for area in TEST_AREAS:
        lines += ['[[areas]]', f'code = "{area.code}"', f'name = "{area.name}"']
        lines += [f'parent = "{area.parent}"'] if area.parent else []
    for unit in TEST_UNITS:
        lines += ['[[units]]', f'id = "{unit.id}"', f'name = "{unit.name}"']
        lines += [f'parent = "{unit.parent}"'] if unit.parent else []
        lines += ['areas = [' + ", ".join(f'"{code}"' for code in unit.areas) + ']']
    return "\n".join(lines) + "\n\n" + extra
