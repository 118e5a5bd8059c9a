"""Jobs that run on a timer or from the CLI: reminding officers of waiting tips, purging old ones,
sweeping evidence files that no tip points to, recording the audit log's head outside the database."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from handlers.context import Services
from handlers.i18n import number, translator
from handlers.messages import Reply, Route
from handlers.related.indexing import RELATED_TABLES, forget_tip
from storage import triage as triage_store
from storage.audit import append_audit, audit_head
from storage.conversations import prune_processed_updates as prune_processed
from storage.officers import officer_route, officers_of_units
from storage.tips import blob_names_in_use

log = logging.getLogger(__name__)


async def remind_officers(services: Services, *, now: datetime | None = None) -> list[Reply]:
    """Tips left unclaimed, or in review, longer than the configured limits: one message per officer."""
    now = now or services.clock()
    triage = services.settings.triage
    units = services.settings.unit_tree
    replies: list[Reply] = []
    async with services.db.transaction() as session:
        stale = await triage_store.stale_tips(session=session, received_before=now - triage.unclaimed_alert,
                                              claimed_before=now - triage.review_alert,
                                              alerted_before=now - triage.unclaimed_alert)
        by_unit: dict[str, list] = defaultdict(list)
        for tip in stale:
            by_unit[tip.unit_id or ""].append(tip)
            tip.alerted_at = now
            session.add(tip)
        for unit_id, tips in by_unit.items():
            # The unit's own officers and every supervisor above it hear of it.
            watchers = [unit_id] + _ancestors(units, unit_id)
            for officer in await officers_of_units(session=session, unit_ids=watchers):
                if officer.unit_id != unit_id and officer.role == "officer":
                    continue
                route = await officer_route(session=session, keyring=services.keyring, officer=officer)
                if route is None:
                    continue
                _ = translator(route.get("language", "vi"))
                refs = ", ".join(t.ref for t in tips[:20]) + (" …" if len(tips) > 20 else "")
                text = _("{n} tip(s) of {unit} have been waiting too long: {refs}. Send /queue to see them.").format(
                    n=number(len(tips), route.get("language", "vi")), unit=units.name(unit_id), refs=refs)
                replies.append(Reply(text, to=Route(route["channel"], route["chat_id"])))
    return replies


def _ancestors(units, unit_id: str) -> list[str]:
    found, unit = [], units.get(unit_id)
    while unit and unit.parent:
        found.append(unit.parent)
        unit = units.get(unit.parent)
    return found


async def purge_not_valuable(services: Services, *, now: datetime | None = None, batch: int = 200,
                             progress: Callable[[int, int], None] | None = None) -> int:
    """Tips judged not valuable longer ago than the retention period lose their sealed content and files."""
    now = now or services.clock()
    cutoff = now - services.settings.triage.purge_not_valuable_after
    async with services.db.transaction() as session:
        total = await triage_store.count_purgeable(session=session, judged_before=cutoff)
    done = 0
    while True:
        async with services.db.transaction() as session:
            tips = await triage_store.purgeable(session=session, judged_before=cutoff, limit=batch)
            for tip in tips:
                await triage_store.purge_tip(session=session, blobs=services.blobs, tip=tip, now=now)
                await forget_tip(session=session, tip_id=tip.id)  # what it named and its links go with it
                await append_audit(session=session, keyring=services.keyring, actor="system", action="purge",
                                   tip_ref=tip.ref, detail="retention: not valuable")
        if not tips:
            break
        done += len(tips)
        if progress:
            progress(done, total)
    if done:
        await services.db.checkpoint()  # deleted pages must not linger in SQLite's WAL
        # nor dead row versions in PostgreSQL's tables
        await services.db.vacuum(triage_store.PURGED_TABLES + RELATED_TABLES)
        log.info("purged %d tips judged not valuable", done)
    return done


# Telegram keeps an update for at most 24 hours before giving up on it (Bot API, "Getting updates"); Zalo
# documents no retry window. A week is far past any redelivery seen, and short enough that the table does
# not keep a record of every message the bot ever had.
PROCESSED_UPDATES_KEPT = timedelta(days=7)


async def prune_processed_updates(services: Services, *, now: datetime | None = None) -> int:
    """Forget the ids of updates handled longer ago than any platform redelivers them."""
    async with services.db.transaction() as session:
        cutoff = (now or services.clock()) - PROCESSED_UPDATES_KEPT
        pruned = await prune_processed(session=session, handled_before=cutoff)
    if pruned:
        log.info("forgot %d update ids older than %d days", pruned, PROCESSED_UPDATES_KEPT.days)
    return pruned


# A file is written before its row is committed; younger files may still be waiting for their commit.
STRAY_FILE_GRACE = timedelta(hours=1)


async def sweep_stray_files(services: Services, *, now: datetime | None = None, batch: int = 500) -> int:
    """Delete sealed evidence files that no attachment row points to, and half-written ones.

    A file is written, sealed, before the transaction that records it commits; when that
    transaction rolls back (a crash, a lost connection) the file stays behind with nothing
    pointing to it. It cannot be opened without its key, which was rolled back too, but
    "nothing leaked" also means nothing left lying around.
    """
    now = now or services.clock()
    stale = list(services.blobs.files_older_than(STRAY_FILE_GRACE.total_seconds(), now=now.timestamp()))
    swept = 0
    for start in range(0, len(stale), batch):
        names = stale[start:start + batch]
        async with services.db.transaction() as session:
            in_use = await blob_names_in_use(session=session, names=names)
        for name in names:
            if name not in in_use:
                services.blobs.delete_file(name)
                swept += 1
    if swept:
        log.info("deleted %d evidence files that no tip pointed to", swept)
    return swept


async def anchor_audit(services: Services, *, now: datetime | None = None) -> bool:
    """Write the audit log's newest entry to the anchor file, so cutting entries off is found later."""
    if services.audit_anchor is None:
        return False
    async with services.db.transaction() as session:
        head = await audit_head(session=session)
    return head is not None and services.audit_anchor.record(head, now=now or services.clock())
