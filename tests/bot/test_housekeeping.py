"""The bot's timer: stale drafts wiped, officers reminded of waiting tips, old not-valuable tips purged,
evidence files that nothing points to swept, the audit log's head recorded outside the database."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from sqlmodel import select

from bot.delivery import Deliveries
from bot.runtime import housekeeping
from storage.audit import AuditAnchor
from storage.models import AuditEntry, Conversation, Tip
from tests.handlers.officer.test_triage import enrol, submit_tip
from tests.support.chat import ChatClient


async def test_one_round_does_it_all(services, tipline, tmp_path):
    await submit_tip(tipline, "111")  # will wait "too long"
    second = await submit_tip(tipline, "112")
    officer = await enrol(services, tipline, "900")
    async with services.db.transaction() as session:
        refs = [t.ref for t in (await session.exec(select(Tip).order_by(Tip.created_at))).all()]
    await officer.send(f"/notvaluable {refs[1]} false")
    drafter = ChatClient(tipline, chat_id="333", language="en")
    await drafter.send("/report")
    real_now = services.clock()
    services.clock = lambda: real_now + timedelta(days=400)  # past every limit: draft TTL, alerts, retention
    sent: list[tuple[str, str]] = []

    async def capture(chat_id, replies):
        sent.extend((chat_id, r.text) for r in replies)
    deliveries = Deliveries()
    deliveries.register("console", capture)
    services.audit_anchor = AuditAnchor(tmp_path / "audit-anchor.json")
    stray = services.blobs.root / ("5e" * 16)  # a sealed file whose transaction rolled back
    stray.write_bytes(b"sealed bytes nobody can open")
    job = asyncio.create_task(housekeeping(services, deliveries, every=3600))
    for _ in range(100):
        await asyncio.sleep(0.05)
        async with services.db.transaction() as session:
            purged = (await session.exec(select(Tip).where(Tip.ref == refs[1]))).one().purged_at
        if sent and purged and not stray.exists() and services.audit_anchor.path.exists():
            break
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job
    assert [chat for chat, _ in sent] == ["900"] and refs[0] in sent[0][1] and "waiting too long" in sent[0][1]
    assert purged is not None
    assert not stray.exists()  # swept with the daily purge
    async with services.db.transaction() as session:
        newest = (await session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()))).first()
    assert services.audit_anchor.read().hash == newest.hash  # the audit head, kept outside the database
    async with services.db.transaction() as session:
        drafts = (await session.exec(select(Conversation).where(Conversation.draft_id.is_not(None)))).all()
    assert drafts == []
    # The purged tip's receipt code still tells its tipster that the review is over.
    assert (await ChatClient(tipline, chat_id="444", language="en").send(f"/status {second}"))[0].text.endswith(
        "Status: Review finished. Thank you for your tip.")
