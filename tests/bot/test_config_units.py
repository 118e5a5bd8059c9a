"""[[units]] and [triage] in config.toml: a wrong unit tree stops the bot with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config

AREAS = '''
[[areas]]
code = "79"
name = "Thành phố Hồ Chí Minh"
[[areas]]
code = "79.1"
name = "Phường Bến Thành"
parent = "79"
'''


def write(tmp_path: Path, units: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(AREAS + units, encoding="utf-8")
    return path


def test_units_route_tips_and_triage_times_are_read(tmp_path):
    config = load_config(write(tmp_path, '''
[[units]]
id = "top"
name = "Công an TP"
areas = ["79"]
[[units]]
id = "bt"
name = "Công an phường Bến Thành"
parent = "top"
areas = ["79.1"]
[triage]
unclaimed_alert_hours = 6
'''), environ={})
    settings = config.tipline_settings()
    assert settings.unit_tree.route("79.1") == "bt"
    assert settings.unit_tree.subtree("top") == ["top", "bt"]
    assert settings.triage.unclaimed_alert.total_seconds() == 6 * 3600


@pytest.mark.parametrize("units, key", [
    ('[[units]]\nid = "a"\nname = "A"\n[[units]]\nid = "a"\nname = "B"\n', "units[1].id"),
    ('[[units]]\nid = "a"\nname = "A"\nparent = "nope"\n', "units[0].parent"),
    ('[[units]]\nid = "a"\nname = "A"\nareas = ["99"]\n', "units[0].areas"),
    ('[[units]]\nid = "a"\nname = "A"\nareas = ["79"]\n[[units]]\nid = "b"\nname = "B"\nareas = ["79"]\n',
     "units[1].areas"),
    ('[[units]]\nid = "a"\nname = "A"\nparent = "b"\n[[units]]\nid = "b"\nname = "B"\nparent = "a"\n',
     "units[0].parent"),
    ('[triage]\npurge_not_valuable_after_days = 0\n', "triage.purge_not_valuable_after_days"),
    ('[[units]]\nid = "a"\nname = "A"\nchief = "x"\n', "units[0].chief"),
])
def test_a_wrong_unit_tree_names_the_key(tmp_path, units, key):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, units), environ={})
    message = str(error.value)
    assert key in message and "\n" not in message
