"""For /stats and /baocao: the identifiers several tips of a period name ("one bank account in 15 fraud
tips"), masked, most named first. Small counts are hidden by the caller, as for every other figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.i18n import number
from handlers.related.tip_view import KIND_NAMES
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


SHOWN = 10


async def repeated_section(turn, f) -> str:
    """The end of /stats and /baocao: identifiers named in at least K tips of the period (K the figures'
    smallest shown count, at least 2), masked, with their counts; "" when there are none."""
    _ = f._
    k = max(2, f.k)
    start, end = f.period.bounds()
    units = turn.services.settings.unit_tree.subtree(f.unit_id)
    figures = await repeated_identifier_figures(session=turn.session, keyring=turn.services.keyring, since=start,
                                                until=end, unit_ids=units, min_tips=k, limit=SHOWN)
    if not figures:
        return ""
    lines = ["", "", _("Identifiers reported in more than one tip (masked):")]
    for row in figures:
        kind = _(KIND_NAMES.get(row.kind, row.kind))
        lines.append(_("• {kind} {masked}: {n} tips").format(kind=kind[:1].upper() + kind[1:], masked=row.masked,
                                                            n=number(row.tip_count, f.lang)))
    if k > 2:
        lines.append(_("Only those named in at least {k} tips are shown.").format(k=k))
    return "\n".join(lines)
