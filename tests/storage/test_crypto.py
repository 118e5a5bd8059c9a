"""Sealed fields, wrapped data keys, keyed pseudonyms and the keyring file, as an operator relies on them."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from storage.crypto import BLOB_VERSION, DataKey, DecryptionError, Keyring, KeyringError

VIETNAMESE = "Có người buôn bán ma túy ở hẻm 42 đường Nguyễn Trãi, Quận 5 — tối thứ Bảy, khoảng 22 giờ."


def _key_material(path: Path) -> list[str]:
    """Every secret in a keyring file, as written there (base64) — none may ever appear in a message."""
    doc = json.loads(path.read_text())
    secrets_ = [entry["key"] for entry in doc["keys"].values()]
    secrets_ += [doc["pseudonym_pepper"], doc["receipt_pepper"]]
    return secrets_


# --- sealed fields -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [VIETNAMESE, "", "ascii only", "Đường Lê Lợi, phường Bến Thành"])
def test_sealed_text_round_trips_and_hides_the_text(value: str) -> None:
    key = DataKey.generate("tip-a")
    sealed = key.seal("text", value)
    assert key.open_text("text", sealed) == value
    if value:
        assert value.encode() not in sealed


def test_sealed_bytes_round_trip() -> None:
    key = DataKey.generate("tip-a")
    data = bytes(range(256)) * 4
    sealed = key.seal("location", data)
    assert key.open("location", sealed) == data
    assert data not in sealed


def test_sealing_twice_gives_different_ciphertexts() -> None:
    key = DataKey.generate("tip-a")
    assert key.seal("text", VIETNAMESE) != key.seal("text", VIETNAMESE)


def test_ciphertext_moved_to_another_tip_does_not_open() -> None:
    # Same key bytes, other owner id: only the associated data differs, so this isolates the binding.
    key = DataKey.generate("tip-a")
    other_tip = DataKey("tip-b", key.key)
    sealed = key.seal("text", VIETNAMESE)
    with pytest.raises(DecryptionError):
        other_tip.open("text", sealed)


def test_ciphertext_moved_to_another_field_does_not_open() -> None:
    key = DataKey.generate("tip-a")
    sealed = key.seal("contact", "0903 123 456")
    with pytest.raises(DecryptionError):
        key.open("text", sealed)


def test_another_tips_key_does_not_open() -> None:
    sealed = DataKey.generate("tip-a").seal("text", VIETNAMESE)
    with pytest.raises(DecryptionError):
        DataKey.generate("tip-a").open("text", sealed)


@pytest.mark.parametrize("where", ["nonce", "body", "tag"])
def test_a_tampered_byte_does_not_open(where: str) -> None:
    key = DataKey.generate("tip-a")
    sealed = bytearray(key.seal("text", VIETNAMESE))
    index = {"nonce": 1, "body": 1 + 12 + 3, "tag": len(sealed) - 1}[where]
    sealed[index] ^= 0x01
    with pytest.raises(DecryptionError):
        key.open("text", bytes(sealed))


def test_truncated_blob_does_not_open() -> None:
    key = DataKey.generate("tip-a")
    sealed = key.seal("text", "x")
    for cut in (0, 1, 13, len(sealed) - 1):
        with pytest.raises(DecryptionError):
            key.open("text", sealed[:cut])


def test_unknown_version_byte_is_refused() -> None:
    key = DataKey.generate("tip-a")
    sealed = key.seal("text", VIETNAMESE)
    assert sealed[0] == BLOB_VERSION
    for version in (0, BLOB_VERSION + 1, 0xFF):
        with pytest.raises(DecryptionError):
            key.open("text", bytes([version]) + sealed[1:])


# --- wrapped data keys ---------------------------------------------------------------------------


def test_wrap_unwrap_round_trip(keyring: Keyring) -> None:
    data_key = DataKey.generate("tip-a")
    key_id, wrapped = keyring.wrap(data_key)
    assert key_id == keyring.active_id == "k1"
    assert data_key.key not in wrapped
    back = keyring.unwrap(owner_id="tip-a", key_id=key_id, wrapped=wrapped)
    assert back == data_key
    assert back.open_text("text", data_key.seal("text", VIETNAMESE)) == VIETNAMESE


def test_wrapped_key_moved_to_another_owner_does_not_unwrap(keyring: Keyring) -> None:
    key_id, wrapped = keyring.wrap(DataKey.generate("tip-a"))
    with pytest.raises(DecryptionError):
        keyring.unwrap(owner_id="tip-b", key_id=key_id, wrapped=wrapped)


def test_wrapped_key_under_another_keyring_does_not_unwrap(keyring: Keyring, tmp_path: Path) -> None:
    other = Keyring.create(tmp_path / "other" / "keyring.json")
    key_id, wrapped = other.wrap(DataKey.generate("tip-a"))
    assert key_id == "k1"  # same id, different key
    with pytest.raises(DecryptionError):
        keyring.unwrap(owner_id="tip-a", key_id=key_id, wrapped=wrapped)


def test_unknown_key_id_names_the_key(keyring: Keyring) -> None:
    _, wrapped = keyring.wrap(DataKey.generate("tip-a"))
    with pytest.raises(DecryptionError, match="k7"):
        keyring.unwrap(owner_id="tip-a", key_id="k7", wrapped=wrapped)


# --- pseudonyms and receipt hashes ---------------------------------------------------------------


CHAT_ID = 700100200123


def test_pseudonym_is_stable_for_one_keyring_and_across_reloads(keyring: Keyring) -> None:
    first = keyring.pseudonym("tg", CHAT_ID)
    assert keyring.pseudonym("tg", CHAT_ID) == first
    assert keyring.pseudonym("tg", str(CHAT_ID)) == first
    # A restarted bot loads the same file: conversations and rate limits must still match.
    assert Keyring.load(keyring.path).pseudonym("tg", CHAT_ID) == first
    assert keyring.pseudonym("tg", CHAT_ID + 1) != first


def test_pseudonym_differs_across_keyrings(keyring: Keyring, tmp_path: Path) -> None:
    other = Keyring.create(tmp_path / "other" / "keyring.json")
    assert keyring.pseudonym("tg", CHAT_ID) != other.pseudonym("tg", CHAT_ID)


def test_pseudonym_differs_across_channels(keyring: Keyring) -> None:
    assert keyring.pseudonym("tg", CHAT_ID) != keyring.pseudonym("zl", CHAT_ID)


def test_pseudonym_does_not_contain_the_id(keyring: Keyring) -> None:
    for chat_id in (CHAT_ID, 987654321987, "zalo-user-4f9a1c"):
        name = keyring.pseudonym("tg", chat_id)
        assert str(chat_id) not in name
        assert len(name) == 64 and int(name, 16) >= 0


def test_receipt_hash_is_keyed(keyring: Keyring, tmp_path: Path) -> None:
    code = "TB7K3M9QXF"
    digest = keyring.receipt_hash(code)
    assert digest == keyring.receipt_hash(code) == Keyring.load(keyring.path).receipt_hash(code)
    assert code not in digest and code.lower() not in digest
    assert keyring.receipt_hash("TB7K3M9QXG") != digest
    assert Keyring.create(tmp_path / "other" / "keyring.json").receipt_hash(code) != digest
    # Receipt hashes and pseudonyms use different peppers.
    assert keyring.pseudonym("tg", code) != digest


# --- the keyring file ----------------------------------------------------------------------------


def test_create_writes_a_0600_file_and_load_reads_it_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keyring.json"
    ring = Keyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]  # no temporary file left
    loaded = Keyring.load(path)
    assert loaded.active_id == ring.active_id
    assert loaded.keys == ring.keys


def test_create_refuses_to_overwrite(keyring: Keyring) -> None:
    before = keyring.path.read_bytes()
    with pytest.raises(KeyringError, match="already exists"):
        Keyring.create(keyring.path)
    assert keyring.path.read_bytes() == before


def test_keyring_repr_shows_no_key_material(keyring: Keyring) -> None:
    text = repr(keyring)
    for secret in _key_material(keyring.path):
        assert secret not in text


def _rewrite(path: Path, mutate) -> None:
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)


def _bad_base64(doc: dict) -> None:
    doc["keys"]["k1"]["key"] = "not base64!!"


def _short_key(doc: dict) -> None:
    doc["keys"]["k1"]["key"] = base64.b64encode(b"x" * 16).decode()


BROKEN_FILES = {
    "truncated JSON": (lambda path: path.write_text(path.read_text()[: len(path.read_text()) // 2]), "malformed"),
    "not an object": (lambda path: path.write_text("[1, 2, 3]"), "malformed"),
    "wrong format tag": (lambda path: _rewrite(path, lambda d: d.update(format="tinbao-keyring/0")), "tinbao-keyring/1"),
    "no format tag": (lambda path: _rewrite(path, lambda d: d.pop("format")), "tinbao-keyring/1"),
    "active key not in file": (lambda path: _rewrite(path, lambda d: d.update(active="k9")), "k9"),
    "no active field": (lambda path: _rewrite(path, lambda d: d.pop("active")), "active"),
    "no receipt pepper": (lambda path: _rewrite(path, lambda d: d.pop("receipt_pepper")), "receipt_pepper"),
    "bad base64": (lambda path: _rewrite(path, _bad_base64), "base64"),
    "short key": (lambda path: _rewrite(path, _short_key), "wrong length"),
}


@pytest.mark.parametrize("problem", list(BROKEN_FILES))
def test_broken_keyring_file_gives_one_clear_line(keyring: Keyring, problem: str) -> None:
    path = keyring.path
    secrets_ = _key_material(path)
    breaker, expected = BROKEN_FILES[problem]
    breaker(path)
    os.chmod(path, 0o600)
    with pytest.raises(KeyringError) as info:
        Keyring.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message
    for secret in secrets_:
        assert secret not in message
        assert secret[:12] not in message


def test_missing_keyring_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "keyring.json"
    with pytest.raises(KeyringError) as info:
        Keyring.load(path)
    message = str(info.value)
    assert str(path) in message and "does not exist" in message and "tinbao init" in message
    assert "\n" not in message


@pytest.mark.parametrize("path", [None, ""])
def test_unset_keyring_path_says_so(path) -> None:
    with pytest.raises(KeyringError, match="not set") as info:
        Keyring.load(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_keyring_readable_by_others_is_refused(keyring: Keyring, mode: int) -> None:
    path = keyring.path
    secrets_ = _key_material(path)
    os.chmod(path, mode)
    with pytest.raises(KeyringError) as info:
        Keyring.load(path)
    message = str(info.value)
    assert str(path) in message and f"{mode:o}" in message and "chmod 600" in message
    assert "\n" not in message
    for secret in secrets_:
        assert secret not in message


def test_keyring_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.mkdir(mode=0o700)
    with pytest.raises(KeyringError) as info:
        Keyring.load(path)
    assert str(path) in str(info.value)


# --- rotation seen by a running process ----------------------------------------------------------


def test_refresh_picks_up_a_key_added_by_another_process(keyring: Keyring) -> None:
    bot = Keyring.load(keyring.path)  # the running bot
    rotate = Keyring.load(keyring.path)  # `tinbao keys rotate` in another process
    new_id = rotate.add_active_key()
    assert new_id == "k2"
    assert bot.active_id == "k1" and "k2" not in bot.keys

    bot.refresh(min_interval=0)
    assert bot.active_id == "k2"
    assert bot.keys == rotate.keys
    # New tips from the bot are now wrapped under the new key, and the rotator can open them.
    data_key = DataKey.generate("tip-new")
    key_id, wrapped = bot.wrap(data_key)
    assert key_id == "k2"
    assert rotate.unwrap(owner_id="tip-new", key_id=key_id, wrapped=wrapped) == data_key


def test_refresh_is_throttled_but_wrap_catches_up_after_the_interval(keyring: Keyring, monkeypatch) -> None:
    import storage.crypto as crypto

    bot = Keyring.load(keyring.path)
    Keyring.load(keyring.path).add_active_key()
    assert bot.wrap(DataKey.generate("tip-1"))[0] == "k1"  # checked less than a second ago

    real = crypto.time.monotonic
    monkeypatch.setattr(crypto.time, "monotonic", lambda: real() + 5.0)
    assert bot.wrap(DataKey.generate("tip-2"))[0] == "k2"


def test_unwrap_of_a_key_id_not_yet_seen_rereads_the_file(keyring: Keyring) -> None:
    bot = Keyring.load(keyring.path)
    rotate = Keyring.load(keyring.path)
    rotate.add_active_key()
    data_key = DataKey.generate("tip-a")
    key_id, wrapped = rotate.wrap(data_key)
    assert key_id == "k2"
    # No explicit refresh: a key id the bot does not know makes it look at the file at once.
    assert bot.unwrap(owner_id="tip-a", key_id=key_id, wrapped=wrapped) == data_key


def test_add_active_key_keeps_the_file_private_and_old_keys(keyring: Keyring) -> None:
    old = dict(keyring.keys)
    keyring.add_active_key()
    assert stat.S_IMODE(keyring.path.stat().st_mode) == 0o600
    loaded = Keyring.load(keyring.path)
    assert loaded.active_id == "k2"
    assert loaded.keys["k1"] == old["k1"]
    assert loaded.keys["k2"] != old["k1"]


def test_remove_key_refuses_the_active_key_and_unknown_keys(keyring: Keyring) -> None:
    with pytest.raises(KeyringError, match="active"):
        keyring.remove_key("k1")
    with pytest.raises(KeyringError, match="k5"):
        keyring.remove_key("k5")
    assert Keyring.load(keyring.path).keys.keys() == {"k1"}


# --- padding ---------------------------------------------------------------------------------------

def test_a_value_sealed_before_padding_still_opens() -> None:
    """Tips stored by an older version (blob version 1, not padded) open as before."""
    from storage.crypto import _seal, field_context
    key = DataKey.generate("tip-old")
    old = _seal(key.key, VIETNAMESE.encode(), field_context("tip-old", "text"), pad=False)
    assert old[0] == 1 and len(old) == 1 + 12 + len(VIETNAMESE.encode()) + 16
    assert key.open_text("text", old) == VIETNAMESE


def test_sealed_lengths_tell_only_a_bucket() -> None:
    from storage.crypto import SMALLEST_BUCKET, padded_size
    key = DataKey.generate("tip-a")
    assert {len(key.seal("contact", v)) for v in ("", "0909123456", "x" * 200)} == {1 + 12 + SMALLEST_BUCKET + 16}
    for length in (300, 1_000, 65_000, 5_000_000):
        bucket = padded_size(length)
        assert length + 4 <= bucket <= (length + 4) * 1.12  # Padmé: at most ~12 % more
        assert padded_size(length + 1) >= bucket
    assert len({padded_size(n) for n in range(1_000_000, 1_010_000)}) < 10  # many sizes, few buckets
    assert key.open("file", key.seal("file", b"\x00" * 70_000)) == b"\x00" * 70_000
