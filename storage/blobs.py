"""Attachment files, sealed under their tip's data key, with random names under the data directory."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from storage.crypto import DataKey
from storage.db import after_commit


class BlobStore:
    """Encrypted files; the database row knows the name, the file alone tells nothing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def _path(self, blob_name: str) -> Path:
        if not blob_name.isalnum():  # names are ours (hex); anything else is a bug or an attack
            raise ValueError("bad blob name")
        return self.root / blob_name

    def write(self, *, data_key: DataKey, attachment_id: str, data: bytes) -> str:
        """Seal ``data`` and write it durably; returns the new random file name."""
        blob_name = secrets.token_hex(16)
        sealed = data_key.seal(f"attachment:{attachment_id}", data)
        tmp = self.root / f".{blob_name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(sealed)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(blob_name))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return blob_name

    def read(self, *, data_key: DataKey, attachment_id: str, blob_name: str) -> bytes:
        return data_key.open(f"attachment:{attachment_id}", self._path(blob_name).read_bytes())

    def delete(self, blob_name: str) -> None:
        self._path(blob_name).unlink(missing_ok=True)

    def delete_after_commit(self, *, session, blob_name: str) -> None:
        """Remove the file once the transaction forgetting it commits: a rollback keeps row and file together.
        A crash between the commit and the removal leaves a file no row points to: the stray-file sweep takes it."""
        self._path(blob_name)  # a bad name fails now, inside the transaction
        after_commit(session, lambda: self.delete(blob_name))

    def files_older_than(self, seconds_ago: float, *, now: float) -> Iterator[str]:
        """Names of files last written before ``now - seconds_ago`` (half-written ``.tmp`` ones too)."""
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < now - seconds_ago:
                    yield entry.name

    def delete_file(self, file_name: str) -> None:
        """Remove a file found by ``files_older_than``, a sealed blob or a leftover ``.tmp``."""
        tmp = file_name.startswith(".") and file_name.endswith(".tmp") and file_name[1:-4].isalnum()
        (self.root / file_name if tmp else self._path(file_name)).unlink(missing_ok=True)
