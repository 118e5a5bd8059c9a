"""The related-index key: a key of its own in the keyring, kept across rotations of the other keys, and
derived the same way in every process for a keyring written before related tips existed."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from storage import related
from storage.crypto import Keyring, KeyringError


def _digest(ring: Keyring) -> dict[str, str]:
    return related.digests(keyring=ring, kind="phone", value="+84987654456")


def _old_keyring(path: Path) -> Keyring:
    """A keyring file as tinbao wrote it before related tips: no related_index entry."""
    Keyring.create(path)
    doc = json.loads(path.read_text())
    del doc["related_index"]
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return Keyring.load(path)


def test_a_new_keyring_has_a_random_related_index_key_of_its_own(tmp_path: Path) -> None:
    ring = Keyring.create(tmp_path / "a" / "keyring.json")
    doc = json.loads(ring.path.read_text())
    key = base64.b64decode(doc["related_index"]["keys"]["r1"])
    assert doc["related_index"]["active"] == "r1" and len(key) == 32
    assert doc["related_index"]["keys"]["r1"] not in (doc["pseudonym_pepper"], doc["receipt_pepper"])
    assert _digest(Keyring.load(ring.path)) == _digest(ring)
    assert _digest(ring) != _digest(Keyring.create(tmp_path / "b" / "keyring.json"))


def test_an_old_keyring_derives_the_same_key_in_every_process_without_being_written(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    old = _old_keyring(path)
    before = path.read_bytes()
    again = Keyring.load(path)
    assert _digest(old) == _digest(again) and set(_digest(old)) == {"r1"}
    assert path.read_bytes() == before  # nothing written: a keyring mounted read-only keeps working
    # Derived from this keyring's own secret: another old keyring derives another key.
    assert _digest(old) != _digest(_old_keyring(tmp_path / "other.json"))


@pytest.mark.parametrize("make", [Keyring.create, _old_keyring], ids=["new", "old"])
def test_rotating_and_retiring_key_encryption_keys_keeps_the_related_index(tmp_path: Path, make) -> None:
    ring = make(tmp_path / "keyring.json")
    before = _digest(ring)
    ring.add_active_key()
    ring.remove_key("k1")
    assert _digest(Keyring.load(ring.path)) == before


def test_a_worker_picks_up_a_related_index_key_added_by_another_process(tmp_path: Path) -> None:
    worker = Keyring.create(tmp_path / "keyring.json")
    doc = json.loads(worker.path.read_text())
    doc["related_index"] = {"active": "r2", "keys": {**doc["related_index"]["keys"],
                                                     "r2": base64.b64encode(os.urandom(32)).decode()}}
    worker.path.write_text(json.dumps(doc, indent=4))
    worker.refresh(min_interval=0)
    assert worker.related_active_id == "r2" and set(_digest(worker)) == {"r1", "r2"}


def test_a_related_index_without_its_active_key_is_one_clear_line(tmp_path: Path) -> None:
    ring = Keyring.create(tmp_path / "keyring.json")
    doc = json.loads(ring.path.read_text())
    doc["related_index"]["active"] = "r9"
    ring.path.write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="related_index needs its active key"):
        Keyring.load(ring.path)
