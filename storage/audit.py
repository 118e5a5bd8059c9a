"""The audit log: append-only and hash-chained with a key from the keyring, so an entry changed or
deleted in the database (even with the hashes recomputed) is detected by `tinbao audit verify`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.models import AuditEntry, utcnow

GENESIS = "0" * 64
# Any constant works: it only names the lock that serialises appends across PostgreSQL workers.
_APPEND_LOCK = 0x7B1A0_A0D1


def _entry_hash(keyring: Keyring, prev_hash: str, entry: AuditEntry) -> str:
    body = json.dumps({"prev": prev_hash, "at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action,
                       "tip": entry.tip_ref, "detail": entry.detail}, sort_keys=True, ensure_ascii=False)
    return hmac.new(keyring.audit_key(), body.encode(), hashlib.sha256).hexdigest()


async def append_audit(*, session: AsyncSession, keyring: Keyring, actor: str, action: str,
                       tip_ref: str | None = None, detail: str = "") -> AuditEntry:
    """Write one entry chained to the previous one (in the caller's transaction)."""
    if session.bind.dialect.name == "postgresql":
        # Two workers must not both chain onto the same previous entry.
        await session.exec(text(f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})"))
    # SQLite: every transaction begins IMMEDIATE (storage/db.py), which serialises appends too.
    last = (await session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).first()
    prev_hash = last.hash if last else GENESIS
    entry = AuditEntry(at=utcnow().replace(microsecond=0), actor=actor, action=action, tip_ref=tip_ref,
                       detail=detail[:255], prev_hash=prev_hash, hash="")
    entry.hash = _entry_hash(keyring, prev_hash, entry)
    session.add(entry)
    await session.flush()
    return entry


@dataclass
class AuditCheck:
    entries: int
    broken_at: int | None  # id of the first entry that does not verify
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def verify_audit(*, session: AsyncSession, keyring: Keyring, batch: int = 5000,
                       progress: Callable[[int], None] | None = None) -> AuditCheck:
    """Walk the chain: every entry's hash must match, and each must point at the one before it."""
    prev_hash, last_id, checked = GENESIS, 0, 0
    while True:
        rows = (await session.exec(select(AuditEntry).where(AuditEntry.id > last_id)
                                   .order_by(AuditEntry.id).limit(batch))).all()
        if not rows:
            return AuditCheck(checked, None)
        for entry in rows:
            if entry.prev_hash != prev_hash:
                return AuditCheck(checked, entry.id, "an entry before it was changed or deleted")
            if not hmac.compare_digest(entry.hash, _entry_hash(keyring, prev_hash, entry)):
                return AuditCheck(checked, entry.id, "this entry was changed")
            prev_hash, last_id, checked = entry.hash, entry.id, checked + 1
        if progress:
            progress(len(rows))


async def last_audit_hash(*, session: AsyncSession) -> str:
    last = (await session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).first()
    return last.hash if last else GENESIS
