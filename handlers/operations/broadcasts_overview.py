"""`tinbao reminders status`: recent and coming broadcasts with their outbox counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from handlers.context import Services
from storage import outbox
from storage import reminders as store
from storage.models import ReminderBroadcast


@dataclass(frozen=True)
class BroadcastLine:
    """One broadcast and its rows by outcome ("sent", "pending", "skipped:blocked", …)."""

    broadcast: ReminderBroadcast
    counts: dict[str, int]

    @property
    def pending(self) -> int:
        return self.counts.get("pending", 0) + self.counts.get("sending", 0)

    @property
    def skipped(self) -> dict[str, int]:
        return {k.split(":", 1)[1]: v for k, v in sorted(self.counts.items()) if k.startswith("skipped:")}

    @property
    def rows(self) -> int:
        """Messages to send (skips excluded): the length of its progress bar."""
        return sum(v for k, v in self.counts.items() if ":" not in k)

    @property
    def finished_rows(self) -> int:
        return sum(v for k, v in self.counts.items() if ":" not in k and k not in ("pending", "sending"))

    @property
    def going_out(self) -> bool:
        return self.broadcast.status == "queued" and bool(self.pending)


async def broadcasts_overview(services: Services, *, days: int, limit: int) -> tuple[list[BroadcastLine], int]:
    """The broadcasts of the last ``days`` days (and coming ones), and how many messages anywhere in the
    outbox have an unknown outcome."""
    async with services.db.transaction() as session:
        items = await store.recent_broadcasts(session=session, area_codes=None, include_everyone=True,
                                              since=services.clock() - timedelta(days=days), limit=limit)
        counts = await store.broadcast_counts(session=session, broadcast_ids=[b.id for b in items])
        totals = await outbox.count_by_status(session=session)
    return [BroadcastLine(b, counts[b.id]) for b in items], totals.get("unknown", 0)
