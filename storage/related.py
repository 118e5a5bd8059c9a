"""Related tips: which tips share a phone number, account, plate or handle, found without decrypting any.

Each identifier a tip mentions is kept only as a blind index, a keyed HMAC (the keyring's related-index
key, not the pseudonym pepper) of its kind and canonical form, beside the tip's id; its masked form
("09•••••456") is sealed under the tip's own data key. A leaked database says that some tips share
something, and how often, not what (README, "Related tips").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, LargeBinary, bindparam, case, delete, func, or_
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import DataKey, Keyring
from storage.models import Tip, utcnow

# 128 bits of the HMAC: collisions among millions of rows never happen (p ≈ n²/2¹²⁹), and a shorter digest
# would not hide anything from whoever holds the key: Vietnam's ~10⁹ phone numbers would still be tried
# in minutes. What protects the identifiers is the key, kept outside the database.
DIGEST_BYTES = 16


class RelatedIdentifier(SQLModel, table=True):
    """One identifier a tip mentions: its blind index, its kind, and its masked form sealed."""

    __tablename__ = "related_identifier"
    digest: str = Field(primary_key=True, max_length=2 * DIGEST_BYTES)  # hex of the truncated HMAC
    tip_id: str = Field(primary_key=True, foreign_key="tip.id", ondelete="CASCADE", index=True, max_length=32)
    key_id: str = Field(max_length=8)  # which related-index key made the digest (re-indexing rotates it)
    kind: str = Field(max_length=16)  # phone, bank_account, plate, ewallet, facebook, zalo, telegram, tiktok
    masked: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # sealed under the tip's data key
    created_at: datetime = Field(default_factory=utcnow)


class RelatedLink(SQLModel, table=True):
    """Two tips an officer linked by hand (/link, "duplicate of"), stored once with the smaller id first."""

    __tablename__ = "related_link"
    tip_id: str = Field(primary_key=True, foreign_key="tip.id", ondelete="CASCADE", max_length=32)
    other_tip_id: str = Field(primary_key=True, foreign_key="tip.id", ondelete="CASCADE", index=True,
                              max_length=32)
    officer_id: int | None = None
    reason: str = Field(default="manual", max_length=16)  # manual, duplicate
    created_at: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class Identifier:
    """What extraction found, in memory only: kind, canonical value (+84…, digits, 51F12345, handle), masked."""

    kind: str
    value: str
    masked: str

    def __repr__(self) -> str:  # a tip's identifiers never reach a log line through repr
        return f"Identifier(kind={self.kind!r}, masked={self.masked!r})"


@dataclass(frozen=True)
class RelatedTip:
    """Another tip, by its clear columns only: enough to split in-scope from out-of-scope and to list it."""

    tip_id: str
    ref: str
    unit_id: str | None
    status: str
    created_at: datetime


@dataclass(frozen=True)
class SharedIdentifier:
    """One identifier of this tip that other tips mention too: how many in each unit (exact), and the newest
    of them in the units asked for (all units when none were)."""

    kind: str
    masked: str
    tips: tuple[RelatedTip, ...]
    count_by_unit: dict[str | None, int]


@dataclass(frozen=True)
class SearchHit:
    kind: str
    digest: str
    tip: RelatedTip


@dataclass(frozen=True)
class RepeatedIdentifier:
    """An identifier mentioned by several tips of a period: counts only; its masked form opens with the
    data key of ``sample_tip_id`` (``open_masked``)."""

    kind: str
    digest: str
    tip_count: int
    sample_tip_id: str


@dataclass(frozen=True)
class TipLink:
    tip: RelatedTip
    officer_id: int | None
    reason: str
    created_at: datetime


def _message(kind: str, value: str) -> bytes:
    return f"tinbao/v1|related|{kind}|{value}".encode()


def digests(*, keyring: Keyring, kind: str, value: str) -> dict[str, str]:
    """The blind index of one identifier under each related-index key in the keyring: {key id: hex}."""
    return {kid: mac[:DIGEST_BYTES].hex() for kid, mac in keyring.related_digests(_message(kind, value)).items()}


def _masked_field(digest: str) -> str:
    # Bound to the digest: a sealed mask moved to another identifier's row does not open.
    return f"related:{digest}"


# Only these clear columns are read, not whole Tip objects: a busy scam number is named by hundreds of tips.
_TIP_COLUMNS = (Tip.id, Tip.ref, Tip.unit_id, Tip.status, Tip.created_at)


def _related_tip(row) -> RelatedTip:
    tip_id, ref, unit_id, status, created_at = row
    return RelatedTip(tip_id=tip_id, ref=ref, unit_id=unit_id, status=status, created_at=created_at)


# Built once: every tip an officer opens (/next, /tip) asks both, and building each statement again cost more
# than PostgreSQL takes to answer it for a tip that shares nothing.
_OWN_IDENTIFIERS = (select(RelatedIdentifier.digest, RelatedIdentifier.kind, RelatedIdentifier.masked)
                    .where(RelatedIdentifier.tip_id == bindparam("tip_id"))
                    .order_by(RelatedIdentifier.created_at, RelatedIdentifier.digest))
# A link is stored once, smaller id first: the other tip is whichever side this one is not.
_LINKED_TIP_ID = case((RelatedLink.tip_id == bindparam("tip_id"), RelatedLink.other_tip_id), else_=RelatedLink.tip_id)
_LINKS = (select(RelatedLink.officer_id, RelatedLink.reason, RelatedLink.created_at, *_TIP_COLUMNS)
          .join(Tip, Tip.id == _LINKED_TIP_ID)
          .where(or_(RelatedLink.tip_id == bindparam("tip_id"), RelatedLink.other_tip_id == bindparam("tip_id")))
          .order_by(RelatedLink.created_at, RelatedLink.tip_id, RelatedLink.other_tip_id))


async def record_identifiers(*, session: AsyncSession, keyring: Keyring, data_key: DataKey,
                             identifiers: Iterable[Identifier]) -> int:
    """Index what a tip mentions (on submit, and again when a follow-up answer adds more); returns how many
    were new. Recording the same identifier twice changes nothing."""
    tip_id = data_key.owner_id
    # A re-index in another process may have made a new key active: one stat() of the keyring file, so no
    # new tip is indexed under a key about to be retired.
    keyring.refresh(min_interval=0)
    key_id = keyring.related_active_id
    wanted: dict[str, Identifier] = {}
    for identifier in identifiers:
        wanted.setdefault(digests(keyring=keyring, kind=identifier.kind, value=identifier.value)[key_id], identifier)
    if not wanted:
        return 0
    existing = set((await session.exec(select(RelatedIdentifier.digest).where(
        RelatedIdentifier.tip_id == tip_id, RelatedIdentifier.digest.in_(list(wanted))))).all())
    new = [(digest, identifier) for digest, identifier in wanted.items() if digest not in existing]
    for digest, identifier in new:
        session.add(RelatedIdentifier(digest=digest, tip_id=tip_id, key_id=key_id, kind=identifier.kind,
                                      masked=data_key.seal(_masked_field(digest), identifier.masked)))
    await session.flush()
    return len(new)


async def _count_by_unit(session: AsyncSession, digests_: list[str], *, exclude_tip: str | None = None):
    query = (select(RelatedIdentifier.digest, Tip.unit_id, func.count(func.distinct(Tip.id)))
             .join(Tip, Tip.id == RelatedIdentifier.tip_id).where(RelatedIdentifier.digest.in_(digests_)))
    if exclude_tip is not None:
        query = query.where(RelatedIdentifier.tip_id != exclude_tip)
    return (await session.exec(query.group_by(RelatedIdentifier.digest, Tip.unit_id))).all()


async def related_tips(*, session: AsyncSession, data_key: DataKey, unit_ids: Sequence[str] | None = None,
                       limit: int = 200) -> list[SharedIdentifier]:
    """The other tips that share an identifier with this one, grouped by identifier: exact counts per unit,
    and the newest ``limit`` tips of ``unit_ids`` (the officer's scope) to list by reference."""
    own = (await session.exec(_OWN_IDENTIFIERS, params={"tip_id": data_key.owner_id})).all()
    if not own:
        return []
    wanted = [r.digest for r in own]
    counts: dict[str, dict[str | None, int]] = {}
    for digest, unit_id, n in await _count_by_unit(session, wanted, exclude_tip=data_key.owner_id):
        counts.setdefault(digest, {})[unit_id] = int(n)
    if not counts:
        return []
    query = (select(RelatedIdentifier.digest, *_TIP_COLUMNS).join(Tip, Tip.id == RelatedIdentifier.tip_id)
             .where(RelatedIdentifier.digest.in_(list(counts)), RelatedIdentifier.tip_id != data_key.owner_id))
    if unit_ids is not None:
        query = query.where(Tip.unit_id.in_(list(unit_ids)))
    by_digest: dict[str, list[RelatedTip]] = {}
    for digest, *tip in (await session.exec(query.order_by(Tip.created_at.desc()).limit(limit))).all():
        by_digest.setdefault(digest, []).append(_related_tip(tip))
    return [SharedIdentifier(kind=r.kind, masked=data_key.open_text(_masked_field(r.digest), r.masked),
                             tips=tuple(by_digest.get(r.digest, ())), count_by_unit=counts[r.digest])
            for r in own if r.digest in counts]


async def find_tips_by_value(*, session: AsyncSession, keyring: Keyring, identifiers: Iterable[Identifier],
                             unit_ids: Sequence[str] | None = None, limit: int = 100) -> list[SearchHit]:
    """The tips that mention any of these identifiers (what /search VALUE finds), newest first; only those
    of ``unit_ids`` when given."""
    kinds: dict[str, str] = {}
    for identifier in identifiers:
        for digest in digests(keyring=keyring, kind=identifier.kind, value=identifier.value).values():
            kinds[digest] = identifier.kind
    if not kinds:
        return []
    query = (select(RelatedIdentifier.digest, *_TIP_COLUMNS).join(Tip, Tip.id == RelatedIdentifier.tip_id)
             .where(RelatedIdentifier.digest.in_(list(kinds))))
    if unit_ids is not None:
        query = query.where(Tip.unit_id.in_(list(unit_ids)))
    rows = (await session.exec(query.order_by(Tip.created_at.desc()).limit(limit))).all()
    return [SearchHit(kind=kinds[digest], digest=digest, tip=_related_tip(tip)) for digest, *tip in rows]


async def count_tips_by_value(*, session: AsyncSession, keyring: Keyring,
                              identifiers: Iterable[Identifier]) -> dict[str | None, int]:
    """How many tips in each unit mention any of these identifiers (each tip once, whatever it was read as)."""
    wanted = [d for i in identifiers for d in digests(keyring=keyring, kind=i.kind, value=i.value).values()]
    if not wanted:
        return {}
    rows = (await session.exec(select(Tip.unit_id, func.count(func.distinct(Tip.id)))
                               .join(RelatedIdentifier, RelatedIdentifier.tip_id == Tip.id)
                               .where(RelatedIdentifier.digest.in_(wanted)).group_by(Tip.unit_id))).all()
    return {unit_id: int(n) for unit_id, n in rows}


async def repeated_identifiers(*, session: AsyncSession, since: datetime, until: datetime,
                               unit_ids: Sequence[str] | None = None, min_tips: int = 2,
                               limit: int = 20) -> list[RepeatedIdentifier]:
    """Identifiers mentioned by at least ``min_tips`` tips received in [since, until) (of ``unit_ids``),
    most mentioned first: for the figures. Hiding small cells is the caller's, as for every figure."""
    tip_count = func.count(func.distinct(RelatedIdentifier.tip_id))
    query = (select(RelatedIdentifier.digest, func.min(RelatedIdentifier.kind), tip_count,
                    func.min(RelatedIdentifier.tip_id))
             .join(Tip, Tip.id == RelatedIdentifier.tip_id)
             .where(Tip.created_at >= since, Tip.created_at < until))
    if unit_ids is not None:
        query = query.where(Tip.unit_id.in_(list(unit_ids)))
    query = (query.group_by(RelatedIdentifier.digest).having(tip_count >= min_tips)
             .order_by(tip_count.desc(), RelatedIdentifier.digest).limit(limit))
    rows = (await session.exec(query)).all()
    return [RepeatedIdentifier(kind=kind, digest=digest, tip_count=int(n), sample_tip_id=sample)
            for digest, kind, n, sample in rows]


async def open_masked(*, session: AsyncSession, data_key: DataKey, digest: str) -> str | None:
    """The masked form (09•••••456) of one identifier of this tip, opened with the tip's data key."""
    row = await session.get(RelatedIdentifier, (digest, data_key.owner_id))
    return None if row is None else data_key.open_text(_masked_field(digest), row.masked)


def _pair(tip_id: str, other_tip_id: str) -> tuple[str, str]:
    return (tip_id, other_tip_id) if tip_id < other_tip_id else (other_tip_id, tip_id)


async def link_tips(*, session: AsyncSession, tip_id: str, other_tip_id: str, officer_id: int | None,
                    reason: str = "manual") -> bool:
    """Link two tips by hand; False when they are the same tip or already linked (the first link stays)."""
    if tip_id == other_tip_id:
        return False
    first, second = _pair(tip_id, other_tip_id)
    if await session.get(RelatedLink, (first, second)) is not None:
        return False
    session.add(RelatedLink(tip_id=first, other_tip_id=second, officer_id=officer_id, reason=reason))
    await session.flush()
    return True


async def unlink_tips(*, session: AsyncSession, tip_id: str, other_tip_id: str) -> bool:
    """Undo a link made by mistake; False if there was none."""
    first, second = _pair(tip_id, other_tip_id)
    result = await session.exec(delete(RelatedLink).where(RelatedLink.tip_id == first,
                                                          RelatedLink.other_tip_id == second))
    return result.rowcount == 1


async def links_of(*, session: AsyncSession, tip_id: str) -> list[TipLink]:
    """The tips linked by hand to this one, from either side, oldest link first (its timeline)."""
    rows = (await session.exec(_LINKS, params={"tip_id": tip_id})).all()
    return [TipLink(tip=_related_tip(tip), officer_id=officer_id, reason=reason, created_at=created_at)
            for officer_id, reason, created_at, *tip in rows]


async def delete_identifiers(*, session: AsyncSession, tip_id: str) -> int:
    """Forget what a tip mentions (purge, cancellation): it no longer links to anything."""
    result = await session.exec(delete(RelatedIdentifier).where(RelatedIdentifier.tip_id == tip_id))
    return result.rowcount or 0


async def delete_links(*, session: AsyncSession, tip_id: str) -> int:
    """Remove the links officers made to or from this tip."""
    result = await session.exec(delete(RelatedLink).where(
        or_(RelatedLink.tip_id == tip_id, RelatedLink.other_tip_id == tip_id)))
    return result.rowcount or 0


async def replace_identifiers(*, session: AsyncSession, keyring: Keyring, data_key: DataKey,
                              identifiers: Iterable[Identifier]) -> int:
    """Re-index one tip under the active key: its old rows go, what its sealed answers name now comes in."""
    await delete_identifiers(session=session, tip_id=data_key.owner_id)
    return await record_identifiers(session=session, keyring=keyring, data_key=data_key, identifiers=identifiers)


async def count_tips_to_index(*, session: AsyncSession) -> int:
    """How many tips still have content to read (a purged tip has none, and no index rows)."""
    return int((await session.exec(select(func.count()).select_from(Tip).where(Tip.purged_at.is_(None)))).one())


async def tips_to_index(*, session: AsyncSession, after_id: str, limit: int) -> list[str]:
    """The next ``limit`` unpurged tips by id after ``after_id``: re-indexing walks them in order and can stop
    anywhere without holding a transaction open."""
    return list((await session.exec(select(Tip.id).where(Tip.purged_at.is_(None), Tip.id > after_id)
                                    .order_by(Tip.id).limit(limit))).all())


async def rows_by_key(*, session: AsyncSession) -> dict[str, int]:
    """How many index rows each related-index key made: a key with none left can be retired."""
    rows = (await session.exec(select(RelatedIdentifier.key_id, func.count())
                               .group_by(RelatedIdentifier.key_id))).all()
    return {key_id: int(n) for key_id, n in rows}


async def delete_rows_of_key(*, session: AsyncSession, key_id: str) -> int:
    """Drop what an old key indexed and nothing re-indexed (a tip whose content is gone)."""
    result = await session.exec(delete(RelatedIdentifier).where(RelatedIdentifier.key_id == key_id))
    return result.rowcount or 0


async def tips_indexed_under_other_keys(*, session: AsyncSession, key_id: str) -> list[str]:
    """Tips with index rows made by a key other than ``key_id``: what a re-index still has to read."""
    return list((await session.exec(select(RelatedIdentifier.tip_id).where(RelatedIdentifier.key_id != key_id)
                                    .distinct())).all())
