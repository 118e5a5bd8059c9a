"""Officers and their one-time enrolment invites."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import keys as key_store
from storage.crypto import Keyring
from storage.models import Invite, Officer, Tip, utcnow
from storage.tip_states import CLAIMED, in_states
from storage.tips import new_id

ROLES = ("officer", "supervisor", "admin")


async def create_invite(*, session: AsyncSession, code_hash: str, unit_id: str, role: str, name: str,
                        valid_for: timedelta = timedelta(hours=24)) -> Invite:
    invite = Invite(code_hash=code_hash, unit_id=unit_id, role=role, name=name,
                    expires_at=utcnow() + valid_for)
    session.add(invite)
    await session.flush()
    return invite


async def redeem_invite(*, session: AsyncSession, keyring: Keyring, code_hash: str, chat_key: str, channel: str,
                        route: dict, now: datetime) -> Officer | None:
    """Turn a valid, unused, unexpired invite into an officer; None when the code does not work."""
    query = select(Invite).where(Invite.code_hash == code_hash)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()  # one code, one officer, even when two redeem at once
    invite = (await session.exec(query)).one_or_none()
    if invite is None or invite.used_at is not None or invite.expires_at < now:
        return None
    existing = await active_officer(session=session, chat_key=chat_key)
    if existing is not None:
        return None
    route_key_id = new_id()
    data_key = await key_store.create_data_key(session=session, keyring=keyring, owner_id=route_key_id)
    officer = (await session.exec(select(Officer).where(Officer.chat_key == chat_key))).one_or_none()
    if officer is None:  # a revoked officer re-enrolling keeps their id, so the audit log reads on
        officer = Officer(chat_key=chat_key, channel=channel, unit_id="", role="", name="", route_key_id="",
                          route=b"")
    officer.unit_id, officer.role, officer.name = invite.unit_id, invite.role, invite.name
    officer.route_key_id, officer.route = route_key_id, data_key.seal("route", json.dumps(route))
    officer.enrolled_at, officer.revoked_at = now, None
    session.add(officer)
    await session.flush()
    invite.used_at, invite.officer_id = now, officer.id
    session.add(invite)
    return officer


async def active_officer(*, session: AsyncSession, chat_key: str) -> Officer | None:
    return (await session.exec(select(Officer).where(Officer.chat_key == chat_key,
                                                     Officer.revoked_at.is_(None)))).one_or_none()


async def officer_ever(*, session: AsyncSession, chat_key: str) -> Officer | None:
    """The officer row of this chat, revoked or not."""
    return (await session.exec(select(Officer).where(Officer.chat_key == chat_key))).one_or_none()


async def officer_route(*, session: AsyncSession, keyring: Keyring, officer: Officer) -> dict | None:
    data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=officer.route_key_id)
    return json.loads(data_key.open_text("route", officer.route)) if data_key else None


async def list_officers(*, session: AsyncSession) -> list[Officer]:
    return list((await session.exec(select(Officer).order_by(Officer.id))).all())


async def officers_of_units(*, session: AsyncSession, unit_ids: list[str]) -> list[Officer]:
    return list((await session.exec(select(Officer).where(Officer.unit_id.in_(unit_ids),
                                                          Officer.revoked_at.is_(None)))).all())


async def revoke_officer(*, session: AsyncSession, officer_id: int, now: datetime) -> Officer | None:
    """The officer loses access at once; their sealed route is shredded."""
    officer = await session.get(Officer, officer_id)
    if officer is None or officer.revoked_at is not None:
        return None
    officer.revoked_at = now
    await key_store.delete_data_key(session=session, owner_id=officer.route_key_id)
    officer.route = b""  # the ciphertext goes too, not only the key that opened it
    session.add(officer)
    # Written now, not at commit: on PostgreSQL this waits for a reopen that is handing the officer a tip
    # (still_enrolled's share lock), so tips_held_by, read after it, sees that tip too.
    await session.flush()
    return officer


async def still_enrolled(*, session: AsyncSession, officer_id: int) -> bool:
    """Whether the officer may still be given a tip. On PostgreSQL the row stays share-locked until the
    caller's transaction ends: a revoke at that moment waits for it, then finds the tip and releases it."""
    query = select(Officer.id).where(Officer.id == officer_id, Officer.revoked_at.is_(None))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(read=True)  # SELECT … FOR SHARE
    return (await session.exec(query)).first() is not None


async def tips_held_by(*, session: AsyncSession, officer_id: int) -> list[Tip]:
    """The open tips the officer has claimed (in review, or waiting for the tipster), oldest first; on
    PostgreSQL locked for the caller, who is about to release them."""
    query = select(Tip).where(Tip.claimed_by == officer_id, in_states(CLAIMED)).order_by(Tip.created_at)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    return list((await session.exec(query)).all())
