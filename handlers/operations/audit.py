"""`tinbao audit verify`: the whole chained audit log checked against the keyring and the anchor file."""

from __future__ import annotations

from collections.abc import Callable

from handlers.context import Services
from handlers.officer.maintenance import anchor_audit
from storage.audit import AuditCheck, Head, audit_head, count_audit_entries, verify_audit


async def verify(services: Services, *, on_total: Callable[[int], None] = lambda total: None,
                 progress: Callable[[int], None] = lambda done: None) -> tuple[AuditCheck, Head | None]:
    """Every entry checked in order; once intact, its head is recorded so later checks must reach it.
    An unreadable anchor file raises storage.audit.AnchorError."""
    anchor = services.audit_anchor.read()
    async with services.db.transaction() as session:
        on_total(await count_audit_entries(session=session))
        check = await verify_audit(session=session, keyring=services.keyring, anchor=anchor, progress=progress)
    if not check.ok:
        return check, None
    await anchor_audit(services)  # what was just verified is what later checks must reach
    async with services.db.transaction() as session:
        return check, await audit_head(session=session)
