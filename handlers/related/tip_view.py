"""The "Liên quan" part of /tip: for each identifier this tip shares, the other tips an officer may open,
and for the rest only how many, per unit, so they can ask through their supervisor."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import related
from storage.audit import append_audit
from storage.crypto import DataKey, Keyring


@dataclass(frozen=True)
class RelatedView:
    """One shared identifier as an officer sees it: masked, the tips in their scope, counts elsewhere."""

    kind: str
    masked: str
    in_scope: tuple[related.RelatedTip, ...]
    elsewhere: dict[str | None, int]  # unit id → how many tips there; the reference is not shown


@dataclass(frozen=True)
class TipRelations:
    shared: tuple[RelatedView, ...]
    links: tuple[related.TipLink, ...]  # by hand; out-of-scope ones are the caller's to show or count

    def __bool__(self) -> bool:
        return bool(self.shared or self.links)


async def relations_for_officer(*, session: AsyncSession, keyring: Keyring, data_key: DataKey, tip_ref: str,
                                scope_unit_ids: Collection[str], actor: str) -> TipRelations:
    """What /tip shows under "Liên quan"; the showing is audited (how many, never which identifier)."""
    scope = set(scope_unit_ids)
    views = []
    for group in await related.related_tips(session=session, data_key=data_key, unit_ids=sorted(scope)):
        outside = {unit: n for unit, n in group.count_by_unit.items() if unit not in scope}
        views.append(RelatedView(kind=group.kind, masked=group.masked, in_scope=group.tips, elsewhere=outside))
    links = tuple(await related.links_of(session=session, tip_id=data_key.owner_id))
    if views or links:
        shown = sum(len(v.in_scope) for v in views)
        counted = sum(sum(v.elsewhere.values()) for v in views)
        await append_audit(session=session, keyring=keyring, actor=actor, action="related", tip_ref=tip_ref,
                           detail=f"identifiers={len(views)} shown={shown} elsewhere={counted} links={len(links)}")
    return TipRelations(shared=tuple(views), links=links)
