"""`tinbao init`, run as an operator runs it, in an empty folder: config.toml from the example, a data
folder only its owner can enter (0700), a keyring only its owner can read (0600); and run again, it keeps
what is there, the operator's edits and the keys that open every tip."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ENV_OVERRIDES
from storage.crypto import Keyring

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def tinbao_init(folder: Path) -> subprocess.CompletedProcess:
    """The installed `tinbao` command, with umask 000: the modes must come from tinbao, not the shell."""
    command = shutil.which("tinbao", path=str(Path(sys.executable).parent))
    assert command, "the tinbao command is not installed beside this Python (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k not in ENV_OVERRIDES and k != "TINBAO_CONFIG"}
    return subprocess.run([command, "init"], cwd=folder, env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.umask(0))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "deploy"
    folder.mkdir()
    return folder


def test_init_writes_the_config_a_private_data_folder_and_a_private_keyring(folder):
    done = tinbao_init(folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "config.toml").read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
    assert (folder / "data").is_dir() and mode(folder / "data") == 0o700
    assert mode(folder / "keyring.json") == 0o600
    Keyring.load(folder / "keyring.json")  # a keyring that opens
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "data", "keyring.json"]
    assert done.stderr == ""


def test_init_run_again_keeps_the_edited_config_and_the_keyring(folder):
    assert tinbao_init(folder).returncode == 0
    config = folder / "config.toml"
    edited = config.read_text(encoding="utf-8").replace('emergency_number = "113"', 'emergency_number = "0283"')
    assert edited != EXAMPLE.read_text(encoding="utf-8")
    config.write_text(edited, encoding="utf-8")
    keys = (folder / "keyring.json").read_bytes()

    again = tinbao_init(folder)
    assert again.returncode == 0, again.stderr
    assert config.read_text(encoding="utf-8") == edited
    assert (folder / "keyring.json").read_bytes() == keys  # the keys that open every stored tip
    assert "config.toml exists; keeping it" in again.stdout and "keyring.json exists; keeping it" in again.stdout
    assert mode(folder / "data") == 0o700 and mode(folder / "keyring.json") == 0o600
