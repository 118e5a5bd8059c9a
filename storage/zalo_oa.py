"""Zalo Official Account: the OA's token pair, webhook events kept until handled, each citizen's last
interaction, and what each oa.query.hide button stands for.

Everything here that could open the OA (its tokens) or name a citizen (their Zalo id, what they chose,
when they last wrote) is sealed under a data key wrapped by the keyring, like a tip. The refresh
protocol around the token row (lock, re-read, one transaction) lives in bot/channels/zalo_oa.py;
this module only reads and writes rows, inside the caller's transaction.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import keys as key_store
from storage.crypto import DataKey, DecryptionError, Keyring
from storage.db import insert_into, shred_on_commit
from storage.models import DataKeyRecord, ZaloOaButton, ZaloOaEvent, ZaloOaInteraction, ZaloOaToken
from storage.tips import new_id

log = logging.getLogger(__name__)

TOKEN_FIELD = "zalo_oa:tokens"
EVENT_FIELD = "zalo_oa:event"
# Data keys shared by every row of a table (one per OA would change nothing: the OA is the deployment's).
SEEN_KEY_OWNER = "zalo_oa:seen"
BUTTON_KEY_OWNER = "zalo_oa:buttons"
BUTTON_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


def _insert(session: AsyncSession, table):
    return insert_into(session, table)


# --- the token pair ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredTokens:
    """The OA's pair as stored, opened; ``repr`` never shows a token."""

    oa_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    version: int
    access_expires_at: datetime
    refreshed_at: datetime
    refresh_state: str
    failed_at: datetime | None
    failure: str | None


def _field(oa_id: str) -> str:
    return f"{TOKEN_FIELD}:{oa_id}"  # the sealed pair opens only in its own OA's row


async def load_tokens(*, session: AsyncSession, keyring: Keyring, oa_id: str, lock: bool = False) -> StoredTokens | None:
    """The stored pair, or None before `tinbao zalo-oa connect`.

    ``lock``: on PostgreSQL the row stays locked (FOR UPDATE) until the transaction ends, so one worker
    at a time refreshes; on SQLite the caller's transaction already holds the single writer lock."""
    query = select(ZaloOaToken).where(ZaloOaToken.oa_id == oa_id)
    if lock and _postgres(session):
        query = query.with_for_update()
    row = (await session.exec(query)).one_or_none()
    if row is None:
        return None
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.key_id)
    if data_key is None:
        raise DecryptionError("the data key of the Zalo OA tokens is missing")
    pair = json.loads(data_key.open_text(_field(oa_id), row.sealed))
    return StoredTokens(oa_id=oa_id, access_token=pair["access_token"], refresh_token=pair.get("refresh_token") or "",
                        version=row.version, access_expires_at=row.access_expires_at, refreshed_at=row.refreshed_at,
                        refresh_state=row.refresh_state, failed_at=row.failed_at, failure=row.failure)


async def save_tokens(*, session: AsyncSession, keyring: Keyring, oa_id: str, access_token: str, refresh_token: str,
                      expires_in: int, now: datetime, refresh_state: str = "ok", failure: str | None = None) -> int:
    """Store a new pair (the first one, or a refresh's) sealed; returns its version."""
    row = (await session.exec(select(ZaloOaToken).where(ZaloOaToken.oa_id == oa_id))).one_or_none()
    if row is None:
        key_id = new_id()
        data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=key_id)
        row = ZaloOaToken(oa_id=oa_id, key_id=key_id, sealed=b"", version=0, access_expires_at=now)
    else:
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.key_id)
        if data_key is None:  # shredded by hand: start a new key rather than fail the refresh we just paid for
            row.key_id = new_id()
            data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=row.key_id)
    if row.sealed:
        shred_on_commit(session)  # the old pair is replaced: no copy of it may stay in the SQLite WAL
    row.sealed = data_key.seal(_field(oa_id), json.dumps({"access_token": access_token, "refresh_token": refresh_token}))
    row.version += 1
    row.access_expires_at = now + timedelta(seconds=expires_in)
    row.refreshed_at = now
    row.refresh_state, row.failure = refresh_state, failure
    row.failed_at = now if failure else None
    session.add(row)
    await session.flush()
    return row.version


async def record_refresh_failure(*, session: AsyncSession, oa_id: str, state: str, failure: str, now: datetime) -> None:
    """A refresh that did not give a new pair: the old pair stays as it is, only the failure is noted."""
    await session.exec(update(ZaloOaToken).where(ZaloOaToken.oa_id == oa_id).values(
        refresh_state=state, failed_at=now, failure=failure[:64]))


# --- webhook events ----------------------------------------------------------------------------------

async def store_event(*, session: AsyncSession, keyring: Keyring, dedup_key: str, event_name: str, raw: bytes,
                      worker: str, now: datetime) -> int | None:
    """Keep an event, sealed, claimed by this worker; None when it was stored before (Zalo redelivered it)."""
    key_id = new_id()
    data_key = DataKey.generate(key_id)
    sealed = data_key.seal(f"{EVENT_FIELD}:{key_id}", raw)
    result = await session.exec(_insert(session, ZaloOaEvent).values(
        dedup_key=dedup_key, event_name=event_name[:48], key_id=key_id, payload=sealed, received_at=now,
        claimed_by=worker, claimed_at=now).on_conflict_do_nothing())
    if result.rowcount != 1:
        return None
    kek_id, wrapped = keyring.wrap(data_key)
    session.add(DataKeyRecord(id=key_id, kek_id=kek_id, wrapped=wrapped))
    await session.flush()
    return (await session.exec(select(ZaloOaEvent.id).where(ZaloOaEvent.dedup_key == dedup_key))).one()


async def claim_stale_events(*, session: AsyncSession, keyring: Keyring, worker: str, claimed_before: datetime,
                             now: datetime, limit: int = 50) -> list[tuple[int, bytes]]:
    """Events stored but not handled (a worker stopped, or its answer to Zalo came late): claimed for this
    worker and opened. PostgreSQL: FOR UPDATE SKIP LOCKED, so two sweepers never take the same event."""
    query = (select(ZaloOaEvent).where(ZaloOaEvent.processed_at.is_(None), ZaloOaEvent.payload.is_not(None),
                                       ZaloOaEvent.claimed_at < claimed_before)
             .order_by(ZaloOaEvent.id).limit(limit))
    if _postgres(session):
        query = query.with_for_update(skip_locked=True)
    found: list[tuple[int, bytes]] = []
    for row in (await session.exec(query)).all():
        row.claimed_by, row.claimed_at = worker, now
        session.add(row)
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.key_id)
        try:
            raw = data_key.open(f"{EVENT_FIELD}:{row.key_id}", row.payload) if data_key else None
        except DecryptionError:
            raw = None
        if raw is None:  # cannot be opened: nothing can be done with it but forget it
            log.warning("a stored Zalo OA event does not open; it is dropped")
            await _shred_event(session=session, row=row, now=now)
            continue
        found.append((row.id, raw))
    return found


async def _shred_event(*, session: AsyncSession, row: ZaloOaEvent, now: datetime) -> None:
    if row.key_id:
        await key_store.delete_data_key(session=session, owner_id=row.key_id)
    row.key_id, row.payload, row.processed_at = None, None, now
    session.add(row)


async def finish_event(*, session: AsyncSession, event_id: int, now: datetime) -> None:
    """Handled: the payload and its key are shredded; the row stays a while so redeliveries stay no-ops."""
    row = await session.get(ZaloOaEvent, event_id)
    if row is not None and row.processed_at is None:
        await _shred_event(session=session, row=row, now=now)


async def purge_events(*, session: AsyncSession, before: datetime) -> int:
    """Forget events received before ``before``; ones never handled lose their payload and key too."""
    rows = (await session.exec(select(ZaloOaEvent).where(ZaloOaEvent.received_at < before))).all()
    for row in rows:
        if row.key_id:
            await key_store.delete_data_key(session=session, owner_id=row.key_id)
        await session.delete(row)
    return len(rows)


# --- last interaction (the 7-day window) -------------------------------------------------------------

def _seen_field(seen_key: str) -> str:
    return f"zalo_oa:seen:{seen_key}"


async def record_interaction(*, session: AsyncSession, keyring: Keyring, seen_key: str, at: datetime) -> None:
    """The citizen interacted at ``at``; an older time never replaces a newer one (events come out of order)."""
    data_key = await key_store.shared_data_key(session=session, keyring=keyring, owner_id=SEEN_KEY_OWNER)
    query = select(ZaloOaInteraction).where(ZaloOaInteraction.seen_key == seen_key)
    if _postgres(session):
        query = query.with_for_update()
    row = (await session.exec(query)).one_or_none()
    if row is not None:
        previous = _open_seen(data_key, row)
        if previous is not None and previous >= at:
            return
    sealed = data_key.seal(_seen_field(seen_key), at.isoformat())
    if row is None:
        await session.exec(_insert(session, ZaloOaInteraction).values(seen_key=seen_key, sealed=sealed)
                           .on_conflict_do_update(index_elements=["seen_key"], set_={"sealed": sealed}))
    else:
        row.sealed = sealed
        session.add(row)


def _open_seen(data_key: DataKey, row: ZaloOaInteraction) -> datetime | None:
    try:
        return datetime.fromisoformat(data_key.open_text(_seen_field(row.seen_key), row.sealed))
    except (DecryptionError, ValueError):
        return None


async def last_interaction(*, session: AsyncSession, keyring: Keyring, seen_key: str) -> datetime | None:
    row = await session.get(ZaloOaInteraction, seen_key)
    if row is None:
        return None
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=SEEN_KEY_OWNER)
    return _open_seen(data_key, row) if data_key else None


async def forget_interaction(*, session: AsyncSession, seen_key: str) -> None:
    await session.exec(delete(ZaloOaInteraction).where(ZaloOaInteraction.seen_key == seen_key))


async def purge_interactions(*, session: AsyncSession, keyring: Keyring, before: datetime) -> int:
    """Forget interactions older than ``before``: past the window they are of no use, so not kept."""
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=SEEN_KEY_OWNER)
    if data_key is None:
        return 0
    stale = [row.seen_key for row in (await session.exec(select(ZaloOaInteraction))).all()
             if (at := _open_seen(data_key, row)) is None or at < before]
    if stale:
        await session.exec(delete(ZaloOaInteraction).where(ZaloOaInteraction.seen_key.in_(stale)))
    return len(stale)


# --- oa.query.hide buttons ---------------------------------------------------------------------------

def _button_field(token: str, binding: str) -> str:
    # The chat is in the associated data only: the row does not say whose it is, and a payload copied to
    # another chat does not open there.
    return f"zalo_oa:button:{token}:{binding}"


def new_button_token() -> str:
    return "".join(secrets.choice(BUTTON_ALPHABET) for _ in range(12))  # 60 random bits


async def save_buttons(*, session: AsyncSession, keyring: Keyring, binding: str, choice_ids: list[str],
                       now: datetime) -> list[str]:
    """One random token per choice, in order; the choice id is kept sealed and bound to the chat."""
    data_key = await key_store.shared_data_key(session=session, keyring=keyring, owner_id=BUTTON_KEY_OWNER)
    tokens = []
    for choice_id in choice_ids:
        token = new_button_token()
        session.add(ZaloOaButton(token=token, sealed=data_key.seal(_button_field(token, binding), choice_id),
                                 created_at=now))
        tokens.append(token)
    await session.flush()
    return tokens


async def resolve_button(*, session: AsyncSession, keyring: Keyring, token: str, binding: str) -> str | None:
    """The choice id behind a payload, if the token was sent to this chat and is still kept."""
    row = await session.get(ZaloOaButton, token)
    if row is None:
        return None
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=BUTTON_KEY_OWNER)
    try:
        return data_key.open_text(_button_field(token, binding), row.sealed) if data_key else None
    except DecryptionError:
        return None


async def purge_buttons(*, session: AsyncSession, before: datetime) -> int:
    result = await session.exec(delete(ZaloOaButton).where(ZaloOaButton.created_at < before))
    return result.rowcount or 0
