"""Encryption at rest: the keyring file, per-tip data keys, sealed fields and keyed pseudonyms.

What a leak of the database alone must not reveal is kept sealed here; the keys that open it
live in a keyring file outside the database (see README, "Threat model").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEYRING_FORMAT = "tinbao-keyring/1"
# Sealed blobs start with a version byte so the format can change without guessing. Version 2 pads the
# plaintext to a size bucket before sealing; version 1 (not padded) is still opened: older rows.
BLOB_VERSION = 2
_UNPADDED_VERSION = 1
_NONCE_BYTES = 12
_LENGTH_BYTES = 4
# Every sealed value takes at least this much room: an empty answer, a phone number and a short text
# all look alike in the database.
SMALLEST_BUCKET = 256


def padded_size(length: int) -> int:
    """The bucket a plaintext of ``length`` bytes is sealed in: Padmé (Nikitin et al., PETS 2019), at
    least SMALLEST_BUCKET; at most ~12 % larger, and it tells only the order of magnitude of the size."""
    total = length + _LENGTH_BYTES
    if total <= SMALLEST_BUCKET:
        return SMALLEST_BUCKET
    exponent = total.bit_length() - 1
    low_bits = exponent - exponent.bit_length()
    mask = (1 << low_bits) - 1
    return (total + mask) & ~mask


def _pad(data: bytes) -> bytes:
    framed = len(data).to_bytes(_LENGTH_BYTES, "big") + data
    return framed + bytes(padded_size(len(data)) - len(framed))


def _unpad(padded: bytes) -> bytes:
    length = int.from_bytes(padded[:_LENGTH_BYTES], "big")
    if length > len(padded) - _LENGTH_BYTES:
        raise DecryptionError("sealed value has a bad length")
    return padded[_LENGTH_BYTES:_LENGTH_BYTES + length]


class KeyringError(Exception):
    """The keyring file is missing, unreadable, too open or malformed (one clear line)."""


class DecryptionError(Exception):
    """A sealed value does not open: wrong key, wrong place, or tampered with."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"keyring {what} is not valid base64") from exc


def _seal(key: bytes, plaintext: bytes, associated: bytes, *, pad: bool = True) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    if not pad:  # version 1, as before padding (wrapped data keys: all of one length)
        return bytes([_UNPADDED_VERSION]) + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)
    # The version byte is authenticated too: a padded blob relabelled as unpadded does not open.
    return bytes([BLOB_VERSION]) + nonce + AESGCM(key).encrypt(nonce, _pad(plaintext), bytes([BLOB_VERSION]) + associated)


def _open(key: bytes, blob: bytes, associated: bytes) -> bytes:
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[0] not in (BLOB_VERSION, _UNPADDED_VERSION):
        raise DecryptionError("unknown sealed-blob format")
    nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    # Version 1 blobs were sealed before the version byte was bound in: their associated data is bare.
    bound = associated if blob[0] == _UNPADDED_VERSION else bytes([blob[0]]) + associated
    try:
        opened = AESGCM(key).decrypt(nonce, body, bound)
    except InvalidTag as exc:
        raise DecryptionError("sealed value does not open here") from exc
    return _unpad(opened) if blob[0] == BLOB_VERSION else opened


def field_context(owner_id: str, field_name: str) -> bytes:
    """The associated data that binds a sealed field to its tip and field name."""
    return f"tinbao/v1|tip:{owner_id}|{field_name}".encode()


@dataclass(frozen=True)
class DataKey:
    """A tip's own 256-bit key; every sensitive field of the tip is sealed under it."""

    owner_id: str
    key: bytes = field(repr=False)

    @classmethod
    def generate(cls, owner_id: str) -> DataKey:
        return cls(owner_id=owner_id, key=AESGCM.generate_key(bit_length=256))

    def seal(self, field_name: str, plaintext: bytes | str) -> bytes:
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        return _seal(self.key, data, field_context(self.owner_id, field_name))

    def open(self, field_name: str, blob: bytes) -> bytes:
        return _open(self.key, blob, field_context(self.owner_id, field_name))

    def open_text(self, field_name: str, blob: bytes) -> str:
        return self.open(field_name, blob).decode("utf-8")


def _derive_related_key(receipt_pepper: bytes) -> bytes:
    # The pepper is HKDF's input and the label its salt: nothing this computes is ever an HMAC of the
    # pepper over a receipt code, so no value stored in the database can equal this key.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tinbao/v1|related-index|r1",
                info=b"related-index").derive(receipt_pepper)


class Keyring:
    """Key-encryption keys (one active) and the HMAC peppers, read from a 0600 file."""

    def __init__(self, path: Path, *, active: str, keys: dict[str, bytes], pseudonym_pepper: bytes,
                 receipt_pepper: bytes, stamp: tuple[int, int] | None = None,
                 related_keys: dict[str, bytes] | None = None, related_active: str | None = None) -> None:
        self.path = path
        self.active_id = active
        self.keys = keys
        self._pseudonym_pepper = pseudonym_pepper
        self._receipt_pepper = receipt_pepper
        # The blind-index key of related tips (storage/related.py). A keyring written before it existed
        # has none in the file: its "r1" is derived from the receipt pepper (HKDF, own salt), the same
        # in every worker and without writing to a keyring that may be mounted read-only.
        self._related_in_file = related_keys is not None
        self._related_keys = related_keys if related_keys is not None else {"r1": _derive_related_key(receipt_pepper)}
        self.related_active_id = related_active if related_keys is not None else "r1"
        self._stamp = stamp
        self._checked_at = time.monotonic()
        # Derived once: every audit entry is chained with it, and the pepper never changes in a keyring.
        self._audit_key = hmac.new(pseudonym_pepper, b"tinbao/v1|audit-chain", hashlib.sha256).digest()

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(path={str(self.path)!r}, active={self.active_id!r}, keys={sorted(self.keys)})"

    # --- files -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """Write a new keyring with one active key; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise KeyringError(f"keyring {path} already exists; refusing to overwrite it")
        ring = cls(path, active="k1", keys={"k1": AESGCM.generate_key(bit_length=256)},
                   pseudonym_pepper=secrets.token_bytes(32), receipt_pepper=secrets.token_bytes(32),
                   related_keys={"r1": secrets.token_bytes(32)}, related_active="r1")
        ring._write()
        return ring

    @classmethod
    def load(cls, path: Path | str | None) -> Keyring:
        if not path:
            raise KeyringError("keyring path is not set (config key bot.keyring or TINBAO_KEYRING)")
        path = Path(path)
        try:
            st = path.stat()
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyringError(f"keyring {path} does not exist; run 'tinbao init' to create it") from None
        except OSError as exc:
            raise KeyringError(f"keyring {path} cannot be read: {exc.strerror}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(
                f"keyring {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                f"run: chmod 600 {path}")
        try:
            doc = json.loads(raw)
            if doc.get("format") != KEYRING_FORMAT:
                raise KeyringError(f"keyring {path} is not a {KEYRING_FORMAT} file")
            keys = {kid: _unb64(entry["key"], f"{path}: key {kid}") for kid, entry in doc["keys"].items()}
            active = doc["active"]
            pseudonym_pepper = _unb64(doc["pseudonym_pepper"], f"{path}: pseudonym_pepper")
            receipt_pepper = _unb64(doc["receipt_pepper"], f"{path}: receipt_pepper")
            related = doc.get("related_index")  # absent in keyrings written before related tips
            related_keys = None if related is None else {
                kid: _unb64(value, f"{path}: related_index key {kid}") for kid, value in related["keys"].items()}
            related_active = None if related is None else related["active"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"keyring {path} is malformed ({type(exc).__name__}: {exc})") from None
        if not isinstance(active, str) or active not in keys:
            raise KeyringError(f"keyring {path}: active key {active!r} is not in the file")
        if any(len(k) != 32 for k in keys.values()) or len(pseudonym_pepper) < 32 or len(receipt_pepper) < 32:
            raise KeyringError(f"keyring {path}: a key has the wrong length")
        if related_keys is not None and (related_active not in related_keys
                                         or any(len(k) != 32 for k in related_keys.values())):
            raise KeyringError(f"keyring {path}: related_index needs its active key and 32-byte keys")
        return cls(path, active=active, keys=keys, pseudonym_pepper=pseudonym_pepper,
                   receipt_pepper=receipt_pepper, stamp=(st.st_mtime_ns, st.st_size),
                   related_keys=related_keys, related_active=related_active)

    def _write(self) -> None:
        doc = {
            "format": KEYRING_FORMAT,
            "active": self.active_id,
            "keys": {kid: {"key": _b64(k)} for kid, k in self.keys.items()},
            "pseudonym_pepper": _b64(self._pseudonym_pepper),
            "receipt_pepper": _b64(self._receipt_pepper),
            **({"related_index": {"active": self.related_active_id,
                                  "keys": {kid: _b64(k) for kid, k in self._related_keys.items()}}}
               if self._related_in_file else {}),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written to a 0600 temporary file and renamed, so a crash never leaves half a keyring
        # and the keys are never readable by others, not even for a moment.
        fd, tmp = tempfile.mkstemp(prefix=".keyring-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)

    def add_active_key(self) -> str:
        """Create a new key-encryption key, make it active at once and save the file."""
        number = 1 + max((int(k[1:]) for k in self.keys if k[1:].isdigit()), default=0)
        kid = f"k{number}"
        self.keys[kid] = AESGCM.generate_key(bit_length=256)
        self.active_id = kid
        self._write()
        return kid

    def add_related_key(self) -> str:
        """A new related-index key, active at once (new tips are indexed under it), saved in the file."""
        self.refresh(min_interval=0)
        number = 1 + max((int(k[1:]) for k in self._related_keys if k[1:].isdigit()), default=0)
        kid = f"r{number}"
        self._related_keys[kid] = secrets.token_bytes(32)
        self.related_active_id = kid
        self._related_in_file = True  # a derived r1 is written out too, until re-indexing has retired it
        self._write()
        return kid

    @property
    def related_key_ids(self) -> list[str]:
        return sorted(self._related_keys)

    def remove_related_key(self, key_id: str) -> None:
        """Retire an old related-index key once no index row was made with it."""
        if key_id == self.related_active_id:
            raise KeyringError(f"related-index key {key_id} is the active one and cannot be retired")
        if key_id not in self._related_keys:
            raise KeyringError(f"related-index key {key_id} is not in the keyring")
        del self._related_keys[key_id]
        self._write()

    def remove_key(self, key_id: str) -> None:
        if key_id == self.active_id:
            raise KeyringError(f"key {key_id} is the active key and cannot be retired")
        if key_id not in self.keys:
            raise KeyringError(f"key {key_id} is not in the keyring")
        del self.keys[key_id]
        self._write()

    def refresh(self, *, min_interval: float = 1.0) -> None:
        """Pick up a key rotated by another process (``tinbao keys rotate`` while the bot runs)."""
        now = time.monotonic()
        if now - self._checked_at < min_interval:
            return
        self._checked_at = now
        try:
            st = self.path.stat()
        except OSError:
            return  # keep serving with the keys in memory; the next check may see the file again
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            fresh = Keyring.load(self.path)
            self.active_id, self.keys, self._stamp = fresh.active_id, fresh.keys, fresh._stamp
            self._related_keys, self.related_active_id = fresh._related_keys, fresh.related_active_id
            self._related_in_file = fresh._related_in_file

    # --- data keys ---------------------------------------------------------------------------

    def wrap(self, data_key: DataKey) -> tuple[str, bytes]:
        """Seal a data key under the active key-encryption key; returns (key id, wrapped)."""
        self.refresh()
        kek = self.keys[self.active_id]
        # Not padded: every data key is 32 bytes, so the wrapped ones all have one length anyway.
        return self.active_id, _seal(kek, data_key.key, f"tinbao/v1|dek:{data_key.owner_id}".encode(), pad=False)

    def unwrap(self, *, owner_id: str, key_id: str, wrapped: bytes) -> DataKey:
        kek = self.keys.get(key_id)
        if kek is None:
            self.refresh(min_interval=0)
            kek = self.keys.get(key_id)
        if kek is None:
            raise DecryptionError(f"key-encryption key {key_id} is not in the keyring")
        return DataKey(owner_id, _open(kek, wrapped, f"tinbao/v1|dek:{owner_id}".encode()))

    # --- keyed hashes ------------------------------------------------------------------------

    def pseudonym(self, channel_prefix: str, chat_id: str | int) -> str:
        """A stable keyed name for a chat (e.g. ``tg:12345``), useless without the keyring."""
        message = f"{channel_prefix}:{chat_id}".encode()
        return hmac.new(self._pseudonym_pepper, message, hashlib.sha256).hexdigest()

    def receipt_hash(self, normalized_code: str) -> str:
        return hmac.new(self._receipt_pepper, normalized_code.encode(), hashlib.sha256).hexdigest()

    def invite_hash(self, normalized_code: str) -> str:
        return hmac.new(self._receipt_pepper, b"invite:" + normalized_code.encode(), hashlib.sha256).hexdigest()

    def related_digests(self, message: bytes) -> dict[str, bytes]:
        """The blind index of one identifier under each related-index key: {key id: HMAC-SHA256}."""
        return {kid: hmac.new(key, message, hashlib.sha256).digest() for kid, key in self._related_keys.items()}

    def check_value(self) -> str:
        """What ties a database to its keyring: derived from the pepper, which no key rotation changes."""
        return hmac.new(self._pseudonym_pepper, b"tinbao/v1|keyring-check", hashlib.sha256).hexdigest()[:32]

    def counter_key(self, chat_key: str, bucket: str) -> str:
        """The name of a rate counter's row: neither the pseudonym nor what it counts can be read from it."""
        return hmac.new(self._pseudonym_pepper, f"tinbao/v1|counter|{bucket}|{chat_key}".encode(),
                        hashlib.sha256).hexdigest()

    def transit_key(self, owner_id: str) -> DataKey:
        """The key of data that lives seconds (a turn's replies until sent): derived from the pepper, so
        nothing is stored beside it, and the same in every worker."""
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tinbao/v1|transit",
                   info=owner_id.encode()).derive(self._pseudonym_pepper)
        return DataKey(owner_id=owner_id, key=key)

    def audit_key(self) -> bytes:
        """The key that chains the audit log; derived, so the keyring file keeps its format."""
        return self._audit_key
