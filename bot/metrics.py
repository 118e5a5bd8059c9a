"""/metrics in Prometheus' text format (prometheus-client): updates by channel and outcome, turn latency,
tips by status, the reminder outbox, the Zalo OA token's expiry. Labels are channel names, outcomes and
statuses only: nothing that could name a citizen, a chat or a tip."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

from handlers.context import Services
from storage.outbox import count_by_status
from storage.service_state import tips_by_status, zalo_oa_token_expiry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("handled", "duplicate", "undecodable", "refused")  # always shown, 0 until they happen
OUTBOX = ("pending", "sent", "failed", "unknown")
TURN_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _UpdateOutcomes:
    """tinbao_updates_total read at each scrape from the counters the channels already keep."""

    def __init__(self, outcomes: Mapping[str, Counter[str]]) -> None:
        self.outcomes = outcomes

    def collect(self):
        family = CounterMetricFamily("tinbao_updates", "Updates taken, by channel and what became of them",
                                     labels=["channel", "outcome"])
        for channel, counts in sorted(self.outcomes.items()):
            for outcome in sorted(set(OUTCOMES) | set(counts)):
                family.add_metric([channel, outcome], counts.get(outcome, 0))
        yield family


class _RepliesUnknown:
    """tinbao_replies_unknown_total: replies whose delivery nobody can tell (a timeout, a dropped link, a
    worker killed while sending); they are never sent twice, so they are counted instead."""

    def __init__(self) -> None:
        self.outboxes: list[Any] = []

    def collect(self):
        family = CounterMetricFamily("tinbao_replies_unknown", "Replies whose delivery is unknown (never resent)")
        family.add_metric([], sum(outbox.unknown for outbox in self.outboxes))
        yield family


class Metrics:
    """The figures of one `tinbao run`, in a registry of its own (two in one test process do not mix)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.outcomes: dict[str, Counter[str]] = {}  # channel → its own outcome counter (shared, not copied)
        self.refused: dict[str, Counter[str]] = {}
        self.registry = CollectorRegistry()
        self.registry.register(_UpdateOutcomes(self.outcomes))
        self._unknown = _RepliesUnknown()
        self.registry.register(self._unknown)
        self.turns = Histogram("tinbao_turn_seconds", "Time to answer one update, replies not included",
                               ["channel"], buckets=TURN_BUCKETS, registry=self.registry)
        self.tips = Gauge("tinbao_tips", "Tips by status", ["status"], registry=self.registry)
        self.outbox = Gauge("tinbao_outbox_messages", "Reminder outbox rows by status", ["status"],
                            registry=self.registry)
        self.token_expiry = Gauge("tinbao_zalo_oa_token_expiry_timestamp_seconds",
                                  "When the Zalo OA access token runs out (Unix time; absent: no OA connected)",
                                  registry=self.registry)

    def count(self, channel: str, outcomes: Counter[str]) -> None:
        """Report this channel's outcome counter (the one the channel itself keeps)."""
        self.outcomes[channel] = outcomes

    def watch_replies(self, outbox: Any) -> None:
        """Report the reply outbox's count of replies whose delivery is unknown."""
        self._unknown.outboxes.append(outbox)

    def refuse(self, channel: str) -> None:
        """A call to the channel's webhook without its secret or signature."""
        counts = self.outcomes.setdefault(channel, Counter())
        counts["refused"] += 1

    def timed(self, handle: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        """The tip line's handle(inbound), timed per channel."""
        async def timed_handle(inbound):
            started = time.perf_counter()
            try:
                return await handle(inbound)
            finally:
                self.turns.labels(inbound.channel).observe(time.perf_counter() - started)
        return timed_handle

    async def render(self) -> bytes:
        """Everything, the database's counts read now."""
        async with self.services.db.transaction() as session:
            tips = await tips_by_status(session=session)
            outbox = await count_by_status(session=session)
            expiry = await zalo_oa_token_expiry(session=session)
        self.tips.clear()
        for status, n in tips.items():
            self.tips.labels(status).set(n)
        self.outbox.clear()
        for status in sorted(set(OUTBOX) | set(outbox)):
            self.outbox.labels(status).set(outbox.get(status, 0))
        self.token_expiry.set(expiry.timestamp() if expiry is not None else float("nan"))
        return generate_latest(self.registry)
