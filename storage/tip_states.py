"""A tip's states, and the only functions that move a tip from one to another.

```mermaid
stateDiagram-v2
    [*] --> new: a citizen sends the tip
    new --> in_review: claim (/next, /tip)
    transferred --> in_review: claim
    in_review --> new: release
    needs_info --> new: release
    in_review --> needs_info: ask (/ask)
    needs_info --> needs_info: ask again
    needs_info --> in_review: the tipster answers
    new --> transferred: transfer
    transferred --> transferred: transfer
    in_review --> transferred: transfer
    needs_info --> transferred: transfer
    new --> valuable: judge
    transferred --> valuable: judge
    in_review --> valuable: judge
    needs_info --> valuable: judge
    new --> not_valuable: judge
    transferred --> not_valuable: judge
    in_review --> not_valuable: judge
    needs_info --> not_valuable: judge
    valuable --> in_review: reopen (a supervisor)
    not_valuable --> in_review: reopen (a supervisor)
    not_valuable --> [*]: purged after the retention period (the row stays for the figures)
```

Each function checks the state it starts from and raises ``StateError`` otherwise: the handlers refuse
politely before calling (the officer reads why), so a ``StateError`` is a bug, not a user's mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Tip


class TipStatus(StrEnum):
    NEW = "new"
    TRANSFERRED = "transferred"
    IN_REVIEW = "in_review"
    NEEDS_INFO = "needs_info"  # a question waits for the tipster
    VALUABLE = "valuable"
    NOT_VALUABLE = "not_valuable"


# Waiting for an officer: nobody has it, or it came back (released, transferred).
PENDING = (TipStatus.NEW, TipStatus.TRANSFERRED)
CLAIMED = (TipStatus.IN_REVIEW, TipStatus.NEEDS_INFO)
OPEN = PENDING + CLAIMED
JUDGED = (TipStatus.VALUABLE, TipStatus.NOT_VALUABLE)


class StateError(RuntimeError):
    """A transition was asked of a tip in a state it does not start from."""


def _from(tip: Tip, allowed: Sequence[TipStatus], transition: str) -> None:
    if tip.status not in allowed:
        raise StateError(f"tip {tip.ref}: cannot {transition} from {tip.status!r}")


def in_states(states: Sequence[str]):
    """``status IN (…)`` with the states written into the SQL: a planner then knows that the queue indexes of
    storage/models.py (partial, on these states) hold every row asked for, which a bound parameter hides from
    SQLite always and from PostgreSQL's generic plans. States are this module's constants, never typed text."""
    return Tip.status.in_(bindparam("states", [TipStatus(s).value for s in states], expanding=True,
                                    literal_execute=True, unique=True))


def queue_order():
    """Urgent tips first, then the oldest (the order of the queue indexes in storage/models.py: a page reads
    only its own rows from them; urgent is never NULL, so true sorts first)."""
    return (Tip.urgent.desc(), Tip.created_at)


# Built once: a claim is the hot path of /next, and building the statement cost more than running it.
# One statement, so the officer waits for one answer: the subquery picks the head of the queue and the UPDATE
# takes it. PostgreSQL: the subquery's FOR UPDATE SKIP LOCKED steps over a tip another officer is claiming
# this instant (and re-checks the state of one claimed since it looked), and "id = (subquery)" runs it once.
# SQLite writes nothing for FOR UPDATE: every transaction begins IMMEDIATE (storage/db.py), so the one
# writer at a time reads and takes the head alone.
_NEXT_WAITING = (select(Tip.id).where(Tip.unit_id.in_(bindparam("unit_ids", expanding=True)), in_states(PENDING))
                 .order_by(*queue_order()).limit(1).with_for_update(skip_locked=True))
_CLAIM_NEXT = (update(Tip).where(Tip.id == _NEXT_WAITING.scalar_subquery(), in_states(PENDING))
               .values(status=TipStatus.IN_REVIEW.value, claimed_by=bindparam("officer_id"),
                       claimed_at=bindparam("now"), updated_at=bindparam("now"))
               .returning(Tip)
               # The row comes back whole from RETURNING: nothing to match against the session beforehand.
               .execution_options(synchronize_session=False, populate_existing=True))


async def claim_next(*, session: AsyncSession, unit_ids: Sequence[str], officer_id: int, now: datetime) -> Tip | None:
    """Atomically take the next waiting tip: two officers never get the same one."""
    result = await session.exec(_CLAIM_NEXT, params={"unit_ids": list(unit_ids), "officer_id": officer_id, "now": now})
    return result.scalars().first()


async def claim(*, session: AsyncSession, tip: Tip, officer_id: int, now: datetime) -> bool:
    """Claim a given waiting tip; False if someone else got it first (the row's state decides, not ours)."""
    result = await session.exec(update(Tip).where(Tip.id == tip.id, Tip.status.in_(PENDING)).values(
        status=TipStatus.IN_REVIEW.value, claimed_by=officer_id, claimed_at=now, updated_at=now))
    if result.rowcount == 1:
        await session.refresh(tip)
        return True
    return False


def release(*, session: AsyncSession, tip: Tip, now: datetime) -> None:
    """A claimed tip goes back to the queue, held by nobody."""
    _from(tip, CLAIMED, "release")
    tip.status, tip.claimed_by, tip.claimed_at, tip.updated_at = TipStatus.NEW.value, None, None, now
    session.add(tip)


def transfer(*, session: AsyncSession, tip: Tip, unit_id: str, now: datetime) -> None:
    """An open tip goes to another unit's queue, held by nobody."""
    _from(tip, OPEN, "transfer")
    tip.unit_id, tip.status, tip.claimed_by, tip.claimed_at, tip.updated_at = (
        unit_id, TipStatus.TRANSFERRED.value, None, None, now)
    session.add(tip)


def judge(*, session: AsyncSession, tip: Tip, verdict: TipStatus, reason: str | None, officer_id: int,
          now: datetime) -> None:
    """The verdict on an open tip; the officer who judged it holds it if nobody did."""
    _from(tip, OPEN, "judge")
    if verdict not in JUDGED:
        raise StateError(f"tip {tip.ref}: {verdict!r} is not a verdict")
    tip.status, tip.verdict_reason, tip.verdict_at, tip.updated_at = verdict.value, reason, now, now
    tip.claimed_by = tip.claimed_by or officer_id
    session.add(tip)


def ask(*, session: AsyncSession, tip: Tip, officer_id: int, now: datetime) -> None:
    """A question to the tipster is on its way: the tip waits for the answer, held by whoever held it (or the asker)."""
    _from(tip, OPEN, "ask about")
    tip.status, tip.claimed_by, tip.updated_at = TipStatus.NEEDS_INFO.value, tip.claimed_by or officer_id, now
    session.add(tip)


def answered(*, session: AsyncSession, tip: Tip, now: datetime) -> None:
    """The tipster's answer arrived: a tip waiting for it is in review again; any other open tip stays as it is."""
    _from(tip, OPEN, "take an answer for")
    if tip.status == TipStatus.NEEDS_INFO:
        tip.status = TipStatus.IN_REVIEW.value
    tip.updated_at = now
    session.add(tip)


def reopen(*, session: AsyncSession, tip: Tip, now: datetime, holder_id: int) -> None:
    """A verdict is taken back: the tip is in review again, held by ``holder_id`` (the officer who judged it
    while they are enrolled, otherwise the one reopening it: the caller checks, storage.officers.still_enrolled).

    The claim time restarts, so the reopened tip is not at once reported as sitting in review too long."""
    _from(tip, JUDGED, "reopen")
    if tip.purged_at is not None:  # its content is gone: there is nothing left to review
        raise StateError(f"tip {tip.ref}: cannot reopen a purged tip")
    tip.status, tip.verdict_reason, tip.verdict_at = TipStatus.IN_REVIEW.value, None, None
    tip.claimed_by, tip.claimed_at, tip.updated_at = holder_id, now, now
    session.add(tip)
