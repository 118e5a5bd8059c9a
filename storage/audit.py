"""The audit log: append-only and hash-chained with a key from the keyring, so an entry changed or
deleted in the database (even with the hashes recomputed) is detected by `tinbao audit verify`.

The chain alone cannot show that its newest entries were cut off: what is left still verifies. So
the head (the newest entry's id and hash) is also written, every few minutes, to a file outside the
database, next to the evidence files; a chain that no longer reaches that head was cut."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, func, insert, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Keyring
from storage.models import AuditEntry, utcnow

GENESIS = "0" * 64
# Any constant works: it only names the lock that serialises appends across PostgreSQL workers.
_APPEND_LOCK = 0x7B1A0_A0D1


def _hash(keyring: Keyring, prev_hash: str, at: datetime, actor: str, action: str, tip_ref: str | None,
          detail: str) -> str:
    body = json.dumps({"prev": prev_hash, "at": at.isoformat(), "actor": actor, "action": action, "tip": tip_ref,
                       "detail": detail}, sort_keys=True, ensure_ascii=False)
    return hmac.digest(keyring.audit_key(), body.encode(), "sha256").hex()  # one call: the same as hmac.new


def _entry_hash(keyring: Keyring, prev_hash: str, entry: AuditEntry) -> str:
    return _hash(keyring, prev_hash, entry.at, entry.actor, entry.action, entry.tip_ref, entry.detail)


# Built once: an officer's view appends one or two entries and reads a tip's history, and building each of
# these statements again cost more than PostgreSQL takes to run it.
_LOCK = text(f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})")
_LAST_HASH = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
_INSERT = insert(AuditEntry.__table__).returning(AuditEntry.__table__.c.id)
_COLUMNS = ("at", "actor", "action", "tip_ref", "detail", "prev_hash", "hash")


@cache
def _insert_rows(count: int):
    """One INSERT of ``count`` entries, built once per count (a command writes two or three at most)."""
    table = AuditEntry.__table__
    return insert(table).values([{name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in _COLUMNS}
                                 for i in range(count)]).returning(table.c.id, table.c.hash)
_OF_TIP = select(AuditEntry).where(AuditEntry.tip_ref == bindparam("tip_ref"))
_OF_TIP_DOING = _OF_TIP.where(AuditEntry.action.in_(bindparam("actions", expanding=True))).order_by(AuditEntry.id)
_DONE_BY = (select(AuditEntry.id).where(AuditEntry.tip_ref == bindparam("tip_ref"), AuditEntry.actor == bindparam("actor"),
                                        AuditEntry.action == bindparam("action")).limit(1))
# Where the chain ends, once this transaction has appended to it: (the transaction, the newest hash).
_HEAD = "tinbao.audit_head"


async def append_audit(*, session: AsyncSession, keyring: Keyring, actor: str, action: str,
                       tip_ref: str | None = None, detail: str = "") -> int:
    """Write one entry chained to the previous one (in the caller's transaction); returns its id."""
    (entry_id,) = await append_audits(session=session, keyring=keyring, actor=actor,
                                      entries=[(action, tip_ref, detail)])
    return entry_id


async def append_audits(*, session: AsyncSession, keyring: Keyring, actor: str,
                        entries: Sequence[tuple[str, str | None, str]]) -> list[int]:
    """Write one actor's entries, (action, tip_ref, detail) each, chained in this order onto the previous one
    in a single INSERT (in the caller's transaction): what one command does at once, such as /next's claim
    and view, costs one trip to the database, not one each. Returns their ids, in the same order."""
    info, transaction = session.sync_session.info, session.sync_session.get_transaction()
    head = info.get(_HEAD)
    if head is not None and head[0] is transaction:
        # This transaction appended already and still holds the lock below (or SQLite's write lock):
        # nobody else can have chained an entry since, so the newest hash is the one it wrote.
        prev_hash = head[1]
    else:
        if session.bind.dialect.name == "postgresql":
            # Two workers must not both chain onto the same previous entry.
            await session.exec(_LOCK)
        # SQLite: every transaction begins IMMEDIATE (storage/db.py), which serialises appends too.
        prev_hash = (await session.exec(_LAST_HASH)).first() or GENESIS
    at, rows = utcnow().replace(microsecond=0), []
    for action, tip_ref, detail in entries:
        detail = detail[:255]
        entry_hash = _hash(keyring, prev_hash, at, actor, action, tip_ref, detail)
        rows.append({"at": at, "actor": actor, "action": action, "tip_ref": tip_ref, "detail": detail,
                     "prev_hash": prev_hash, "hash": entry_hash})
        prev_hash = entry_hash
    if len(rows) == 1:
        ids = [(await session.exec(_INSERT, params=rows[0])).scalar_one()]
    else:
        # One multi-row VALUES: both databases number its rows in the order written, which is the chain's
        # order; the hashes are matched back all the same, so a mix-up would fail here, not in the log.
        params = {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()}
        inserted = (await session.exec(_insert_rows(len(rows)), params=params)).all()
        by_hash = {entry_hash: entry_id for entry_id, entry_hash in inserted}
        ids = [by_hash[row["hash"]] for row in rows]
        if ids != sorted(ids):
            raise RuntimeError("audit entries were numbered out of their chain's order")
    info[_HEAD] = (transaction, prev_hash)
    return ids


async def entries_of_tip(*, session: AsyncSession, tip_ref: str,
                        actions: Sequence[str] | None = None) -> list[AuditEntry]:
    """What was done with one tip, oldest first (a tip's timeline and its verdict's history are read here)."""
    if actions is None:
        return list((await session.exec(_OF_TIP.order_by(AuditEntry.id), params={"tip_ref": tip_ref})).all())
    return list((await session.exec(_OF_TIP_DOING, params={"tip_ref": tip_ref, "actions": list(actions)})).all())


@dataclass
class AuditCheck:
    entries: int
    broken_at: int | None  # id of the first entry that does not verify
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


@dataclass(frozen=True)
class Head:
    """The newest entry of the chain as seen at some moment: what a later check must still reach."""

    entry_id: int
    hash: str
    seen_at: str = ""  # when it was recorded (ISO, UTC), for the operator reading an error


async def verify_audit(*, session: AsyncSession, keyring: Keyring, batch: int = 5000, anchor: Head | None = None,
                       progress: Callable[[int], None] | None = None) -> AuditCheck:
    """Walk the chain: every entry's hash must match, each must point at the one before it, and the
    chain must still hold the head recorded outside the database (``anchor``), unchanged."""
    prev_hash, last_id, checked = GENESIS, 0, 0
    reached = anchor is None  # whether the chain went through the recorded head, unchanged
    while True:
        rows = (await session.exec(select(AuditEntry).where(AuditEntry.id > last_id)
                                   .order_by(AuditEntry.id).limit(batch))).all()
        if not rows:
            break
        for entry in rows:
            if entry.prev_hash != prev_hash:
                return AuditCheck(checked, entry.id, "an entry before it was changed or deleted")
            if not hmac.compare_digest(entry.hash, _entry_hash(keyring, prev_hash, entry)):
                return AuditCheck(checked, entry.id, "this entry was changed")
            if anchor is not None and entry.id == anchor.entry_id:
                if not hmac.compare_digest(entry.hash, anchor.hash):
                    return AuditCheck(checked, entry.id, f"this entry is not the one recorded outside the database "
                                                         f"at {anchor.seen_at}: entries up to it were replaced")
                reached = True
            prev_hash, last_id, checked = entry.hash, entry.id, checked + 1
        if progress:
            progress(len(rows))
    if not reached:
        if last_id < anchor.entry_id:
            why = "the chain ends before this entry, recorded outside the database at {at}: the newest entries " \
                  "were deleted"
        else:
            why = "this entry, recorded outside the database at {at}, is gone: entries were deleted and others " \
                  "written after them"
        return AuditCheck(checked, anchor.entry_id, why.format(at=anchor.seen_at))
    return AuditCheck(checked, None)


async def count_audit_entries(*, session: AsyncSession) -> int:
    return (await session.exec(select(func.count()).select_from(AuditEntry))).one()


async def audit_head(*, session: AsyncSession) -> Head | None:
    """The newest entry's id and hash; None for an empty log."""
    last = (await session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))).first()
    return Head(last.id, last.hash) if last else None


class AnchorError(ValueError):
    """The anchor file exists but cannot be read: never silently treated as absent."""


class AuditAnchor:
    """The audit head kept in a file outside the database, only ever moved forward."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> Head | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Head(int(data["entry_id"]), str(data["hash"]), str(data.get("seen_at", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnchorError(f"{self.path}: not a readable audit anchor ({type(exc).__name__})") from None

    def record(self, head: Head, *, now: datetime) -> bool:
        """Write ``head`` if it is newer than the recorded one; True if it was written."""
        recorded = self.read()
        if recorded is not None and recorded.entry_id >= head.entry_id:
            return False  # another worker got there first, or nothing new was audited
        body = json.dumps({"entry_id": head.entry_id, "hash": head.hash, "seen_at": now.isoformat(timespec="seconds")})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        return True


async def tip_history(*, session: AsyncSession, tip_ref: str, actions: tuple[str, ...]) -> list[AuditEntry]:
    """The tip's audit entries of these actions, oldest first (the order they were chained in)."""
    return list((await session.exec(_OF_TIP_DOING, params={"tip_ref": tip_ref, "actions": list(actions)})).all())


async def has_audit_entry(*, session: AsyncSession, tip_ref: str, actor: str, action: str) -> bool:
    """Whether this actor ever did this to the tip (for example, was sent its evidence)."""
    found = await session.exec(_DONE_BY, params={"tip_ref": tip_ref, "actor": actor, "action": action})
    return found.first() is not None
