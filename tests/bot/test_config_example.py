"""config.example.toml is the one documented source of every setting: `tinbao init` writes exactly it, the
top-level copy is the packaged one, and it shows each setting of bot/config.py with its default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from pydantic import SecretStr

from bot.cli import EXAMPLE_CONFIG
from bot.config import ENV_OVERRIDES, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"areas", "units"}  # lists of entries, with their own examples


def _example_settings() -> dict[str, object]:
    raw = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return {f"{section}.{key}": value for section, table in raw.items() if isinstance(table, dict)
            for key, value in table.items()}


def _commented_settings() -> set[str]:
    """Settings shown as `# key = …` under their [section]: optional, with no value by default."""
    found, section = set(), None
    for line in EXAMPLE_CONFIG.read_text(encoding="utf-8").splitlines():
        if heading := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = heading[1]
        elif section and (key := re.fullmatch(r"#\s*(\w+)\s*=.*", line.strip())):
            found.add(f"{section}.{key[1]}")
    return found


def _shown(default: object) -> object:
    if isinstance(default, SecretStr):
        return default.get_secret_value()
    return default


def test_the_top_level_example_is_the_packaged_one():
    assert (ROOT / "config.example.toml").read_bytes() == EXAMPLE_CONFIG.read_bytes()


def test_the_example_shows_every_setting_with_its_default():
    example, commented = _example_settings(), _commented_settings() & set(SETTINGS)
    current = {key: field for key, field in SETTINGS.items()
               if key not in TABLES and not (field.json_schema_extra or {}).get("retired")}
    assert set(example) - set(SETTINGS) == set(), "keys in the example that tinbao would refuse"
    assert set(current) - set(example) - commented == set(), "settings the example does not show"
    for key, value in example.items():
        default = _shown(SETTINGS[key].get_default(call_default_factory=True))
        if isinstance(default, Path):
            assert Path(value) == default, key
        else:
            assert value == default, key
    for key in commented:
        assert SETTINGS[key].get_default() is None, f"{key} is commented out but has a default"


def test_the_example_names_every_environment_variable_and_its_key():
    listed = dict(re.findall(r"#\s+(TINBAO_\w+)\s+→\s+([\w.]+)", EXAMPLE_CONFIG.read_text(encoding="utf-8")))
    listed.pop("TINBAO_CONFIG")
    assert listed == {variable: ".".join(key) for variable, key in ENV_OVERRIDES.items()}


def test_init_writes_exactly_the_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ENV_OVERRIDES and k != "TINBAO_CONFIG"}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "init"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "config.toml").read_bytes() == (ROOT / "config.example.toml").read_bytes()
