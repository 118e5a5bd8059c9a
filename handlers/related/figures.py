"""For /stats and /baocao: the identifiers several tips of a period name ("one bank account in 15 fraud
tips"), masked, most named first. Small counts are hidden by the caller, as for every other figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import keys as key_store
from storage import related
from storage.crypto import Keyring


@dataclass(frozen=True)
class RepeatedFigure:
    kind: str
    masked: str  # "•••••123": opened from one tip that names it
    tip_count: int


async def repeated_identifier_figures(*, session: AsyncSession, keyring: Keyring, since: datetime,
                                      until: datetime, unit_ids: Sequence[str], min_tips: int = 2,
                                      limit: int = 10) -> list[RepeatedFigure]:
    """Identifiers named by at least ``min_tips`` tips received in [since, until) in these units."""
    figures = []
    for row in await related.repeated_identifiers(session=session, since=since, until=until, unit_ids=unit_ids,
                                                  min_tips=min_tips, limit=limit):
        data_key = await key_store.load_data_key(session=session, keyring=keyring, owner_id=row.sample_tip_id)
        masked = None if data_key is None else await related.open_masked(session=session, data_key=data_key,
                                                                         digest=row.digest)
        figures.append(RepeatedFigure(kind=row.kind, masked=masked or "•••", tip_count=row.tip_count))
    return figures
