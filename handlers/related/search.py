"""/search VALUE: the tips in an officer's scope that mention a phone number, account, plate, handle or
wallet, however it is written; the search is audited by its blind index, never its value."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.related.extract import interpret_search
from storage import related
from storage.audit import append_audit
from storage.crypto import Keyring


@dataclass(frozen=True)
class SearchResult:
    understood: bool  # False: the value is no phone, account, plate, handle or wallet we can read
    kinds: tuple[str, ...]  # what the value was read as
    in_scope: tuple[related.SearchHit, ...]
    elsewhere: dict[str | None, int]  # unit id → how many tips there


async def search_for_officer(*, session: AsyncSession, keyring: Keyring, value: str,
                             scope_unit_ids: Collection[str], actor: str, limit: int = 50) -> SearchResult:
    """The tips in scope that mention ``value`` (newest first), and how many elsewhere, per unit."""
    identifiers = interpret_search(value)
    if not identifiers:
        return SearchResult(understood=False, kinds=(), in_scope=(), elsewhere={})
    scope = set(scope_unit_ids)
    hits = await related.find_tips_by_value(session=session, keyring=keyring, identifiers=identifiers,
                                            unit_ids=sorted(scope), limit=5 * limit)
    seen: set[str] = set()
    inside = []
    for hit in hits:
        if hit.tip.tip_id not in seen:  # one tip naming the number as phone and as Zalo is one tip
            seen.add(hit.tip.tip_id)
            inside.append(hit)
    counts = await related.count_tips_by_value(session=session, keyring=keyring, identifiers=identifiers)
    outside = {unit: n for unit, n in counts.items() if unit not in scope}
    kinds = tuple(dict.fromkeys(i.kind for i in identifiers))
    # The start of each blind index searched (found or not) lets an auditor holding the keyring check whether a
    # given value was searched; the value itself is not kept.
    marks = ",".join(related.digests(keyring=keyring, kind=i.kind, value=i.value)[keyring.related_active_id][:12]
                     for i in identifiers)
    await append_audit(session=session, keyring=keyring, actor=actor, action="search",
                       detail=f"kinds={'+'.join(kinds)} found={len(inside)} elsewhere={sum(outside.values())} "
                              f"index={marks}")
    return SearchResult(understood=True, kinds=kinds, in_scope=tuple(inside[:limit]), elsewhere=dict(outside))
