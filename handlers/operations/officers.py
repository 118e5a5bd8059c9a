"""`tinbao officers list/revoke`: who is enrolled, and taking an officer's access away at once."""

from __future__ import annotations

from handlers.context import Services
from storage.audit import append_audit
from storage.models import Officer, utcnow
from storage.officers import list_officers, revoke_officer


async def enrolled(services: Services) -> list[Officer]:
    """Every officer ever enrolled, revoked ones included."""
    async with services.db.transaction() as session:
        return await list_officers(session=session)


async def revoke(services: Services, *, officer_id: int) -> Officer | None:
    """The officer's commands stop working at once, and the audit log says who did it; None if no such
    active officer."""
    async with services.db.transaction() as session:
        officer = await revoke_officer(session=session, officer_id=officer_id, now=utcnow())
        if officer is not None:
            await append_audit(session=session, keyring=services.keyring, actor="cli", action="revoke",
                               detail=f"officer={officer.id}")
        return officer
