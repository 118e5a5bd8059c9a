"""`tinbao officers list/revoke`: who is enrolled, and taking an officer's access away at once."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.context import Services
from storage import tip_states
from storage.audit import append_audit
from storage.models import Officer, utcnow
from storage.officers import list_officers, revoke_officer, tips_held_by


@dataclass(frozen=True)
class Revoked:
    officer: Officer
    released: int  # open tips they held, back in the queue


async def enrolled(services: Services) -> list[Officer]:
    """Every officer ever enrolled, revoked ones included."""
    async with services.db.transaction() as session:
        return await list_officers(session=session)


async def revoke(services: Services, *, officer_id: int) -> Revoked | None:
    """The officer's commands stop working at once, and the audit log says who did it; the open tips they
    held go back to the queue, where a colleague's /next finds them (nobody else could act on them). None if
    no such active officer."""
    async with services.db.transaction() as session:
        now = utcnow()
        officer = await revoke_officer(session=session, officer_id=officer_id, now=now)
        if officer is None:
            return None
        # Read after the officer's row changed (revoke_officer waits for a reopen giving them a tip), so a
        # tip reopened for them a moment ago is released too; and before the first audit entry, whose lock
        # a turn working on one of these tips (locked, its own entry still to write) would wait for while
        # this waits for the tip. Their judged tips keep their name: it says who judged them.
        held = await tips_held_by(session=session, officer_id=officer.id)
        await append_audit(session=session, keyring=services.keyring, actor="cli", action="revoke",
                           detail=f"officer={officer.id}")
        for tip in held:
            tip_states.release(session=session, tip=tip, now=now)
            await append_audit(session=session, keyring=services.keyring, actor="cli", action="release",
                               tip_ref=tip.ref, detail=f"revoked={officer.id}")
        return Revoked(officer=officer, released=len(held))
